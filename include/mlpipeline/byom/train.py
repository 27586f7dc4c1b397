"""Training in the task: ``xgboost.train``, its predictions and metrics, the quality bar."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..metrics import probability_metrics
from .common import OBJECTIVE
from .config import TrainingSettings
from .data import Dataset


def train_booster(training: TrainingSettings, train: Dataset, test: Dataset) -> tuple[Any, dict[str, Any]]:
    """``xgboost.train`` on ``train``, watching ``test``; returns the booster and its eval log."""
    import xgboost as xgb

    params = {"objective": OBJECTIVE, **training.params}
    dtrain = xgb.DMatrix(train.features, label=train.labels)
    dtest = xgb.DMatrix(test.features, label=test.labels)
    history: dict[str, Any] = {}
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=training.num_boost_round,
        evals=[(dtrain, "train"), (dtest, "test")],
        evals_result=history,
        verbose_eval=False,
    )
    return booster, history


def predict(booster: Any, features: Any) -> list[float]:
    """Probabilities of class 1, as the container computes them (a plain DMatrix of the rows)."""
    import xgboost as xgb

    return [float(p) for p in booster.predict(xgb.DMatrix(features))]


def classification_metrics(labels: Sequence[float], probabilities: Sequence[float]) -> dict[str, float]:
    """Accuracy (``p > 0.5``), macro F1, ROC AUC and log loss from :mod:`.metrics` (computed
    here, not taken from XGBoost's eval log), with ``rows`` as the check reports it."""
    metrics = probability_metrics(labels, probabilities)
    metrics["rows"] = metrics.pop("n")
    return metrics


def check_training_quality(training: TrainingSettings, metrics: Mapping[str, float]) -> list[str]:
    """Reasons the model is not good enough to deploy (empty when it is)."""
    reasons = []
    if metrics["accuracy"] < training.min_test_accuracy:
        reasons.append(f"test accuracy {metrics['accuracy']:.4f} < training.min_test_accuracy {training.min_test_accuracy}")
    if metrics["auc"] < training.min_test_auc:
        reasons.append(f"test AUC {metrics['auc']:.4f} < training.min_test_auc {training.min_test_auc}")
    return reasons


def max_abs_diff(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} values vs {len(b)}")
    return max((abs(float(x) - float(y)) for x, y in zip(a, b, strict=True)), default=0.0)
