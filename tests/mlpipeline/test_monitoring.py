"""include/mlpipeline/monitoring.py: Processing requests valid for botocore and understood by the
model-monitor image, capture windows and folders, baseline locations, violations and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from include.mlpipeline import monitoring as mon
from include.mlpipeline.config import PipelineConfig, load_config
from include.mlpipeline.run import RunContext

from .test_request_builders import assert_valid

ROOT = Path(__file__).resolve().parents[2]
MONITOR_DIR = ROOT / "container" / "model_monitor"
T0 = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/diabetes-dnn/7"
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


class WithMonitoring:
    """A config that has a ``monitoring`` section, as it will once the section is added."""

    def __init__(self, cfg: PipelineConfig, **monitoring: Any) -> None:
        self._cfg = cfg
        self.monitoring = SimpleNamespace(**monitoring)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cfg, name)


def _baseline(cfg: PipelineConfig, ctx: RunContext, **kw: Any) -> dict[str, Any]:
    return mon.baseline_processing_request(
        cfg,
        ctx,
        train_uri="s3://mlpipeline-dev/diabetes_dnn/run/train/",
        output_uri=mon.baseline_location(cfg, ARN),
        **kw,
    )


def _analysis(cfg: PipelineConfig, ctx: RunContext, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "endpoint": "diabetes-dnn-prod",
        "baseline_uri": mon.baseline_location(cfg, ARN),
        "window_start": T0,
        "window_end": T0 + timedelta(hours=1),
        "output_uri": mon.monitoring_output_uri(cfg, ctx, "diabetes-dnn-prod"),
        "job_name": mon.analysis_job_name(cfg, ctx),
    }
    args.update(kw)
    return mon.analysis_processing_request(cfg, ctx, **args)


# ------------------------------------------------------------------------------- settings


def test_settings_default_until_the_config_has_a_monitoring_section(dev_cfg: PipelineConfig) -> None:
    settings = mon.monitor_settings(dev_cfg)
    assert settings.image_uri == "123456789012.dkr.ecr.us-east-1.amazonaws.com/model-monitor:latest"
    assert settings.instance_type == mon.DEFAULT_INSTANCE_TYPE
    assert settings.drift_threshold == mon.DEFAULT_DRIFT_THRESHOLD
    assert settings.window_hours == mon.DEFAULT_WINDOW_HOURS


def test_settings_come_from_the_monitoring_section(dev_cfg: PipelineConfig, dev_ctx: RunContext) -> None:
    cfg = WithMonitoring(
        dev_cfg,
        image_uri="{account}.dkr.ecr.{region}.amazonaws.com/model-monitor:2",
        instance_type="ml.c5.xlarge",
        drift_threshold=0.25,
        window_hours=3,
        volume_size_gb=None,  # unset keys keep the default
    )
    settings = mon.monitor_settings(cfg)  # type: ignore[arg-type]
    assert settings.image_uri == "123456789012.dkr.ecr.us-east-1.amazonaws.com/model-monitor:2"
    assert (settings.instance_type, settings.drift_threshold, settings.window_hours) == (
        "ml.c5.xlarge",
        0.25,
        3.0,
    )
    assert settings.volume_size_gb == mon.DEFAULT_VOLUME_SIZE_GB
    request = _baseline(cfg, dev_ctx)  # type: ignore[arg-type]
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.c5.xlarge"
    assert request["Environment"]["drift_threshold"] == "0.25"
    assert request["AppSpecification"]["ImageUri"].endswith("/model-monitor:2")
    assert_valid("CreateProcessingJob", request)


# ------------------------------------------------------------------------------- baseline


def test_baseline_request(dev_cfg: PipelineConfig, dev_ctx: RunContext) -> None:
    request = _baseline(dev_cfg, dev_ctx)
    assert_valid("CreateProcessingJob", request)
    assert request["ProcessingJobName"] == "diabetes-dnn-dev-baseline-20240601t020000"
    assert request["AppSpecification"] == {
        "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/model-monitor:latest",
        "ContainerEntrypoint": ["baseline"],
    }
    (channel,) = request["ProcessingInputs"]
    assert channel["S3Input"]["S3Uri"] == "s3://mlpipeline-dev/diabetes_dnn/run/train/"
    assert channel["S3Input"]["LocalPath"] == "/opt/ml/processing/input/baseline"
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"] == {
        "S3Uri": "s3://mlpipeline-dev/diabetes_dnn/baselines/7/",
        "LocalPath": "/opt/ml/processing/output",
        "S3UploadMode": "EndOfJob",
    }
    env = request["Environment"]
    # ETL's train channel: no header, the label first, then the features in config order
    assert env["feature_names"] == "target," + ",".join(FEATURES)
    assert env["label_column"] == "target"
    assert json.loads(env["dataset_format"]) == {"csv": {"header": False}}
    assert env["dataset_source"] == "/opt/ml/processing/input/baseline"
    assert env["output_path"] == "/opt/ml/processing/output"
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert {"Key": "purpose", "Value": "monitoring-baseline"} in request["Tags"]


def test_baseline_request_is_deterministic_and_takes_a_job_name(
    dev_cfg: PipelineConfig, dev_ctx: RunContext
) -> None:
    assert _baseline(dev_cfg, dev_ctx) == _baseline(dev_cfg, dev_ctx)
    assert _baseline(dev_cfg, dev_ctx, job_name="my-baseline")["ProcessingJobName"] == "my-baseline"


def test_baseline_request_refuses_a_mismatched_context(dev_cfg: PipelineConfig, prod_ctx: RunContext) -> None:
    with pytest.raises(ValueError, match="run context is for diabetes_dnn/prod"):
        _baseline(dev_cfg, prod_ctx)


def test_baseline_request_refuses_a_non_s3_uri(dev_cfg: PipelineConfig, dev_ctx: RunContext) -> None:
    with pytest.raises(ValueError, match="not an s3:// URI"):
        mon.baseline_processing_request(dev_cfg, dev_ctx, train_uri="/tmp/train", output_uri="s3://b/o/")


def test_feature_names_longer_than_sagemaker_allows_become_positional(
    dev_ctx: RunContext, config_dir: Path
) -> None:
    columns = {f"a_very_long_feature_column_name_{i:03d}": {"type": "float"} for i in range(12)}
    columns["target"] = {"type": "float"}
    cfg = load_config("diabetes_dnn", "dev", {"data": {"columns": columns}}, config_dir=config_dir)
    env = _baseline(cfg, dev_ctx)["Environment"]
    # SageMaker caps an environment value at 256 characters: Model Monitor's _c0.._cN names instead
    assert "feature_names" not in env and env["label_column"] == "_c0"
    assert all(len(v) <= 256 for v in env.values())


# ------------------------------------------------------------------------------- analysis


def test_analysis_request_reads_the_window_folders(dev_cfg: PipelineConfig, dev_ctx: RunContext) -> None:
    base = mon.capture_uri(dev_cfg, "diabetes-dnn-prod")
    assert base == "s3://mlpipeline-dev/diabetes_dnn/data-capture/diabetes-dnn-prod/AllTraffic/"
    folders = mon.capture_folder_uris(base, T0, T0 + timedelta(hours=1))
    request = _analysis(dev_cfg, dev_ctx, capture_uris=folders)
    assert_valid("CreateProcessingJob", request)
    assert request["ProcessingJobName"] == "diabetes-dnn-dev-monitor-20240601t020000"
    assert request["AppSpecification"]["ContainerEntrypoint"] == ["analyze"]
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs["capture-1"]["S3Uri"] == base + "2026/03/14/10/"
    assert inputs["capture-1"]["LocalPath"] == (
        "/opt/ml/processing/input/endpoint/diabetes-dnn-prod/AllTraffic/2026/03/14/10"
    )
    assert inputs["capture-2"]["S3Uri"] == base + "2026/03/14/11/"
    assert (
        inputs["baseline-statistics"]["S3Uri"]
        == "s3://mlpipeline-dev/diabetes_dnn/baselines/7/statistics.json"
    )
    assert (
        inputs["baseline-constraints"]["S3Uri"]
        == "s3://mlpipeline-dev/diabetes_dnn/baselines/7/constraints.json"
    )
    env = request["Environment"]
    assert env["start_time"] == "2026-03-14T10:00:00Z"
    assert env["end_time"] == "2026-03-14T11:00:00Z"
    assert json.loads(env["dataset_format"]) == {
        "sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}
    }
    assert env["baseline_statistics"] == "/opt/ml/processing/baseline/stats/statistics.json"
    assert env["baseline_constraints"] == "/opt/ml/processing/baseline/constraints/constraints.json"
    assert env["dataset_source"] == "/opt/ml/processing/input/endpoint"
    assert request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == (
        "s3://mlpipeline-dev/diabetes_dnn/monitoring/diabetes-dnn-prod/20240601T020000/"
    )


def test_analysis_request_without_folders_reads_the_whole_endpoint_prefix(
    dev_cfg: PipelineConfig, dev_ctx: RunContext
) -> None:
    request = _analysis(dev_cfg, dev_ctx)
    assert_valid("CreateProcessingJob", request)
    capture = request["ProcessingInputs"][0]
    assert capture["InputName"] == "capture"
    assert (
        capture["S3Input"]["S3Uri"]
        == "s3://mlpipeline-dev/diabetes_dnn/data-capture/diabetes-dnn-prod/AllTraffic/"
    )
    assert capture["S3Input"]["LocalPath"] == "/opt/ml/processing/input/endpoint/diabetes-dnn-prod/AllTraffic"


def test_analysis_request_with_no_traffic_still_analyses(
    dev_cfg: PipelineConfig, dev_ctx: RunContext
) -> None:
    request = _analysis(dev_cfg, dev_ctx, capture_uris=[])
    assert_valid("CreateProcessingJob", request)
    assert [i["InputName"] for i in request["ProcessingInputs"]] == [
        "baseline-statistics",
        "baseline-constraints",
    ]


def test_analysis_request_takes_another_capture_destination(
    dev_cfg: PipelineConfig, dev_ctx: RunContext
) -> None:
    request = _analysis(dev_cfg, dev_ctx, capture_prefix_uri="s3://elsewhere/capture")
    assert (
        request["ProcessingInputs"][0]["S3Input"]["S3Uri"]
        == "s3://elsewhere/capture/diabetes-dnn-prod/AllTraffic/"
    )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"window_start": datetime(2026, 3, 14, 10)}, "must be timezone-aware"),
        ({"window_end": T0}, "is not after its start"),
        (
            {"capture_uris": ["s3://mlpipeline-dev/other/2026/"]},
            "is not under diabetes-dnn-prod's capture prefix",
        ),
        ({"capture_uris": [f"s3://mlpipeline-dev/x/{i}/" for i in range(9)]}, "at most 8"),
        ({"baseline_uri": "baselines/7/"}, "not an s3:// URI"),
    ],
)
def test_analysis_request_refuses_bad_input(
    dev_cfg: PipelineConfig, dev_ctx: RunContext, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _analysis(dev_cfg, dev_ctx, **kw)


# ---------------------------------------------------------------------------- the image


def _rewrite(env: dict[str, str], base: Path) -> dict[str, str]:
    """What localmaker does: /opt/ml -> the job's directory."""
    return {k: v.replace("/opt/ml", str(base)) for k, v in env.items()}


