"""The environment-variable contract of a Model Monitor bring-your-own-container job.

SageMaker (``CreateMonitoringSchedule`` / ``CreateProcessingJob``) configures monitoring
containers only through environment variables, so we read exactly the names Model Monitor's
BYOC contract uses, plus a few of our own for what its prebuilt analyzer decides internally:

=========================== =====================================================================
``dataset_source``          directory of input files (captures, or the baseline CSVs); required
``output_path``             directory for the results; default ``$SAGEMAKER_BASE_DIR/processing/resultdata``
``dataset_format``          JSON, Model Monitor's values: ``{"csv": {"header": true}}``,
                            ``{"json": {"lines": true}}``,
                            ``{"sagemakerCaptureJson": {"captureIndexNames": [...]}}``
``baseline_statistics``     statistics.json of the baseline (a file, or a folder holding one)
``baseline_constraints``    constraints.json of the baseline (a file, or a folder holding one)
``start_time``/``end_time`` ISO-8601 window over ``eventMetadata.inferenceTime``; [start, end)
``feature_names``           ours: comma list naming the columns of header-less CSV
``label_column``            ours: a baseline column that is the label, not a feature
``drift_threshold``         ours: numerical drift threshold (baseline writes it as
                            ``comparison_threshold``; analyze uses it to override); default 0.1
``drift_method``            ours: ``linf`` (default, L-infinity between CDFs, as Model Monitor) or ``psi``
``post_analytics_processor_script`` a Python file; its ``postprocess_handler()`` runs after the
                            results are written, as Model Monitor's analyzer calls it
``record_preprocessor_script`` refused (ClientError): records would otherwise be analysed
                            without the user's ``preprocess_handler``, giving wrong statistics
``analysis_type``           ``DATA_QUALITY`` (or unset); other analyses are refused (see cli.py)
``publish_cloudwatch_metrics``, ``sagemaker_endpoint_name``, ``sagemaker_monitoring_schedule_name``,
``metric_time``, ``categorical_drift_method``: accepted and ignored
=========================== =====================================================================

Paths are used exactly as given: localmaker rewrites ``/opt/ml/...`` to a per-job directory
before the process starts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import MonitorError

CAPTURE_INDEXES = ("endpointInput", "endpointOutput")
DRIFT_METHODS = ("linf", "psi")
IGNORED_VARIABLES = (
    "publish_cloudwatch_metrics",
    "sagemaker_endpoint_name",
    "sagemaker_monitoring_schedule_name",
    "metric_time",
)


@dataclass(frozen=True)
class DatasetFormat:
    """Which reader a job needs; mirrors the one key of Model Monitor's ``dataset_format``.

    Attributes:
        kind: ``csv``, ``json`` (JSON lines of objects) or ``capture`` (sagemakerCaptureJson).
        header: CSV only: the first line of every file names the columns.
        capture_indexes: capture only: which of endpointInput/endpointOutput to read.
    """

    kind: str
    header: bool = True
    capture_indexes: tuple[str, ...] = CAPTURE_INDEXES


@dataclass(frozen=True)
class Settings:
    """One job's configuration, validated up front so bad input fails before any work.

    Attributes:
        role: ``baseline`` or ``analyze``.
        dataset_source: directory read recursively.
        output_path: directory the result files go to (created if needed).
        dataset_format: parsed ``dataset_format``.
        baseline_statistics / baseline_constraints: resolved file paths, or None.
        start_time / end_time: the capture window (timezone-aware UTC), or None for open ends.
        feature_names: names for header-less CSV columns, or None.
        label_column: the baseline's label column, excluded from the features.
        drift_threshold: the threshold the user set explicitly (None: use the constraints' value).
        drift_method: ``linf`` or ``psi``.
        post_analytics_processor_script: a script whose ``postprocess_handler()`` runs last, or None.
        notes: non-fatal remarks about the configuration, printed and reported.
    """

    role: str
    dataset_source: Path
    output_path: Path
    dataset_format: DatasetFormat
    baseline_statistics: Path | None = None
    baseline_constraints: Path | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    feature_names: list[str] | None = None
    label_column: str | None = None
    drift_threshold: float | None = None
    drift_method: str = "linf"
    post_analytics_processor_script: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def effective_drift_threshold(self) -> float:
        """What baseline writes as ``comparison_threshold``."""
        return 0.1 if self.drift_threshold is None else self.drift_threshold

    def window(self) -> dict[str, str | None]:
        """The window as ISO strings, for reports."""
        return {
            "start_time": _iso(self.start_time),
            "end_time": _iso(self.end_time),
        }


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def parse_time(text: str, what: str) -> datetime:
    """ISO-8601 -> aware UTC datetime; naive values are taken as UTC, as Model Monitor does."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError as exc:
        raise MonitorError(f"{what}='{text}' is not an ISO-8601 time; use e.g. 2026-11-23T12:00:00Z") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_dataset_format(text: str | None, role: str) -> DatasetFormat:
    """Model Monitor's ``dataset_format`` JSON -> DatasetFormat, with errors naming the fix."""
    if not text or not text.strip():
        # Model Monitor always sets it; a sensible default keeps hand-run jobs short.
        return DatasetFormat("csv", header=True) if role == "baseline" else DatasetFormat("capture")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MonitorError(
            f"dataset_format is not valid JSON ({exc.msg} at char {exc.pos}): {text[:200]!r}; "
            'expected e.g. {"csv": {"header": true}} or '
            '{"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}'
        ) from exc
    if not isinstance(spec, dict) or len(spec) != 1:
        raise MonitorError(
            f"dataset_format must be a JSON object with exactly one key (csv, json or "
            f"sagemakerCaptureJson), got {text[:200]!r}"
        )
    ((kind, options),) = spec.items()
    options = options if isinstance(options, dict) else {}
    if kind == "csv":
        return DatasetFormat("csv", header=_truthy(options.get("header", True), "dataset_format.csv.header"))
    if kind == "json":
        if not _truthy(options.get("lines", True), "dataset_format.json.lines"):
            raise MonitorError('dataset_format {"json": {"lines": false}} is not supported; write JSON lines')
        return DatasetFormat("json")
    if kind == "sagemakerCaptureJson":
        names = options.get("captureIndexNames", list(CAPTURE_INDEXES))
        if not isinstance(names, list) or not names or any(n not in CAPTURE_INDEXES for n in names):
            raise MonitorError(
                f"dataset_format.sagemakerCaptureJson.captureIndexNames must be a non-empty list of "
                f"{list(CAPTURE_INDEXES)}, got {names!r}"
            )
        return DatasetFormat("capture", capture_indexes=tuple(names))
    if kind == "parquet":
        raise MonitorError(
            'dataset_format {"parquet": ...} is not supported by this image; use csv or json lines'
        )
    raise MonitorError(f"dataset_format key '{kind}' is unknown; use csv, json or sagemakerCaptureJson")


def _truthy(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise MonitorError(f"{what} must be true or false, got {value!r}")


def _resolve_baseline_file(value: str | None, name: str, default_file: str) -> Path | None:
    """A baseline path may name the file or, as some pipelines pass it, its folder."""
    if not value:
        return None
    path = Path(value)
    if path.is_dir():
        path = path / default_file
    if not path.is_file():
        raise MonitorError(
            f"{name}={value} does not exist; run the baseline job first or point {name} at its {default_file}"
        )
    return path


def load_settings(environ: Mapping[str, str], role: str) -> Settings:
    """Validate the environment for ``role``; every problem raises one actionable MonitorError."""
    if role not in ("baseline", "analyze"):
        raise MonitorError(f"unknown program '{role}'; run baseline or analyze")
    notes: list[str] = []
    source = environ.get("dataset_source", "").strip()
    if not source:
        raise MonitorError(
            "dataset_source is not set; set it to the local directory holding the input files "
            "(e.g. /opt/ml/processing/input/endpoint)"
        )
    base = environ.get("SAGEMAKER_BASE_DIR") or "/opt/ml"
    output = environ.get("output_path", "").strip() or str(Path(base) / "processing" / "resultdata")
    fmt = parse_dataset_format(environ.get("dataset_format"), role)

    threshold: float | None = None
    if environ.get("drift_threshold", "").strip():
        try:
            threshold = float(environ["drift_threshold"])
        except ValueError as exc:
            raise MonitorError(f"drift_threshold={environ['drift_threshold']!r} is not a number") from exc
        if not math.isfinite(threshold) or threshold < 0:
            raise MonitorError(f"drift_threshold must be a finite number >= 0, got {threshold}")
    method = (environ.get("drift_method") or "linf").strip().lower()
    if method not in DRIFT_METHODS:
        raise MonitorError(f"drift_method={method!r} is unknown; use one of {list(DRIFT_METHODS)}")

    names_raw = environ.get("feature_names", "").strip()
    feature_names = [n.strip() for n in names_raw.split(",")] if names_raw else None
    if feature_names is not None:
        if any(not n for n in feature_names):
            raise MonitorError(f"feature_names has an empty name: {names_raw!r}")
        if len(set(feature_names)) != len(feature_names):
            raise MonitorError(f"feature_names has duplicates: {names_raw!r}")

    start = parse_time(environ["start_time"], "start_time") if environ.get("start_time", "").strip() else None
    end = parse_time(environ["end_time"], "end_time") if environ.get("end_time", "").strip() else None
    if start and end and end <= start:
        raise MonitorError(f"end_time {environ['end_time']} is not after start_time {environ['start_time']}")

    statistics = constraints = None
    if role == "analyze":
        statistics = _resolve_baseline_file(
            environ.get("baseline_statistics"), "baseline_statistics", "statistics.json"
        )
        constraints = _resolve_baseline_file(
            environ.get("baseline_constraints"), "baseline_constraints", "constraints.json"
        )
        if statistics is None and constraints is None:
            raise MonitorError(
                "analyze needs a baseline: set baseline_statistics and baseline_constraints to the "
                "statistics.json and constraints.json the baseline job wrote"
            )
        if statistics is None:
            notes.append("no baseline_statistics: distribution drift is not checked")
    if (environ.get("record_preprocessor_script") or "").strip():
        raise MonitorError(
            f"record_preprocessor_script={environ['record_preprocessor_script']} is not supported by this "
            "image: its preprocess_handler would not run and the records would be analysed as captured; "
            "transform the data before the job, or drop the script"
        )
    post_script = (environ.get("post_analytics_processor_script") or "").strip() or None
    if post_script and not Path(post_script).is_file():
        raise MonitorError(f"post_analytics_processor_script={post_script} does not exist")

    return Settings(
        role=role,
        dataset_source=Path(source),
        output_path=Path(output),
        dataset_format=fmt,
        baseline_statistics=statistics,
        baseline_constraints=constraints,
        start_time=start,
        end_time=end,
        feature_names=feature_names,
        label_column=(environ.get("label_column") or "").strip() or None,
        drift_threshold=threshold,
        drift_method=method,
        post_analytics_processor_script=Path(post_script) if post_script else None,
        notes=notes,
    )
