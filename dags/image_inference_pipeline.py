"""`<model>_image_inference`: classify new images with the model's endpoint; keep the confident
predictions, send the rest to people for review.

Built for every model whose config has an ``image_inference`` section. Wiring only: the listing,
the endpoint call, the routing and the idempotence bookkeeping live in
``include/mlpipeline/image_inference.py``. The same file runs against AWS and against localmaker:
only the ``aws_default`` connection differs.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, task

from include.mlpipeline.config import default_stage, list_models, list_stages, load_config
from include.mlpipeline.dag_support import CONN, cfg_ctx, clients, cron_timetable, default_args
from include.mlpipeline.image_inference import DEFAULT_IMAGES_PER_TASK, MAX_PARALLEL_TASKS  # stdlib only

#: A dotted config key: config_for_run turns it into an override of that key for the run.
THRESHOLD_PARAM = "image_inference.confidence_threshold"

DOC = """
### {model}: classify new images with `{endpoint}`

1. **find_new_images**: the endpoint must be InService. Lists PNG/JPEG images under
   `s3://{bucket}/{input_prefix}` that have no result yet and records them in the run's manifest
   (`{accepted_prefix}_state/runs/<run>/manifest.json`, `<run>` = the logical date as `YYYYMMDDTHHMMSS`);
   a retry or another run of the same logical date reuses it, so no image is classified twice.
   Cuts them into chunks of `images_per_task`.
2. **classify** (one mapped task per chunk, at most {parallel} at once): sends each image to the endpoint
   (`application/x-image` -> a JSON list of class probabilities), retrying throttling and 5xx errors.
   Top probability >= `confidence_threshold` ({threshold:g}; override per run with the
   `{param}` param): the prediction goes to `{accepted_prefix}<run>/part-NNNNN.jsonl`
   (key, class index and name, confidence, all probabilities). Below it: the image is copied to
   `{review_prefix}<run>/` with its probabilities in the object metadata and a `.prediction.json` sidecar.
3. **report**: counts (accepted / review / failed) in the log, as XCom (`return_value`, also pushed as
   `counts` when the run fails) and in `{accepted_prefix}_state/runs/<run>/summary.json`. The run fails,
   naming them, if any image could not be classified; they keep no result, so the next run retries them.

