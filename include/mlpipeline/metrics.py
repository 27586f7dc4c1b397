"""Every metric the pipelines report, computed by scikit-learn.

One threshold rule for turning a probability into a class: **scikit-learn's** - a binary
classifier predicts the positive class when its probability is strictly greater than 0.5
(``LogisticRegression.predict`` picks class 1 iff the decision function is ``> 0``, that is
``p > 0.5``); a probability of exactly 0.5 is the negative class. :func:`predicted_labels` is that
rule, and the evaluation gate, the smoke test, the BYOM check and the confusion plot all use it.

Inputs are validated once (:func:`pairs`): empty input, different lengths and non-finite values
are errors, because a NaN prediction is a model bug that must not average into a passing score.

numpy and scikit-learn are imported inside the functions that need them (DAG files import this
module's callers at parse time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

#: A probability strictly above this is the positive class (scikit-learn's rule, see above).
POSITIVE_THRESHOLD = 0.5

#: ``evaluation.task`` values and the registry's model-quality section each one reports under.
QUALITY_SECTIONS = {
    "regression": "regression_metrics",
    "binary": "binary_classification_metrics",
    "multiclass": "multiclass_classification_metrics",
    "clustering": "clustering_metrics",
}

Values = Sequence[float] | Any


def pairs(y_true: Values, y_pred: Values) -> tuple[Any, Any]:
    """``(true, pred)`` as flat float64 arrays, or a ValueError that says what is wrong."""
    import numpy as np

    true = np.asarray(y_true, dtype=np.float64).ravel()
    pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if true.size == 0:
        raise ValueError("no predictions to evaluate")
    if true.shape != pred.shape:
        raise ValueError(f"{true.size} labels but {pred.size} predictions")
    if not (np.isfinite(true).all() and np.isfinite(pred).all()):
        raise ValueError(
            f"non-finite values: {int((~np.isfinite(pred)).sum())} predictions and "
            f"{int((~np.isfinite(true)).sum())} labels"
        )
    return true, pred


def predicted_labels(y_pred: Values, *, binary: bool) -> Any:
    """Classes from predictions: ``p > 0.5`` -> 1 else 0 for ``binary`` (probabilities), the
    nearest integer otherwise (multiclass models answer a class index, as a float)."""
    import numpy as np

    pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if binary:
        return (pred > POSITIVE_THRESHOLD).astype(np.float64)
    return np.rint(pred)


def regression_metrics(y_true: Values, y_pred: Values) -> dict[str, float]:
    """``rmse``, ``mae``, ``mse``, ``r2`` and ``n`` of predictions against labels.

    ``r2`` is scikit-learn's ``r2_score``: with constant labels it is 1.0 for a perfect fit and
    0.0 otherwise, rather than a division by zero.
    """
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    true, pred = pairs(y_true, y_pred)
    mse = float(mean_squared_error(true, pred))
    return {
        "rmse": math.sqrt(mse),
        "mae": float(mean_absolute_error(true, pred)),
        "mse": mse,
        "r2": float(r2_score(true, pred)) if true.size > 1 else float(mse == 0.0),
        "n": float(true.size),
    }


def roc_auc(y_true: Values, scores: Values) -> float:
    """Area under the ROC curve with label 1 as the positive class; 0.5 when only one class is
    present (scikit-learn refuses that case: no ranking can be measured, so it is chance)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    true, score = pairs(y_true, scores)
    positive = true == 1
    if positive.all() or not positive.any():
        return 0.5
    return float(roc_auc_score(positive.astype(np.int64), score))


def classification_metrics(y_true: Values, y_pred: Values, *, binary: bool) -> dict[str, float]:
    """``accuracy``, macro ``f1`` (over the classes in labels and predictions, a class never
    predicted right scoring 0), ``auc`` for ``binary`` (ranking the probabilities) and ``n``.

    For ``binary`` the predictions may be probabilities (XGBoost's ``binary:logistic``): the class
    is :func:`predicted_labels`' ``p > 0.5``.
    """
    from sklearn.metrics import accuracy_score, f1_score

    true, pred = pairs(y_true, y_pred)
    label = predicted_labels(pred, binary=binary)
    out = {
        "accuracy": float(accuracy_score(true, label)),
        "f1": float(f1_score(true, label, average="macro", zero_division=0)),
    }
    if binary:
        out["auc"] = roc_auc(true, pred)
    out["n"] = float(true.size)
    return out


