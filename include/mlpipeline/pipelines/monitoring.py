"""The tasks of `<model>_monitoring` (``dags/monitoring_pipeline.py``): window, probe, violations, alerts.

Each function is one task's whole body; the DAG file only wires them. The requests, windows and
messages they use live in :mod:`include.mlpipeline.monitoring`.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any, TypedDict

from .. import monitoring as mon
from .. import s3 as s3io
from ..s3 import split_s3_uri

#: The task ids ``route`` chooses between.
NOTIFY, REQUEST_RETRAINING, ALL_CLEAR = "notify", "request_retraining", "all_clear"
#: Captured like any request, under this inference id; one average row does not move a distribution.
PROBE_INFERENCE_ID = "mlpipeline-monitoring-probe"


class Window(TypedDict):
    """What ``window`` found: the analysed window, the champion and its baseline, and the request."""

    endpoint: str
    window_start: str
    window_end: str
    champion: str
    champion_model_data_url: str | None
    baseline_uri: str
    capture_folders: list[str]
    output_uri: str
    request: dict[str, Any]


class Probe(TypedDict):
    endpoint: str
    status: str
    latency_ms: float
    prediction: float


class Published(TypedDict, total=False):
    published: bool
    message_id: str | None
    topic: str


def param_time(value: Any, name: str) -> datetime | None:
    """An ISO-8601 trigger param as an aware datetime; a time without a zone is UTC."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(
            f"param {name}={value!r} is not an ISO-8601 time such as 2026-01-31T10:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def window(cfg: Any, ctx: Any, clients: Any, params: dict[str, Any], interval_end: datetime) -> Window | None:
    """The window, the champion and its baseline, and the analysis request; or ``None``: a clean stop.

    ``interval_end`` is the run's data interval end (its trigger time for manual runs); the
    ``window_end`` / ``window_start`` / ``window_hours`` params override it.
    """
    from ..evaluate import latest_approved_package

    s3, sm = clients.s3, clients.sagemaker
    hours = params.get("window_hours") or mon.monitor_settings(cfg).window_hours
    end = param_time(params.get("window_end"), "window_end") or interval_end
    start, end = mon.capture_window(end, float(hours))
    start = param_time(params.get("window_start"), "window_start") or start

    group = cfg.registry.model_package_group_name
    champion = latest_approved_package(sm, group)
    if champion is None:
        print(f"nothing to monitor: model package group {group} has no Approved version yet")
        return None
    baseline = mon.baseline_location(cfg, champion.arn)
    bucket, prefix = split_s3_uri(baseline)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    present = {o["Key"][len(prefix) :] for o in listed}
    missing = [f for f in (mon.STATISTICS_FILE, mon.CONSTRAINTS_FILE) if f not in present]
    if missing:
        print(
            f"nothing to monitor: champion {champion.arn} has no baseline yet "
            f"({', '.join(missing)} missing under {baseline}); the training DAG writes it"
        )
        return None

    endpoint = cfg.endpoint.prod_name
    folders = mon.capture_folder_uris(mon.capture_uri(cfg, endpoint), start, end)
    with_files = [folder for folder in folders if s3io.has_objects(s3, folder)]
    output = mon.monitoring_output_uri(cfg, ctx, endpoint)
    request = mon.analysis_processing_request(
        cfg,
        ctx,
        endpoint=endpoint,
        baseline_uri=baseline,
        window_start=start,
        window_end=end,
        output_uri=output,
        job_name=mon.analysis_job_name(cfg, ctx),
        capture_uris=with_files,
    )
    print(f"window [{mon.iso_utc(start)}, {mon.iso_utc(end)}) of {endpoint}")
    print(f"champion {champion.arn}, baseline {baseline}")
    print(f"capture folders with files: {with_files or 'none (the analysis will report no data)'}")
    return {
        "endpoint": endpoint,
        "window_start": mon.iso_utc(start),
        "window_end": mon.iso_utc(end),
        "champion": champion.arn,
        "champion_model_data_url": champion.model_data_url,
        "baseline_uri": baseline,
        "capture_folders": with_files,
        "output_uri": output,
        "request": request,
    }


