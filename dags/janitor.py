"""`sagemaker_janitor`: delete idle dev endpoints and old, unused models and endpoint configs.

Wiring only; the decisions are ``include/mlpipeline/janitor.py`` (pure functions over listed
resources). One DAG for all configured models: resources of one model may share an account with
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

from include.mlpipeline.config import list_models
from include.mlpipeline.dag_support import cron_timetable

CONN = "aws_default"
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


def _on_failure(context: Any) -> None:
    """Publish a failed janitor task to the alerts topic (a base setting, read from the first model)."""
    import logging

    from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

    from include.mlpipeline.config import default_stage, load_config

    log = logging.getLogger(__name__)
    try:
        topic = load_config(list_models()[0], default_stage()).alerts.sns_topic_arn
    except Exception as exc:  # noqa: BLE001 - the config itself may be what failed
        log.warning("no failure notification: config unusable: %s", exc)
        return
    if not topic:
        return
    ti = context.get("ti") or context.get("task_instance")
    message = f"sagemaker_janitor run {context.get('run_id')} task {getattr(ti, 'task_id', '?')} failed: {context.get('exception')}"
    try:
        SnsNotifier(
            aws_conn_id=CONN,
            target_arn=topic,
            message=message,
            subject=f"sagemaker_janitor: {getattr(ti, 'task_id', '?')} failed",
        ).notify(context)
    except Exception as err:  # noqa: BLE001 - never hide the task's own error
        log.warning("could not publish the janitor failure to %s: %s", topic, err)


def _policy(params: dict[str, Any]) -> dict[str, Any]:
    """Names and settings across every model and stage; the most conservative settings win."""
    from include.mlpipeline.config import default_stage, list_stages, load_config
    from include.mlpipeline.janitor import janitor_settings

    protected: set[str] = set()
    dev: set[str] = set()
    slugs: set[str] = set()
    ttl_hours: list[float] = []
    keep: list[int] = []
    for model in list_models():
        for stage in list_stages():
            cfg = load_config(model, stage)
            protected.add(cfg.endpoint.prod_name)
            dev.add(cfg.endpoint.dev_name)
            slugs.add(cfg.model_slug)
            if stage == (params.get("stage") or default_stage()):
                settings = janitor_settings(cfg)
                ttl_hours.append(settings.dev_endpoint_ttl_hours)
                keep.append(settings.keep_last)
    ttl = params.get("ttl_hours")
    keep_last = params.get("keep_last")
    return {
        "protected": sorted(protected),
        "dev": sorted(dev - protected),
        "slugs": sorted(slugs),
        "ttl_hours": float(ttl if ttl is not None else max(ttl_hours)),
        "keep_last": int(keep_last if keep_last is not None else max(keep)),
    }


with DAG(
    dag_id="sagemaker_janitor",
    description="Delete idle dev endpoints and unused old models / endpoint configs",
    doc_md=DOC,
    schedule=cron_timetable(SCHEDULE),
    catchup=False,
    max_active_runs=1,
    tags=["sagemaker", "maintenance"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "on_failure_callback": _on_failure},
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
) as dag:

    @task
    def plan(**context: Any) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        from include.mlpipeline import janitor as jn

        params = dict(context["params"])
        policy = _policy(params)
        sm = SageMakerHook(aws_conn_id=CONN).conn
        inventory = jn.list_resources(sm, policy["slugs"])
        protected = set(policy["protected"]) | jn.running_transform_models(sm)
        decided = jn.plan_cleanup(
            inventory.endpoints,
            inventory.configs,
            inventory.models,
            pendulum.now("UTC"),
            timedelta(hours=policy["ttl_hours"]),
            policy["keep_last"],
            protected,
            dev_endpoint_names=policy["dev"],
            model_slugs=policy["slugs"],
        )
        dry_run = params.get("dry_run")
        if dry_run is None:
            dry_run = context["dag_run"].run_type != "scheduled"
        print(
            f"policy: dev endpoints {policy['dev']} TTL {policy['ttl_hours']:g} h; keep the newest "
            f"{policy['keep_last']} per model {policy['slugs']}; protected {sorted(protected)}"
        )
        print(("DRY RUN (nothing is deleted)\n" if dry_run else "") + decided.render())
        return {"dry_run": bool(dry_run), "plan": decided.to_dict(), "policy": policy}

    @task.short_circuit
    def live(planned: dict[str, Any]) -> bool:
        if planned["dry_run"]:
            print("dry run: nothing deleted (trigger with dry_run=false to delete)")
            return False
        if not planned["plan"]["delete"]:
            print("nothing to delete")
            return False
        return True

    @task
    def apply(planned: dict[str, Any]) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        from include.mlpipeline import janitor as jn

        sm = SageMakerHook(aws_conn_id=CONN).conn
        done = jn.apply_plan(sm, jn.Plan.from_dict(planned["plan"]))
        for kind, names in done.deleted.items():
            print(f"deleted {len(names)} {kind}(s): {names}")
        for line in done.skipped:
            print(f"skipped {line}")
        return done.to_dict()

    planned = plan()
    chain(live(planned), apply(planned))