def _run(program: str, env: dict[str, str], base: Path) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    full.update({"SAGEMAKER_BASE_DIR": str(base), "MPLBACKEND": "Agg", **_rewrite(env, base)})
    return subprocess.run(
        [sys.executable, str(MONITOR_DIR / program)], env=full, capture_output=True, text=True, timeout=120
    )


def _capture_line(row: list[Any], when: datetime) -> str:
    body = ",".join(str(v) for v in row)
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": body,
                    "encoding": "CSV",
                },
                "endpointOutput": {
                    "observedContentType": "text/csv",
                    "mode": "OUTPUT",
                    "data": "150.0",
                    "encoding": "CSV",
                },
            },
            "eventMetadata": {"eventId": str(id(row)), "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "eventVersion": "0",
        }
    )


def test_the_image_understands_both_requests(
    dev_cfg: PipelineConfig, dev_ctx: RunContext, tmp_path: Path
) -> None:
    """The requests' environment, run by the real programs: baseline over ETL's layout, then an
    analysis of a drifted window that flags exactly ``bmi``."""
    import numpy as np

    rng = np.random.default_rng(0)

    def rows(n: int, bmi_shift: float = 0.0) -> list[list[Any]]:
        return [
            [
                int(rng.integers(20, 80)),
                int(rng.integers(1, 3)),
                round(float(rng.normal(26 + bmi_shift, 4)), 1),
                round(float(rng.normal(95, 13)), 1),
                int(rng.integers(100, 300)),
                round(float(rng.normal(115, 30)), 1),
                round(float(rng.normal(50, 12)), 1),
                round(float(rng.normal(4, 1.2)), 2),
                round(float(rng.normal(4.6, 0.5)), 4),
                int(rng.integers(60, 120)),
            ]
            for _ in range(n)
        ]

    base_job = tmp_path / "baseline-job"
    train = base_job / "processing" / "input" / "baseline"
    train.mkdir(parents=True)
    train.joinpath("data.csv").write_text(
        "".join(f"{150 + i % 50}," + ",".join(map(str, r)) + "\n" for i, r in enumerate(rows(400)))
    )
    result = _run("baseline", _baseline(dev_cfg, dev_ctx)["Environment"], base_job)
    assert result.returncode == 0, result.stdout + result.stderr
    statistics = json.loads((base_job / "processing" / "output" / "statistics.json").read_text())
    assert [f["name"] for f in statistics["features"]] == FEATURES  # the label left out
    assert mon.probe_row(statistics, FEATURES).count(",") == len(FEATURES) - 1

    job = tmp_path / "analysis-job"
    folders = mon.capture_folder_uris(
        mon.capture_uri(dev_cfg, "diabetes-dnn-prod"), T0, T0 + timedelta(hours=1)
    )
    request = _analysis(dev_cfg, dev_ctx, capture_uris=folders)
    for name in ("stats", "constraints"):
        target = job / "processing" / "baseline" / name
        target.mkdir(parents=True)
        source = "statistics.json" if name == "stats" else "constraints.json"
        target.joinpath(source).write_bytes((base_job / "processing" / "output" / source).read_bytes())
    hour = (
        job
        / "processing"
        / "input"
        / "endpoint"
        / "diabetes-dnn-prod"
        / "AllTraffic"
        / "2026"
        / "03"
        / "14"
        / "10"
    )
    hour.mkdir(parents=True)
    lines = [_capture_line(r, T0 + timedelta(seconds=20 * i)) for i, r in enumerate(rows(150, bmi_shift=25))]
    lines.append(_capture_line(rows(1)[0], T0 - timedelta(minutes=5)))  # before the window: ignored
    hour.joinpath("00-00-000-abc.jsonl").write_text("\n".join(lines) + "\n")
    result = _run("analyze", request["Environment"], job)
    assert result.returncode == 0, result.stdout + result.stderr
    out = job / "processing" / "output"
    violations = json.loads((out / mon.VIOLATIONS_FILE).read_text())["violations"]
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [("bmi", mon.DRIFT_CHECK)]
    report = json.loads((out / mon.REPORT_FILE).read_text())
    assert report["rows"] == 150 and report["records_outside_window"] == 1
    assert "bmi" in mon.summarise(violations, report)