def probe_endpoint(cfg: Any, clients: Any, win: Window) -> Probe:
    """The endpoint is up and answers a plausible request; what it serves is the champion."""
    s3, sm = clients.s3, clients.sagemaker
    endpoint = win["endpoint"]
    try:
        described = sm.describe_endpoint(EndpointName=endpoint)
    except sm.exceptions.ClientError as err:
        raise RuntimeError(
            f"prod endpoint {endpoint} cannot be described ({err}); the champion is deployed by "
            f"{cfg.model}_training, which may have been run with deploy=false"
        ) from err
    status = described["EndpointStatus"]
    if status != "InService":
        raise RuntimeError(
            f"prod endpoint {endpoint} is {status}, not InService"
            + (f": {described['FailureReason']}" if described.get("FailureReason") else "")
        )
    variants = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    served = set()
    for variant in variants["ProductionVariants"]:
        container = sm.describe_model(ModelName=variant["ModelName"]).get("PrimaryContainer") or {}
        served.add(container.get("ModelDataUrl"))
    if win.get("champion_model_data_url") and win["champion_model_data_url"] not in served:
        print(
            f"WARNING: {endpoint} does not serve the champion's model ({win['champion_model_data_url']}); "
            f"it serves {sorted(map(str, served))}. The baseline may not describe its training data."
        )
    row = mon.probe_row(mon.read_statistics(s3, win["baseline_uri"]), cfg.data.feature_columns)
    started = time.perf_counter()
    answer = (
        clients.runtime.invoke_endpoint(
            EndpointName=endpoint,
            Body=row.encode(),
            ContentType="text/csv",
            Accept="text/csv",
            InferenceId=PROBE_INFERENCE_ID,
        )["Body"]
        .read()
        .decode("utf-8", errors="replace")
    )
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        prediction = float(answer.strip().splitlines()[0].split(",")[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"{endpoint} answered a non-number to [{row}]: {answer[:200]!r}") from None
    if not math.isfinite(prediction):
        raise RuntimeError(f"{endpoint} answered {prediction} to [{row}]")
    print(f"{endpoint} InService; probe [{row}] -> {prediction:.4g} in {latency_ms:.1f} ms")
    return {"endpoint": endpoint, "status": status, "latency_ms": round(latency_ms, 2), "prediction": prediction}


def report_links(cfg: Any, s3: Any, win: Window) -> dict[str, str]:
    """Links a person can open to the analysis' results: presigned URLs of its violations and
    report files (valid ``LOG_LINK_SECONDS``) and its processing job in the SageMaker console."""
    from ..run import LOG_LINK_SECONDS, sagemaker_console_url
    from ..s3 import presigned_url

    prefix = win["output_uri"].rstrip("/") + "/"
    job = win["request"]["ProcessingJobName"]
    return {
        "violations": presigned_url(s3, prefix + mon.VIOLATIONS_FILE, LOG_LINK_SECONDS),
        "report": presigned_url(s3, prefix + mon.REPORT_FILE, LOG_LINK_SECONDS),
        "processing_job": sagemaker_console_url(cfg.aws.region, "processing", job),
        "processing_job_name": job,
        "valid_hours": f"{LOG_LINK_SECONDS / 3600:g}",
    }


def violations(cfg: Any, clients: Any, win: Window) -> dict[str, Any]:
    """The analysis' violations and report (:class:`include.mlpipeline.monitoring.MonitoringResult`),
    with ``links`` to them."""
    found = mon.read_violations(clients.s3, win["output_uri"])
    report = mon.read_analysis_report(clients.s3, win["output_uri"])
    result = mon.MonitoringResult(violations=found, report=report, output_uri=win["output_uri"])
    links = report_links(cfg, clients.s3, win)
    print(mon.summarise(found, report, title=f"{win['endpoint']}: {len(found)} violation(s)"))
    print(
        f"results: {win['output_uri']}\n"
        f"  violations (link valid {links['valid_hours']} h): {links['violations']}\n"
        f"  report: {links['report']}\n"
        f"  processing job {links['processing_job_name']} in the SageMaker console: {links['processing_job']}"
    )
    return {**result.to_dict(), "links": links}


def route(cfg: Any, result: dict[str, Any]) -> list[str] | str:
    """The task ids to run: all clear, or notify (and request retraining on drift, if configured)."""
    if not result["violations"]:
        return ALL_CLEAR
    if mon.retraining_wanted(cfg, result["violations"]):
        return [NOTIFY, REQUEST_RETRAINING]
    if result["drifted"]:
        print("drift found but alerts.retrain_on_drift is off: notifying only")
    return [NOTIFY]


def notify(
    cfg: Any, clients: Any, win: Window, result: dict[str, Any], *, dag_id: str, run_id: str
) -> Published:
    """Publish the violations to ``alerts.sns_topic_arn`` (logged only when it is not set)."""
    topic = cfg.alerts.sns_topic_arn
    count = len(result["violations"])
    subject = f"[{cfg.stage}] {cfg.model}: {count} monitoring violation(s) on {win['endpoint']}"[:100]
    message = mon.summarise(
        result["violations"],
        result["report"],
        title=f"{subject}\nDAG {dag_id} run {run_id}; champion {win['champion']}; results {win['output_uri']}",
    )
    links = result.get("links")
    if links:  # what the on-call engineer opens from the alert
        message += (
            f"\n\nviolations (link valid {links['valid_hours']} h): {links['violations']}\n"
            f"report: {links['report']}\nprocessing job in the SageMaker console: {links['processing_job']}"
        )
    if not topic:
        print(f"alerts.sns_topic_arn is not set: not published.\n{message}")
        return {"published": False}
    # what the provider's SnsHook.publish_to_target sends: the same text to every protocol
    response = clients.sns.publish(
        TargetArn=topic, MessageStructure="json", Message=json.dumps({"default": message}), Subject=subject
    )
    print(f"published to {topic} (message {response.get('MessageId')}):\n{message}")
    return {"published": True, "message_id": response.get("MessageId"), "topic": topic}


def retrain_request(win: Window, result: dict[str, Any]) -> dict[str, Any]:
    """The extra of the retrain-request Asset event that triggers `<model>_training`."""
    extra = {
        "reason": "baseline drift",
        "endpoint": win["endpoint"],
        "drifted_features": result["drifted"],
        "window": [win["window_start"], win["window_end"]],
        "champion": win["champion"],
        "results": win["output_uri"],
    }
    print(f"retraining requested: {extra}")
    return extra


def all_clear(win: Window, result: dict[str, Any]) -> str:
    report = result["report"]
    message = (
        f"{win['endpoint']}: no violations in [{win['window_start']}, {win['window_end']}) "
        f"({report.get('rows', 0)} rows analysed)"
    )
    print(message)
    return message
