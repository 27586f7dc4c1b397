"""`<model>_training`: raw data to a production endpoint on SageMaker, one DAG per configured model.

Wiring only: each task is one call into ``include/mlpipeline/pipelines/training.py``; what the steps
do lives in ``include/mlpipeline`` and in the amazon provider's SageMaker operators. This file reads
a few small YAML files at parse time and imports nothing heavy (pandas, boto3 clients, tensorflow
load inside the tasks that need them). The same file runs against AWS and against localmaker: only
the ``aws_default`` connection differs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, TaskGroup, chain, task

from include.mlpipeline.config import default_stage, form_summary, list_models, load_config
from include.mlpipeline.dag_support import (
    CONN,
    Clients,
    cfg_ctx,
    dag_defaults,
    failed_run_cfg_ctx,
    model_asset,
    retrain_request_asset,
    run_wait_settings,
    schedule_with_asset,
    stage_param,
    stage_values,
    task_inputs,
    training_data_asset,
    waits,
)
from include.mlpipeline.operators import (
    IdempotentEndpointOperator,
    ProcessingOperator,
    RegisterModelVersionOperator,
    ResumableTrainingOperator,
    TransformOperator,
    TuningOperator,
)
from include.mlpipeline.pipelines import training as tasks

DOC = """
### {model}: train, evaluate, gate, register, deploy

Tasks are grouped by stage (**data**, **train**, **evaluate**, **register**, **deploy_dev**, **approve**,
**promote**); a task's id is `<group>.<task>`.

1. **extract** the source ({source}) into the run's S3 prefix; **validate_and_prepare** checks every row
   against the schema (bad rows to `quarantine/`, the run fails above the configured share), splits
   train/validation/test deterministically and uploads the channels (publishes `{model}_training_data`).
2. **train** (or **tune** when `tuning` is on) with the configured instances; the training log goes
   into the task log. Every SageMaker wait is deferred to the triggerer unless `airflow.deferrable` is
   off (the run conf `{{"airflow.deferrable": false}}` waits in the task instead).
3. **evaluate**: a batch transform scores the test set *on SageMaker*; metrics, a report and a
   predicted-vs-actual plot go to S3. **gate**: thresholds AND no worse than the champion, else the run
   stops here (skipped, prod untouched).
4. **register** a model package, deploy the **dev** endpoint, **smoke_test** it, wait for **approve**
   (skipped with `auto_approve`), blue/green update of **prod**, its monitoring **baseline**
   (statistics + constraints beside the package), then **promote** the package to champion.
5. **record_outcome** (however the run ended): *promoted*, *gated out*, *rejected*, *not deployed*,
   *no change* (the champion was trained on the same data, by content hash, with the same image and
   hyperparameters: the gate stops the run, nothing to approve or deploy) or *failed*, as an event
   of the `{model}_model` asset with the metrics, and as the task's log and XCom.

