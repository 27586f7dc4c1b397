"""include/mlpipeline/metrics.py against scikit-learn's own results on random data.

The threshold rule is checked against a fitted scikit-learn classifier: its ``predict`` and our
labels from its ``predict_proba`` must agree row for row, so a drift to ``>= 0.5`` (or any other
rule) fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from include.mlpipeline.metrics import (
    POSITIVE_THRESHOLD,
    classification_metrics,
    clustering_metrics,
    distribution,
    metrics_for_task,
    predicted_labels,
    probability_metrics,
    quality_statistics,
    regression_metrics,
    roc_auc,
)


def test_regression_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.normal(150, 70, size=500)
    y_pred = y_true + rng.normal(0, 30, size=500)
    metrics = regression_metrics(y_true, y_pred)
    assert metrics["n"] == 500
    assert metrics["mse"] == pytest.approx(skm.mean_squared_error(y_true, y_pred))
    assert metrics["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y_true, y_pred)))
    assert metrics["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
    assert metrics["r2"] == pytest.approx(skm.r2_score(y_true, y_pred))
    # by hand, so the test does not only compare scikit-learn with itself
    assert metrics["mse"] == pytest.approx(float(np.mean((y_true - y_pred) ** 2)))


def test_regression_edge_cases() -> None:
    assert regression_metrics([1.0, 2.0], [1.0, 2.0]) == {"rmse": 0.0, "mae": 0.0, "mse": 0.0, "r2": 1.0, "n": 2.0}
    assert regression_metrics([3.0, 3.0], [3.0, 4.0])["r2"] == 0.0  # constant labels
    assert regression_metrics([3.0], [3.0])["r2"] == 1.0  # one row: no variance to explain
    with pytest.raises(ValueError, match="2 labels but 3 predictions"):
        regression_metrics([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="no predictions"):
        regression_metrics([], [])
    with pytest.raises(ValueError, match="non-finite values: 1 predictions and 0 labels"):
        regression_metrics([1, 2], [1, float("nan")])


def test_the_threshold_rule_is_scikit_learns_predict() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.8, size=400) > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    proba = model.predict_proba(x)[:, 1]
    assert (predicted_labels(proba, binary=True) == model.predict(x)).all()
    # exactly 0.5 is the negative class, as scikit-learn's decision_function > 0
    assert POSITIVE_THRESHOLD == 0.5
    assert predicted_labels([0.5, 0.5000001, 0.4999999], binary=True).tolist() == [0.0, 1.0, 0.0]
    metrics = classification_metrics(y, proba, binary=True)
    assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, model.predict(x)))
    assert metrics["f1"] == pytest.approx(skm.f1_score(y, model.predict(x), average="macro"))
    assert metrics["auc"] == pytest.approx(skm.roc_auc_score(y, proba))
    assert metrics["n"] == 400


def test_binary_metrics_on_random_probabilities() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=300)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, size=300), 0, 1)
    p[:5] = 0.5  # ties at the threshold
    labels = (p > 0.5).astype(int)
    metrics = probability_metrics(y, p)
    assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, labels))
    assert metrics["f1"] == pytest.approx(skm.f1_score(y, labels, average="macro"))
    assert metrics["auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert metrics["logloss"] == pytest.approx(skm.log_loss(y, p))
    assert 0.5 < metrics["auc"] < 1.0


def test_multiclass_metrics_on_random_classes() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, size=300)
    pred = np.where(rng.uniform(size=300) < 0.6, y, rng.integers(0, 5, size=300))  # 4 is never a label
    metrics = classification_metrics(y, pred.astype(float), binary=False)
    assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert metrics["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    assert "auc" not in metrics
    # class indices that arrive as floats near an integer are that class
    assert classification_metrics([0, 1, 2, 2], [0.0, 1.0, 1.9999, 1.0], binary=False)["accuracy"] == 0.75


def test_auc_by_hand_and_with_one_class() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9]) == 1.0
    assert roc_auc([0, 1, 0, 1], [0.2, 0.2, 0.8, 0.8]) == 0.5  # ties count half
    assert roc_auc([1, 1, 1], [0.2, 0.5, 0.9]) == 0.5
    m = classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9], binary=True)
    assert m["accuracy"] == 0.75 and m["auc"] == 1.0


def test_purity_by_hand_and_on_random_clusters() -> None:
    # clusters 5 -> {0, 0, 1}, 7 -> {1}: 3 of 4 rows carry their cluster's majority label
    assert clustering_metrics([0, 0, 1, 1], [5, 5, 5, 7]) == {"purity": 0.75, "clusters": 2.0, "n": 4.0}
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, size=200)
    clusters = rng.integers(0, 6, size=200)
    hits = sum(np.bincount(y[clusters == c]).max() for c in np.unique(clusters))
    assert clustering_metrics(y, clusters)["purity"] == pytest.approx(hits / 200)


def test_metrics_for_task_dispatches_and_names_unknown_tasks() -> None:
    assert set(metrics_for_task("regression", [1, 2], [1, 2])) == {"rmse", "mae", "mse", "r2", "n"}
    assert set(metrics_for_task("binary", [0, 1], [0.2, 0.8])) == {"accuracy", "f1", "auc", "n"}
    assert set(metrics_for_task("multiclass", [0, 2], [0, 2])) == {"accuracy", "f1", "n"}
    assert set(metrics_for_task("clustering", [0, 2], [1, 1])) == {"purity", "clusters", "n"}
    with pytest.raises(ValueError, match="unknown evaluation task 'ranking'"):
        metrics_for_task("ranking", [1], [1])


def test_quality_statistics_in_the_registrys_shapes() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=200)
    pred = y + rng.normal(scale=0.3, size=200)
    regression = quality_statistics("regression", y, pred)["regression_metrics"]
    assert set(regression) == {"mae", "mse", "rmse", "r2"}
    assert regression["rmse"]["value"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert 0 < regression["rmse"]["standard_deviation"] < regression["rmse"]["value"]
    assert quality_statistics("regression", y, pred) == quality_statistics("regression", y, pred)  # seeded

    labels = (y > 0).astype(int)
    binary = quality_statistics("binary", labels, 1 / (1 + np.exp(-pred)))["binary_classification_metrics"]
    assert set(binary) == {"accuracy", "f1", "auc"}
    assert binary["auc"]["value"] == pytest.approx(skm.roc_auc_score(labels, pred))
    assert binary["accuracy"]["standard_deviation"] > 0
    clustering = quality_statistics("clustering", labels, labels)["clustering_metrics"]
    assert clustering == {"purity": {"value": 1.0, "standard_deviation": 0.0}}


def test_distribution_of_predictions() -> None:
    d = distribution([float(i) for i in range(101)])
    assert (d["min"], d["p05"], d["p50"], d["p95"], d["max"], d["mean"]) == (0, 5, 50, 95, 100, 50)
    assert d["std"] == pytest.approx(np.sqrt(850))  # population std of 0..100
    assert distribution([1.0, 2.0])["p05"] == pytest.approx(1.05)  # linear interpolation
    assert distribution([]) == {}