Schedule: `image_inference.schedule` ({schedule}).
"""


def build_image_inference_dag(model: str) -> DAG:
    cfg = load_config(model, default_stage())
    inf = cfg.image_inference
    assert inf is not None
    endpoint = cfg.endpoint.prod_name if inf.endpoint == "prod" else cfg.endpoint.dev_name
    with DAG(
        dag_id=f"{model}_image_inference",
        description=f"Classify new images with {model}'s endpoint; route low-confidence ones to review",
        doc_md=DOC.format(
            model=model,
            endpoint=endpoint,
            bucket=cfg.aws.bucket,
            input_prefix=inf.input_prefix,
            accepted_prefix=inf.accepted_prefix,
            review_prefix=inf.review_prefix,
            threshold=inf.confidence_threshold,
            param=THRESHOLD_PARAM,
            parallel=MAX_PARALLEL_TASKS,
            schedule=inf.schedule or "none: triggered only",
        ),
        schedule=cron_timetable(inf.schedule) if inf.schedule else None,
        catchup=False,
        max_active_runs=1,  # runs claim images one after the other: no image in two runs
        tags=["sagemaker", "inference", "images", model],
        default_args=default_args(model, cfg.airflow),
        params={
            "stage": Param(cfg.stage, enum=list_stages(), description="Stage config to use (dev/prod)"),
            THRESHOLD_PARAM: Param(
                None,
                type=["null", "number"],
                exclusiveMinimum=0,
                maximum=1,
                description=f"Top-class probability needed to accept a prediction, for this run "
                f"(default: image_inference.confidence_threshold, {inf.confidence_threshold:g})",
            ),
            "images_per_task": Param(
                DEFAULT_IMAGES_PER_TASK,
                type="integer",
                minimum=1,
                maximum=1000,
                description="Images classified by one mapped task (a re-run keeps its first try's value)",
            ),
        },
    ) as dag:

        @task
        def find_new_images(**context: Any) -> list[dict[str, Any]]:
            """The chunks of images this run classifies (its manifest), once the endpoint is InService.

            Each chunk carries the endpoint and threshold the run resolved here, so every mapped
            task uses the same ones."""
            from include.mlpipeline import image_inference as ii

            cfg, ctx = cfg_ctx(model, context)
            s3, sm = clients()
            inf = ii.settings(cfg)
            endpoint = ii.endpoint_name(cfg)
            ii.check_endpoint(sm, endpoint)
            layout = ii.Layout.from_config(cfg, ctx.ts_nodash)
            plan = ii.plan_run(
                s3, layout, run_id=ctx.run_id, images_per_task=int(context["params"]["images_per_task"])
            )
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

        @task(max_active_tis_per_dagrun=MAX_PARALLEL_TASKS, map_index_template="{{ chunk_label }}")
        def classify(chunk: dict[str, Any], **context: Any) -> dict[str, Any]:
            """One chunk: every image classified and routed; failures recorded, not raised, unless
            they are transient and Airflow has tries left (a retry skips the images already done)."""
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
            from airflow.sdk import get_current_context

            from include.mlpipeline import image_inference as ii

            keys = chunk["keys"]
            # what the UI shows for this mapped instance (map_index_template)
            get_current_context()["chunk_label"] = f"chunk {chunk['chunk_index']}: {len(keys)} from {keys[0]}"
            cfg, ctx = cfg_ctx(model, context)
            s3, _ = clients()
            runtime = AwsBaseHook(aws_conn_id=CONN, client_type="sagemaker-runtime").get_conn()
            layout = ii.Layout.from_config(cfg, ctx.ts_nodash)
            result = ii.classify_chunk(
                s3,
                runtime,
                layout,
                keys,
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
            ti = context["ti"]
            if result.transient and ti.try_number <= ti.max_tries:
                raise RuntimeError(
                    f"{len(result.transient)} image(s) met errors that may pass ({', '.join(result.transient[:5])}"
                    f"{', ...' if len(result.transient) > 5 else ''}); retrying the chunk "
                    "(images already classified are not sent again)"
                )
            return result.to_dict()

        @task(trigger_rule="none_failed")
        def report(chunks: list[dict[str, Any]], results: Any, **context: Any) -> dict[str, Any]:
            """Counts in the log, XCom and S3; fails the run naming the images without a result."""
            from airflow.sdk.exceptions import AirflowFailException

            from include.mlpipeline import image_inference as ii

            cfg, ctx = cfg_ctx(model, context)
            s3, _ = clients()
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
            uri = ii.write_summary(s3, layout, summary)
            print(
                f"{images} image(s): {summary['accepted']} accepted, {summary['review']} to review, "
                f"{summary['failed']} failed ({summary['reused']} reused, {summary['skipped']} skipped); "
                f"summary {uri}"
            )
            for result_uri in summary["results"]:
                print(f"accepted predictions: {result_uri}")
            if summary["review"]:
                print(f"for review: {summary['review_prefix']}")
            counts = {k: summary[k] for k in ("images", "accepted", "review", "failed")}
            if summary["failed"]:
                context["ti"].xcom_push(key="counts", value={**counts, "failed_images": summary["failed_images"]})
                raise AirflowFailException(ii.failure_message(summary))
            return {**counts, "summary": uri, "results": summary["results"]}

        chunks = find_new_images()
        report(chunks, classify.expand(chunk=chunks))
    return dag


for _model in list_models():
    if load_config(_model, default_stage()).image_inference is not None:
        globals()[f"{_model}_image_inference"] = build_image_inference_dag(_model)
