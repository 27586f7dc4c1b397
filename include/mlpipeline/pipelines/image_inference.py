"""The tasks of `<model>_image_inference` (``dags/image_inference_pipeline.py``): find, classify, report.

The listing, the endpoint call, the routing and the idempotence bookkeeping live in
:mod:`include.mlpipeline.image_inference`; each function here is one task's whole body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from .. import image_inference as ii


class Chunk(TypedDict):
    """One mapped task's images, with the endpoint and threshold the run resolved once."""

    chunk_index: int
    keys: list[str]
    endpoint: str
    threshold: float


class Report(TypedDict):
    images: int
    accepted: int
    review: int
    failed: int
    summary: str
    results: list[str]


def find_new_images(cfg: Any, ctx: Any, clients: Any, images_per_task: int) -> list[Chunk]:
    """The chunks of images this run classifies (its manifest), once the endpoint is InService.

    Each chunk carries the endpoint and threshold the run resolved here, so every mapped task uses
    the same ones."""
    inf = ii.settings(cfg)
    endpoint = ii.endpoint_name(cfg)
    ii.check_endpoint(clients.sagemaker, endpoint)
    layout = ii.Layout.from_config(cfg, ctx.ts_nodash)
    plan = ii.plan_run(clients.s3, layout, run_id=ctx.run_id, images_per_task=int(images_per_task))
    if plan.reused:
        print(
            f"re-run of this logical date: reusing its manifest {layout.uri(layout.manifest_key)} "
            "(earlier results are kept, not re-decided)"
        )
    else:
        print(
            f"{len(plan.images)} new image(s) under {layout.uri(layout.input_prefix)} "
            f"({plan.already_processed} processed earlier); manifest {layout.uri(layout.manifest_key)}"
        )
    print(
        f"{len(plan.chunks)} chunk(s) of <= {plan.images_per_task} for {endpoint} "
        f"(threshold {inf.confidence_threshold:g})"
    )
    return [
        {"chunk_index": i, "keys": keys, "endpoint": endpoint, "threshold": inf.confidence_threshold}
        for i, keys in enumerate(plan.chunks)
    ]


def chunk_label(chunk: Chunk) -> str:
    """What the UI shows for a mapped instance (``map_index_template``)."""
    keys = chunk["keys"]
    return f"chunk {chunk['chunk_index']}: {len(keys)} from {keys[0]}"


def classify(cfg: Any, ctx: Any, clients: Any, chunk: Chunk, *, tries_left: bool) -> dict[str, Any]:
    """One chunk: every image classified and routed; failures recorded, not raised, unless they are
    transient and the task has ``tries_left`` (a retry skips the images already done)."""
    layout = ii.Layout.from_config(cfg, ctx.ts_nodash)
    result = ii.classify_chunk(
        clients.s3,
        clients.runtime,
        layout,
        chunk["keys"],
        chunk_index=chunk["chunk_index"],
        endpoint=chunk["endpoint"],
        threshold=float(chunk["threshold"]),
        run_id=ctx.run_id,
        class_names=ii.settings(cfg).class_names,
    )
    print(
        f"chunk {result.chunk_index}: {result.accepted} accepted, {result.review} to review, "
        f"{len(result.failed)} failed, {result.reused} reused from an earlier try, "
        f"{len(result.skipped)} skipped"
    )
    if result.transient and tries_left:
        raise RuntimeError(
            f"{len(result.transient)} image(s) met errors that may pass ({', '.join(result.transient[:5])}"
            f"{', ...' if len(result.transient) > 5 else ''}); retrying the chunk "
            "(images already classified are not sent again)"
        )
    return result.to_dict()


def report_links(cfg: Any, s3: Any, summary: Mapping[str, Any], summary_uri: str) -> dict[str, Any]:
    """Links a person can open: presigned URLs of the summary and of each accepted-predictions file
    (valid ``LOG_LINK_SECONDS``), the review folder in the S3 console (a folder cannot be presigned)
    and the endpoint in the SageMaker console."""
    from ..run import LOG_LINK_SECONDS, s3_console_url, sagemaker_console_url
    from ..s3 import presigned_url

    return {
        "summary": presigned_url(s3, summary_uri, LOG_LINK_SECONDS),
        "results": [presigned_url(s3, u, LOG_LINK_SECONDS) for u in summary["results"]],
        "review": s3_console_url(cfg.aws.region, summary["review_prefix"]),
        "endpoint": sagemaker_console_url(cfg.aws.region, "endpoint", summary["endpoint"]),
        "valid_hours": f"{LOG_LINK_SECONDS / 3600:g}",
    }


def report(
    cfg: Any,
    ctx: Any,
    clients: Any,
    chunks: Sequence[Chunk],
    results: Any,
    *,
    push: Callable[..., Any],
) -> Report:
    """Counts in the log, XCom and S3; fails the run naming the images without a result (their
    counts pushed first as XCom ``counts`` through ``push(key=, value=)``, i.e. ``ti.xcom_push``)."""
    layout = ii.Layout.from_config(cfg, ctx.ts_nodash)
    images = sum(len(c["keys"]) for c in chunks)
    summary = ii.summarise(
        layout,
        list(results or []) if chunks else [],
        run_id=ctx.run_id,
        endpoint=chunks[0]["endpoint"] if chunks else ii.endpoint_name(cfg),
        threshold=chunks[0]["threshold"] if chunks else ii.settings(cfg).confidence_threshold,
        images=images,
    )
    uri = ii.write_summary(clients.s3, layout, summary)
    links = report_links(cfg, clients.s3, summary, uri)
    print(
        f"{images} image(s): {summary['accepted']} accepted, {summary['review']} to review, "
        f"{summary['failed']} failed ({summary['reused']} reused, {summary['skipped']} skipped); "
        f"summary {uri}\n  open (link valid {links['valid_hours']} h): {links['summary']}"
    )
    for result_uri, link in zip(summary["results"], links["results"], strict=True):
        print(f"accepted predictions: {result_uri}\n  open: {link}")
    if summary["review"]:
        print(f"for review: {summary['review_prefix']}\n  in the S3 console: {links['review']}")
    print(f"endpoint {summary['endpoint']} in the SageMaker console: {links['endpoint']}")
    counts = {k: summary[k] for k in ("images", "accepted", "review", "failed")}
    if summary["failed"]:
        from airflow.sdk.exceptions import AirflowFailException

        push(key="counts", value={**counts, "failed_images": summary["failed_images"]})
        raise AirflowFailException(ii.failure_message(summary))
    return {
        "images": counts["images"],
        "accepted": counts["accepted"],
        "review": counts["review"],
        "failed": counts["failed"],
        "summary": uri,
        "results": summary["results"],
    }
