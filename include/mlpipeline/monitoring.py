"""Model monitoring: baseline and analysis Processing jobs, capture windows, violations, alerts.

SageMaker Model Monitor's analyzer is a closed image and the Airflow provider has no monitoring
operator, so monitoring is two plain Processing jobs running our Model Monitor-compatible image
(``container/model_monitor``, the same files and check names as Model Monitor):

* **baseline**, after a model is promoted: the training channel -> ``statistics.json`` +
  ``constraints.json``, stored beside the model package (:func:`baseline_location`), so the
  champion and its baseline always travel together.
* **analyze**, on a schedule: one window of the prod endpoint's captured traffic + the champion's
  baseline -> ``constraint_violations.json``, ``analysis_report.json``, ``drift_report.png``.

The request builders are pure (config + run context -> the ``CreateProcessingJob`` dict the
provider's ``SageMakerProcessingOperator`` takes). Settings come from the config's ``monitoring``
section when it exists, else from the defaults below (:func:`monitor_settings`).

Stdlib only (plus the config models): DAG files import this at parse time.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import s3
from .config import PipelineConfig
from .run import RunContext, sagemaker_name
from .s3 import s3_uri, split_s3_uri

# ------------------------------------------------------------------------------------ defaults

#: Used until ``monitoring.image_uri`` is configured; ``{account}``/``{region}`` are filled in.
DEFAULT_IMAGE_URI = "{account}.dkr.ecr.{region}.amazonaws.com/model-monitor:latest"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_VOLUME_SIZE_GB = 20
DEFAULT_MAX_RUNTIME_SECONDS = 3600
#: L-infinity distance between the baseline's and the window's CDFs above which a feature drifted
#: (Model Monitor's default ``comparison_threshold``).
DEFAULT_DRIFT_THRESHOLD = 0.1
#: Hours of captured traffic one analysis looks at; matches the hourly ``schedules.monitoring``.
DEFAULT_WINDOW_HOURS = 1.0

#: Model Monitor's check names (``constraint_check_type``).
DRIFT_CHECK = "baseline_drift_check"
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
VIOLATIONS_FILE = "constraint_violations.json"
REPORT_FILE = "analysis_report.json"
PLOT_FILE = "drift_report.png"

#: Container paths (localmaker rewrites ``/opt/ml`` to a per-job directory; SageMaker uses them as is).
BASELINE_INPUT = "/opt/ml/processing/input/baseline"
CAPTURE_INPUT = "/opt/ml/processing/input/endpoint"
BASELINE_STATS_INPUT = "/opt/ml/processing/baseline/stats"
BASELINE_CONSTRAINTS_INPUT = "/opt/ml/processing/baseline/constraints"
OUTPUT_PATH = "/opt/ml/processing/output"

CSV_NO_HEADER = json.dumps({"csv": {"header": False}})
CAPTURE_FORMAT = json.dumps(
    {"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}
)

#: SageMaker allows 10 ProcessingInputs; two carry the baseline, the rest the capture folders.
MAX_CAPTURE_INPUTS = 8
#: SageMaker's limit on one ``Environment`` value.
MAX_ENV_VALUE = 256

_PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/([^/]+)/(\d+)$")


@dataclass(frozen=True)
class MonitorSettings:
    """The ``monitoring`` config section, or its defaults while the config has none."""

    image_uri: str
    instance_type: str
    volume_size_gb: int
    max_runtime_seconds: int
    drift_threshold: float
    window_hours: float


def monitor_settings(cfg: PipelineConfig) -> MonitorSettings:
    """Read ``cfg.monitoring`` key by key, falling back to this module's defaults.

    ``{account}`` and ``{region}`` left in the image URI (a config that does not template
    ``monitoring.image_uri``) are filled in here.
    """
    section = getattr(cfg, "monitoring", None)

    def get(name: str, default: Any) -> Any:
        value = getattr(section, name, None) if section is not None else None
        return default if value is None else value

    image = str(get("image_uri", DEFAULT_IMAGE_URI))
    if "{" in image:
        image = image.format_map({"account": cfg.aws.account_id, "region": cfg.aws.region})
    return MonitorSettings(
        image_uri=image,
        instance_type=str(get("instance_type", DEFAULT_INSTANCE_TYPE)),
        volume_size_gb=int(get("volume_size_gb", DEFAULT_VOLUME_SIZE_GB)),
        max_runtime_seconds=int(get("max_runtime_seconds", DEFAULT_MAX_RUNTIME_SECONDS)),
        drift_threshold=float(get("drift_threshold", DEFAULT_DRIFT_THRESHOLD)),
        window_hours=float(get("window_hours", DEFAULT_WINDOW_HOURS)),
    )


# ------------------------------------------------------------------------------------ locations


def package_version(package: str | int) -> int:
    """The version of a model package: its ARN (``.../model-package/<group>/<version>``), or the
    version itself (``3`` / ``"3"``)."""
    if isinstance(package, bool):
        raise ValueError(f"not a model package ARN or version: {package!r}")
    if isinstance(package, int):
        version = package
    else:
        text = str(package).strip()
        match = _PACKAGE_ARN.match(text)
        if match:
            version = int(match.group(2))
        elif text.isdigit():
            version = int(text)
        else:
            raise ValueError(
                f"not a model package ARN or version: {package!r}; expected "
                "arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version> or a version number"
            )
    if version < 1:
        raise ValueError(f"model package versions start at 1 (got {version})")
    return version


def baseline_location(cfg: PipelineConfig, package: str | int) -> str:
    """``s3://{bucket}/{model}/baselines/{version}/``: the baseline of one model package version.

    Keyed by the package version, so the monitoring DAG finds the champion's baseline from the
    registry alone, and a newer champion never compares against an older model's data.

    Raises:
        ValueError: ``package`` is not an ARN or version, or is a package of another group.
    """
    if isinstance(package, str):
        match = _PACKAGE_ARN.match(package.strip())
        group = cfg.registry.model_package_group_name
        if match and match.group(1).lower() != group.lower():
            raise ValueError(
                f"{package} is a package of group {match.group(1)!r}, not of {cfg.model}'s group {group!r}"
            )
    return s3_uri(cfg.aws.bucket, cfg.model, "baselines", str(package_version(package)), trailing_slash=True)


def capture_uri(cfg: PipelineConfig, endpoint: str) -> str:
    """``{DestinationS3Uri}/{endpoint}/{variant}/``: where an endpoint's captured traffic lands."""
    dest = cfg.endpoint.data_capture.destination_s3_uri.rstrip("/")
    return f"{dest}/{endpoint}/{cfg.endpoint.variant_name}/"