Trigger with params to override the stage config for one run (instance type, hyperparameters, ...).
"""


def build_training_dag(model: str) -> DAG:
    cfg = load_config(model, default_stage())
    data_asset = training_data_asset(model)
    outcome_asset = model_asset(model)
    wait = waits(cfg.airflow, run_wait_settings(model))
    with DAG(
        dag_id=f"{model}_training",
        description=f"Train, evaluate, gate, register and deploy {model} on SageMaker",
        doc_md=DOC.format(model=model, source=cfg.data.source_uri),
        schedule=schedule_with_asset(cfg.schedules.training, retrain_request_asset(model)),
        **dag_defaults(
            model,
            "training",
            settings=cfg.airflow,
            params={
                "stage": stage_param(cfg.stage, "Stage config to extend (dev/prod)"),
                "instance_type": Param(
                    None,
                    type=["null", "string"],
                    description=f"Training instance type; blank uses the stage's ({stage_values(model, 'training.instance_type')})",
                ),
                "instance_count": Param(None, type=["null", "integer"], minimum=1, description="Training instances"),
                "hyperparameters": Param(
                    {},
                    type="object",
                    description="Hyperparameters merged over the configured ones, checked before anything runs. "
                    + form_summary(cfg),
                ),
                "tuning": Param(
                    cfg.tuning.enabled,
                    type=["null", "boolean"],
                    description=f"Run a tuning job instead of one training (configured: {'on' if cfg.tuning.enabled else 'off'})",
                ),
                "deploy": Param(True, type="boolean", description="Deploy dev and prod after the gate"),
                "auto_approve": Param(False, type="boolean", description="Skip the human approval before prod"),
            },
        ),
    ) as dag:

        @task
        def extract(**context: Any) -> dict[str, Any]:
            """Stream the source into the run's prefix, so later steps (and retries) read S3 only."""
            return tasks.extract(*task_inputs(model, context))

        @task(outlets=[data_asset])
        def validate_and_prepare(raw: dict[str, Any], **context: Any) -> dict[str, Any]:
            result = tasks.validate_and_prepare(*task_inputs(model, context), raw)
            context["outlet_events"][data_asset].extra = {"prefix": result["prefix"], "rows": result["rows"]}
            return result

        @task
        def training_requests(etl: dict[str, Any], **context: Any) -> tasks.TrainingRequests:
            return tasks.training_requests(*task_inputs(model, context), etl)

        @task.branch
        def train_or_tune(**context: Any) -> str:
            return tasks.train_or_tune(cfg_ctx(model, context)[0])

        @task(trigger_rule="none_failed_min_one_success")
        def candidate(**context: Any) -> tasks.Candidate:
            """The model this run produced, from whichever of train / tune ran."""
            return tasks.candidate(Clients(), context["ti"].xcom_pull)

        @task
        def evaluation_request(cand: tasks.Candidate, etl: dict[str, Any], **context: Any) -> tasks.ModelAndTransform:
            """Model + transform of the held-out test set, scored in order against its labels."""
            return tasks.evaluation_request(*cfg_ctx(model, context), cand, etl)

        @task
        def evaluate(
            cand: tasks.Candidate, transformed: dict[str, Any], etl: dict[str, Any], **context: Any
        ) -> tasks.Evaluation:
            return tasks.evaluate(*task_inputs(model, context), cand, transformed, etl)

        @task.short_circuit
        def gate(evaluation: tasks.Evaluation) -> bool:
            """A model that is not good enough ends the run cleanly: skipped, prod untouched."""
            return tasks.gate(evaluation)

        @task
        def package_request(cand: tasks.Candidate, evaluation: tasks.Evaluation, **context: Any) -> dict[str, Any]:
            return tasks.package_request(*cfg_ctx(model, context), cand, evaluation)

        @task.short_circuit
        def deploy_enabled(**context: Any) -> bool:
            return cfg_ctx(model, context)[0].run.deploy

        @task
        def deploy_config(cand: tasks.Candidate, target: Literal["dev", "prod"], **context: Any) -> dict[str, Any]:
            return tasks.deploy_request(*cfg_ctx(model, context), cand, target)

        @task
        def smoke_test(etl: dict[str, Any], **context: Any) -> dict[str, Any]:
            """Real requests to the dev endpoint: every row answered, finite, within the latency bound."""
            return tasks.smoke_test(cfg_ctx(model, context)[0], Clients(), etl)

        @task.branch
        def approval_route(**context: Any) -> str:
            return tasks.approval_route(cfg_ctx(model, context)[0])

        @task(trigger_rule="none_failed_min_one_success")
        def prod_config(cand: tasks.Candidate, **context: Any) -> dict[str, Any]:
            return tasks.deploy_request(*cfg_ctx(model, context), cand, "prod", include_model=False)

        @task
        def baseline_request(package_arn: str, etl: dict[str, Any], **context: Any) -> dict[str, Any]:
            """Model Monitor statistics/constraints of the champion's training data, stored beside
            its package version, for the monitoring DAG to compare captured traffic against."""
            return tasks.baseline_request(*cfg_ctx(model, context), package_arn, etl)

        @task
        def promote(package_arn: str, evaluation: tasks.Evaluation, **context: Any) -> tasks.Promoted:
            """The deployed package becomes the champion the next run's gate compares against."""
            return tasks.promote(Clients(), package_arn, evaluation, context["run_id"])

        @task(trigger_rule="one_failed", retries=0)
        def clean_up_failed_run(**context: Any) -> dict[str, list[str]]:
            """Delete what this run half-made (its models, configs and jobs no endpoint uses)."""
            cfg, ctx, problem = failed_run_cfg_ctx(model, context)
            return tasks.clean_up_failed_run(cfg, ctx, Clients(), problem)

        @task(outlets=[outcome_asset], retries=0)
        def record_outcome(**context: Any) -> tasks.RunOutcome:
            """Promoted, gated out, rejected or no change: an event of the model asset with the
            outcome and the metrics (a gated-out run is as green as a deployed one)."""
            result = tasks.run_outcome(context["ti"].xcom_pull, context["run_id"])
            context["outlet_events"][outcome_asset].extra = result["event"]
            return result

        # ----------------------------------------------------------------------------- wiring
        # The ignores below ([arg-type], [index]): airflow.sdk types a @task call with the function's own
        # parameters (Task.__call__: Callable[FParams, XComArg]) and its result as an XComArg without
        # __getitem__; the XComArgs passed here are resolved at run time
        with TaskGroup(tasks.DATA):
            etl = validate_and_prepare(extract())  # type: ignore[arg-type]
        with TaskGroup(tasks.TRAIN_GROUP):
            reqs = training_requests(etl)  # type: ignore[arg-type]
            train = ResumableTrainingOperator(
                task_id="train", config=reqs["training"], aws_conn_id=CONN, print_log=True, **wait  # type: ignore[index]
            )
            tune = TuningOperator(task_id="tune", config=reqs["tuning"], aws_conn_id=CONN, **wait)  # type: ignore[index]
            cand = candidate()
            chain(reqs, train_or_tune(), [train, tune], cand)
        with TaskGroup(tasks.EVALUATE_GROUP):
            evaluate_transform = TransformOperator(
                task_id="evaluate_transform", config=evaluation_request(cand, etl), aws_conn_id=CONN, **wait  # type: ignore[arg-type]
            )
            evaluation = evaluate(cand, evaluate_transform.output, etl)  # type: ignore[arg-type]
            passed = gate(evaluation)  # type: ignore[arg-type]
        with TaskGroup(tasks.REGISTER_GROUP):
            register = RegisterModelVersionOperator(
                task_id="register",
                aws_conn_id=CONN,
                image_uri=cfg.training.image_uri,
                model_url=f"{{{{ ti.xcom_pull(task_ids='{tasks.CANDIDATE}')['model_data_url'] }}}}",
                package_group_name=cfg.registry.model_package_group_name,
                package_group_desc=cfg.registry.description,
                extras=package_request(cand, evaluation),  # type: ignore[arg-type]
            )
        with TaskGroup(tasks.DEPLOY_DEV_GROUP):
            deploy_dev = IdempotentEndpointOperator(
                task_id="deploy_dev", config=deploy_config(cand, "dev"), aws_conn_id=CONN, operation="create", **wait  # type: ignore[arg-type]
            )
            smoke = smoke_test(etl)  # type: ignore[arg-type]
            enabled = deploy_enabled()
            chain(enabled, deploy_dev, smoke)
        with TaskGroup(tasks.APPROVE_GROUP):
            approve = ApprovalOperator(
                task_id="approve",
                subject=f"Promote {model} to production?",
                body=tasks.approval_body(cfg),
                # an unanswered (e.g. nightly) run must not hold the DAG's only active run for days
                defaults=["Reject"],
                response_timeout=timedelta(hours=cfg.run.approval_timeout_hours),
                ignore_downstream_trigger_rules=True,
                retries=0,
            )
            auto_approved = EmptyOperator(task_id="auto_approved")
            route = approval_route()
            chain(route, [approve, auto_approved])
        with TaskGroup(tasks.PROMOTE_GROUP):
            prod_cfg = prod_config(cand)  # type: ignore[arg-type]
            deploy_prod = IdempotentEndpointOperator(
                task_id="deploy_prod", config=prod_cfg, aws_conn_id=CONN, operation="create", **wait
            )
            champion = promote(register.output, evaluation)  # type: ignore[arg-type]
            if cfg.monitoring.enabled:
                # the baseline exists before the package becomes champion, so monitoring never finds
                # a champion without one
                baseline = ProcessingOperator(
                    task_id="baseline", config=baseline_request(register.output, etl), aws_conn_id=CONN, **wait  # type: ignore[arg-type]
                )
                chain(deploy_prod, baseline, champion)
                watched = [baseline]
            else:  # nothing tabular to profile (an image model): no baseline, no monitoring DAG
                chain(deploy_prod, champion)
                watched = []
        chain(passed, register, enabled)
        chain(smoke, route)
        chain([approve, auto_approved], prod_cfg)
        # The run's outcome: clean_up_failed_run is a leaf that *succeeds* after a failure, so
        # without this leaf a failed run would be marked successful. Failure upstream makes it
        # upstream_failed (run failed); a gated-out, undeployed or rejected run skips it (success).
        finished = EmptyOperator(task_id="finished", trigger_rule="none_failed")
        chain(champion, finished)
        cleaned = clean_up_failed_run()
        chain(
            [train, tune, evaluate_transform, register, deploy_dev, smoke, approve, deploy_prod, champion, *watched],
            cleaned,
        )
        # A teardown: the gate's, deploy_enabled's and the approval's skips spare teardowns, so it
        # runs however the run ended, after everything else; it does not decide the run's state.
        chain([finished, cleaned], record_outcome().as_teardown())
    return dag


for _model in list_models():
    globals()[f"{_model}_training"] = build_training_dag(_model)
