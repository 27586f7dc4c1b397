"""The image inference workflow's logic: which images are new, what the endpoint said, where each goes.

``<model>_image_inference`` (``dags/image_inference_pipeline.py``) only wires these functions
together. Clients are passed in (boto3 S3 and ``sagemaker-runtime``, from the Airflow connection),
so the same code runs against AWS and localmaker, and unit tests drive it with moto and stub
runtimes.

S3 layout (``<accepted>``/``<review>``/``<input>`` are the ``image_inference`` prefixes of
``aws.bucket``; ``<run>`` is the run's logical date as ``YYYYMMDDTHHMMSS`` (``ts_nodash``; when
queued, for manual runs without one), so every run of one logical date shares it)::

    <input><rel>                                   an incoming image (.png / .jpg / .jpeg)
    <accepted><run>/part-00000.jsonl               accepted predictions of one chunk of images
    <review><run>/<rel>                            a low-confidence image, copied, probabilities in its metadata
    <review><run>/<rel>.prediction.json            ... and all of its probabilities in a sidecar
    <accepted>_state/runs/<run>/manifest.json      the images this run claimed (written once per run)
    <accepted>_state/runs/<run>/summary.json       the run's counts and failures
    <accepted>_state/processed/<rel>.json          one marker per image that has its result stored

Idempotence: an image is *processed* once its marker exists, and the marker is written only after
its result (review copy and sidecar, or the chunk's JSON lines file) is stored. A new run claims
the images without a marker and records them in its manifest; a retry, a cleared task or another
run of the same logical date reuses that manifest and the markers it already wrote, so no image
is classified twice and a retried chunk rewrites the same ``part-NNNNN.jsonl`` instead of adding
another. Images that failed keep no marker, so the next run tries them again.

Stdlib only at import time (boto3 is passed in; botocore is imported lazily).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import codec
from . import s3 as s3io

#: The image suffixes the workflow picks up (case-insensitive) and their content types.
IMAGE_CONTENT_TYPES: dict[str, str] = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
#: What the built-in image-classification algorithm takes (any of PNG/JPEG) and answers.
REQUEST_CONTENT_TYPE = "application/x-image"
ACCEPT = "application/json"
#: Images classified by one mapped task instance; bounds a task's duration and XCom size.
DEFAULT_IMAGES_PER_TASK = 25
#: Mapped classification tasks running at once per run: bounds the load on the endpoint.
MAX_PARALLEL_TASKS = 4
#: Attempts per image (first call included) for errors that may pass (throttling, 5xx, timeouts).
INVOKE_ATTEMPTS = 3
#: Tolerance of the "probabilities sum to 1" check (float32 softmax output, rounding in JSON).
SUM_TOLERANCE = 0.02
#: S3 user metadata is limited to 2 KB per object; probabilities longer than this go to the sidecar only.
MAX_METADATA_PROBABILITIES_CHARS = 1500

STATE_DIR = "_state"
SIDECAR_SUFFIX = ".prediction.json"
OUTCOME_ACCEPTED = "accepted"
OUTCOME_REVIEW = "review"


class MalformedResponseError(ValueError):
    """The endpoint answered something that is not a list of class probabilities."""


class ImageInferenceError(RuntimeError):
    """The workflow cannot run as configured (endpoint down, overlapping prefixes, ...)."""


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def _prefix(value: str) -> str:
    """A key prefix with exactly one trailing slash and no leading one."""
    value = value.strip().lstrip("/")
    return value if value.endswith("/") else value + "/"


@dataclass(frozen=True)
class Layout:
    """Where one run reads and writes; every key is derived from the config and the run key (the
    logical date, ``ts_nodash``) alone, so a retried task or a re-run of the same date computes
    the same keys as the first try."""

    bucket: str
    input_prefix: str
    accepted_prefix: str
    review_prefix: str
    run_key: str

    def __post_init__(self) -> None:
        for name in ("input_prefix", "accepted_prefix", "review_prefix"):
            object.__setattr__(self, name, _prefix(getattr(self, name)))
        # Outputs under the input prefix would be picked up as new images by the next run (review
        # copies are images), and inputs under an output prefix would mix with results.
        for out in ("accepted_prefix", "review_prefix"):
            a, b = self.input_prefix, getattr(self, out)
            if a.startswith(b) or b.startswith(a):
                raise ImageInferenceError(
                    f"image_inference.input_prefix ({a}) and image_inference.{out} ({b}) overlap: "
                    "outputs would be read back as new images; use separate prefixes"
                )

    @classmethod
    def from_config(cls, cfg: Any, run_key: str) -> Layout:
        """The layout of ``cfg.image_inference`` in ``cfg.aws.bucket`` for one run."""
        inf = settings(cfg)
        return cls(
            bucket=cfg.aws.bucket,
            input_prefix=inf.input_prefix,
            accepted_prefix=inf.accepted_prefix,
            review_prefix=inf.review_prefix,
            run_key=run_key,
        )

    def relative(self, key: str) -> str:
        if not key.startswith(self.input_prefix):
            raise ValueError(f"{key} is not under the input prefix {self.input_prefix}")
        return key[len(self.input_prefix) :]

    @property
    def processed_prefix(self) -> str:
        return f"{self.accepted_prefix}{STATE_DIR}/processed/"

    @property
    def run_state_prefix(self) -> str:
        return f"{self.accepted_prefix}{STATE_DIR}/runs/{self.run_key}/"

    @property
    def manifest_key(self) -> str:
        return self.run_state_prefix + "manifest.json"

    @property
    def summary_key(self) -> str:
        return self.run_state_prefix + "summary.json"

    @property
    def results_prefix(self) -> str:
        """This run's accepted predictions (``part-NNNNN.jsonl``)."""
        return f"{self.accepted_prefix}{self.run_key}/"

    def part_key(self, chunk_index: int) -> str:
        return f"{self.results_prefix}part-{chunk_index:05d}.jsonl"

    def marker_key(self, key: str) -> str:
        return f"{self.processed_prefix}{self.relative(key)}.json"

    def review_key(self, key: str) -> str:
        return f"{self.review_prefix}{self.run_key}/{self.relative(key)}"

    def sidecar_key(self, key: str) -> str:
        return self.review_key(key) + SIDECAR_SUFFIX

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def settings(cfg: Any) -> Any:
    """``cfg.image_inference``, or a clear error for a model without the workflow."""
    inf = getattr(cfg, "image_inference", None)
    if inf is None:
        raise ImageInferenceError(
            f"models/{cfg.model}.yaml has no image_inference section: the model has no image inference workflow"
        )
    return inf


