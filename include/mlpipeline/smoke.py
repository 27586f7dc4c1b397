"""Smoke test of a freshly deployed endpoint: real requests, checked answers, measured latency."""

from __future__ import annotations

import math
import time
from typing import Any

from .config import PipelineConfig
from .run import split_s3_uri


class SmokeTestError(RuntimeError):
    pass


def test_rows(s3_client: Any, test_uri: str, n: int) -> tuple[list[str], list[float]]:
    """The first ``n`` rows of the test channel as (feature CSV lines, labels); label is column 0."""
    bucket, prefix = split_s3_uri(test_uri)
    keys = sorted(
        o["Key"]
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    )
    rows: list[str] = []
    labels: list[float] = []
    for key in keys:
        for line in s3_client.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines():
            if not line.strip():
                continue
            label, _, features = line.partition(",")
            rows.append(features)
            labels.append(float(label))
            if len(rows) >= n:
                return rows, labels
    if not rows:
        raise SmokeTestError(f"no test rows under {test_uri}")
    return rows, labels


def smoke_test_endpoint(
    cfg: PipelineConfig, runtime_client: Any, s3_client: Any, test_uri: str, endpoint: str
) -> dict[str, Any]:
    """One request per row (latency as a client sees it) and one batch request (the same answers).

    Fails when any answer is missing or not finite, when batch and single answers disagree, or
    when the median single-row latency exceeds ``endpoint.smoke_test_max_latency_ms``.
    """
    rows, labels = test_rows(s3_client, test_uri, cfg.endpoint.smoke_test_rows)
    latencies: list[float] = []
    singles: list[float] = []
    for i, row in enumerate(rows, start=1):
        t0 = time.perf_counter()
        body = runtime_client.invoke_endpoint(
            EndpointName=endpoint, Body=row.encode(), ContentType="text/csv", Accept="text/csv"
        )["Body"].read()
        latencies.append((time.perf_counter() - t0) * 1000)
        values = _numbers(body, f"row {i}")
        if len(values) != 1:
            raise SmokeTestError(f"{endpoint}: row {i}: expected 1 prediction, got {len(values)}: {body[:200]!r}")
        singles.append(values[0])
    batch_body = runtime_client.invoke_endpoint(
        EndpointName=endpoint, Body=("\n".join(rows) + "\n").encode(), ContentType="text/csv", Accept="text/csv"
    )["Body"].read()
    batch = _numbers(batch_body, "batch request")
    if len(batch) != len(rows):
        raise SmokeTestError(f"{endpoint}: batch of {len(rows)} rows answered {len(batch)} predictions")
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
    mae = sum(abs(p - y) for p, y in zip(singles, labels, strict=True)) / len(rows)
    return {"rows": len(rows), "latency_ms_p50": round(p50, 2), "latency_ms_p99": round(p99, 2), "mae": mae}


def _numbers(body: bytes, what: str) -> list[float]:
    values = []
    for line in body.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            value = float(line.split(",")[-1])
        except ValueError:
            raise SmokeTestError(f"{what}: the endpoint answered a non-number: {line[:100]!r}") from None
        if not math.isfinite(value):
            raise SmokeTestError(f"{what}: the endpoint answered {value}")
        values.append(value)
    return values
