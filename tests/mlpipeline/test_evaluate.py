"""include/mlpipeline/evaluate.py: metrics, gate, champion lookup (moto), predictions, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from include.mlpipeline.config import PipelineConfig
from include.mlpipeline.evaluate import (
    champion_metrics,
    evaluation_pairs,
    gate,
    gate_from_config,
    latest_approved_package,
    metrics_from_properties,
    parse_predictions,
    plot_predicted_vs_actual,
    read_predictions,
    regression_metrics,
    write_report,
)
from include.mlpipeline.run import RunContext
from include.mlpipeline.sagemaker_requests import model_package_group_request, model_package_request

# ------------------------------------------------------------------------------------ metrics


def test_metrics_agree_with_scikit_learn() -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(0)
    y_true = rng.normal(150, 70, size=500)
    y_pred = y_true + rng.normal(0, 30, size=500)
    metrics = regression_metrics(y_true, y_pred)
    assert metrics["n"] == 500
    assert metrics["mse"] == pytest.approx(mean_squared_error(y_true, y_pred))
    assert metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y_true, y_pred)))
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y_true, y_pred))
    assert metrics["r2"] == pytest.approx(r2_score(y_true, y_pred))


def test_metrics_edge_cases() -> None:
    assert regression_metrics([1.0, 2.0], [1.0, 2.0]) == {
        "rmse": 0.0,
        "mae": 0.0,
        "mse": 0.0,
        "r2": 1.0,
        "n": 2.0,
    }
    assert regression_metrics([3.0, 3.0], [3.0, 4.0])["r2"] == 0.0  # constant labels
    with pytest.raises(ValueError, match="2 labels but 3 predictions"):
        regression_metrics([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="no predictions"):
        regression_metrics([], [])
    with pytest.raises(ValueError, match="non-finite values: 1 predictions"):
        regression_metrics([1, 2], [1, float("nan")])


# --------------------------------------------------------------------------------------- gate


THRESHOLDS = {"max_rmse": 70.0, "min_r2": 0.2}


def test_gate_passes_thresholds_without_champion() -> None:
    decision = gate({"rmse": 55.0, "r2": 0.45}, THRESHOLDS, None, 0.02)
    assert decision.passed
    assert decision.reasons == ["rmse 55 <= max threshold 70", "r2 0.45 >= min threshold 0.2"]
    assert decision.notes == ["no approved champion: threshold checks only"]


def test_gate_fails_a_threshold() -> None:
    decision = gate({"rmse": 75.5, "r2": 0.45}, THRESHOLDS, None, 0.02)
    assert not decision.passed
    assert decision.reasons == ["rmse 75.5 is above the max threshold 70"]
    decision = gate({"rmse": 60.0, "r2": 0.1}, THRESHOLDS, None)
    assert decision.reasons == ["r2 0.1 is below the min threshold 0.2"]


def test_gate_fails_when_the_champion_is_better() -> None:
    decision = gate({"rmse": 58.0, "r2": 0.4}, THRESHOLDS, {"rmse": 50.0, "r2": 0.5}, 0.02)
    assert not decision.passed
    assert decision.reasons == [
        "rmse 58 is worse than the champion's 50 beyond tolerance 0.02 (needed <= 51)"
    ]


def test_gate_tolerates_small_regressions_and_passes_improvements() -> None:
    assert gate({"rmse": 50.9, "r2": 0.4}, THRESHOLDS, {"rmse": 50.0}, 0.02).passed
    assert not gate({"rmse": 50.9, "r2": 0.4}, THRESHOLDS, {"rmse": 50.0}, 0.0).passed
    decision = gate({"rmse": 45.0, "r2": 0.5}, THRESHOLDS, {"rmse": 50.0}, 0.0)
    assert decision.passed and "rmse 45 vs champion 50: within tolerance 0 (<= 50)" in decision.reasons


def test_gate_compares_higher_is_better_metrics_the_other_way() -> None:
    champion = {"r2": 0.5}
    assert gate({"r2": 0.495}, {}, champion, 0.02, compare=["r2"]).passed
    decision = gate({"r2": 0.45}, {}, champion, 0.02, compare=["r2"])
    assert not decision.passed and decision.reasons == [
        "r2 0.45 is worse than the champion's 0.5 beyond tolerance 0.02 (needed >= 0.49)"
    ]


def test_gate_fails_on_missing_metrics_and_notes_champion_gaps() -> None:
    decision = gate({"r2": 0.45}, THRESHOLDS, {"rmse": 50.0}, 0.02)
    assert not decision.passed
    assert decision.reasons == ["rmse: missing or not finite in the candidate's metrics (None)"]
    decision = gate({"rmse": 55.0, "r2": 0.45}, THRESHOLDS, {"mae": 40.0}, 0.02)
    assert decision.passed and decision.notes == ["champion has no rmse: not compared"]
    with pytest.raises(ValueError, match="must look like max_<metric>"):
        gate({"rmse": 1.0}, {"rmse": 2.0})


def test_gate_from_config(dev_cfg: PipelineConfig) -> None:
    assert gate_from_config({"rmse": 60.0, "mae": 50.0, "r2": 0.3}, dev_cfg, {"rmse": 59.5}).passed
    assert not gate_from_config({"rmse": 60.0, "mae": 50.0, "r2": 0.3}, dev_cfg, {"rmse": 55.0}).passed


# ----------------------------------------------------------------------------------- champion


def _register(sagemaker: Any, cfg: PipelineConfig, ctx: RunContext, rmse: float, status: str) -> str:
    # Registered with its final status: moto 5.2's UpdateModelPackage drops the
    # CustomerMetadataProperties it is not given (AWS keeps them), so approving via an update
    # would lose the metrics in this fake, not in SageMaker.
    request = model_package_request(
        cfg,
        ctx,
        model_data_url="s3://mlpipeline-dev/m/model.tar.gz",
        metrics={"rmse": rmse, "r2": 0.5},
        approval_status=status,  # type: ignore[arg-type]
    )
    return sagemaker.create_model_package(**request)["ModelPackageArn"]


def test_champion_is_the_newest_approved_version(
    sagemaker: Any, dev_cfg: PipelineConfig, dev_ctx: RunContext
) -> None:
    group = dev_cfg.registry.model_package_group_name
    assert champion_metrics(sagemaker, group) is None  # no group yet
    sagemaker.create_model_package_group(**model_package_group_request(dev_cfg))
    assert champion_metrics(sagemaker, group) is None  # empty group

    _register(sagemaker, dev_cfg, dev_ctx, 70.0, "PendingManualApproval")
    assert champion_metrics(sagemaker, group) is None  # pending approval is no champion
    _register(sagemaker, dev_cfg, dev_ctx, 60.0, "Approved")
    assert champion_metrics(sagemaker, group) == {"rmse": 60.0, "r2": 0.5}

    second = _register(sagemaker, dev_cfg, dev_ctx, 55.0, "Approved")
    _register(sagemaker, dev_cfg, dev_ctx, 40.0, "PendingManualApproval")  # newer, not approved
    _register(sagemaker, dev_cfg, dev_ctx, 45.0, "Rejected")
    package = latest_approved_package(sagemaker, group)
    assert package is not None and package.arn == second and package.version == 3
    assert package.metrics == {"rmse": 55.0, "r2": 0.5}
    assert package.model_data_url == "s3://mlpipeline-dev/m/model.tar.gz"
    assert package.image == dev_cfg.training.image_uri
    assert package.properties["run_id"] == dev_ctx.run_id


def test_metrics_from_properties_skips_other_and_unparsable_keys() -> None:
    assert metrics_from_properties({"metric.rmse": "1.5", "metric.bad": "x", "run_id": "r"}) == {"rmse": 1.5}


def test_champion_lookup_follows_pagination() -> None:
    class FakeSageMaker:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def list_model_packages(self, **kwargs: Any) -> dict[str, Any]:
            self.calls.append(kwargs)
            if "NextToken" not in kwargs:
                return {
                    "ModelPackageSummaryList": [{"ModelPackageArn": "arn:v3", "ModelPackageVersion": 3}],
                    "NextToken": "t",
                }
            return {"ModelPackageSummaryList": [{"ModelPackageArn": "arn:v7", "ModelPackageVersion": 7}]}

        def describe_model_package(self, ModelPackageName: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
            return {
                "CustomerMetadataProperties": {"metric.rmse": "7.0"},
                "InferenceSpecification": {"Containers": [{}]},
            }

    fake = FakeSageMaker()
    package = latest_approved_package(fake, "g")
    assert package is not None and package.arn == "arn:v7" and package.metrics == {"rmse": 7.0}
    assert fake.calls[0]["ModelApprovalStatus"] == "Approved" and fake.calls[1]["NextToken"] == "t"


# -------------------------------------------------------------------------------- predictions


def test_parse_plain_and_joined_predictions() -> None:
    assert parse_predictions("1.5\n\n2.25\n").y_pred == [1.5, 2.25]
    joined = parse_predictions("151.0,148.2\n75.0,80.5\n", joined=True)
    assert joined.y_pred == [148.2, 80.5] and joined.labels == [151.0, 75.0]
    assert parse_predictions("17,3.5\n", joined=True).first_column == ["17"]
    with pytest.raises(ValueError, match="line 2: no numeric prediction in 'oops'"):
        parse_predictions("1.0\noops\n")
    with pytest.raises(ValueError, match="line 1: expected 'first,prediction'"):
        parse_predictions("1.0\n", joined=True)
    with pytest.raises(ValueError, match="not joined"):
        _ = parse_predictions("1.0\n").labels


def test_read_transform_output_from_s3(s3: Any) -> None:
    prefix = "run/transform/eval/"
    s3.put_object(Bucket="mlpipeline-dev", Key=prefix + "data-000.csv.out", Body=b"10.0\n20.0\n")
    s3.put_object(Bucket="mlpipeline-dev", Key=prefix + "data-001.csv.out", Body=b"30.0")  # no final newline
    s3.put_object(Bucket="mlpipeline-dev", Key=prefix + "_SUCCESS", Body=b"")
    s3.put_object(Bucket="mlpipeline-dev", Key="run/test_labels/data.csv", Body=b"11.0\n19.0\n33.0\n")
    predictions = read_predictions(s3, f"s3://mlpipeline-dev/{prefix}")
    assert predictions.y_pred == [10.0, 20.0, 30.0]
    y_true, y_pred = evaluation_pairs(
        s3, f"s3://mlpipeline-dev/{prefix}", "s3://mlpipeline-dev/run/test_labels/"
    )
    assert (y_true, y_pred) == ([11.0, 19.0, 33.0], [10.0, 20.0, 30.0])

    s3.put_object(Bucket="mlpipeline-dev", Key="run/joined/data.csv.out", Body=b"11.0,10.0\n19.0,20.0\n")
    assert evaluation_pairs(s3, "s3://mlpipeline-dev/run/joined/") == ([11.0, 19.0], [10.0, 20.0])

    s3.put_object(Bucket="mlpipeline-dev", Key="run/short_labels/data.csv", Body=b"11.0\n")
    with pytest.raises(ValueError, match="1 labels under .* but 3 predictions"):
        evaluation_pairs(s3, f"s3://mlpipeline-dev/{prefix}", "s3://mlpipeline-dev/run/short_labels/")
    with pytest.raises(FileNotFoundError, match="no objects ending in .out under"):
        read_predictions(s3, "s3://mlpipeline-dev/run/nothing/")


# ------------------------------------------------------------------------------------- report


def test_plot_is_a_png(tmp_path: Path) -> None:
    path = plot_predicted_vs_actual([1.0, 2.0, 3.0], [1.1, 1.9, 3.2], tmp_path / "plots" / "pva.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000


def test_write_report_uploads_metrics_quality_and_plot(s3: Any, s3_read: Any) -> None:
    y_true = [100.0, 150.0, 200.0, 250.0]
    y_pred = [110.0, 140.0, 210.0, 240.0]
    decision = gate(regression_metrics(y_true, y_pred), {"max_rmse": 20.0})
    uris = write_report(
        s3,
        "s3://mlpipeline-dev/diabetes_dnn/run/evaluation",
        y_true=y_true,
        y_pred=y_pred,
        decision=decision,
        champion={"rmse": 12.0},
        extra={"training_job": "job-1"},
    )
    assert uris.metrics_uri == "s3://mlpipeline-dev/diabetes_dnn/run/evaluation/evaluation.json"
    report = json.loads(s3_read.text(uris.metrics_uri))
    assert report["metrics"]["rmse"] == pytest.approx(10.0)
    assert report["gate"]["passed"] is True and report["champion_metrics"] == {"rmse": 12.0}
    assert report["training_job"] == "job-1"
    quality = json.loads(s3_read.text(uris.model_quality_uri))
    assert quality["regression_metrics"]["rmse"]["value"] == pytest.approx(10.0)
    assert quality["regression_metrics"]["r2"]["standard_deviation"] >= 0
    assert (
        s3.get_object(Bucket="mlpipeline-dev", Key="diabetes_dnn/run/evaluation/predicted_vs_actual.png")[
            "ContentType"
        ]
        == "image/png"
    )


# ---------------------------------------------------------------------- the pieces together


def test_thresholds_are_reachable_on_the_demo_data(
    s3: Any, s3_read: Any, dev_cfg: PipelineConfig, dev_ctx: RunContext
) -> None:
    """ETL output -> a plain linear model -> metrics -> gate: the configured gate is sensible
    (a reasonable model passes it; predicting the mean does not)."""
    from sklearn.linear_model import LinearRegression

    from include.mlpipeline.etl import run_etl
    from include.mlpipeline.formats.csv import read_algorithm_csv

    result = run_etl(dev_cfg, dev_ctx, s3_client=s3)
    y_train, x_train = read_algorithm_csv(s3_read.text(result.train_uri + "data.csv").encode())
    _, x_test = read_algorithm_csv(
        s3_read.text(result.channels["test_features"] + "data.csv").encode(), has_label=False
    )
    y_test = [float(v) for v in s3_read.text(result.channels["test_labels"] + "data.csv").split()]

    model = LinearRegression().fit(x_train, y_train)
    good = regression_metrics(y_test, model.predict(x_test))
    assert gate_from_config(good, dev_cfg, None).passed, good
    baseline = regression_metrics(y_test, np.full(len(y_test), float(np.mean(y_train))))
    assert not gate_from_config(baseline, dev_cfg, None).passed, baseline