# --------------------------------------------------------------------------------- window


def test_capture_window() -> None:
    assert mon.capture_window(T0, 1) == (T0 - timedelta(hours=1), T0)
    assert mon.capture_window(T0, 0.5)[0] == T0 - timedelta(minutes=30)
    # another zone is converted, not misread
    est = datetime(2026, 3, 14, 5, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert mon.capture_window(est, 2) == (T0 - timedelta(hours=2), T0)
    assert mon.capture_window(est, 2)[1].tzinfo == UTC


def test_capture_window_of_a_scheduled_run() -> None:
    """The scheduler hands tasks pendulum times (data_interval_end); the window stays aware UTC."""
    import pendulum

    end = pendulum.datetime(2026, 12, 6, 10, tz="UTC")
    start, stop = mon.capture_window(end, 1.0)
    assert (start.tzinfo, stop.tzinfo) == (UTC, UTC)
    assert (mon.iso_utc(start), mon.iso_utc(stop)) == ("2026-12-06T09:00:00Z", "2026-12-06T10:00:00Z")
    berlin = pendulum.datetime(2026, 12, 6, 11, tz="Europe/Berlin")
    assert mon.capture_window(berlin, 2)[0] == datetime(2026, 12, 6, 8, tzinfo=UTC)


@pytest.mark.parametrize("hours", [0, -1, float("nan"), float("inf"), True, "1"])
def test_capture_window_needs_positive_hours(hours: Any) -> None:
    with pytest.raises(ValueError, match="positive number"):
        mon.capture_window(T0, hours)


def test_capture_window_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        mon.capture_window(datetime(2026, 3, 14, 10), 1)


def test_capture_folders_hourly_including_the_end_hour() -> None:
    base = "s3://b/cap/ep/AllTraffic/"
    assert mon.capture_folder_uris(base, T0 + timedelta(minutes=30), T0 + timedelta(minutes=50)) == [
        base + "2026/03/14/10/"
    ]
    assert mon.capture_folder_uris(
        base.rstrip("/"),
        datetime(2026, 3, 31, 23, 30, tzinfo=UTC),
        T0.replace(month=4, day=1, hour=0, minute=30),
    ) == [
        base + "2026/03/31/23/",
        base + "2026/04/01/00/",
    ]


def test_capture_folders_coarsen_to_days_then_the_prefix() -> None:
    base = "s3://b/cap/ep/AllTraffic/"
    days = mon.capture_folder_uris(base, T0, T0 + timedelta(hours=24))
    assert days == [base + "2026/03/14/", base + "2026/03/15/"]
    assert mon.capture_folder_uris(base, T0, T0 + timedelta(days=30)) == [base]
    assert len(mon.capture_folder_uris(base, T0, T0 + timedelta(hours=7))) == 8


def test_capture_folders_refuse_an_empty_window() -> None:
    with pytest.raises(ValueError, match="is not after its start"):
        mon.capture_folder_uris("s3://b/c/", T0, T0)
    with pytest.raises(ValueError, match="max_folders"):
        mon.capture_folder_uris("s3://b/c/", T0, T0 + timedelta(hours=1), max_folders=0)


# ------------------------------------------------------------------------------- baseline location


def test_baseline_location_from_an_arn_or_a_version(
    dev_cfg: PipelineConfig, prod_cfg: PipelineConfig
) -> None:
    assert mon.baseline_location(dev_cfg, ARN) == "s3://mlpipeline-dev/diabetes_dnn/baselines/7/"
    assert mon.baseline_location(dev_cfg, 7) == mon.baseline_location(dev_cfg, "7")
    assert mon.baseline_location(prod_cfg, ARN) == "s3://mlpipeline-prod/diabetes_dnn/baselines/7/"
    assert mon.package_version(ARN.replace("us-east-1", "eu-west-1")) == 7


@pytest.mark.parametrize(
    ("package", "message"),
    [
        (
            "arn:aws:sagemaker:us-east-1:123456789012:model-package/other-model/3",
            "not of diabetes_dnn's group",
        ),
        (
            "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/diabetes-dnn",
            "not a model package ARN",
        ),
        ("latest", "not a model package ARN"),
        (0, "start at 1"),
        (True, "not a model package ARN"),
    ],
)
def test_baseline_location_refuses(dev_cfg: PipelineConfig, package: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mon.baseline_location(dev_cfg, package)


# --------------------------------------------------------------------------------- results


def _put(s3: Any, uri: str, body: str) -> None:
    bucket, _, key = uri[5:].partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode())


OUT = "s3://mlpipeline-dev/diabetes_dnn/monitoring/diabetes-dnn-prod/20260314T110000/"


def test_read_violations_and_report(s3: Any) -> None:
    violations = [
        {
            "feature_name": "bmi",
            "constraint_check_type": "baseline_drift_check",
            "description": "distance 0.9",
        },
        {"feature_name": "age", "constraint_check_type": "data_type_check", "description": "fractional"},
    ]
    _put(s3, OUT + "constraint_violations.json", json.dumps({"violations": violations}))
    _put(s3, OUT + "analysis_report.json", json.dumps({"rows": 3}))
    assert mon.read_violations(s3, OUT.rstrip("/")) == violations
    assert mon.read_analysis_report(s3, OUT) == {"rows": 3}


def test_read_violations_of_a_clean_window(s3: Any) -> None:
    _put(s3, OUT + "constraint_violations.json", '{"violations": []}')
    assert mon.read_violations(s3, OUT) == []


def test_read_violations_missing_file(s3: Any) -> None:
    with pytest.raises(
        FileNotFoundError, match="no constraint_violations.json at .*did the analysis job complete"
    ):
        mon.read_violations(s3, OUT)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"features": []}', "has no 'violations' list"),
        ('{"violations": [{"feature_name": "bmi"}]}', "violation 0 has no constraint_check_type"),
    ],
)
def test_read_violations_malformed(s3: Any, body: str, message: str) -> None:
    _put(s3, OUT + "constraint_violations.json", body)
    with pytest.raises(ValueError, match=message):
        mon.read_violations(s3, OUT)


