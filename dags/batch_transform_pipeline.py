"""Batch scoring with the approved champion: `<model>_batch_data` and `<model>_batch_transform`.

`<model>_batch_data` validates a new batch data set and publishes the `<model>_batch_data` Asset;
`<model>_batch_transform` runs on its cron and whenever that Asset is updated, scores the data with
the champion model package (the run skips, with the reason in `champion`'s log, while the model
has none) through `SageMakerTransformOperator` (the record id joined to each
prediction) into `s3://{bucket}/{model}/predictions/{date}/`, and summarises it. A rerun for the
same date replaces that date's output, never adds to it.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, chain, task

from include.mlpipeline.config import default_stage, list_models, load_config
from include.mlpipeline.dag_support import (
    CONN,
    Clients,
    batch_data_asset,
    cfg_ctx,
    dag_defaults,
    run_wait_settings,
    schedule_with_asset,
    stage_param,
    task_inputs,
    waits,
)
from include.mlpipeline.operators import TransformOperator
from include.mlpipeline.pipelines import batch_transform as tasks


def build_batch_dags(model: str) -> tuple[DAG, DAG]:
    """`<model>_batch_data` and `<model>_batch_transform`, linked by the batch-data Asset."""
    cfg = load_config(model, default_stage())
    asset = batch_data_asset(model)
    return build_batch_data_dag(model, cfg, asset), build_batch_transform_dag(model, cfg, asset)


def build_batch_data_dag(model: str, cfg: Any, asset: Any) -> DAG:
    with DAG(
        dag_id=f"{model}_batch_data",
        description=f"Validate a batch data set for {model} and publish it for scoring",
        doc_md=f"Validates `{cfg.data.batch_source_uri}` (or the `source_uri` param) against the schema, "
        f"quarantines bad rows and publishes the `{model}_batch_data` Asset that triggers scoring.",
        schedule=None,
        **dag_defaults(
            model,
            "batch",
            "etl",
            settings=cfg.airflow,
            params={
                "stage": stage_param(cfg.stage, "Stage config to use"),
                "source_uri": Param(
                    None, type=["null", "string"], description="Batch data to score (file://, s3://, https://)"
                ),
            },
        ),
    ) as dag:

        @task(outlets=[asset])
        def prepare_batch(**context: Any) -> dict[str, Any]:
            result = tasks.prepare_batch(*task_inputs(model, context), context["params"].get("source_uri"))
            context["outlet_events"][asset].extra = {"uri": result["uri"], "rows": result["rows"]}
            return result

        prepare_batch()
    return dag


def build_batch_transform_dag(model: str, cfg: Any, asset: Any) -> DAG:
    with DAG(
        dag_id=f"{model}_batch_transform",
        description=f"Score batch data with the approved {model} champion",
        doc_md=__doc__,
        schedule=schedule_with_asset(cfg.schedules.batch_transform, asset),
        **dag_defaults(
            model, "batch", "transform", settings=cfg.airflow, params={"stage": stage_param(cfg.stage, "Stage config to use")}
        ),
    ) as dag:

        @task
        def batch_input(**context: Any) -> tasks.BatchInput:
            """The data set that triggered this run, or (on the cron) the configured batch source."""
            return tasks.batch_input(*task_inputs(model, context), context.get("triggering_asset_events"))

        @task
        def champion(**context: Any) -> tasks.Champion:
            return tasks.champion(cfg_ctx(model, context)[0], Clients())

        @task
        def transform_request(batch: tasks.BatchInput, champ: tasks.Champion, **context: Any) -> tasks.TransformRequests:
            date = tasks.run_date(context.get("logical_date") or context["dag_run"].run_after)
            return tasks.transform_request(*cfg_ctx(model, context), batch, champ, date)

        @task
        def clear_previous_output(req: tasks.TransformRequests) -> int:
            """Idempotence per date: a rerun replaces the date's predictions, never adds to them."""
            return tasks.clear_previous_output(Clients(), req)

        @task
        def summarise(batch: tasks.BatchInput, req: tasks.TransformRequests, **context: Any) -> dict[str, Any]:
            return tasks.summarise(cfg_ctx(model, context)[0], Clients(), batch, req)

        # The ignores below ([arg-type]): airflow.sdk types a @task call with the function's own parameters
        # (Task.__call__: Callable[FParams, XComArg]); the XComArgs passed here are resolved at run time
        champ = champion()  # first: without a champion the run skips before preparing any data
        batch = batch_input()
        req = transform_request(batch, champ)  # type: ignore[arg-type]
        transform = TransformOperator(
            task_id="transform", config=req, aws_conn_id=CONN, **waits(cfg.airflow, run_wait_settings(model))
        )
        chain(champ, batch)
        chain(clear_previous_output(req), transform, summarise(batch, req))  # type: ignore[arg-type]
    return dag


for _model in list_models():
    _cfg = load_config(_model, default_stage())
    if _cfg.data.batch_source_uri and _cfg.data.batch_id_column:
        globals()[f"{_model}_batch_data"], globals()[f"{_model}_batch_transform"] = build_batch_dags(_model)
