"""The image inference workflow's library (include/mlpipeline/image_inference.py), without a server.

S3 is moto (the ``s3`` fixture); the endpoint is a stub ``sagemaker-runtime`` client whose answer
is chosen per image, so the routing, the failure handling and the idempotence bookkeeping are
checked against what really lands in S3.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from include.mlpipeline import image_inference as ii
from include.mlpipeline.config import CONFIG_DIR, ConfigError, config_for_run, load_config

BUCKET = "mlpipeline-dev"
MODEL = "image_classifier"
CLASSES = ["zero", "one", "two"]
RUN_A = "manual__2026-03-01T00:00:00+00:00"
RUN_B = "scheduled__2026-03-02T00:00:00+00:00"
MODEL_YAML = """
data:
  source_uri: file://include/data/digits.csv
  label_column: label
  columns:
    label: {type: int, min: 0, max: 2}
    pixel: {type: float}
training:
  image_uri: "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"
image_inference:
  confidence_threshold: 0.8
  endpoint: prod
  class_names: [zero, one, two]
  schedule: null
"""


@pytest.fixture
def ic_config_dir(tmp_path: Path) -> Path:
    """include/config's base and stages, diabetes_dnn, and a model with an image_inference section
    (independent of what the real models/ holds, so other models' configs cannot break these tests)."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target, ignore=shutil.ignore_patterns("models"))
    (target / "models").mkdir()
    shutil.copy(CONFIG_DIR / "models" / "diabetes_dnn.yaml", target / "models")
    (target / "models" / f"{MODEL}.yaml").write_text(MODEL_YAML)
    return target


@pytest.fixture
def cfg(ic_config_dir: Path) -> Any:
    return load_config(MODEL, "dev", config_dir=ic_config_dir)


#: run id -> the run key the DAG derives (the logical date's ts_nodash)
TS = {RUN_A: "20260301T000000", RUN_B: "20260302T000000"}


def layout_for(cfg: Any, run_id: str) -> ii.Layout:
    return ii.Layout.from_config(cfg, TS[run_id])


def client_error(code: str, message: str, status: int = 400, **extra: Any) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}, **extra},
        "InvokeEndpoint",
    )


