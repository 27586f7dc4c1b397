"""Model Monitor container: the real ``baseline`` and ``analyze`` programs as subprocesses.

Configured only through environment variables, as SageMaker (and localmaker) start them, with
temp dirs standing in for ``/opt/ml``. Also: exit codes and the failure message file, the empty
window, the images-manifest entry, and the image's pins matching the venv.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

MONITOR_DIR = Path(__file__).resolve().parents[2] / "container" / "model_monitor"
CAPTURE_FORMAT = json.dumps(
    {"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}
)
FEATURES = ["age", "bmi", "bp", "region"]


def run(program: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Start the program the way the emulator does: ``{python} {workdir}/<program>``, env only."""
    full = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    full.update({"SAGEMAKER_BASE_DIR": str(tmp_path / "ml"), "MPLBACKEND": "Agg", **env})
    return subprocess.run(
        [sys.executable, str(MONITOR_DIR / program)],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rows(n: int, seed: int, bmi_shift: float = 0.0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [
        [
            str(rng.integers(20, 80)),
            f"{rng.normal(26 + bmi_shift, 4):.1f}",
            f"{rng.normal(95, 13):.1f}",
            str(rng.choice(["north", "south", "east"])),
        ]
        for _ in range(n)
    ]


def write_captures(root: Path, data: list[list[str]], hour: int = 12, per_request: int = 5) -> None:
    """Captured traffic as localmaker/SageMaker write it: multi-row CSV, JSON and BASE64 requests."""
    folder = root / "ep" / "AllTraffic" / "2026" / "11" / "23" / f"{hour:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(0, len(data), per_request):
        chunk = data[i : i + per_request]
        body = "\n".join(",".join(r) for r in chunk)
        if i % 3 == 0:
            inp = {"observedContentType": "text/csv", "mode": "INPUT", "data": body, "encoding": "CSV"}
        elif i % 3 == 1:
            instances = [[int(r[0]), float(r[1]), float(r[2]), r[3]] for r in chunk]
            inp = {
                "observedContentType": "application/json",
                "mode": "INPUT",
                "data": json.dumps({"instances": instances}),
                "encoding": "JSON",
            }
        else:
            inp = {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": base64.b64encode(body.encode()).decode(),
                "encoding": "BASE64",
            }
        out = {
            "observedContentType": "text/csv",
            "mode": "OUTPUT",
            "data": "\n".join("150.0" for _ in chunk),
            "encoding": "CSV",
        }
        minute = (i // per_request) % 60
        lines.append(
            json.dumps(
                {
                    "captureData": {"endpointInput": inp, "endpointOutput": out},
                    "eventMetadata": {
                        "eventId": str(i),
                        "inferenceTime": f"2026-11-23T{hour:02d}:{minute:02d}:07Z",
                    },
                    "eventVersion": "0",
                }
            )
        )
    lines.insert(3, "{truncated")
    (folder / f"{len(list(folder.iterdir())):02d}-00-000-0a1b2c3d.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``baseline`` executable run once on a header-less training CSV with the label first."""
    root = tmp_path_factory.mktemp("mm")
    train = root / "processing" / "input" / "baseline_dataset_input"
    train.mkdir(parents=True)
    rng = np.random.default_rng(1)
    data = rows(2000, seed=2)
    (train / "train.csv").write_text("".join(f"{rng.integers(25, 350)},{','.join(r)}\n" for r in data))
    proc = run(
        "baseline",
        {
            "dataset_source": str(train),
            "output_path": str(root / "processing" / "output"),
            "dataset_format": '{"csv": {"header": false}}',
            "feature_names": ",".join(["target", *FEATURES]),
            "label_column": "target",
            "publish_cloudwatch_metrics": "Disabled",
        },
        root,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2000 rows, 4 features" in proc.stdout
    return root / "processing" / "output"


def analyze_env(tmp_path: Path, baseline_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "dataset_source": str(tmp_path / "processing" / "input" / "endpoint"),
        "output_path": str(tmp_path / "processing" / "resultdata"),
        "dataset_format": CAPTURE_FORMAT,
        "baseline_statistics": str(baseline_dir / "statistics.json"),
        "baseline_constraints": str(baseline_dir / "constraints.json"),
        "start_time": "2026-11-23T12:00:00Z",
        "end_time": "2026-11-23T13:00:00Z",
        "publish_cloudwatch_metrics": "Disabled",
        "sagemaker_endpoint_name": "ep",
        **extra,
    }


def outputs(tmp_path: Path) -> dict[str, Any]:
    res = tmp_path / "processing" / "resultdata"
    return {
        "statistics": json.loads((res / "statistics.json").read_text()),
        "violations": json.loads((res / "constraint_violations.json").read_text())["violations"],
        "report": json.loads((res / "analysis_report.json").read_text()),
        "png": (res / "drift_report.png").read_bytes(),
    }


def test_baseline_program_writes_both_files(baseline_dir: Path) -> None:
    stats = json.loads((baseline_dir / "statistics.json").read_text())
    cons = json.loads((baseline_dir / "constraints.json").read_text())
    assert [f["name"] for f in stats["features"]] == FEATURES
    assert [f["inferred_type"] for f in cons["features"]] == [
        "Integral",
        "Fractional",
        "Fractional",
        "String",
    ]
    assert stats["dataset"]["item_count"] == 2000


def test_analyze_clean_window_end_to_end(tmp_path: Path, baseline_dir: Path) -> None:
    source = tmp_path / "processing" / "input" / "endpoint"
    write_captures(source, rows(1000, seed=3))
    write_captures(source, rows(100, seed=4, bmi_shift=30), hour=14)  # outside the window
    proc = run("analyze", analyze_env(tmp_path, baseline_dir), tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = outputs(tmp_path)
    assert out["violations"] == []
    assert out["statistics"]["dataset"]["item_count"] == 1000
    assert [f["name"] for f in out["statistics"]["features"]] == FEATURES
    report = out["report"]
    # each file has one truncated line; a line that is not JSON cannot be placed outside the window
    assert (report["records"], report["rows"], report["malformed_records"]) == (200, 1000, 2)
    assert report["malformed_reasons"] == {"not JSON": 2}
    assert report["records_outside_window"] == 20
    assert report["endpoint_output"]["rows"] == 1000
    assert set(report["drift"]) == set(FEATURES)
    assert out["png"].startswith(b"\x89PNG")
    assert "0 violation(s)" in proc.stdout
    assert not (tmp_path / "ml" / "output" / "message").exists()


def test_analyze_drifted_window_reports_the_feature_and_still_exits_0(
    tmp_path: Path, baseline_dir: Path
) -> None:
    source = tmp_path / "processing" / "input" / "endpoint"
    drifted = rows(1000, seed=5, bmi_shift=5)
    for r in drifted[:100]:
        r.append("extra")
    write_captures(source, drifted)
    proc = run("analyze", analyze_env(tmp_path, baseline_dir, drift_method="linf"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = outputs(tmp_path)
    found = {(v["constraint_check_type"], v["feature_name"]) for v in out["violations"]}
    assert found == {("baseline_drift_check", "bmi"), ("extra_column_check", "_c4")}
    assert out["report"]["drift"]["bmi"]["drifted"] is True
    assert out["report"]["violations_by_check"] == {"extra_column_check": 1, "baseline_drift_check": 1}
    assert len(out["png"]) > 5000  # a real plot, not the "no drift" notice


def test_empty_window_gives_item_count_0_and_a_message(tmp_path: Path, baseline_dir: Path) -> None:
    source = tmp_path / "processing" / "input" / "endpoint"
    write_captures(source, rows(50, seed=6), hour=9)
    proc = run("analyze", analyze_env(tmp_path, baseline_dir), tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = outputs(tmp_path)
    assert out["statistics"] == {"version": 0.0, "dataset": {"item_count": 0}, "features": []}
    assert out["violations"] == []
    assert "No data to analyze" in proc.stdout
    # no capture folder at all (nothing was captured this hour) is the same empty window
    proc = run(
        "analyze", analyze_env(tmp_path, baseline_dir, dataset_source=str(tmp_path / "nowhere")), tmp_path
    )
    assert proc.returncode == 0 and "No data to analyze" in proc.stdout


@pytest.mark.parametrize(
    ("program", "env", "reason"),
    [
        ("baseline", {"dataset_format": '{"csv": {"header": tru'}, "dataset_format is not valid JSON"),
        ("baseline", {"dataset_source": "{empty}"}, "no data files under dataset_source"),
        ("baseline", {"label_column": "nope"}, "label_column=nope is not a column"),
        ("analyze", {"baseline_statistics": "", "baseline_constraints": ""}, "analyze needs a baseline"),
        ("analyze", {"baseline_constraints": "{tmp}/missing/constraints.json"}, "baseline_constraints="),
        ("analyze", {"drift_method": "kl"}, "drift_method='kl' is unknown"),
        ("analyze", {"start_time": "yesterday"}, "start_time='yesterday' is not an ISO-8601 time"),
        ("analyze", {"dataset_source": ""}, "dataset_source is not set"),
    ],
)
def test_unusable_input_exits_non_zero_with_the_message_file(
    tmp_path: Path, baseline_dir: Path, program: str, env: dict[str, str], reason: str
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "t.csv").write_text("a,b\n1,2\n")
    base = (
        analyze_env(tmp_path, baseline_dir)
        if program == "analyze"
        else {
            "dataset_source": str(tmp_path / "train"),
            "output_path": str(tmp_path / "out"),
        }
    )
    base.update(
        {
            k: v.replace("{empty}", str(tmp_path / "empty")).replace("{tmp}", str(tmp_path))
            for k, v in env.items()
        }
    )
    proc = run(program, base, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = (tmp_path / "ml" / "output" / "message").read_text()
    assert message.startswith("ClientError: ") and reason in message
    assert message.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_images_manifest_entry_resolves_and_runs_the_programs() -> None:
    from localmaker.images import ImageRegistry

    registry = ImageRegistry([MONITOR_DIR / "image.yaml"])
    spec = registry.resolve("123456789012.dkr.ecr.us-east-1.amazonaws.com/model-monitor:1.0")
    assert spec.workdir == MONITOR_DIR
    assert spec.command("process") == [sys.executable, str(MONITOR_DIR / "analyze")]
    # ContainerEntrypoint ["baseline"] names a program in workdir; the emulator runs it the same way
    assert (MONITOR_DIR / "baseline").is_file() and (MONITOR_DIR / "analyze").is_file()
    assert all(os.access(MONITOR_DIR / p, os.X_OK) for p in ("baseline", "analyze", "monitor"))


def test_model_monitor_analyzer_image_of_every_region_runs_the_monitor_program() -> None:
    from localmaker.builtins import MANIFEST
    from localmaker.images import ImageRegistry

    registry = ImageRegistry([MANIFEST, MONITOR_DIR.parent / "images.yaml"])
    # accounts from the SDK's image_uri_config/model-monitor.json (us-east-1, eu-west-1, ap-northeast-1)
    for uri in ("156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer",
                "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer:latest",
                "574779866223.dkr.ecr.ap-northeast-1.amazonaws.com/sagemaker-model-monitor-analyzer"):
        spec = registry.resolve(uri)
        assert spec.workdir == MONITOR_DIR
        assert spec.command("process") == [sys.executable, str(MONITOR_DIR / "monitor")]
    # the project's own image keeps its analyze entry point
    own = registry.resolve("123456789012.dkr.ecr.us-east-1.amazonaws.com/model-monitor:1.0")
    assert own.command("process") == [sys.executable, str(MONITOR_DIR / "analyze")]


def test_image_pins_match_the_venv_and_the_dockerfile_contract() -> None:
    pins = dict(
        line.split("==")
        for line in (MONITOR_DIR / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(pins) == {"numpy", "pandas", "matplotlib"}
    assert all(metadata.version(name) == version for name, version in pins.items())
    dockerfile = (MONITOR_DIR / "Dockerfile").read_text()
    for needle in (
        "FROM python:3.11-slim",
        "PYTHONUNBUFFERED=1",
        "USER monitor",
        "/opt/program:${PATH}",
        'ENTRYPOINT ["analyze"]',
    ):
        assert needle in dockerfile


def test_monitor_program_picks_baseline_or_analyze_from_the_analyzer_contract(
    tmp_path: Path, baseline_dir: Path
) -> None:
    """``monitor`` (what the sagemaker-model-monitor-analyzer image runs) has no ContainerEntrypoint:
    no baseline in the environment -> baseline; baseline files given -> analyze."""
    sys.path.insert(0, str(MONITOR_DIR))
    try:
        from model_monitor.cli import analyzer_role
        from model_monitor.errors import MonitorError
    finally:
        sys.path.remove(str(MONITOR_DIR))
    assert analyzer_role({"dataset_format": '{"csv": {"header": true}}'}) == "baseline"
    assert analyzer_role({"dataset_format": CAPTURE_FORMAT}) == "analyze"
    assert analyzer_role({"baseline_constraints": "/x/constraints.json", "analysis_type": "DATA_QUALITY"}) == "analyze"
    with pytest.raises(MonitorError, match="analysis_type=MODEL_BIAS is not supported"):
        analyzer_role({"analysis_type": "MODEL_BIAS"})

    train = tmp_path / "processing" / "input" / "baseline_dataset_input"
    train.mkdir(parents=True)
    (train / "data.csv").write_text("a,b\n1,x\n3,y\n")
    proc = run("monitor", {"dataset_source": str(train), "output_path": str(tmp_path / "out"),
                           "dataset_format": '{"csv": {"header": true, "output_columns_position": "START"}}',
                           "publish_cloudwatch_metrics": "Disabled"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "monitor: running baseline" in proc.stdout
    stats = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert stats["features"][0]["numerical_statistics"]["mean"] == 2.0

    write_captures(tmp_path / "processing" / "input" / "endpoint", rows(50, seed=5))
    env = analyze_env(tmp_path, baseline_dir)
    proc = run("monitor", env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "monitor: running analyze" in proc.stdout
    assert outputs(tmp_path)["statistics"]["dataset"]["item_count"] == 50


def test_post_analytics_script_runs_last_and_preprocessor_is_refused(tmp_path: Path) -> None:
    train = tmp_path / "processing" / "input" / "baseline_dataset_input"
    train.mkdir(parents=True)
    (train / "data.csv").write_text("a,b\n1,x\n3,y\n")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "post.py").write_text(
        "import os, pathlib\n"
        "def postprocess_handler():\n"
        "    out = pathlib.Path(os.environ['output_path'])\n"
        "    (out / 'seen.txt').write_text(','.join(sorted(p.name for p in out.iterdir())))\n"
    )
    (scripts / "broken.py").write_text("def postprocess_handler():\n    raise ValueError('no luck')\n")
    (scripts / "pre.py").write_text("def preprocess_handler(inference_record):\n    return {}\n")
    env = {"dataset_source": str(train), "output_path": str(tmp_path / "out"),
           "dataset_format": '{"csv": {"header": true}}'}

    proc = run("monitor", {**env, "post_analytics_processor_script": str(scripts / "post.py")}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "seen.txt").read_text() == "constraints.json,statistics.json"

    proc = run("monitor", {**env, "post_analytics_processor_script": str(scripts / "broken.py")}, tmp_path)
    assert proc.returncode == 2
    message = (tmp_path / "ml" / "output" / "message").read_text()
    assert message.startswith("ClientError:") and "ValueError: no luck" in message, message

    proc = run("monitor", {**env, "record_preprocessor_script": str(scripts / "pre.py")}, tmp_path)
    assert proc.returncode == 2
    assert "record_preprocessor_script" in (tmp_path / "ml" / "output" / "message").read_text()