def probability_metrics(y_true: Values, probabilities: Values) -> dict[str, float]:
    """:func:`classification_metrics` of binary probabilities plus their ``logloss``."""
    from sklearn.metrics import log_loss

    true, prob = pairs(y_true, probabilities)
    out = classification_metrics(true, prob, binary=True)
    out["logloss"] = float(log_loss(true, prob, labels=[0, 1]))
    return out


def clustering_metrics(y_true: Values, clusters: Values) -> dict[str, float]:
    """``purity`` (the share of rows whose cluster's most common label is their own label),
    ``clusters`` and ``n``; from scikit-learn's contingency matrix."""
    import numpy as np
    from sklearn.metrics.cluster import contingency_matrix

    true, pred = pairs(y_true, clusters)
    table = contingency_matrix(true, pred)
    return {
        "purity": float(table.max(axis=0).sum()) / true.size,
        "clusters": float(np.unique(pred).size),
        "n": float(true.size),
    }


def metrics_for_task(task: str, y_true: Values, y_pred: Values) -> dict[str, float]:
    """The metrics of ``evaluation.task`` (regression, binary, multiclass, clustering)."""
    if task == "regression":
        return regression_metrics(y_true, y_pred)
    if task in ("binary", "multiclass"):
        return classification_metrics(y_true, y_pred, binary=task == "binary")
    if task == "clustering":
        return clustering_metrics(y_true, y_pred)
    raise ValueError(f"unknown evaluation task {task!r}: one of {sorted(QUALITY_SECTIONS)}")


def distribution(values: Values) -> dict[str, float]:
    """``min``, ``p05``, ``p50``, ``p95``, ``max``, ``mean`` and (population) ``std`` of
    predictions, quantiles interpolated linearly; empty for no values."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        return {}
    p05, p50, p95 = (float(q) for q in np.percentile(data, [5, 50, 95]))
    return {
        "min": float(data.min()), "p05": p05, "p50": p50, "p95": p95, "max": float(data.max()),
        "mean": float(data.mean()), "std": float(data.std()),
    }


def _bootstrap(
    metric: Callable[[Any, Any], dict[str, float]], true: Any, pred: Any, keys: Sequence[str], resamples: int, seed: int
) -> dict[str, float]:
    """The standard deviation of each metric in ``keys`` over seeded bootstrap resamples of at
    most 10 000 rows, so the cost stays bounded."""
    import numpy as np

    rng = np.random.default_rng(seed)
    size = min(true.size, 10_000)
    samples: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(resamples):
        idx = rng.integers(0, true.size, size=size)
        m = metric(true[idx], pred[idx])
        for key in keys:
            samples[key].append(m[key])
    return {key: float(np.std(values)) for key, values in samples.items()}


def quality_statistics(task: str, y_true: Values, y_pred: Values, *, seed: int = 0) -> dict[str, Any]:
    """Model-quality JSON for the registry (``ModelMetrics.ModelQuality.Statistics``) in
    SageMaker's shapes: ``{"regression_metrics": {"rmse": {"value", "standard_deviation"}}}``,
    ``binary_classification_metrics``, ``multiclass_classification_metrics``,
    ``clustering_metrics``; standard deviations by a seeded bootstrap (100 resamples for
    regression, 50 for the others)."""
    if task not in QUALITY_SECTIONS:
        raise ValueError(f"unknown evaluation task {task!r}: one of {sorted(QUALITY_SECTIONS)}")
    true, pred = pairs(y_true, y_pred)
    point = metrics_for_task(task, true, pred)
    if task == "regression":
        keys: list[str] = ["mae", "mse", "rmse", "r2"]
        resamples = 100
    else:
        keys = [k for k in point if k not in ("n", "clusters")]
        resamples = 50
    spread = _bootstrap(lambda t, p: metrics_for_task(task, t, p), true, pred, keys, resamples, seed)
    return {
        QUALITY_SECTIONS[task]: {k: {"value": point[k], "standard_deviation": spread[k]} for k in keys}
    }
