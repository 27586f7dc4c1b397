"""`<name>_byom`: a model trained outside SageMaker, served by SageMaker's built-in XGBoost container.

One DAG per file under ``include/config/byom/``. Wiring only: what each step does lives in
``include/mlpipeline/byom.py`` (pure functions) and in the amazon provider's endpoint operator. This
file reads small YAML files at parse time and imports nothing heavy (numpy, scikit-learn, xgboost,
boto3 clients and the SageMaker SDK load inside the tasks). The same file runs against AWS and against
localmaker: only the ``aws_default`` connection differs; the image is the real built-in one either way.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, chain, task

from include.mlpipeline.byom import failure_callback, list_byom_models, load_byom_config, load_stage_settings
from include.mlpipeline.config import default_stage, list_stages
from include.mlpipeline.dag_support import CONN, clients, default_args, waits
from include.mlpipeline.operators import IdempotentEndpointOperator

DOC = """
### {name}: bring your own model to the built-in XGBoost container

{description}

1. **prepare_data** loads `{source}`, splits it train/test (stratified, seed {seed}) and writes both
   as label-first CSV under the run's prefix `s3://<stage bucket>/byom/{name}/<run>/data/`.
2. **train_and_package** trains an XGBoost `binary:logistic` booster *in the task*, records test
   accuracy / AUC (stops below `training.min_test_*`), saves it with `Booster.save_model` as the single
   file `xgboost-model` of `model.tar.gz` (what the container loads), reloads the tarball to prove it,
   and uploads it with the booster's own test-set predictions.