class StubRuntime:
    """A sagemaker-runtime client: the image bytes name what the endpoint answers.

    ``answers[image bytes]`` is a list of probabilities, raw response bytes, or an exception; a
    list of those is consumed one per call (to model a transient error followed by success).
    """

    def __init__(self, answers: dict[bytes, Any]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        answer = self.answers[kwargs["Body"]]
        if isinstance(answer, tuple):  # a sequence of answers, one per call
            answer = answer[min(sum(c["Body"] == kwargs["Body"] for c in self.calls), len(answer)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        return {"Body": io.BytesIO(body), "ContentType": "application/json"}


def upload(s3: Any, cfg: Any, names: dict[str, bytes]) -> list[str]:
    keys = []
    for name, body in names.items():
        key = cfg.image_inference.input_prefix + name
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        keys.append(key)
    return keys


def read_json(s3: Any, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def run_chunk(s3: Any, runtime: Any, layout: ii.Layout, keys: list[str], run_id: str, **kw: Any) -> ii.ChunkResult:
    kw.setdefault("threshold", 0.8)
    return ii.classify_chunk(
        s3, runtime, layout, keys, chunk_index=0, endpoint="image-classifier-prod", run_id=run_id,
        class_names=CLASSES, sleep=lambda _s: None, log=lambda _m: None, **kw,
    )


# --------------------------------------------------------------------- the endpoint's answer


def test_parses_the_builtin_json_list_and_its_jsonlines_form() -> None:
    assert ii.parse_probabilities(b"[0.1, 0.7, 0.2]") == [0.1, 0.7, 0.2]
    assert ii.parse_probabilities('{"prediction": [0.25, 0.75]}') == [0.25, 0.75]
    assert ii.parse_probabilities(b"[0, 1, 0]", CLASSES) == [0.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>oops</html>", "response is not JSON"),
        (b'{"predictions": [{"score": 0.9}]}', "expected a JSON list of class probabilities, got dict"),
        (b"[]", "empty list"),
        (b'["0.5", "0.5"]', "must be numbers"),
        (b"[true, false]", "must be numbers"),
        (b"[1.5, -0.5]", "must lie in [0, 1]"),
        (b"[NaN, 1.0]", "must lie in [0, 1]"),
        (b"[0.2, 0.2, 0.2]", "sum to 0.6000, not 1"),
    ],
)
def test_a_malformed_response_is_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(ii.MalformedResponseError) as err:
        ii.parse_probabilities(body)
    assert message in str(err.value)


def test_a_response_for_other_classes_is_refused() -> None:
    with pytest.raises(ii.MalformedResponseError, match=r"2 probabilities but image_inference.class_names has 3"):
        ii.parse_probabilities(b"[0.4, 0.6]", CLASSES)


# ------------------------------------------------------------------------------- routing


def test_the_threshold_is_inclusive() -> None:
    at = ii.decide("k.png", [0.1, 0.8, 0.1], 0.8, CLASSES)
    below = ii.decide("k.png", [0.1, 0.7999, 0.1001], 0.8, CLASSES)
    assert (at.outcome, at.class_index, at.class_name, at.confidence) == ("accepted", 1, "one", 0.8)
    assert (below.outcome, below.class_index, below.confidence) == ("review", 1, 0.7999)
    assert ii.decide("k.png", [1.0, 0.0], 1.0).accepted


def test_class_names_ties_and_unnamed_classes() -> None:
    assert ii.decide("k.png", [0.4, 0.2, 0.4], 0.3, CLASSES).class_name == "zero"  # tie: lowest index
    unnamed = ii.decide("k.png", [0.05, 0.05, 0.9], 0.5)
    assert (unnamed.class_index, unnamed.class_name) == (2, "2")
    with pytest.raises(IndexError, match="outside image_inference.class_names"):
        ii.class_name(3, CLASSES)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        ii.decide("k.png", [1.0], 0)


def test_image_keys() -> None:
    assert [k for k in ["a.png", "b.JPG", "c.jpeg", "d.gif", "e.png.txt", "dir/", "f.Png"] if ii.is_image_key(k)] == [
        "a.png", "b.JPG", "c.jpeg", "f.Png",
    ]
    assert ii.image_content_type("x/b.JPG") == "image/jpeg"


def test_transient_errors() -> None:
    assert ii.is_transient(client_error("ThrottlingException", "slow down"))
    assert ii.is_transient(client_error("ModelError", "Received server error (500) from primary", 424,
                                        OriginalStatusCode=500))
    assert ii.is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert not ii.is_transient(client_error("ModelError", "Received client error (400) from primary", 424,
                                            OriginalStatusCode=400))
    assert not ii.is_transient(client_error("ValidationError", "Endpoint x of account y not found."))
    assert not ii.is_transient(ii.MalformedResponseError("bad"))


# -------------------------------------------------------------------------------- layout


def test_layout_keys(cfg: Any) -> None:
    layout = layout_for(cfg, RUN_A)
    key = "image_classifier/inference/incoming/2026/a.png"
    assert layout.run_key == "20260301T000000"
    assert layout.marker_key(key) == "image_classifier/inference/accepted/_state/processed/2026/a.png.json"
    assert layout.review_key(key) == f"image_classifier/inference/review/{layout.run_key}/2026/a.png"
    assert layout.part_key(3) == f"image_classifier/inference/accepted/{layout.run_key}/part-00003.jsonl"
    assert layout.manifest_key == f"image_classifier/inference/accepted/_state/runs/{layout.run_key}/manifest.json"


def test_overlapping_prefixes_are_refused() -> None:
    with pytest.raises(ii.ImageInferenceError, match="overlap: outputs would be read back as new images"):
        ii.Layout("b", "images/", "images/accepted", "review/", "run")


def test_threshold_param_overrides_the_config_for_one_run(ic_config_dir: Path) -> None:
    params = {"stage": "dev", "image_inference.confidence_threshold": 0.55, "images_per_task": 10}
    from include.mlpipeline.dag_support import config_params

    run_cfg = config_for_run(MODEL, config_params(params), config_dir=ic_config_dir)
    assert run_cfg.image_inference.confidence_threshold == 0.55
    assert run_cfg.image_inference.class_names == CLASSES  # the rest of the section is kept
    untouched = config_for_run(MODEL, {"image_inference.confidence_threshold": None}, config_dir=ic_config_dir)
    assert untouched.image_inference.confidence_threshold == 0.8
    with pytest.raises(ConfigError, match=r"image_inference.confidence_threshold: must be <= 1"):
        config_for_run(MODEL, {"image_inference.confidence_threshold": 1.5}, config_dir=ic_config_dir)
    assert ii.endpoint_name(run_cfg) == "image-classifier-prod"


def test_a_model_without_the_section_says_so(dev_cfg: Any) -> None:
    with pytest.raises(ii.ImageInferenceError, match="models/diabetes_dnn.yaml has no image_inference section"):
        ii.settings(dev_cfg)


def test_check_endpoint() -> None:
    class Sm:
        def __init__(self, answer: Any) -> None:
            self.answer = answer

        def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    assert ii.check_endpoint(Sm({"EndpointStatus": "InService"}), "ep")["status"] == "InService"
    with pytest.raises(ii.ImageInferenceError, match="endpoint ep is Failed, not InService: no model.tar.gz"):
        ii.check_endpoint(Sm({"EndpointStatus": "Failed", "FailureReason": "no model.tar.gz"}), "ep")
    missing = client_error("ValidationException", "Could not find endpoint ep.")
    with pytest.raises(ii.ImageInferenceError, match="ep cannot be described .*Could not find endpoint ep"):
        ii.check_endpoint(Sm(missing), "ep")


# ---------------------------------------------------------------- a run, end to end in S3


def test_a_run_routes_every_image_and_a_rerun_classifies_nothing_twice(s3: Any, cfg: Any) -> None:
    keys = upload(s3, cfg, {"a.png": b"A", "sub/b.jpg": b"B", "c.jpeg": b"C", "notes.txt": b"x", "d.PNG": b"D"})
    runtime = StubRuntime({b"A": [0.05, 0.9, 0.05], b"B": [0.5, 0.3, 0.2], b"C": [0.0, 0.0, 1.0], b"D": [0.8, 0.1, 0.1]})
    layout = layout_for(cfg, RUN_A)

    plan = ii.plan_run(s3, layout, run_id=RUN_A, images_per_task=10)
    images = sorted(k for k in keys if not k.endswith(".txt"))
    assert plan.images == images and plan.chunks == [images] and not plan.reused
    assert read_json(s3, layout.manifest_key) == {"run_id": RUN_A, "images": images, "images_per_task": 10}

    result = run_chunk(s3, runtime, layout, plan.chunks[0], RUN_A)
    assert (result.accepted, result.review, result.failed, result.reused) == (3, 1, {}, 0)
    assert len(runtime.calls) == 4
    assert {(c["ContentType"], c["Accept"], c["EndpointName"]) for c in runtime.calls} == {
        ("application/x-image", "application/json", "image-classifier-prod")
    }

    # accepted: one JSON lines file, every field the consumers need
    lines = s3.get_object(Bucket=BUCKET, Key=layout.part_key(0))["Body"].read().decode().splitlines()
    records = {r["key"]: r for r in map(json.loads, lines)}
    prefix = cfg.image_inference.input_prefix
    assert sorted(records) == [prefix + "a.png", prefix + "c.jpeg", prefix + "d.PNG"]
    assert records[prefix + "a.png"] == {
        "key": prefix + "a.png", "class_index": 1, "class_name": "one", "confidence": 0.9,
        "probabilities": [0.05, 0.9, 0.05],
    }
    assert records[prefix + "d.PNG"]["confidence"] == 0.8  # exactly at the threshold: accepted

    # review: the image itself, its prediction in metadata, and a sidecar
    review_key = layout.review_key(prefix + "sub/b.jpg")
    assert review_key == f"{cfg.image_inference.review_prefix}{layout.run_key}/sub/b.jpg"
    copy = s3.get_object(Bucket=BUCKET, Key=review_key)
    assert copy["Body"].read() == b"B" and copy["ContentType"] == "image/jpeg"
    assert copy["Metadata"]["predicted-class"] == "zero"
    assert copy["Metadata"]["confidence"] == "0.500000"
    assert json.loads(copy["Metadata"]["probabilities"]) == [0.5, 0.3, 0.2]
    sidecar = read_json(s3, layout.sidecar_key(prefix + "sub/b.jpg"))
    assert sidecar["probabilities"] == [0.5, 0.3, 0.2] and sidecar["outcome"] == "review"
    assert sidecar["run_id"] == RUN_A and sidecar["threshold"] == 0.8
    assert ii.processed_keys(s3, layout) == set(images)

    # a retry, or another run of the same logical date (a new run id): same manifest, nothing
    # sent again, the same result file
    before = s3.get_object(Bucket=BUCKET, Key=layout.part_key(0))["Body"].read()
    upload(s3, cfg, {"late.png": b"L"})  # arrives meanwhile: left for the next run
    rerun_id = "manual__2026-03-05T10:00:00+00:00"
    again = ii.plan_run(s3, layout, run_id=rerun_id, images_per_task=2)
    assert again.reused and again.images == images and again.images_per_task == 10
    rerun = run_chunk(s3, runtime, layout, again.chunks[0], rerun_id)
    assert (rerun.accepted, rerun.review, rerun.reused) == (3, 1, 4)
    assert len(runtime.calls) == 4
    assert s3.get_object(Bucket=BUCKET, Key=layout.part_key(0))["Body"].read() == before

    # the next run sees only the image that came late
    runtime.answers[b"L"] = [0.0, 1.0, 0.0]
    nxt = ii.plan_run(s3, layout_for(cfg, RUN_B), run_id=RUN_B)
    assert nxt.images == [prefix + "late.png"] and nxt.already_processed == 4
    summary = ii.summarise(layout, [result.to_dict()], run_id=RUN_A, endpoint="ep", threshold=0.8, images=4)
    assert {k: summary[k] for k in ("accepted", "review", "failed", "images")} == {
        "accepted": 3, "review": 1, "failed": 0, "images": 4,
    }
    assert summary["results"] == [f"s3://{BUCKET}/{layout.part_key(0)}"]


def test_failures_are_named_retried_when_transient_and_left_for_the_next_run(s3: Any, cfg: Any) -> None:
    prefix = cfg.image_inference.input_prefix
    upload(s3, cfg, {"ok.png": b"OK", "flaky.png": b"FLAKY", "broken.png": b"BROKEN", "down.png": b"DOWN",
                     "weird.png": b"WEIRD"})
    server_error = client_error("ModelError", "Received server error (503) from primary", 424, OriginalStatusCode=503)
    bad_image = client_error("ModelError", "Received client error (400) from primary with message \"cannot decode "
                             "image\"", 424, OriginalStatusCode=400)
    runtime = StubRuntime({
        b"OK": [0.0, 0.0, 1.0],
        b"FLAKY": (client_error("ThrottlingException", "Rate exceeded"), [0.9, 0.05, 0.05]),
        b"BROKEN": bad_image,
        b"DOWN": server_error,
        b"WEIRD": b'{"predictions": []}',
    })
    layout = layout_for(cfg, RUN_A)
    plan = ii.plan_run(s3, layout, run_id=RUN_A)
    sleeps: list[float] = []
    result = ii.classify_chunk(
        s3, runtime, layout, plan.chunks[0], chunk_index=0, endpoint="ep", threshold=0.8, run_id=RUN_A,
        class_names=CLASSES, sleep=sleeps.append, log=lambda _m: None,
    )
    assert (result.accepted, result.review) == (2, 0)  # ok + flaky (after one retry)
    assert sorted(result.failed) == [prefix + "broken.png", prefix + "down.png", prefix + "weird.png"]
    assert "cannot decode image" in result.failed[prefix + "broken.png"]
    assert "expected a JSON list of class probabilities" in result.failed[prefix + "weird.png"]
    assert result.transient == [prefix + "down.png"]
    calls = [c["Body"] for c in runtime.calls]
    assert calls.count(b"BROKEN") == 1 and calls.count(b"WEIRD") == 1  # retrying cannot help these
    assert calls.count(b"DOWN") == ii.INVOKE_ATTEMPTS and calls.count(b"FLAKY") == 2
    assert sleeps == [1.0, 2.0, 1.0]  # down (sorted first) twice with backoff, then flaky once

    summary = ii.summarise(layout, [result.to_dict()], run_id=RUN_A, endpoint="ep", threshold=0.8, images=5)
    assert summary["failed"] == 3
    message = ii.failure_message(summary)
    assert message.startswith("3 of 5 image(s) could not be classified by ep:")
    for name in ("broken.png", "down.png", "weird.png"):
        assert prefix + name in message

    # a failed image keeps no result: the next run tries it again, the others are done
    assert ii.processed_keys(s3, layout) == {prefix + "ok.png", prefix + "flaky.png"}
    assert ii.plan_run(s3, layout_for(cfg, RUN_B), run_id=RUN_B).images == [
        prefix + n for n in ("broken.png", "down.png", "weird.png")
    ]


def test_an_image_marked_by_another_run_is_skipped(s3: Any, cfg: Any) -> None:
    (key,) = upload(s3, cfg, {"a.png": b"A"})
    runtime = StubRuntime({b"A": [0.1, 0.1, 0.8]})
    run_chunk(s3, runtime, layout_for(cfg, RUN_A), [key], RUN_A)
    result = run_chunk(s3, runtime, layout_for(cfg, RUN_B), [key], RUN_B)
    assert result.skipped == [key] and result.accepted == 0 and len(runtime.calls) == 1
    assert result.part_key is None


def test_failure_message_is_bounded() -> None:
    summary = {"images": 30, "endpoint": "ep", "failed_images": {f"k{i}.png": "boom" for i in range(30)}}
    message = ii.failure_message(summary, limit=5)
    assert "k4.png: boom" in message and "k5.png" not in message and "... and 25 more" in message


def test_chunking() -> None:
    assert ii.chunked(["a", "b", "c"], 2) == [["a", "b"], ["c"]]
    assert ii.chunked([], 5) == []
    with pytest.raises(ValueError, match=">= 1"):
        ii.chunked(["a"], 0)


# ------------------------------------------------------------------------------- the DAG


def test_the_dag_maps_chunks_with_bounded_concurrency(ic_config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built from the model's config only; the report runs even when there is nothing to map."""
    import importlib.util

    from include.mlpipeline.config import layers

    monkeypatch.setattr(layers, "CONFIG_DIR", ic_config_dir)
    path = Path(__file__).resolve().parents[2] / "dags" / "image_inference_pipeline.py"
    spec = importlib.util.spec_from_file_location("image_inference_pipeline_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not hasattr(module, "diabetes_dnn_image_inference")  # no image_inference section
    dag = module.image_classifier_image_inference
    assert {t.task_id for t in dag.tasks} == {"find_new_images", "classify", "report"}
    classify = dag.get_task("classify")
    assert classify.max_active_tis_per_dagrun == ii.MAX_PARALLEL_TASKS
    assert dag.get_task("report").trigger_rule == "none_failed"
    assert dag.get_task("report").upstream_task_ids == {"find_new_images", "classify"}
    assert dag.params["image_inference.confidence_threshold"] is None
    assert dag.params["images_per_task"] == ii.DEFAULT_IMAGES_PER_TASK
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert type(dag.timetable).__name__ == "NullTimetable"  # image_inference.schedule: null
