"""The tasks of `<model>_batch_data` and `<model>_batch_transform` (``dags/batch_transform_pipeline.py``).

Each function is one task's whole body. Skips and permanent failures raise Airflow's own
exceptions (imported when raised), which is what the task would do anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from ..run import sagemaker_name
from ..s3 import s3_uri, split_s3_uri


class BatchInput(TypedDict):
    uri: str
    rows: int


class Champion(TypedDict):
    arn: str
    image: str | None
    model_data_url: str


class TransformRequests(TypedDict):
    """``Model`` (CreateModel of the champion) and ``Transform`` (CreateTransformJob)."""

    Model: dict[str, Any]
    Transform: dict[str, Any]


def run_date(when: Any) -> str:
    """The date a run scores for (``YYYY-MM-DD``): its logical date, or when it was queued."""
    return when.strftime("%Y-%m-%d")


def prepare_batch(cfg: Any, ctx: Any, clients: Any, source_uri: str | None) -> dict[str, Any]:
    """Validate the batch data set into the run's prefix; bad data fails without retries."""
    from ..etl import DataValidationError, prepare_batch_input

    try:
        result = prepare_batch_input(cfg, ctx, s3_client=clients.s3, source_uri=source_uri)
    except DataValidationError as exc:  # the same data fails the same way: no retries
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
    print(f"{result.rows} rows ready at {result.uri} ({result.bad_rows} quarantined)")
    return result.to_dict()


def triggering_batch(events: Mapping[Any, Any] | None) -> BatchInput | None:
    """The data set of the asset event that triggered the run (the newest with a ``uri``), if any."""
    for asset_events in (events or {}).values():
        if asset_events and asset_events[-1].extra.get("uri"):
            extra = asset_events[-1].extra
            print(f"scoring the batch data set that triggered this run: {extra['uri']}")
            return {"uri": extra["uri"], "rows": int(extra["rows"])}
    return None


def batch_input(cfg: Any, ctx: Any, clients: Any, events: Mapping[Any, Any] | None) -> BatchInput:
    """The data set that triggered this run, or (on the cron) the configured batch source."""
    triggered = triggering_batch(events)
    if triggered is not None:
        return triggered
    from ..etl import prepare_batch_input

    result = prepare_batch_input(cfg, ctx, s3_client=clients.s3)
    return {"uri": result.uri, "rows": result.rows}


def champion(cfg: Any, clients: Any) -> Champion:
    """The newest approved package; without one (with model data) the run skips, naming what to do."""
    from ..evaluate import latest_approved_package

    group = cfg.registry.model_package_group_name
    package = latest_approved_package(clients.sagemaker, group)
    if package is None or not package.model_data_url:
        # nothing to score with yet is not a failure (no retries, no alert): the run skips
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(
            f"no champion yet: model package group {group} has no "
            f"approved package with model data. Nothing scored; run {cfg.model}_training and approve "
            f"its model, then batch scoring runs on the next schedule or batch data"
        )
    print(f"scoring with champion {package.arn} (metrics {package.metrics})")
    return {"arn": package.arn, "image": package.image, "model_data_url": package.model_data_url}


def transform_request(cfg: Any, ctx: Any, batch: BatchInput, champ: Champion, date: str) -> TransformRequests:
    """The champion as a model of this run, and the transform of ``batch`` into the date's folder."""
    from .. import sagemaker_requests as rq

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


def clear_previous_output(clients: Any, req: TransformRequests) -> int:
    """Idempotence per date: a rerun replaces the date's predictions, never adds to them."""
    s3 = clients.s3
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


def summarise(cfg: Any, clients: Any, batch: BatchInput, req: TransformRequests) -> dict[str, Any]:
    """Rows in, rows out, prediction statistics (:func:`include.mlpipeline.batch.summarise_predictions`)."""
    from ..batch import summarise_predictions

    output = req["Transform"]["TransformOutput"]["S3OutputPath"]
    joined = "JoinSource" in req["Transform"].get("DataProcessing", {})
    summary = summarise_predictions(
        clients.s3,
        output,
        expected_rows=batch["rows"],
        input_uri=None if joined else batch["uri"],
        field=cfg.inference.prediction_field,
    )
    print(f"batch summary: {summary}")
    return summary
