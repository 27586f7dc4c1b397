"""`sagemaker_janitor`: delete idle dev endpoints and old, unused models and endpoint configs.

Wiring only: each task is one call into ``include/mlpipeline/pipelines/janitor.py``; the decisions
are ``include/mlpipeline/janitor.py`` (pure functions over listed resources). One DAG for all configured models: resources of one model may share an account with
another's, and the prod endpoints of *every* model and stage are protected together.

``dry_run``: scheduled runs delete; a manual trigger lists only, unless ``dry_run`` is set to
false explicitly. A form left at its defaults therefore never deletes anything, while the schedule
still does its job.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, chain, task

from include.mlpipeline.dag_support import Clients, cron_timetable, dag_defaults
from include.mlpipeline.pipelines import janitor as tasks

SCHEDULE = "30 5 * * *"  # daily, after nightly training (02:00) and batch scoring (04:00)

DOC = """
### SageMaker janitor

Lists endpoints, endpoint configs and models, then deletes

* **dev endpoints** (`endpoint.dev_name` of any model) unmodified for `janitor.dev_endpoint_ttl_hours`
  and not mid-deployment;
* **endpoint configs and models** of a configured model (name starts with its slug) beyond the newest
  `janitor.keep_last`, unless an endpoint that stays uses them.

Never touched: every model's prod endpoint (all stages) and what it uses, models of running batch
transforms, resources of no configured model. **plan** logs the table of decisions; **apply**
re-checks each deletion against the live state.

`dry_run` (null by default): scheduled runs delete, manual runs only list. Set it to `false` to
delete from a manual run, `true` to list from anywhere. `ttl_hours` / `keep_last` override the config
for one run.
"""


with DAG(
    dag_id="sagemaker_janitor",
    description="Delete idle dev endpoints and unused old models / endpoint configs",
    doc_md=DOC,
    schedule=cron_timetable(SCHEDULE),
    **dag_defaults(
        None,
        "maintenance",
        default_args_={"retries": 2, "retry_delay": timedelta(seconds=30), "on_failure_callback": tasks.on_failure},
        params={
            "dry_run": Param(
                None,
                type=["null", "boolean"],
                description="true: only list. false: delete. Empty: delete on schedule, list on manual runs",
            ),
            "ttl_hours": Param(
                None, type=["null", "number"], minimum=0, description="Dev endpoint TTL (default: config)"
            ),
            "keep_last": Param(
                None, type=["null", "integer"], minimum=1, description="Newest models/configs kept per model"
            ),
        },
    ),
) as dag:

    @task
    def plan(**context: Any) -> tasks.Planned:
        scheduled = context["dag_run"].run_type == "scheduled"
        return tasks.plan(Clients(), dict(context["params"]), now=pendulum.now("UTC"), scheduled=scheduled)

    @task.short_circuit
    def live(planned: tasks.Planned) -> bool:
        return tasks.live(planned)

    @task
    def apply(planned: tasks.Planned) -> dict[str, Any]:
        return tasks.apply(Clients(), planned)

    # The ignores below ([arg-type]): airflow.sdk types a @task call with the function's own parameters
    # (Task.__call__: Callable[FParams, XComArg]); the XComArgs passed here are resolved at run time
    planned = plan()
    chain(live(planned), apply(planned))  # type: ignore[arg-type]