def monitoring_output_uri(cfg: PipelineConfig, ctx: RunContext, endpoint: str) -> str:
    """``s3://{bucket}/{model}/monitoring/{endpoint}/{ts_nodash}/``: one folder per analysis run."""
    return s3_uri(cfg.aws.bucket, cfg.model, "monitoring", endpoint, ctx.ts_nodash, trailing_slash=True)


def baseline_job_name(cfg: PipelineConfig, ctx: RunContext) -> str:
    return sagemaker_name(cfg.model_slug, cfg.stage, "baseline", ctx.ts_nodash)


def analysis_job_name(cfg: PipelineConfig, ctx: RunContext) -> str:
    return sagemaker_name(cfg.model_slug, cfg.stage, "monitor", ctx.ts_nodash)


# --------------------------------------------------------------------------------------- window


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {value.isoformat()}); use UTC")
    u = value.astimezone(UTC)
    # A plain datetime, not the caller's subclass: pendulum's DateTime (Airflow's data_interval_end)
    # drops a stdlib tzinfo on subtraction, which made every scheduled run's window naive.
    return datetime(u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond, tzinfo=UTC)


def iso_utc(value: datetime) -> str:
    """``2026-01-31T10:00:00Z``: the form the analyzer's ``start_time``/``end_time`` take."""
    return _utc(value, "time").strftime("%Y-%m-%dT%H:%M:%SZ")


