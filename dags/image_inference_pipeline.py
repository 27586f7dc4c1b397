"""`<model>_image_inference`: classify new images with the model's endpoint; keep the confident
predictions, send the rest to people for review.

Built for every model whose config has an ``image_inference`` section. Wiring only: each task is
one call into ``include/mlpipeline/pipelines/image_inference.py``; the listing, the endpoint call,
the routing and the idempotence bookkeeping live in ``include/mlpipeline/image_inference.py``. The same file runs against AWS and against localmaker:
only the ``aws_default`` connection differs.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, task

from include.mlpipeline.config import default_stage, list_models, load_config
from include.mlpipeline.dag_support import cron_timetable, dag_defaults, stage_param, task_inputs
from include.mlpipeline.image_inference import DEFAULT_IMAGES_PER_TASK, MAX_PARALLEL_TASKS  # stdlib only
from include.mlpipeline.pipelines import image_inference as tasks

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
        # max_active_runs=1 (dag_defaults): runs claim images one after the other, no image in two runs
        **dag_defaults(
            model,
            "inference",
            "images",
            settings=cfg.airflow,
            params={
                "stage": stage_param(cfg.stage),
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
        ),
    ) as dag:

        @task
        def find_new_images(**context: Any) -> list[tasks.Chunk]:
            return tasks.find_new_images(*task_inputs(model, context), context["params"]["images_per_task"])

        @task(max_active_tis_per_dagrun=MAX_PARALLEL_TASKS, map_index_template="{{ chunk_label }}")
        def classify(chunk: tasks.Chunk, **context: Any) -> dict[str, Any]:
            from airflow.sdk import get_current_context

            # map_index_template reads this key; Context (a closed TypedDict) does not declare it
            get_current_context()["chunk_label"] = tasks.chunk_label(chunk)  # type: ignore[typeddict-unknown-key]
            ti = context["ti"]
            return tasks.classify(*task_inputs(model, context), chunk, tries_left=ti.try_number <= ti.max_tries)

        @task(trigger_rule="none_failed")
        def report(chunks: list[tasks.Chunk], results: Any, **context: Any) -> tasks.Report:
            return tasks.report(*task_inputs(model, context), chunks, results, push=context["ti"].xcom_push)

        # The ignores below ([arg-type]): airflow.sdk types a @task call with the function's own parameters
        # (Task.__call__: Callable[FParams, XComArg]); the XComArgs passed here are resolved at run time
        chunks = find_new_images()
        report(chunks, classify.expand(chunk=chunks))  # type: ignore[arg-type]
    return dag


for _model in list_models():
    if load_config(_model, default_stage()).image_inference is not None:
        globals()[f"{_model}_image_inference"] = build_image_inference_dag(_model)
