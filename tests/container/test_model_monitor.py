"""Model Monitor container: baseline statistics/constraints and the checks, in process.

The programs' subprocess runs are in ``test_model_monitor_cli.py``, capture parsing in
``test_model_monitor_capture.py``. Everything here is synthetic and seeded, so the drift
distances are deterministic; sizes keep a clean window well inside the thresholds.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

MONITOR_DIR = Path(__file__).resolve().parents[2] / "container" / "model_monitor"
sys.path.insert(0, str(MONITOR_DIR))

from model_monitor.capture import build_table  # noqa: E402
from model_monitor.checks import evaluate, ks_distance, psi_distance  # noqa: E402
from model_monitor.cli import main  # noqa: E402
from model_monitor.stats import (  # noqa: E402
    classify_table,
    dataset_statistics,
    suggest_constraints,
    suggested_completeness,
)
from model_monitor.table import Table, read_csv_files  # noqa: E402

FEATURES = ["age", "bmi", "bp", "region", "s5"]
REGIONS = ["north", "south", "east", "west"]
REGION_P = [0.4, 0.3, 0.2, 0.1]


# ----------------------------------------------------------------------------- helpers


def synthetic_rows(
    n: int, seed: int, bmi_shift: float = 0.0, region_p: list[float] | None = None
) -> list[list[str]]:
    """Feature rows as text, as a client would send them (no label)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 80, n)
    bmi = rng.normal(26.0 + bmi_shift, 4.0, n)
    bp = rng.normal(95.0, 13.0, n)
    region = rng.choice(REGIONS, n, p=region_p or REGION_P)
    s5 = rng.normal(4.6, 0.5, n)
    return [[str(age[i]), f"{bmi[i]:.1f}", f"{bp[i]:.1f}", str(region[i]), f"{s5[i]:.4f}"] for i in range(n)]