3. **deploy_config** + **deploy** create the SageMaker Model (built-in image
   `sagemaker-xgboost:{version}` of the stage's region + the tarball), an endpoint config and the
   endpoint `{endpoint}` (updated in place when it exists).
4. **check_endpoint** sends the test rows (`text/csv`, no label) and fails unless every answer equals
   the in-task prediction within {max_diff:g} and accuracy is at least {min_accuracy}.

Config: `include/config/byom/{name}.yaml`; account, bucket and tags from the stage config.
"""


def build_byom_dag(name: str) -> DAG:
    cfg = load_byom_config(name)
    with DAG(
        dag_id=f"{name}_byom",
        description=f"Train {name} in Airflow, serve it with SageMaker's built-in XGBoost container",
        doc_md=DOC.format(
            name=name,
            description=cfg.description,
            source=cfg.data.source,
            seed=cfg.data.seed,
            version=cfg.serving.xgboost_version,
            endpoint=cfg.serving.endpoint_name,
            max_diff=cfg.check.max_abs_diff,
            min_accuracy=cfg.check.min_accuracy,
        ),
        schedule=None,  # a deployment, not a recurring job: triggered
        catchup=False,
        max_active_runs=1,
        tags=["sagemaker", "byom", "xgboost", name],
        default_args=default_args(
            name, load_stage_settings(default_stage()).airflow, on_failure_callback=failure_callback(name)
        ),
        params={
            "stage": Param(default_stage(), enum=list_stages(), description="Stage config (account, bucket)"),
            "num_boost_round": Param(
                None, type=["null", "integer"], minimum=1, description="Boosting rounds (default: config)"
            ),
            "xgboost_params": Param(
                {}, type="object", description="xgboost.train parameters merged over the configured ones"
            ),
        },
    ) as dag:

        def _run(context: dict[str, Any]) -> tuple[Any, Any, Any]:
            from include.mlpipeline.byom import config_for_run
            from include.mlpipeline.run import RunContext

            run_cfg, stage = config_for_run(name, context["params"])
            return run_cfg, stage, RunContext.from_airflow(context, model=name, stage=stage.stage)

        def _fail(message: str) -> None:
            """Deterministic problems (same data, same model) fail without retries."""
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(message)

        @task
        def prepare_data(**context: Any) -> dict[str, Any]:
            """Load the data set and write the run's deterministic train/test split to S3."""
            from include.mlpipeline import byom

            run_cfg, stage, ctx = _run(context)
            try:
                dataset = byom.load_dataset(run_cfg.data)
            except byom.BringYourOwnModelError as exc:
                _fail(str(exc))
            train, test = byom.split_dataset(dataset, run_cfg.data.test_fraction, run_cfg.data.seed)
            s3, _ = clients()
            uris = {
                "train": byom.put_text(s3, byom.run_uri(run_cfg, stage, ctx, "data/train.csv"), byom.to_labelled_csv(train)),
                "test": byom.put_text(s3, byom.run_uri(run_cfg, stage, ctx, "data/test.csv"), byom.to_labelled_csv(test)),
            }
            print(f"{dataset.rows} rows of {run_cfg.data.source}: {train.rows} train, {test.rows} test -> {uris}")
            return {**uris, "rows": {"train": train.rows, "test": test.rows}, "features": dataset.feature_names}

        @task
        def train_and_package(data: dict[str, Any], **context: Any) -> dict[str, Any]:
            """Train in the task, gate on test quality, package as the built-in container loads it, upload."""
            import json
            import tempfile
            from pathlib import Path

            import xgboost

            from include.mlpipeline import byom

            run_cfg, stage, ctx = _run(context)
            try:
                byom.check_container_compatibility(xgboost.__version__, run_cfg.serving.xgboost_version)
            except byom.BringYourOwnModelError as exc:
                _fail(str(exc))
            s3, _ = clients()
            train = byom.from_labelled_csv(byom.get_text(s3, data["train"]), data["features"])
            test = byom.from_labelled_csv(byom.get_text(s3, data["test"]), data["features"])
            booster, history = byom.train_booster(run_cfg.training, train, test)
            reference = byom.predict(booster, test.features)
            metrics = byom.classification_metrics(test.labels, reference)
            print(f"XGBoost {xgboost.__version__}, {run_cfg.training.num_boost_round} rounds; test metrics: {metrics}")
            reasons = byom.check_training_quality(run_cfg.training, metrics)
            if reasons:
                _fail("model not deployed: " + "; ".join(reasons))
            with tempfile.TemporaryDirectory() as tmp:
                tarball = byom.package_model(booster, Path(tmp) / byom.MODEL_TARBALL)
                byom.verify_package(tarball, test.features, reference, tolerance=0.0)
                members = byom.tarball_members(tarball)
                model_data_url = byom.upload_file(s3, tarball, byom.model_data_uri(run_cfg, stage, ctx))
            reference_uri = byom.put_text(
                s3,
                byom.run_uri(run_cfg, stage, ctx, "evaluation/reference_predictions.csv"),
                "".join(f"{p!r}\n" for p in reference),
            )
            summary = {
                "model_data_url": model_data_url,
                "members": [list(m) for m in members],
                "reference_uri": reference_uri,
                "metrics": metrics,
                "xgboost_version": xgboost.__version__,
                "num_boost_round": run_cfg.training.num_boost_round,
                "params": dict(run_cfg.training.params),
                "final_eval": {k: {m: v[-1] for m, v in d.items()} for k, d in history.items()},
            }
            byom.put_text(
                s3, byom.run_uri(run_cfg, stage, ctx, "evaluation/training.json"), json.dumps(summary, indent=2),
                content_type="application/json",
            )
            print(f"packaged {members} -> {model_data_url}")
            return summary

        @task
        def deploy_config(trained: dict[str, Any], **context: Any) -> dict[str, Any]:
            """Model (the real built-in image of the stage's region + the tarball), endpoint config, endpoint."""
            from include.mlpipeline import byom

            run_cfg, stage, ctx = _run(context)
            image = byom.image_uri(run_cfg, stage)
            print(f"serving with {image}")
            return byom.deploy_request(run_cfg, stage, ctx, model_data_url=trained["model_data_url"], image=image)

        data = prepare_data()
        trained = train_and_package(data)
        def _wait_settings(context: Any) -> Any:
            from include.mlpipeline.byom import config_for_run

            return config_for_run(name, context["params"])[1].airflow

        deploy = IdempotentEndpointOperator(
            task_id="deploy",
            config=deploy_config(trained),
            aws_conn_id=CONN,
            wait_for_completion=True,
            **waits(load_stage_settings(default_stage()).airflow, _wait_settings),
        )

        @task
        def check_endpoint(data: dict[str, Any], trained: dict[str, Any], **context: Any) -> dict[str, Any]:
            """The endpoint must answer what the in-task booster predicts, row for row."""
            import json

            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

            from include.mlpipeline import byom

            run_cfg, stage, ctx = _run(context)
            s3, _ = clients()
            runtime = AwsBaseHook(aws_conn_id=CONN, client_type="sagemaker-runtime").get_conn()
            test = byom.from_labelled_csv(byom.get_text(s3, data["test"]), data["features"])
            reference = [float(v) for v in byom.get_text(s3, trained["reference_uri"]).split()]
            endpoint = byom.endpoint_name(run_cfg, stage)
            try:
                answers = byom.invoke_rows(
                    runtime, endpoint, byom.feature_rows_csv(test.features), run_cfg.check.batch_rows
                )
            except byom.EndpointCheckError as exc:
                _fail(str(exc))
            result = byom.compare_with_reference(run_cfg.check, endpoint, answers, reference, test.labels)
            byom.put_text(
                s3, byom.run_uri(run_cfg, stage, ctx, "evaluation/endpoint_check.json"),
                json.dumps(result.to_dict(), indent=2), content_type="application/json",
            )
            print(f"endpoint check of {endpoint}: {'PASSED' if result.passed else 'FAILED'}: {result.to_dict()}")
            if not result.passed:
                _fail(f"{endpoint}: " + "; ".join(result.reasons))
            return result.to_dict()

        chain(deploy, check_endpoint(data, trained))
    return dag


for _name in list_byom_models():
    globals()[f"{_name}_byom"] = build_byom_dag(_name)
