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

from include.mlpipeline.config import default_stage, list_models, list_stages, load_config
from include.mlpipeline.dag_support import (
    CONN,
    batch_data_asset,
    cfg_ctx,
    clients,
    default_args,
    run_wait_settings,
    schedule_with_asset,
    waits,
)
from include.mlpipeline.operators import TransformOperator


def _run_date(context: dict[str, Any]) -> str:
    """The date a run scores for: its logical date, or when it was queued (asset/manual runs)."""
    when = context.get("logical_date") or context["dag_run"].run_after
    return when.strftime("%Y-%m-%d")


def _common(model: str, cfg: Any) -> dict[str, Any]:
    return {
        "catchup": False,
        "max_active_runs": 1,
        "default_args": default_args(model, cfg.airflow),
        "params": {"stage": Param(cfg.stage, enum=list_stages(), description="Stage config to use")},
    }


def build_batch_data_dag(model: str) -> DAG:
    cfg = load_config(model, default_stage())
    asset = batch_data_asset(model)
    common = _common(model, cfg)
    common["params"]["source_uri"] = Param(
        None, type=["null", "string"], description="Batch data to score (file://, s3://, https://)"
    )
    with DAG(
        dag_id=f"{model}_batch_data",
        description=f"Validate a batch data set for {model} and publish it for scoring",
        doc_md=f"Validates `{cfg.data.batch_source_uri}` (or the `source_uri` param) against the schema, "
        f"quarantines bad rows and publishes the `{model}_batch_data` Asset that triggers scoring.",
        schedule=None,
        tags=["sagemaker", "batch", "etl", model],
        **common,
    ) as dag:

        @task(outlets=[asset])
        def prepare_batch(**context: Any) -> dict[str, Any]:
            from include.mlpipeline.etl import DataValidationError, prepare_batch_input

            cfg, ctx = cfg_ctx(model, context)
            s3, _ = clients()
            try:
                result = prepare_batch_input(cfg, ctx, s3_client=s3, source_uri=context["params"].get("source_uri"))
            except DataValidationError as exc:  # the same data fails the same way: no retries
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(str(exc)) from exc
            print(f"{result.rows} rows ready at {result.uri} ({result.bad_rows} quarantined)")
            context["outlet_events"][asset].extra = {"uri": result.uri, "rows": result.rows}
            return result.to_dict()

        prepare_batch()
    return dag


def build_batch_transform_dag(model: str) -> DAG:
    cfg = load_config(model, default_stage())
    asset = batch_data_asset(model)
    schedule = schedule_with_asset(cfg.schedules.batch_transform, asset)
    with DAG(
        dag_id=f"{model}_batch_transform",
        description=f"Score batch data with the approved {model} champion",
        doc_md=__doc__,
        schedule=schedule,
        tags=["sagemaker", "batch", "transform", model],
        **_common(model, cfg),
    ) as dag:

        @task
        def batch_input(**context: Any) -> dict[str, Any]:
            """The data set that triggered this run, or (on the cron) the configured batch source."""
            events = context.get("triggering_asset_events") or {}
            for asset_events in events.values():
                if asset_events and asset_events[-1].extra.get("uri"):
                    extra = asset_events[-1].extra
                    print(f"scoring the batch data set that triggered this run: {extra['uri']}")
                    return {"uri": extra["uri"], "rows": int(extra["rows"])}
            from include.mlpipeline.etl import prepare_batch_input

            cfg, ctx = cfg_ctx(model, context)
            s3, _ = clients()
            result = prepare_batch_input(cfg, ctx, s3_client=s3)
            return {"uri": result.uri, "rows": result.rows}

        @task
        def champion(**context: Any) -> dict[str, Any]:
            from include.mlpipeline.evaluate import latest_approved_package

            cfg, _ = cfg_ctx(model, context)
            _, sm = clients()
            package = latest_approved_package(sm, cfg.registry.model_package_group_name)
            if package is None or not package.model_data_url:
                # nothing to score with yet is not a failure (no retries, no alert): the run skips
                from airflow.sdk.exceptions import AirflowSkipException

                raise AirflowSkipException(
                    f"no champion yet: model package group {cfg.registry.model_package_group_name} has no "
                    f"approved package with model data. Nothing scored; run {model}_training and approve "
                    f"its model, then batch scoring runs on the next schedule or batch data"
                )
            print(f"scoring with champion {package.arn} (metrics {package.metrics})")
            return {"arn": package.arn, "image": package.image, "model_data_url": package.model_data_url}

        @task
        def transform_request(batch: dict[str, Any], champ: dict[str, Any], **context: Any) -> dict[str, Any]:
            from include.mlpipeline import sagemaker_requests as rq
            from include.mlpipeline.run import s3_uri, sagemaker_name

            cfg, ctx = cfg_ctx(model, context)
            date = _run_date(context)
            model_req = rq.model_request(cfg, ctx, champ["model_data_url"], image_uri=champ["image"])
            model_req["ModelName"] = sagemaker_name(cfg.model_slug, cfg.stage, "batch", ctx.ts_nodash)
            request = rq.batch_transform_request(
                cfg,
                ctx,
                model=model_req["ModelName"],
                input_uri=batch["uri"],
                output_path=s3_uri(cfg.aws.bucket, cfg.model, "predictions", date),
            )
            return {"Model": model_req, "Transform": request}

        @task
        def clear_previous_output(req: dict[str, Any]) -> int:
            """Idempotence per date: a rerun replaces the date's predictions, never adds to them."""
            from include.mlpipeline.run import split_s3_uri

            s3, _ = clients()
            bucket, prefix = split_s3_uri(req["Transform"]["TransformOutput"]["S3OutputPath"].rstrip("/") + "/")
            keys = [
                {"Key": o["Key"]}
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for o in page.get("Contents", [])
            ]
            for i in range(0, len(keys), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000]})
            print(f"removed {len(keys)} earlier output objects under s3://{bucket}/{prefix}")
            return len(keys)

        @task
        def summarise(batch: dict[str, Any], req: dict[str, Any], **context: Any) -> dict[str, Any]:
            from include.mlpipeline.batch import summarise_predictions

            cfg, _ = cfg_ctx(model, context)
            s3, _ = clients()
            output = req["Transform"]["TransformOutput"]["S3OutputPath"]
            joined = "JoinSource" in req["Transform"].get("DataProcessing", {})
            summary = summarise_predictions(
                s3,
                output,
                expected_rows=batch["rows"],
                input_uri=None if joined else batch["uri"],
                field=cfg.inference.prediction_field,
            )
            print(f"batch summary: {summary}")
            return summary

        champ = champion()  # first: without a champion the run skips before preparing any data
        batch = batch_input()
        champ >> batch
        req = transform_request(batch, champ)
        cleared = clear_previous_output(req)
        transform = TransformOperator(
            task_id="transform", config=req, aws_conn_id=CONN, **waits(cfg.airflow, run_wait_settings(model))
        )
        chain(cleared, transform, summarise(batch, req))
    return dag


for _model in list_models():
    _cfg = load_config(_model, default_stage())
    if _cfg.data.batch_source_uri and _cfg.data.batch_id_column:
        globals()[f"{_model}_batch_data"] = build_batch_data_dag(_model)
        globals()[f"{_model}_batch_transform"] = build_batch_transform_dag(_model)