def test_read_statistics_checks_the_schema(s3: Any) -> None:
    _put(s3, "s3://mlpipeline-dev/b/statistics.json", '{"version": 0}')
    with pytest.raises(ValueError, match="no 'features' list"):
        mon.read_statistics(s3, "s3://mlpipeline-dev/b/")


def test_summarise_clean_window() -> None:
    report = {
        "window": {"start_time": "2026-03-14T10:00:00Z", "end_time": "2026-03-14T11:00:00Z"},
        "rows": 66,
    }
    text = mon.summarise([], report)
    assert "[2026-03-14T10:00:00Z, 2026-03-14T11:00:00Z)" in text
    assert "Analysed 66 row(s)" in text
    assert "No violations" in text


def test_summarise_violations_with_drift_distances() -> None:
    violations = [
        {"feature_name": "bmi", "constraint_check_type": "baseline_drift_check", "description": "drifted"},
        {"feature_name": "bp", "constraint_check_type": "completeness_check", "description": "80% complete"},
    ]
    report = {"rows": 40, "records": 40, "files": 2, "drift": {"bmi": {"method": "linf", "distance": 0.91}}}
    text = mon.summarise(violations, report, title="diabetes-dnn-prod")
    assert text.splitlines()[0] == "diabetes-dnn-prod"
    assert "2 violation(s): baseline_drift_check x1, completeness_check x1" in text
    assert "- baseline_drift_check on bmi: drifted" in text
    assert "Drift: bmi linf distance 0.910" in text