def capture_window(logical_end: datetime, hours: float) -> tuple[datetime, datetime]:
    """``[logical_end - hours, logical_end)`` in UTC: the traffic one run analyses.

    Raises:
        ValueError: ``logical_end`` is naive (its time zone would be a guess) or ``hours`` is not
            a positive finite number.
    """
    end = _utc(logical_end, "logical_end")
    if (
        isinstance(hours, bool)
        or not isinstance(hours, int | float)
        or not math.isfinite(hours)
        or hours <= 0
    ):
        raise ValueError(f"window hours must be a positive number (got {hours!r})")
    return end - timedelta(hours=hours), end


def capture_folder_uris(
    endpoint_capture_uri: str, start: datetime, end: datetime, *, max_folders: int = MAX_CAPTURE_INPUTS
) -> list[str]:
    """The capture folders (``.../yyyy/mm/dd/hh/``) that can hold records of ``[start, end)``.

    Capture files are filed under the hour they were *written*, which is at or after the hour of
    the records they hold, so the hour of ``end`` is included too; ``start_time``/``end_time``
    then select records exactly. A window spanning more hourly folders than ``max_folders`` uses
    daily folders, and more days than that the whole endpoint prefix: a Processing job takes at
    most 10 inputs.
    """
    start, end = _utc(start, "start"), _utc(end, "end")
    if end <= start:
        raise ValueError(f"window end {iso_utc(end)} is not after its start {iso_utc(start)}")
    if max_folders < 1:
        raise ValueError(f"max_folders must be >= 1 (got {max_folders})")
    base = s3.as_prefix(endpoint_capture_uri)
    for floor, step, layout in (
        (start.replace(minute=0, second=0, microsecond=0), timedelta(hours=1), "%Y/%m/%d/%H"),
        (start.replace(hour=0, minute=0, second=0, microsecond=0), timedelta(days=1), "%Y/%m/%d"),
    ):
        folders: list[str] = []
        at = floor
        while at <= end and len(folders) <= max_folders:
            folders.append(f"{base}{at:{layout}}/")
            at += step
        if len(folders) <= max_folders:
            return folders
    return [base]


# ------------------------------------------------------------------------------------- requests


def _check(cfg: PipelineConfig, ctx: RunContext) -> None:
    if (ctx.model, ctx.stage) != (cfg.model, cfg.stage):
        raise ValueError(
            f"run context is for {ctx.model}/{ctx.stage} but config is for {cfg.model}/{cfg.stage}"
        )


def _tags(cfg: PipelineConfig, ctx: RunContext, purpose: str) -> list[dict[str, str]]:
    tags = {
        **cfg.tags,
        "model": cfg.model,
        "stage": cfg.stage,
        "purpose": purpose,
        "airflow_run_id": ctx.run_id[:256],
    }
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _prefix(uri: str) -> str:
    split_s3_uri(uri)  # rejects anything but s3://bucket/...
    return uri if uri.endswith("/") else uri + "/"


def _s3_input(name: str, uri: str, local_path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
            "S3CompressionType": "None",
        },
    }


def _env_value(name: str, value: str) -> str:
    if len(value) > MAX_ENV_VALUE:
        raise ValueError(
            f"environment variable {name} would be {len(value)} characters; SageMaker allows "
            f"{MAX_ENV_VALUE}. Shorten the column names in data.columns."
        )
    return value


def _job(
    cfg: PipelineConfig,
    ctx: RunContext,
    *,
    name: str,
    entrypoint: str,
    inputs: list[dict[str, Any]],
    output_uri: str,
    environment: dict[str, str],
    purpose: str,
) -> dict[str, Any]:
    settings = monitor_settings(cfg)
    return {
        "ProcessingJobName": name,
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "results",
                    "S3Output": {
                        "S3Uri": _prefix(output_uri),
                        "LocalPath": OUTPUT_PATH,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                # the analyzer is single-host: more instances would each write the same results
                "InstanceCount": 1,
                "InstanceType": settings.instance_type,
                "VolumeSizeInGB": settings.volume_size_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_seconds},
        "AppSpecification": {"ImageUri": settings.image_uri, "ContainerEntrypoint": [entrypoint]},
        "Environment": {k: _env_value(k, v) for k, v in environment.items()},
        "RoleArn": cfg.aws.role_arn,
        "Tags": _tags(cfg, ctx, purpose),
    }


