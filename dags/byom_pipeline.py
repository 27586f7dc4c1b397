"""`<name>_byom`: a model trained outside SageMaker, served by SageMaker's built-in XGBoost container.

One DAG per file under ``include/config/byom/``. Wiring only: each task is one call into
``include/mlpipeline/pipelines/byom.py``; what each step does lives in ``include/mlpipeline/byom.py``
(pure functions) and in the amazon provider's endpoint operator. This
file reads small YAML files at parse time and imports nothing heavy (numpy, scikit-learn, xgboost,
boto3 clients and the SageMaker SDK load inside the tasks). The same file runs against AWS and against
localmaker: only the ``aws_default`` connection differs; the image is the real built-in one either way.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, chain, task

from include.mlpipeline.byom import failure_callback, list_byom_models, load_byom_config, load_stage_settings
from include.mlpipeline.config import default_stage
from include.mlpipeline.dag_support import CONN, Clients, dag_defaults, stage_param, waits
from include.mlpipeline.operators import IdempotentEndpointOperator
from include.mlpipeline.pipelines import byom as tasks

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
        **dag_defaults(
            name,
            "byom",
            "xgboost",
            settings=load_stage_settings(default_stage()).airflow,
            on_failure_callback=failure_callback(name),
            params={
                "stage": stage_param(default_stage(), "Stage config (account, bucket)"),
                "num_boost_round": Param(
                    None, type=["null", "integer"], minimum=1, description="Boosting rounds (default: config)"
                ),
                "xgboost_params": Param(
                    {}, type="object", description="xgboost.train parameters merged over the configured ones"
                ),
            },
        ),
    ) as dag:

        @task
        def prepare_data(**context: Any) -> tasks.PreparedData:
            """Load the data set and write the run's deterministic train/test split to S3."""
            return tasks.prepare_data(*tasks.run_inputs(name, context), Clients())

        @task
        def train_and_package(data: tasks.PreparedData, **context: Any) -> tasks.Trained:
            """Train in the task, gate on test quality, package as the built-in container loads it, upload."""
            return tasks.train_and_package(*tasks.run_inputs(name, context), Clients(), data)

        @task
        def deploy_config(trained: tasks.Trained, **context: Any) -> dict[str, Any]:
            """Model (the real built-in image of the stage's region + the tarball), endpoint config, endpoint."""
            return tasks.deploy_config(*tasks.run_inputs(name, context), trained)

        @task
        def check_endpoint(data: tasks.PreparedData, trained: tasks.Trained, **context: Any) -> dict[str, Any]:
            """The endpoint must answer what the in-task booster predicts, row for row."""
            return tasks.check_endpoint(*tasks.run_inputs(name, context), Clients(), data, trained)

        # ------------------------------------------------------------------------------ wiring
        # The ignores below ([arg-type]): airflow.sdk types a @task call with the function's own parameters
        # (Task.__call__: Callable[FParams, XComArg]); the XComArgs passed here are resolved at run time
        data = prepare_data()
        trained = train_and_package(data)  # type: ignore[arg-type]
        deploy = IdempotentEndpointOperator(
            task_id="deploy",
            config=deploy_config(trained),  # type: ignore[arg-type]
            aws_conn_id=CONN,
            wait_for_completion=True,
            **waits(load_stage_settings(default_stage()).airflow, tasks.run_wait_settings(name)),
        )
        chain(deploy, check_endpoint(data, trained))  # type: ignore[arg-type]
    return dag


for _name in list_byom_models():
    globals()[f"{_name}_byom"] = build_byom_dag(_name)
