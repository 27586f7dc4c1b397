"""Smoke test of a freshly deployed endpoint: real requests, checked answers, measured latency.

Requests are what the model's users send (``inference.content_type``: CSV feature rows, or image
bytes for an image model) and answers are read as ``inference.accept`` says (CSV numbers, the
built-ins' ``{"predictions": [...]}`` / JSON Lines, or a class-probability list).
"""

from __future__ import annotations

import time
from typing import Any

from . import codec, s3
from .config import PipelineConfig
from .metrics import metrics_for_task

IMAGE_TYPES = ("application/x-image", "image/png", "image/jpeg")


class SmokeTestError(RuntimeError):
    pass


def _lines(s3_client: Any, uri: str, n: int) -> list[str]:
    out: list[str] = []
    for obj in s3.list_uris(s3_client, uri):
        for line in s3.get_text(s3_client, obj).splitlines():
            if line.strip():
                out.append(line)
                if len(out) >= n:
                    return out
    return out


def test_rows(s3_client: Any, test_uri: str, n: int) -> tuple[list[str], list[float]]:
    """The first ``n`` rows of a label-first CSV channel as (feature CSV lines, labels)."""
    rows: list[str] = []
    labels: list[float] = []
    for line in _lines(s3_client, test_uri, n):
        label, _, features = line.partition(",")
        rows.append(features)
        labels.append(float(label))
    if not rows:
        raise SmokeTestError(f"no test rows under {test_uri}")
    return rows, labels


def test_requests(
    cfg: PipelineConfig, s3_client: Any, channels: dict[str, str], n: int
) -> tuple[list[bytes], list[float]]:
    """Request bodies and their labels: feature rows of ``test_features`` (ETL writes them CSV for
    every format) or, for image models, the test images themselves."""
    labels = [float(line.split(",")[0]) for line in _lines(s3_client, channels["test_labels"], n)]
    if cfg.inference.content_type in IMAGE_TYPES:
        bodies = [s3.get_bytes(s3_client, obj) for obj in s3.list_uris(s3_client, channels["test"])[:n]]
    else:
        bodies = [line.encode() for line in _lines(s3_client, channels["test_features"], n)]
    if not bodies:
        raise SmokeTestError(f"no test data under {channels.get('test_features') or channels.get('test')}")
    return bodies, labels[: len(bodies)]


def read_predictions(body: bytes, accept: str, field: str | None, what: str, expected: int = 1) -> list[float]:
    """Predictions in one response of type ``accept`` (:func:`.codec.decode_predictions`: CSV
    lines, JSON Lines, ``{"predictions": [...]}`` or a single JSON prediction, an image model's
    probability list counting as one); ``expected`` is the number of rows the request carried."""
    try:
        return codec.decode_predictions(body, accept, field=field, expected=expected)
    except codec.ResponseError as exc:
        raise SmokeTestError(f"{what}: {exc}") from None


def smoke_test_endpoint(
    cfg: PipelineConfig, runtime_client: Any, s3_client: Any, channels: dict[str, str], endpoint: str
) -> dict[str, Any]:
    """One request per row (latency as a client sees it) and, for row data, one batch request
    (which must give the same answers).

    Fails when any answer is missing or not finite, when batch and single answers disagree, or
    when the median single-row latency exceeds ``endpoint.smoke_test_max_latency_ms``.
    """
    inf = cfg.inference
    bodies, labels = test_requests(cfg, s3_client, channels, cfg.endpoint.smoke_test_rows)
    latencies: list[float] = []
    singles: list[float] = []
    for i, body in enumerate(bodies, start=1):
        t0 = time.perf_counter()
        answer = runtime_client.invoke_endpoint(
            EndpointName=endpoint, Body=body, ContentType=inf.content_type, Accept=inf.accept
        )["Body"].read()
        latencies.append((time.perf_counter() - t0) * 1000)
        values = read_predictions(answer, inf.accept, inf.prediction_field, f"{endpoint}: request {i}")
        if len(values) != 1:
            raise SmokeTestError(f"{endpoint}: request {i}: expected 1 prediction, got {len(values)}: {answer[:200]!r}")
        singles.append(values[0])
    if inf.content_type not in IMAGE_TYPES:
        batch_body = runtime_client.invoke_endpoint(
            EndpointName=endpoint, Body=b"\n".join(bodies) + b"\n", ContentType=inf.content_type, Accept=inf.accept
        )["Body"].read()
        batch = read_predictions(
            batch_body, inf.accept, inf.prediction_field, f"{endpoint}: batch request", expected=len(bodies)
        )
        if len(batch) != len(bodies):
            raise SmokeTestError(f"{endpoint}: batch of {len(bodies)} rows answered {len(batch)} predictions")
        worst = max(abs(a - b) for a, b in zip(singles, batch, strict=True))
        if worst > 1e-3 * max(1.0, max(abs(x) for x in singles)):
            raise SmokeTestError(f"{endpoint}: single-row and batch predictions differ by up to {worst:g}")
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    if p50 > cfg.endpoint.smoke_test_max_latency_ms:
        raise SmokeTestError(
            f"{endpoint}: median latency {p50:.1f} ms exceeds endpoint.smoke_test_max_latency_ms "
            f"({cfg.endpoint.smoke_test_max_latency_ms} ms)"
        )
    quality = metrics_for_task(cfg.evaluation.task, labels, singles)
    return {
        "rows": len(bodies),
        "latency_ms_p50": round(p50, 2),
        "latency_ms_p99": round(p99, 2),
        **{k: v for k, v in quality.items() if k != "n"},
    }