def baseline_processing_request(
    cfg: PipelineConfig,
    ctx: RunContext,
    *,
    train_uri: str,
    output_uri: str,
    job_name: str | None = None,
) -> dict[str, Any]:
    """``CreateProcessingJob``: the ``baseline`` program over the train channel.

    The channel is ETL's algorithm CSV: no header, the label first, then the features in
    ``data.columns`` order. ``feature_names`` names those columns (label included) and
    ``label_column`` tells the program to leave the label out, since captured requests carry
    features only.
    """
    _check(cfg, ctx)
    names = [cfg.data.label_column, *cfg.data.feature_columns]
    naming = {"feature_names": ",".join(names), "label_column": cfg.data.label_column}
    if len(naming["feature_names"]) > MAX_ENV_VALUE:
        # Too many names for one environment value (SageMaker allows 256 characters, e.g. 64
        # pixel columns): columns keep Model Monitor's positional names _c0.._cN, the label is _c0.
        naming = {"label_column": "_c0"}
    return _job(
        cfg,
        ctx,
        name=job_name or baseline_job_name(cfg, ctx),
        entrypoint="baseline",
        inputs=[_s3_input("baseline", _prefix(train_uri), BASELINE_INPUT)],
        output_uri=output_uri,
        environment={
            "dataset_source": BASELINE_INPUT,
            "output_path": OUTPUT_PATH,
            "dataset_format": CSV_NO_HEADER,
            **naming,
            "drift_threshold": repr(monitor_settings(cfg).drift_threshold),
        },
        purpose="monitoring-baseline",
    )


