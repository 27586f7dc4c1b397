"""What `make demo` prints about the model (scripts/demo.py's line builders, with the real configs)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from include.mlpipeline.config import load_config

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("mlpipeline_demo", ROOT / "scripts" / "demo.py")
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)


def test_kmeans_prediction_says_cluster_ids_are_arbitrary():
    line = demo.prediction_line(load_config("digits_kmeans", "dev"), "0,1,2", 2.0,
                                '{"closest_cluster": 0.0, "distance_to_cluster": 21.3}', 3.2)
    assert "true target 2; cluster ids are arbitrary, not labels" in line
    assert "closest_cluster" in line and "label 2" not in line


def test_regression_prediction_keeps_the_label_and_marks_truncation():
    row = ",".join(["0.123456"] * 20)  # 179 characters
    line = demo.prediction_line(load_config("diabetes_dnn", "dev"), row, 151.0, "[1.0]", 1.0)
    assert f"[{row[:79]}\u2026] (label 151)" in line
    assert demo.clip("short", 80) == "short" and demo.clip("x" * 81, 80) == "x" * 79 + "\u2026"


def test_monitoring_line_for_a_model_without_monitoring():
    image = load_config("image_classifier", "dev")
    assert not image.monitoring.enabled
    assert demo.monitoring_line(image, [], "s3://b/image_classifier/baselines/") == (
        "monitoring: off for this model (monitoring.enabled: false), so no baseline")
    dnn = load_config("diabetes_dnn", "dev")
    assert demo.monitoring_line(dnn, ["statistics.json"], "s3://b/p/") == "monitoring baseline: statistics.json under s3://b/p/"
    assert demo.monitoring_line(dnn, [], "s3://b/p/") == "monitoring baseline: none under s3://b/p/"