def test_summarise_lists_a_bounded_number() -> None:
    violations = [
        {"feature_name": f"f{i}", "constraint_check_type": "data_type_check", "description": "x"}
        for i in range(30)
    ]
    text = mon.summarise(violations, None, max_listed=5)
    assert text.count("- data_type_check") == 5
    assert "... and 25 more" in text


def test_drift_decides_retraining(dev_cfg: PipelineConfig, config_dir: Path) -> None:
    quality = [{"feature_name": "bp", "constraint_check_type": "completeness_check"}]
    drift = [{"feature_name": "bmi", "constraint_check_type": "baseline_drift_check"}] * 2
    assert mon.drifted_features(quality + drift) == ["bmi"]
    assert not mon.retraining_wanted(dev_cfg, quality)
    assert mon.retraining_wanted(dev_cfg, quality + drift)
    off = load_config("diabetes_dnn", "dev", {"alerts": {"retrain_on_drift": False}}, config_dir=config_dir)
    assert not mon.retraining_wanted(off, drift)


def test_monitoring_result_to_dict() -> None:
    drift = {"feature_name": "bmi", "constraint_check_type": "baseline_drift_check", "description": "d"}
    result = mon.MonitoringResult(violations=[drift], report={"rows": 1}, output_uri=OUT)
    assert result.to_dict()["drifted"] == ["bmi"]
    assert json.loads(json.dumps(result.to_dict()))["output_uri"] == OUT


# ----------------------------------------------------------------------------------- probe


STATS = {
    "features": [
        {"name": "age", "inferred_type": "Integral", "numerical_statistics": {"mean": 48.52}},
        {"name": "bmi", "inferred_type": "Fractional", "numerical_statistics": {"mean": 26.3757}},
        {"name": "sex", "inferred_type": "Integral", "numerical_statistics": {"mean": 1.47}},
    ]
}


def test_probe_row_at_the_means_with_integral_features_rounded() -> None:
    assert mon.probe_row(STATS, ["age", "sex", "bmi"]) == "49,1,26.3757"


def test_probe_row_refuses_unknown_or_non_numeric_features() -> None:
    with pytest.raises(ValueError, match="'bp' is not in the baseline statistics"):
        mon.probe_row(STATS, ["age", "bp"])
    with pytest.raises(ValueError, match="no numerical mean"):
        mon.probe_row({"features": [{"name": "region", "string_statistics": {}}]}, ["region"])
