"""`<model>_training`: raw data to a production endpoint on SageMaker, one DAG per configured model.

Wiring only. What each step does lives in ``include/mlpipeline`` (pure functions) and in the
amazon provider's SageMaker operators; this file reads a few small YAML files at parse time and
imports nothing heavy (pandas, boto3 clients, tensorflow load inside the tasks that need them).
The same file runs against AWS and against localmaker: only the ``aws_default`` connection differs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, chain, task

from include.mlpipeline.config import default_stage, list_models, list_stages, load_config
from include.mlpipeline.dag_support import (
    CONN,
    cfg_ctx,
    clients,
    default_args,
    failed_run_cfg_ctx,
    retrain_request_asset,
    run_wait_settings,
    schedule_with_asset,
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

DOC = """
### {model}: train, evaluate, gate, register, deploy

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

Trigger with params to override the stage config for one run (instance type, hyperparameters, ...).
"""


def build_training_dag(model: str) -> DAG:
    cfg = load_config(model, default_stage())
    data_asset = training_data_asset(model)
    retrain_asset = retrain_request_asset(model)
    schedule = schedule_with_asset(cfg.schedules.training, retrain_asset)
    wait = waits(cfg.airflow, run_wait_settings(model))
    with DAG(
        dag_id=f"{model}_training",
        description=f"Train, evaluate, gate, register and deploy {model} on SageMaker",
        doc_md=DOC.format(model=model, source=cfg.data.source_uri),
        schedule=schedule,
        catchup=False,
        max_active_runs=1,
        tags=["sagemaker", "training", model],
        default_args=default_args(model, cfg.airflow),
        params={
            "stage": Param(cfg.stage, enum=list_stages(), description="Stage config to extend (dev/prod)"),
            "instance_type": Param(None, type=["null", "string"], description="Training instance type"),
            "instance_count": Param(None, type=["null", "integer"], minimum=1, description="Training instances"),
            "hyperparameters": Param(
                {}, type="object", description="Hyperparameters merged over the configured ones"
            ),
            "tuning": Param(None, type=["null", "boolean"], description="Run a tuning job instead of one training"),
            "deploy": Param(True, type="boolean", description="Deploy dev and prod after the gate"),
            "auto_approve": Param(False, type="boolean", description="Skip the human approval before prod"),
        },
    ) as dag:

        @task
        def extract(**context: Any) -> dict[str, Any]:
            """Stream the source into the run's prefix, so later steps (and retries) read S3 only."""
            from include.mlpipeline.etl import stage_source

            cfg, ctx = cfg_ctx(model, context)
            s3, _ = clients()
            return stage_source(cfg, ctx, s3_client=s3)

        @task(outlets=[data_asset])
        def validate_and_prepare(raw: dict[str, Any], **context: Any) -> dict[str, Any]:
            from include.mlpipeline.etl import DataValidationError, run_etl

            cfg, ctx = cfg_ctx(model, context)
            s3, _ = clients()
            try:
                result = run_etl(cfg, ctx, s3_client=s3, source_uri=raw["uri"])
            except DataValidationError as exc:  # the same data fails the same way: no retries
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(str(exc)) from exc
            print(f"rows per channel: {result.rows}; bad rows quarantined: {result.bad_rows}")
            context["outlet_events"][data_asset].extra = {"prefix": result.prefix, "rows": result.rows}
            return result.to_dict()

        @task
        def training_requests(etl: dict[str, Any], **context: Any) -> dict[str, Any]:
            from include.mlpipeline import sagemaker_requests as rq

            cfg, ctx = cfg_ctx(model, context)
            ctx = ctx.with_data(etl["channels"])
            if cfg.training.source_dir:  # script mode: the user's code travels as sourcedir.tar.gz
                from include.mlpipeline.sourcedir import upload_source_dir

                s3, _ = clients()
                uri = upload_source_dir(s3, cfg.training.source_dir, cfg.training.entry_point, rq.sourcedir_uri(cfg, ctx))
                print(f"packaged {cfg.training.source_dir} to {uri}")
            params = rq.data_hyperparameters(cfg.training.hyperparameters, etl["rows"])
            return {
                "training": rq.training_job_request(cfg, ctx, hyperparameters=params),
                "tuning": rq.tuning_job_request(cfg, ctx, hyperparameters=params) if cfg.tuning.objective else None,
            }

        @task.branch
        def train_or_tune(**context: Any) -> str:
            cfg, _ = cfg_ctx(model, context)
            return "tune" if cfg.tuning.enabled else "train"

        etl_result = validate_and_prepare(extract())
        reqs = training_requests(etl_result)
        train = ResumableTrainingOperator(
            task_id="train", config=reqs["training"], aws_conn_id=CONN, print_log=True, **wait
        )
        tune = TuningOperator(task_id="tune", config=reqs["tuning"], aws_conn_id=CONN, **wait)

        @task(trigger_rule="none_failed_min_one_success")
        def candidate(**context: Any) -> dict[str, Any]:
            """The model this run produced, from whichever of train / tune ran."""
            ti = context["ti"]
            trained = ti.xcom_pull(task_ids="train")
            if trained:
                job = trained["Training"]
            else:
                best = ti.xcom_pull(task_ids="tune")["Tuning"]["BestTrainingJob"]["TrainingJobName"]
                _, sm = clients()
                job = sm.describe_training_job(TrainingJobName=best)
            return {
                "training_job": job["TrainingJobName"],
                "model_data_url": job["ModelArtifacts"]["S3ModelArtifacts"],
                "hyperparameters": job.get("HyperParameters", {}),
                "final_metrics": {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])},
            }

        @task
        def evaluation_request(cand: dict[str, Any], etl: dict[str, Any], **context: Any) -> dict[str, Any]:
            """Model + transform of the held-out test set, scored in order against its labels."""
            from include.mlpipeline import sagemaker_requests as rq

            cfg, ctx = cfg_ctx(model, context)
            ctx = ctx.with_data(etl["channels"])
            model_req = rq.model_request(cfg, ctx, cand["model_data_url"])
            transform = rq.evaluation_transform_request(cfg, ctx, model=model_req["ModelName"])
            return {"Model": model_req, "Transform": transform}

        @task
        def evaluate(
            cand: dict[str, Any], transformed: dict[str, Any], etl: dict[str, Any], **context: Any
        ) -> dict[str, Any]:
            from include.mlpipeline import evaluate as ev
            from include.mlpipeline import sagemaker_requests as rq

            cfg, ctx = cfg_ctx(model, context)
            s3, sm = clients()
            output = transformed["Transform"]["TransformOutput"]["S3OutputPath"]
            y_true, y_pred = ev.evaluation_pairs(
                s3, output, etl["channels"]["test_labels"], cfg.inference.prediction_field
            )
            metrics = ev.metrics_for_task(cfg.evaluation.task, y_true, y_pred)
            champion = ev.champion_metrics(sm, cfg.registry.model_package_group_name)
            decision = ev.gate_from_config(metrics, cfg, champion)
            report = ev.write_report(
                s3,
                rq.run_output_uri(cfg, ctx, "evaluation"),
                y_true=y_true,
                y_pred=y_pred,
                metrics=metrics,
                decision=decision,
                champion=champion,
                extra={"training_job": cand["training_job"], "hyperparameters": cand["hyperparameters"]},
                task=cfg.evaluation.task,
            )
            from include.mlpipeline.run import presigned_url, sagemaker_console_url

            # links a person can open: valid while the approval request can be answered (and then some)
            hours = cfg.run.approval_timeout_hours + 2
            links = {
                "plot": presigned_url(s3, report.plot_uri, hours * 3600),
                "model_quality": presigned_url(s3, report.model_quality_uri, hours * 3600),
                "training_job": sagemaker_console_url(cfg.aws.region, "training", cand["training_job"]),
                "training_job_name": cand["training_job"],
                "valid_hours": f"{hours:g}",
            }
            print(f"test metrics: {metrics}")
            print(f"champion: {champion}")
            print(f"gate: {'PASSED' if decision.passed else 'FAILED'}: {'; '.join(decision.reasons)}")
            print(f"report plot: {report.plot_uri}\n  open (valid {hours:g} h): {links['plot']}")
            print(f"training job {cand['training_job']} in the SageMaker console: {links['training_job']}")
            return {
                "metrics": metrics,
                "champion": champion,
                "decision": decision.to_dict(),
                "report": report.to_dict(),
                "links": links,
            }

        @task.short_circuit
        def gate(evaluation: dict[str, Any]) -> bool:
            """A model that is not good enough ends the run cleanly: skipped, prod untouched."""
            passed = bool(evaluation["decision"]["passed"])
            for reason in evaluation["decision"]["reasons"]:
                print(("passed: " if passed else "gated out: ") + reason)
            return passed

        @task
        def package_request(cand: dict[str, Any], evaluation: dict[str, Any], **context: Any) -> dict[str, Any]:
            from include.mlpipeline import sagemaker_requests as rq

            cfg, ctx = cfg_ctx(model, context)
            request = rq.model_package_request(
                cfg,
                ctx,
                model_data_url=cand["model_data_url"],
                metrics=evaluation["metrics"],
                metrics_report_uri=evaluation["report"]["model_quality_uri"],
                training_job=cand["training_job"],
                approval_status="PendingManualApproval",
            )
            return request

        @task.short_circuit
        def deploy_enabled(**context: Any) -> bool:
            cfg, _ = cfg_ctx(model, context)
            return cfg.run.deploy

        @task
        def deploy_config(cand: dict[str, Any], target: str, **context: Any) -> dict[str, Any]:
            from include.mlpipeline import sagemaker_requests as rq

            cfg, ctx = cfg_ctx(model, context)
            return rq.deploy_request(cfg, ctx, cand["model_data_url"], target=target)

        @task
        def smoke_test(etl: dict[str, Any], **context: Any) -> dict[str, Any]:
            """Real requests to the dev endpoint: every row answered, finite, within the latency bound."""
            from include.mlpipeline.smoke import smoke_test_endpoint

            cfg, _ = cfg_ctx(model, context)
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

            runtime = AwsBaseHook(aws_conn_id=CONN, client_type="sagemaker-runtime").get_conn()
            s3, _ = clients()
            result = smoke_test_endpoint(cfg, runtime, s3, etl["channels"], cfg.endpoint.dev_name)
            print(f"smoke test of {cfg.endpoint.dev_name}: {result}")
            return result

        @task.branch
        def approval_route(**context: Any) -> str:
            cfg, _ = cfg_ctx(model, context)
            return "auto_approved" if cfg.run.auto_approve else "approve"

        approve = ApprovalOperator(
            task_id="approve",
            subject=f"Promote {model} to production?",
            body=(
                "The candidate passed the quality gate and the dev endpoint's smoke test.\n\n"
                "| metric | candidate | champion |\n|---|---|---|\n"
                "{% set ev = ti.xcom_pull(task_ids='evaluate') %}"
                "{% for k in " + repr(list(cfg.evaluation.metrics)) + " %}| {{ k }} | {{ '%.4g' % ev['metrics'][k] }} | "
                "{{ ('%.4g' % ev['champion'][k]) if ev['champion'] and k in ev['champion'] else '-' }} |\n"
                "{% endfor %}\nReport: [evaluation plot]({{ ev['links']['plot'] }}) "
                "(link valid {{ ev['links']['valid_hours'] }} h; `{{ ev['report']['plot_uri'] }}`), "
                "[metrics]({{ ev['links']['model_quality'] }}); training job "
                "[{{ ev['links']['training_job_name'] }}]({{ ev['links']['training_job'] }}) "
                "in the SageMaker console\n\n"
                f"Unanswered within {cfg.run.approval_timeout_hours:g} hours counts as **Reject**: prod stays as it is."
            ),
            # an unanswered (e.g. nightly) run must not hold the DAG's only active run for days
            defaults=["Reject"],
            response_timeout=timedelta(hours=cfg.run.approval_timeout_hours),
            ignore_downstream_trigger_rules=True,
            retries=0,
        )
        auto_approved = EmptyOperator(task_id="auto_approved")

        @task(trigger_rule="none_failed_min_one_success")
        def prod_config(cand: dict[str, Any], **context: Any) -> dict[str, Any]:
            from include.mlpipeline import sagemaker_requests as rq

            cfg, ctx = cfg_ctx(model, context)
            return rq.deploy_request(cfg, ctx, cand["model_data_url"], target="prod", include_model=False)

        @task
        def promote(package_arn: str, evaluation: dict[str, Any], **context: Any) -> dict[str, Any]:
            """The deployed package becomes the champion the next run's gate compares against."""
            _, sm = clients()
            sm.update_model_package(
                ModelPackageArn=package_arn,
                ModelApprovalStatus="Approved",
                ApprovalDescription=f"deployed to prod by run {context['run_id']}",
            )
            print(f"champion is now {package_arn} with {evaluation['metrics']}")
            return {"champion": package_arn, "metrics": evaluation["metrics"]}

        @task
        def baseline_request(package_arn: str, etl: dict[str, Any], **context: Any) -> dict[str, Any]:
            """Model Monitor statistics/constraints of the champion's training data, stored beside
            its package version, for the monitoring DAG to compare captured traffic against."""
            from include.mlpipeline.monitoring import baseline_location, baseline_processing_request

            cfg, ctx = cfg_ctx(model, context)
            return baseline_processing_request(
                cfg, ctx, train_uri=etl["channels"]["baseline"], output_uri=baseline_location(cfg, package_arn)
            )

        @task(trigger_rule="one_failed", retries=0)
        def clean_up_failed_run(**context: Any) -> dict[str, list[str]]:
            """Delete what this run half-made (its models, configs and jobs no endpoint uses)."""
            from include.mlpipeline.cleanup import clean_up_run

            cfg, ctx, problem = failed_run_cfg_ctx(model, context)
            if problem:  # the overrides broke the config; the names come from the run, not them
                print(f"the run's config is invalid, cleaning up with it minus the overrides: {problem}")
            _, sm = clients()
            removed = clean_up_run(cfg, ctx, sm)
            print(f"cleaned up: {removed}")
            return removed

        branch = train_or_tune()
        chain(reqs, branch, [train, tune])
        cand = candidate()
        chain([train, tune], cand)
        eval_req = evaluation_request(cand, etl_result)
        evaluate_transform = TransformOperator(
            task_id="evaluate_transform", config=eval_req, aws_conn_id=CONN, **wait
        )
        evaluation = evaluate(cand, evaluate_transform.output, etl_result)
        passed = gate(evaluation)
        register = RegisterModelVersionOperator(
            task_id="register",
            aws_conn_id=CONN,
            image_uri=cfg.training.image_uri,
            model_url="{{ ti.xcom_pull(task_ids='candidate')['model_data_url'] }}",
            package_group_name=cfg.registry.model_package_group_name,
            package_group_desc=cfg.registry.description,
            extras=package_request(cand, evaluation),
        )
        chain(passed, register)
        deploy_dev = IdempotentEndpointOperator(
            task_id="deploy_dev",
            config=deploy_config(cand, "dev"),
            aws_conn_id=CONN,
            operation="create",
            **wait,
        )
        chain(register, deploy_enabled(), deploy_dev)
        smoke = smoke_test(etl_result)
        route = approval_route()
        chain(deploy_dev, smoke, route, [approve, auto_approved])
        prod_cfg = prod_config(cand)
        chain([approve, auto_approved], prod_cfg)
        deploy_prod = IdempotentEndpointOperator(
            task_id="deploy_prod", config=prod_cfg, aws_conn_id=CONN, operation="create", **wait
        )
        champion = promote(register.output, evaluation)
        if cfg.monitoring.enabled:
            # the baseline exists before the package becomes champion, so monitoring never finds a
            # champion without one
            baseline = ProcessingOperator(
                task_id="baseline",
                config=baseline_request(register.output, etl_result),
                aws_conn_id=CONN,
                **wait,
            )
            chain(deploy_prod, baseline, champion)
            watched = [baseline]
        else:  # nothing tabular to profile (an image model): no baseline, no monitoring DAG
            chain(deploy_prod, champion)
            watched = []
        # The run's outcome: clean_up_failed_run is a leaf that *succeeds* after a failure, so
        # without this leaf a failed run would be marked successful. Failure upstream makes it
        # upstream_failed (run failed); a gated-out, undeployed or rejected run skips it (success).
        finished = EmptyOperator(task_id="finished", trigger_rule="none_failed")
        chain(champion, finished)
        cleanup = clean_up_failed_run()
        chain([train, tune, evaluate_transform, register, deploy_dev, smoke, approve, deploy_prod, champion, *watched], cleanup)
    return dag


for _model in list_models():
    globals()[f"{_model}_training"] = build_training_dag(_model)