def write_training_csv(path: Path, n: int = 3000, seed: int = 7) -> Path:
    rows = synthetic_rows(n, seed)
    rng = np.random.default_rng(seed + 1)
    target = rng.integers(25, 350, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join([*FEATURES, "target"])] + [
        ",".join([*r, str(t)]) for r, t in zip(rows, target, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A baseline built by the real ``baseline`` program (in process), shared by the check tests."""
    root = tmp_path_factory.mktemp("baseline")
    write_training_csv(root / "train" / "part-0.csv")
    env = {
        "dataset_source": str(root / "train"),
        "output_path": str(root / "out"),
        "dataset_format": json.dumps({"csv": {"header": True}}),
        "label_column": "target",
        "SAGEMAKER_BASE_DIR": str(root / "ml"),
    }
    assert main("baseline", [], env) == 0
    return {
        "statistics": json.loads((root / "out" / "statistics.json").read_text()),
        "constraints": json.loads((root / "out" / "constraints.json").read_text()),
    }


def check(rows: list[Any], baseline: dict[str, Any], **kwargs: Any) -> list[dict[str, str]]:
    table = build_table(rows, FEATURES)
    result = evaluate(table, classify_table(table), baseline["statistics"], baseline["constraints"], **kwargs)
    return result.violations


def kinds(violations: list[dict[str, str]]) -> set[tuple[str, str]]:
    return {(v["constraint_check_type"], v["feature_name"]) for v in violations}


# ----------------------------------------------------------------------------- baseline statistics

KNOWN_CSV = """a,b,c,d,target
1,1.5,x,,0
2,2.5,y,,1
3,,x,,0
4,4.5,z,,1
10,-1.0,x,,0
"""


def test_baseline_statistics_on_known_data(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.csv").write_text(KNOWN_CSV)
    env = {
        "dataset_source": str(tmp_path / "in"),
        "output_path": str(tmp_path / "out"),
        "dataset_format": '{"csv": {"header": true}}',
        "label_column": "target",
        "drift_threshold": "0.2",
        "SAGEMAKER_BASE_DIR": str(tmp_path / "ml"),
    }
    assert main("baseline", [], env) == 0
    stats = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert stats["version"] == 0.0
    assert stats["dataset"] == {"item_count": 5}
    feats = {f["name"]: f for f in stats["features"]}
    assert list(feats) == ["a", "b", "c", "d"]  # the label is not a feature
    assert {n: f["inferred_type"] for n, f in feats.items()} == {
        "a": "Integral",
        "b": "Fractional",
        "c": "String",
        "d": "Unknown",
    }

    a = feats["a"]["numerical_statistics"]
    assert a["common"] == {"num_present": 5, "num_missing": 0}
    assert a["sum"] == 20.0 and a["mean"] == 4.0 and a["min"] == 1.0 and a["max"] == 10.0
    assert a["std_dev"] == pytest.approx(math.sqrt(10.0))  # population std, as Deequ
    buckets = a["distribution"]["kll"]["buckets"]
    assert len(buckets) == 10
    assert buckets[0]["lower_bound"] == 1.0 and buckets[-1]["upper_bound"] == 10.0
    assert [b["count"] for b in buckets] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    sketch = a["distribution"]["kll"]["sketch"]
    assert sketch["parameters"] == {"c": 0.64, "k": 2048.0}
    assert sketch["data"] == [[1.0, 2.0, 3.0, 4.0, 10.0]]

    b = feats["b"]["numerical_statistics"]
    assert b["common"] == {"num_present": 4, "num_missing": 1}
    assert b["mean"] == pytest.approx(1.875) and b["min"] == -1.0 and b["max"] == 4.5
    assert sum(x["count"] for x in b["distribution"]["kll"]["buckets"]) == 4

    c = feats["c"]["string_statistics"]
    assert c["common"] == {"num_present": 5, "num_missing": 0}
    assert c["distinct_count"] == 3.0
    assert c["distribution"]["categorical"]["buckets"] == [
        {"value": "x", "count": 3},
        {"value": "y", "count": 1},
        {"value": "z", "count": 1},
    ]
    assert feats["d"]["string_statistics"]["common"] == {"num_present": 0, "num_missing": 5}

    cons = json.loads((tmp_path / "out" / "constraints.json").read_text())
    cf = {f["name"]: f for f in cons["features"]}
    assert cf["a"] == {
        "name": "a",
        "inferred_type": "Integral",
        "completeness": 1.0,
        "num_constraints": {"is_non_negative": True},
    }
    assert cf["b"]["num_constraints"] == {"is_non_negative": False}
    assert cf["b"]["completeness"] == suggested_completeness(4, 5) == 0.44
    assert cf["c"]["string_constraints"] == {"domains": ["x", "y", "z"]}
    assert cf["d"]["inferred_type"] == "Unknown" and cf["d"]["completeness"] == 0.0
    assert cons["monitoring_config"] == {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.2,
            "comparison_method": "Robust",
            "categorical_comparison_threshold": 0.1,
            "categorical_drift_method": "LInfinity",
        },
    }


def test_baseline_large_column_keeps_a_quantile_sketch_and_buckets_sum_to_n(baseline: dict[str, Any]) -> None:
    stats = baseline["statistics"]
    assert stats["dataset"]["item_count"] == 3000
    for feat in stats["features"]:
        if "numerical_statistics" not in feat:
            continue
        kll = feat["numerical_statistics"]["distribution"]["kll"]
        assert sum(b["count"] for b in kll["buckets"]) == 3000
        data = kll["sketch"]["data"][0]
        assert len(data) == 2048 and data == sorted(data)
    region = next(f for f in stats["features"] if f["name"] == "region")
    assert region["inferred_type"] == "String"
    assert (
        sum(b["count"] for b in region["string_statistics"]["distribution"]["categorical"]["buckets"]) == 3000
    )


def test_headerless_csv_takes_feature_names_or_model_monitor_defaults(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("1,a\n2,b\n")
    assert read_csv_files([path], header=False, feature_names=None).columns == ["_c0", "_c1"]
    named = read_csv_files([path], header=False, feature_names=["n", "s"])
    assert named.columns == ["n", "s"] and named.values["s"] == ["a", "b"]


def test_suggested_completeness_tolerates_sampling_noise() -> None:
    assert suggested_completeness(100, 100) == 1.0
    assert suggested_completeness(900, 1000) == 0.88  # 0.9 - 1.96 * sqrt(0.09 / 1000), floored
    assert suggested_completeness(0, 10) == 0.0


# ----------------------------------------------------------------------------- checks


def test_clean_traffic_from_the_same_distribution_has_no_violations(baseline: dict[str, Any]) -> None:
    rows = synthetic_rows(1000, seed=101)
    table = build_table(rows, FEATURES)
    result = evaluate(table, classify_table(table), baseline["statistics"], baseline["constraints"])
    assert result.violations == []
    assert {d.feature for d in result.drift} == set(FEATURES)
    assert max(d.distance for d in result.drift) < 0.07


def test_mean_shift_drifts_exactly_that_feature(baseline: dict[str, Any]) -> None:
    violations = check(synthetic_rows(1000, seed=102, bmi_shift=4.0), baseline)
    assert kinds(violations) == {("baseline_drift_check", "bmi")}
    assert violations[0]["description"].startswith("Numerical distance: 0.3")
    assert "exceeds numerical threshold: 0.1" in violations[0]["description"]


def test_drift_threshold_override_and_psi_method(baseline: dict[str, Any]) -> None:
    shifted = synthetic_rows(1000, seed=103, bmi_shift=4.0)
    assert check(shifted, baseline, drift_threshold=0.9) == []
    psi = check(shifted, baseline, drift_method="psi", drift_threshold=0.2)
    assert kinds(psi) == {("baseline_drift_check", "bmi")}
    assert "(psi)" in psi[0]["description"]
    assert check(synthetic_rows(1000, seed=104), baseline, drift_method="psi", drift_threshold=0.2) == []


def test_categorical_drift_and_unseen_values(baseline: dict[str, Any]) -> None:
    moved = check(synthetic_rows(1000, seed=105, region_p=[0.1, 0.2, 0.3, 0.4]), baseline)
    assert kinds(moved) == {("baseline_drift_check", "region")}
    assert moved[0]["description"].startswith("Categorical distance: ")

    rows = synthetic_rows(1000, seed=106)
    rows[0][3] = "atlantis"
    unseen = check(rows, baseline)
    assert kinds(unseen) == {("categorical_values_check", "region")}
    assert "'atlantis'" in unseen[0]["description"]


def test_dropped_column_gives_missing_column_check(baseline: dict[str, Any]) -> None:
    positional = [r[:-1] for r in synthetic_rows(1000, seed=107)]  # the last feature is gone
    violations = check(positional, baseline)
    assert kinds(violations) == {("missing_column_check", "s5")}
    assert violations[0]["description"] == (
        "There are missing columns in current dataset. Number of columns in current dataset: 4, "
        "Number of columns in baseline constraints: 5"
    )
    named = [dict(zip(FEATURES, r, strict=True)) for r in synthetic_rows(1000, seed=108)]
    for row in named:
        del row["bp"]
    assert kinds(check(named, baseline)) == {("missing_column_check", "bp")}


def test_extra_column_gives_extra_column_check(baseline: dict[str, Any]) -> None:
    rows = [[*r, "1"] for r in synthetic_rows(1000, seed=109)]
    violations = check(rows, baseline)
    assert kinds(violations) == {("extra_column_check", "_c5")}
    assert violations[0]["description"].startswith("There are extra columns in current dataset.")


def test_strings_in_a_numeric_column_give_data_type_check(baseline: dict[str, Any]) -> None:
    rows = synthetic_rows(1000, seed=110)
    for row in rows[::10]:
        row[0] = "unknown"
    violations = check(rows, baseline)
    assert kinds(violations) == {("data_type_check", "age")}
    assert violations[0]["description"] == (
        "Data type match requirement is not met. Expected data type: Integral, Expected match: 100.0%. "
        "Observed: Only 90.0% of data is Integral."
    )
    # a fractional value in an Integral feature is a type mismatch; a whole-valued one is not
    rows = synthetic_rows(1000, seed=111)
    rows[0][0] = "31.0"
    assert check(rows, baseline) == []
    rows[1][0] = "31.5"
    assert kinds(check(rows, baseline)) == {("data_type_check", "age")}


def test_missing_values_burst_gives_completeness_check(baseline: dict[str, Any]) -> None:
    rows = synthetic_rows(1000, seed=112)
    for row in rows[:300]:
        row[2] = ""
    violations = check(rows, baseline)
    assert kinds(violations) == {("completeness_check", "bp")}
    assert "Expected completeness: 100.0%" in violations[0]["description"]
    assert "Only 70.0% of data is present" in violations[0]["description"]


def test_small_windows_need_significance_under_robust_comparison(baseline: dict[str, Any]) -> None:
    few = synthetic_rows(12, seed=113)
    robust = evaluate(
        build_table(few, FEATURES),
        classify_table(build_table(few, FEATURES)),
        baseline["statistics"],
        baseline["constraints"],
    )
    assert robust.violations == []
    assert all(d.critical is not None and d.critical > 0.3 for d in robust.drift)
    simple = json.loads(json.dumps(baseline["constraints"]))
    simple["monitoring_config"]["distribution_constraints"]["comparison_method"] = "Simple"
    simple["monitoring_config"]["distribution_constraints"]["comparison_threshold"] = 0.0
    assert {v["constraint_check_type"] for v in check(few, {**baseline, "constraints": simple})} == {
        "baseline_drift_check"
    }


def test_disabled_evaluation_and_comparison_are_honoured(baseline: dict[str, Any]) -> None:
    shifted = synthetic_rows(500, seed=114, bmi_shift=6.0)
    cons = json.loads(json.dumps(baseline["constraints"]))
    cons["monitoring_config"]["distribution_constraints"]["perform_comparison"] = "Disabled"
    assert check(shifted, {**baseline, "constraints": cons}) == []
    cons["monitoring_config"]["evaluate_constraints"] = "Disabled"
    rows = [r[:-1] for r in shifted]
    assert check(rows, {**baseline, "constraints": cons}) == []


def test_constraints_are_derived_when_only_statistics_are_given(baseline: dict[str, Any]) -> None:
    table = build_table(synthetic_rows(1000, seed=115, bmi_shift=4.0), FEATURES)
    result = evaluate(table, classify_table(table), baseline["statistics"], None)
    assert kinds(result.violations) == {("baseline_drift_check", "bmi")}
    assert any("suggested" in n for n in result.notes)


def test_empty_window_has_no_violations(baseline: dict[str, Any]) -> None:
    table = Table.empty()
    result = evaluate(table, {}, baseline["statistics"], baseline["constraints"])
    assert result.violations == []
    assert dataset_statistics(table) == {"version": 0.0, "dataset": {"item_count": 0}, "features": []}


def test_distances() -> None:
    base = np.sort(np.arange(100, dtype=float))
    assert ks_distance(base, base.copy()) == 0.0
    assert ks_distance(base, base + 1000) == 1.0
    assert ks_distance(base, base + 50) == pytest.approx(0.5)
    stats = dataset_statistics(build_table([[str(v)] for v in range(100)], ["x"]))
    buckets = stats["features"][0]["numerical_statistics"]["distribution"]["kll"]["buckets"]
    assert psi_distance(buckets, base) == pytest.approx(0.0, abs=1e-9)
    assert psi_distance(buckets, base + 1000) > 5
    cons = suggest_constraints(stats, 0.3)
    assert cons["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.3


def test_analyze_in_process_drops_the_label_from_named_json_rows(
    tmp_path: Path, baseline: dict[str, Any]
) -> None:
    (tmp_path / "base").mkdir()
    for name in ("statistics", "constraints"):
        (tmp_path / "base" / f"{name}.json").write_text(json.dumps(baseline[name]))
    rows = [{**dict(zip(FEATURES, r, strict=True)), "target": "151"} for r in synthetic_rows(300, seed=116)]
    capture = {
        "captureData": {
            "endpointInput": {
                "observedContentType": "application/json",
                "mode": "INPUT",
                "encoding": "JSON",
                "data": json.dumps(rows),
            },
        },
        "eventMetadata": {"eventId": "1", "inferenceTime": "2026-11-23T12:00:01Z"},
        "eventVersion": "0",
    }
    (tmp_path / "cap").mkdir()
    (tmp_path / "cap" / "a.jsonl").write_text(json.dumps(capture) + "\n")
    env = {
        "dataset_source": str(tmp_path / "cap"),
        "output_path": str(tmp_path / "out"),
        "baseline_statistics": str(tmp_path / "base"),
        "baseline_constraints": str(tmp_path / "base" / "constraints.json"),
        "label_column": "target",
        "SAGEMAKER_BASE_DIR": str(tmp_path / "ml"),
    }
    assert main("analyze", [], env) == 0
    assert json.loads((tmp_path / "out" / "constraint_violations.json").read_text()) == {"violations": []}
    report = json.loads((tmp_path / "out" / "analysis_report.json").read_text())
    assert report["columns"] == FEATURES and report["rows"] == 300
    assert (tmp_path / "out" / "drift_report.png").stat().st_size > 0