def analysis_processing_request(
    cfg: PipelineConfig,
    ctx: RunContext,
    *,
    endpoint: str,
    capture_prefix_uri: str | None = None,
    baseline_uri: str,
    window_start: datetime,
    window_end: datetime,
    output_uri: str,
    job_name: str | None = None,
    capture_uris: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``CreateProcessingJob``: the ``analyze`` program over one window of captured traffic.

    Args:
        capture_prefix_uri: the capture destination (default ``endpoint.data_capture.
            destination_s3_uri``); the endpoint's traffic is under ``{it}/{endpoint}/{variant}/``.
        capture_uris: the folders under it to read (see :func:`capture_folder_uris`), each an
            input mirrored under ``/opt/ml/processing/input/endpoint``. ``None`` reads the whole
            endpoint prefix, which grows forever: pass the window's folders that hold objects
            (SageMaker fails an input whose prefix is empty). An empty list analyses no traffic:
            the job still runs and reports "no data" with no violations.
        baseline_uri: the folder holding the baseline's statistics.json and constraints.json.
    """
    _check(cfg, ctx)
    start, end = _utc(window_start, "window_start"), _utc(window_end, "window_end")
    if end <= start:
        raise ValueError(f"window end {iso_utc(end)} is not after its start {iso_utc(start)}")
    if capture_prefix_uri is None:
        capture_prefix_uri = cfg.endpoint.data_capture.destination_s3_uri
    dest = _prefix(capture_prefix_uri)
    endpoint_uri = f"{dest}{endpoint}/{cfg.endpoint.variant_name}/"
    folders = [endpoint_uri] if capture_uris is None else [_prefix(u) for u in capture_uris]
    if len(folders) > MAX_CAPTURE_INPUTS:
        raise ValueError(
            f"{len(folders)} capture folders but a Processing job takes at most {MAX_CAPTURE_INPUTS} "
            "besides the baseline; use capture_folder_uris() to pick them"
        )
    base_container = f"{CAPTURE_INPUT}/{endpoint}/{cfg.endpoint.variant_name}"
    inputs: list[dict[str, Any]] = []
    for i, folder in enumerate(folders):
        if not folder.startswith(endpoint_uri):
            raise ValueError(
                f"capture folder {folder} is not under {endpoint}'s capture prefix {endpoint_uri}"
            )
        relative = folder[len(endpoint_uri) :].strip("/")
        local = f"{base_container}/{relative}" if relative else base_container
        inputs.append(_s3_input(f"capture-{i + 1}" if len(folders) > 1 else "capture", folder, local))
    baseline = _prefix(baseline_uri)
    inputs.append(_s3_input("baseline-statistics", baseline + STATISTICS_FILE, BASELINE_STATS_INPUT))
    inputs.append(_s3_input("baseline-constraints", baseline + CONSTRAINTS_FILE, BASELINE_CONSTRAINTS_INPUT))
    return _job(
        cfg,
        ctx,
        name=job_name or analysis_job_name(cfg, ctx),
        entrypoint="analyze",
        inputs=inputs,
        output_uri=output_uri,
        environment={
            "dataset_source": CAPTURE_INPUT,
            "output_path": OUTPUT_PATH,
            "dataset_format": CAPTURE_FORMAT,
            "baseline_statistics": f"{BASELINE_STATS_INPUT}/{STATISTICS_FILE}",
            "baseline_constraints": f"{BASELINE_CONSTRAINTS_INPUT}/{CONSTRAINTS_FILE}",
            "start_time": iso_utc(start),
            "end_time": iso_utc(end),
            "label_column": cfg.data.label_column,
            "drift_threshold": repr(monitor_settings(cfg).drift_threshold),
            "sagemaker_endpoint_name": endpoint,
        },
        purpose="monitoring",
    )


# -------------------------------------------------------------------------------------- results


def _read_json(s3_client: Any, uri: str, what: str) -> Any:
    try:
        return s3.get_json(s3_client, uri)
    except s3.ObjectNotFound:
        raise FileNotFoundError(
            f"no {what} at {uri}: did the analysis job complete and write its results there?"
        ) from None


def read_violations(s3_client: Any, output_uri: str) -> list[dict[str, str]]:
    """The ``violations`` of ``constraint_violations.json`` under ``output_uri`` (Model Monitor's
    schema: ``feature_name``, ``constraint_check_type``, ``description``).

    Raises:
        FileNotFoundError: the file is not there (the job did not run or write it).
        ValueError: the file is not Model Monitor's violations document.
    """
    uri = _prefix(output_uri) + VIOLATIONS_FILE
    document = _read_json(s3_client, uri, VIOLATIONS_FILE)
    if not isinstance(document, dict) or not isinstance(document.get("violations"), list):
        raise ValueError(f"{uri} has no 'violations' list; is it a Model Monitor constraint_violations.json?")
    violations: list[dict[str, str]] = []
    for i, item in enumerate(document["violations"]):
        if not isinstance(item, dict) or not item.get("constraint_check_type"):
            raise ValueError(f"{uri}: violation {i} has no constraint_check_type: {item!r}"[:300])
        violations.append(
            {
                "feature_name": str(item.get("feature_name", "")),
                "constraint_check_type": str(item["constraint_check_type"]),
                "description": str(item.get("description", "")),
            }
        )
    return violations


def read_analysis_report(s3_client: Any, output_uri: str) -> dict[str, Any]:
    """``analysis_report.json`` under ``output_uri``: counts, window, drift distances."""
    uri = _prefix(output_uri) + REPORT_FILE
    document = _read_json(s3_client, uri, REPORT_FILE)
    if not isinstance(document, dict):
        raise ValueError(f"{uri} is not a JSON object")
    return document


def read_statistics(s3_client: Any, baseline_uri: str) -> dict[str, Any]:
    """The baseline's ``statistics.json``."""
    uri = _prefix(baseline_uri) + STATISTICS_FILE
    document = _read_json(s3_client, uri, STATISTICS_FILE)
    if not isinstance(document, dict) or not isinstance(document.get("features"), list):
        raise ValueError(f"{uri} has no 'features' list; is it a Model Monitor statistics.json?")
    return document


def drifted_features(violations: Iterable[Mapping[str, Any]]) -> list[str]:
    """Features with a ``baseline_drift_check`` violation, in order, once each."""
    return list(
        dict.fromkeys(
            str(v.get("feature_name")) for v in violations if v.get("constraint_check_type") == DRIFT_CHECK
        )
    )


def retraining_wanted(cfg: PipelineConfig, violations: Iterable[Mapping[str, Any]]) -> bool:
    """Drift (not a data-quality problem, which retraining cannot fix) and ``alerts.retrain_on_drift``."""
    return bool(cfg.alerts.retrain_on_drift) and bool(drifted_features(violations))


def summarise(
    violations: Sequence[Mapping[str, Any]],
    analysis_report: Mapping[str, Any] | None = None,
    *,
    title: str | None = None,
    max_listed: int = 20,
) -> str:
    """A plain-text message for SNS: what was analysed, what was violated, the drift distances."""
    report = dict(analysis_report or {})
    lines: list[str] = [title] if title else []
    window = report.get("window") or {}
    if window:
        lines.append(f"Window: [{window.get('start_time') or '-inf'}, {window.get('end_time') or '+inf'})")
    if "rows" in report:
        lines.append(
            f"Analysed {report.get('rows')} row(s) from {report.get('records', '?')} captured record(s) in "
            f"{report.get('files', '?')} file(s); {report.get('malformed_records', 0)} malformed."
        )
    if not violations:
        lines.append("No violations: traffic matches the baseline.")
        return "\n".join(lines)
    counts = Counter(str(v.get("constraint_check_type")) for v in violations)
    lines.append(
        f"{len(violations)} violation(s): "
        + ", ".join(f"{check} x{n}" for check, n in sorted(counts.items()))
    )
    for v in list(violations)[:max_listed]:
        lines.append(f"- {v.get('constraint_check_type')} on {v.get('feature_name')}: {v.get('description')}")
    if len(violations) > max_listed:
        lines.append(f"... and {len(violations) - max_listed} more")
    drift = report.get("drift") or {}
    drifted = drifted_features(violations)
    details = []
    for feature in drifted:
        d = drift.get(feature) or {}
        if "distance" in d:
            details.append(
                f"{feature} {d.get('method', '')} distance {float(d['distance']):.3f}".replace("  ", " ")
            )
    if details:
        lines.append("Drift: " + "; ".join(details))
    return "\n".join(lines)


def probe_row(statistics: Mapping[str, Any], feature_names: Sequence[str]) -> str:
    """A CSV request row at the baseline's means, integral features rounded: a plausible request
    whose answer says the endpoint really serves (and, being average, does not skew the data).

    Raises:
        ValueError: a feature is missing from the statistics or has no numerical mean.
    """
    by_name = {f.get("name"): f for f in statistics.get("features", []) if isinstance(f, Mapping)}
    values: list[str] = []
    for name in feature_names:
        feature = by_name.get(name)
        if feature is None:
            raise ValueError(
                f"feature {name!r} is not in the baseline statistics ({', '.join(map(str, by_name))})"
            )
        mean = (feature.get("numerical_statistics") or {}).get("mean")
        if mean is None or not math.isfinite(float(mean)):
            raise ValueError(f"feature {name!r} has no numerical mean in the baseline statistics")
        if feature.get("inferred_type") == "Integral":
            values.append(str(round(float(mean))))
        else:
            values.append(f"{float(mean):.6g}")
    return ",".join(values)


@dataclass(frozen=True)
class MonitoringResult:
    """What one analysis found, for XCom and the branch."""

    violations: list[dict[str, str]]
    report: dict[str, Any]
    output_uri: str

    @property
    def drifted(self) -> list[str]:
        return drifted_features(self.violations)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drifted": self.drifted}