def endpoint_name(cfg: Any) -> str:
    """The endpoint ``image_inference.endpoint`` (``prod``/``dev``) points at, named by the one
    rule for endpoint names (:func:`.sagemaker_requests.endpoint_name`)."""
    from .sagemaker_requests import endpoint_name as named  # config and pydantic: not at import time

    return named(cfg, settings(cfg).endpoint)


# --------------------------------------------------------------------------------------------
# Finding new images
# --------------------------------------------------------------------------------------------


def is_image_key(key: str) -> bool:
    """A PNG/JPEG object (by suffix, any case); "folder" placeholders and other files are not."""
    lowered = key.lower()
    return not key.endswith("/") and any(lowered.endswith(s) for s in IMAGE_CONTENT_TYPES)


def image_content_type(key: str) -> str:
    lowered = key.lower()
    for suffix, content_type in IMAGE_CONTENT_TYPES.items():
        if lowered.endswith(suffix):
            return content_type
    raise ValueError(f"{key} is not a .png/.jpg/.jpeg key")


def list_images(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Image keys under ``prefix``, sorted (the order chunks are cut in)."""
    return [k for k in s3io.list_keys(s3, f"s3://{bucket}/{_prefix(prefix)}") if is_image_key(k)]


def processed_keys(s3: Any, layout: Layout) -> set[str]:
    """Input keys that have a result stored, from the markers (a listing, no reads)."""
    start = layout.processed_prefix
    return {
        layout.input_prefix + k[len(start) : -len(".json")]
        for k in s3io.list_keys(s3, layout.uri(start))
        if k.endswith(".json")
    }


def chunked(keys: Sequence[str], size: int) -> list[list[str]]:
    """``keys`` cut into lists of at most ``size``, in order."""
    if size < 1:
        raise ValueError(f"images per task must be >= 1 (got {size})")
    return [list(keys[i : i + size]) for i in range(0, len(keys), size)]


def _read_json(s3: Any, layout: Layout, key: str) -> Any | None:
    """The JSON object at ``key``, or None when there is none."""
    try:
        return s3io.get_json(s3, layout.uri(key))
    except s3io.ObjectNotFound:
        return None


def _put_json(s3: Any, layout: Layout, key: str, value: Any) -> None:
    s3io.put_json(s3, layout.uri(key), value, indent=1, sort_keys=True)


@dataclass(frozen=True)
class Plan:
    """The images one run classifies, cut into the chunks its mapped tasks take."""

    images: list[str]
    chunks: list[list[str]]
    images_per_task: int
    reused: bool
    already_processed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_run(s3: Any, layout: Layout, *, run_id: str, images_per_task: int = DEFAULT_IMAGES_PER_TASK) -> Plan:
    """The run's images: its manifest if it has one (a retry or re-run), else the images without a
    marker, recorded as the manifest before anything is classified.

    The manifest keeps a re-run to the set its first try saw (images uploaded meanwhile wait for
    the next run) and keeps its chunking, so each chunk rewrites the same result file. ``run_id``
    is recorded for people; the manifest's identity is the layout's run key.
    """
    manifest = _read_json(s3, layout, layout.manifest_key)
    if manifest is not None:
        images = list(manifest["images"])
        size = int(manifest["images_per_task"])
        return Plan(images=images, chunks=chunked(images, size), images_per_task=size, reused=True)
    listed = list_images(s3, layout.bucket, layout.input_prefix)
    done = processed_keys(s3, layout)
    images = [k for k in listed if k not in done]
    _put_json(
        s3,
        layout,
        layout.manifest_key,
        {"run_id": run_id, "images": images, "images_per_task": images_per_task},
    )
    return Plan(
        images=images,
        chunks=chunked(images, images_per_task),
        images_per_task=images_per_task,
        reused=False,
        already_processed=len(listed) - len(images),
    )


# --------------------------------------------------------------------------------------------
# The endpoint's answer and the routing decision
# --------------------------------------------------------------------------------------------


def parse_probabilities(body: bytes | str, class_names: Sequence[str] = ()) -> list[float]:
    """The per-class probabilities in an image-classification response.

    The built-in algorithm answers ``application/json`` with a bare JSON list, one probability
    per class (``[0.02, 0.95, 0.03]``); its JSON Lines form wraps the list as
    ``{"prediction": [...]}``, which is accepted too (:func:`.codec.decode_probabilities`). Anything else is a
    :class:`MalformedResponseError` saying what was wrong, with the start of the body.
    """
    try:
        probabilities = codec.decode_probabilities(body, sum_tolerance=SUM_TOLERANCE)
    except codec.ResponseError as exc:
        raise MalformedResponseError(str(exc)) from None
    if class_names and len(probabilities) != len(class_names):
        raise MalformedResponseError(
            f"{len(probabilities)} probabilities but image_inference.class_names has {len(class_names)} "
            f"names ({', '.join(class_names)}): the endpoint serves a model of other classes"
        )
    return probabilities


def class_name(index: int, class_names: Sequence[str] = ()) -> str:
    """The configured name of class ``index``; its number when no names are configured."""
    if not class_names:
        return str(index)
    if not 0 <= index < len(class_names):
        raise IndexError(f"class index {index} is outside image_inference.class_names ({len(class_names)} names)")
    return class_names[index]


@dataclass(frozen=True)
class Prediction:
    """One image's result and where it was routed."""

    key: str
    class_index: int
    class_name: str
    confidence: float
    probabilities: list[float]
    outcome: str  # OUTCOME_ACCEPTED or OUTCOME_REVIEW
    threshold: float

    @property
    def accepted(self) -> bool:
        return self.outcome == OUTCOME_ACCEPTED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Prediction:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def decide(key: str, probabilities: Sequence[float], threshold: float, class_names: Sequence[str] = ()) -> Prediction:
    """Accept the top class when its probability is at least ``threshold``, else send to review.

    Ties go to the lowest class index (what ``argmax`` does). The comparison is ``>=``: a
    threshold of 0.8 accepts a confidence of exactly 0.8.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"confidence threshold must be in (0, 1] (got {threshold})")
    if not probabilities:
        raise ValueError(f"{key}: no probabilities")
    index = max(range(len(probabilities)), key=lambda i: (probabilities[i], -i))
    confidence = float(probabilities[index])
    return Prediction(
        key=key,
        class_index=index,
        class_name=class_name(index, class_names),
        confidence=confidence,
        probabilities=[float(p) for p in probabilities],
        outcome=OUTCOME_ACCEPTED if confidence >= threshold else OUTCOME_REVIEW,
        threshold=float(threshold),
    )


# --------------------------------------------------------------------------------------------
# Calling the endpoint
# --------------------------------------------------------------------------------------------

#: Error codes of ``invoke_endpoint`` that another attempt may not meet.
_TRANSIENT_CODES = {
    "ThrottlingException",
    "Throttling",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "InternalDependencyException",
    "ModelNotReadyException",
    "RequestTimeout",
}


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the request may help: throttling, 5xx, a model not ready, a dropped
    connection; or a ``ModelError`` whose container answered 5xx. A 4xx from the container (the
    image cannot be decoded), an unknown endpoint or a malformed answer fail the same way again."""
    if isinstance(exc, MalformedResponseError):
        return False
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = str(response.get("Error", {}).get("Code", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code == "ModelError":
            original = int(response.get("OriginalStatusCode") or 0)
            message = str(response.get("Error", {}).get("Message", ""))
            return original >= 500 or "server error (5" in message
        return code in _TRANSIENT_CODES or status >= 500
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # pragma: no cover - botocore is a project dependency
        return False
    return isinstance(exc, BotoConnectionError | HTTPClientError | ConnectionError | TimeoutError)


def _describe_error(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping) and response.get("Error"):
        error = response["Error"]
        return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Retry:
    """How a request is repeated after an error that may pass: ``attempts`` in all (the first
    included), waiting ``backoff_seconds`` doubling each time (``sleep`` is swappable for tests)."""

    attempts: int = INVOKE_ATTEMPTS
    backoff_seconds: float = 1.0
    sleep: Callable[[float], None] = time.sleep


def classify_image(
    runtime: Any, endpoint: str, image: bytes, class_names: Sequence[str] = (), *, retry: Retry = Retry()
) -> list[float]:
    """The endpoint's probabilities for one image, retrying transient errors with backoff."""
    for attempt in range(1, retry.attempts + 1):
        try:
            body = runtime.invoke_endpoint(
                EndpointName=endpoint, Body=image, ContentType=REQUEST_CONTENT_TYPE, Accept=ACCEPT
            )["Body"].read()
            return parse_probabilities(body, class_names)
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised when final
            if attempt == retry.attempts or not is_transient(exc):
                raise
            retry.sleep(retry.backoff_seconds * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


def check_endpoint(sm: Any, endpoint: str) -> dict[str, Any]:
    """The endpoint exists and is InService, or a clear error before any image is touched."""
    try:
        described = sm.describe_endpoint(EndpointName=endpoint)
    except Exception as exc:  # noqa: BLE001
        raise ImageInferenceError(
            f"endpoint {endpoint} cannot be described ({_describe_error(exc)}): deploy the image "
            "classifier first (image_inference.endpoint chooses between the dev and prod endpoint)"
        ) from exc
    status = described.get("EndpointStatus")
    if status != "InService":
        reason = f": {described['FailureReason']}" if described.get("FailureReason") else ""
        raise ImageInferenceError(f"endpoint {endpoint} is {status}, not InService{reason}")
    return {"endpoint": endpoint, "status": status, "config": described.get("EndpointConfigName")}


# --------------------------------------------------------------------------------------------
# One chunk: classify, route, record
# --------------------------------------------------------------------------------------------


@dataclass
class ChunkResult:
    """What one mapped task did; ``failed`` maps key -> reason, ``transient`` the retryable ones."""

    chunk_index: int
    accepted: int = 0
    review: int = 0
    reused: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    transient: list[str] = field(default_factory=list)
    part_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def review_metadata(prediction: Prediction, run_id: str) -> dict[str, str]:
    """S3 user metadata of a review copy: the top class, and every probability when they fit."""
    meta = {
        "source-key": prediction.key,
        "predicted-class": prediction.class_name,
        "predicted-index": str(prediction.class_index),
        "confidence": f"{prediction.confidence:.6f}",
        "threshold": f"{prediction.threshold:g}",
        "run-id": run_id,
    }
    probabilities = json.dumps([round(p, 6) for p in prediction.probabilities], separators=(",", ":"))
    if len(probabilities) <= MAX_METADATA_PROBABILITIES_CHARS:
        meta["probabilities"] = probabilities
    # S3 metadata must be ASCII: class names or keys beyond it are in the sidecar.
    return {k: v.encode("ascii", "replace").decode("ascii") for k, v in meta.items()}


def route_to_review(s3: Any, layout: Layout, prediction: Prediction, run_id: str) -> str:
    """Copy the image to the review prefix (probabilities in its metadata) with a JSON sidecar."""
    target = layout.review_key(prediction.key)
    s3io.copy(
        s3,
        layout.uri(prediction.key),
        layout.uri(target),
        content_type=image_content_type(prediction.key),
        metadata=review_metadata(prediction, run_id),
    )
    _put_json(
        s3,
        layout,
        layout.sidecar_key(prediction.key),
        {**prediction.to_dict(), "run_id": run_id, "source": layout.uri(prediction.key), "image": layout.uri(target)},
    )
    return target


def _write_marker(s3: Any, layout: Layout, prediction: Prediction, run_id: str, location: str) -> None:
    _put_json(
        s3,
        layout,
        layout.marker_key(prediction.key),
        {**prediction.to_dict(), "run_id": run_id, "run_key": layout.run_key, "result": layout.uri(location)},
    )


def accepted_record(prediction: Prediction) -> dict[str, Any]:
    """One line of the accepted JSON lines file."""
    return {
        "key": prediction.key,
        "class_index": prediction.class_index,
        "class_name": prediction.class_name,
        "confidence": prediction.confidence,
        "probabilities": prediction.probabilities,
    }


def classify_chunk(
    s3: Any,
    runtime: Any,
    layout: Layout,
    keys: Sequence[str],
    *,
    chunk_index: int,
    endpoint: str,
    threshold: float,
    run_id: str,
    class_names: Sequence[str] = (),
    retry: Retry = Retry(),
    log: Callable[[str], None] = print,
) -> ChunkResult:
    """Classify ``keys`` and store each result; a failing image is recorded, not raised.

    An image with a marker of this run key (an earlier try or run of the same logical date) is
    not sent again: its stored result is reused. One marked by another run is skipped (its result
    lives with that run). Review
    images are committed one by one (copy, sidecar, marker); accepted ones together: the chunk's
    JSON lines file is written first, then their markers, so a crash in between only repeats
    their classification.
    """
    result = ChunkResult(chunk_index=chunk_index)
    accepted: list[Prediction] = []
    for key in keys:
        marker = _read_json(s3, layout, layout.marker_key(key))
        if marker is not None:
            if marker.get("run_key") != layout.run_key:
                log(f"{key}: already processed by run {marker.get('run_id')} ({marker.get('run_key')}); skipped")
                result.skipped.append(key)
                continue
            prediction = Prediction.from_dict(marker)
            result.reused += 1
        else:
            try:
                image = s3io.get_bytes(s3, layout.uri(key))
                probabilities = classify_image(runtime, endpoint, image, class_names, retry=retry)
                prediction = decide(key, probabilities, threshold, class_names)
            except Exception as exc:  # noqa: BLE001 - one bad image must not lose the others' results
                reason = _describe_error(exc)
                log(f"{key}: FAILED: {reason}")
                result.failed[key] = reason
                if is_transient(exc):
                    result.transient.append(key)
                continue
            if not prediction.accepted:
                target = route_to_review(s3, layout, prediction, run_id)
                _write_marker(s3, layout, prediction, run_id, target)
        if prediction.accepted:
            accepted.append(prediction)
            result.accepted += 1
        else:
            result.review += 1
        log(
            f"{key}: class {prediction.class_index} ({prediction.class_name}) "
            f"p={prediction.confidence:.4f} -> {prediction.outcome}"
        )
    if accepted:
        part = layout.part_key(chunk_index)
        lines = "".join(json.dumps(accepted_record(p)) + "\n" for p in accepted)
        s3io.put_text(s3, layout.uri(part), lines, "application/jsonlines")
        result.part_key = part
        for prediction in accepted:
            _write_marker(s3, layout, prediction, run_id, part)
    return result


# --------------------------------------------------------------------------------------------
# The run's report
# --------------------------------------------------------------------------------------------


def summarise(
    layout: Layout, results: Iterable[Mapping[str, Any]], *, run_id: str, endpoint: str, threshold: float, images: int
) -> dict[str, Any]:
    """Counts over every chunk and the failed images with their reasons (JSON-able, for XCom)."""
    summary: dict[str, Any] = {
        "run_id": run_id,
        "endpoint": endpoint,
        "threshold": threshold,
        "images": images,
        "accepted": 0,
        "review": 0,
        "failed": 0,
        "skipped": 0,
        "reused": 0,
        "failed_images": {},
        "results": [],
        "review_prefix": layout.uri(f"{layout.review_prefix}{layout.run_key}/"),
    }
    for chunk in sorted(results, key=lambda r: r["chunk_index"]):
        summary["accepted"] += chunk["accepted"]
        summary["review"] += chunk["review"]
        summary["reused"] += chunk["reused"]
        summary["skipped"] += len(chunk["skipped"])
        summary["failed_images"].update(chunk["failed"])
        if chunk.get("part_key"):
            summary["results"].append(layout.uri(chunk["part_key"]))
    summary["failed"] = len(summary["failed_images"])
    return summary


def write_summary(s3: Any, layout: Layout, summary: Mapping[str, Any]) -> str:
    _put_json(s3, layout, layout.summary_key, dict(summary))
    return layout.uri(layout.summary_key)


def failure_message(summary: Mapping[str, Any], limit: int = 20) -> str:
    """Names the images that could not be classified (the first ``limit``) and why."""
    failed = summary["failed_images"]
    shown = [f"  {key}: {reason}" for key, reason in list(failed.items())[:limit]]
    more = [f"  ... and {len(failed) - limit} more (see the run summary)"] if len(failed) > limit else []
    return "\n".join(
        [f"{len(failed)} of {summary['images']} image(s) could not be classified by {summary['endpoint']}:", *shown, *more]
    )
