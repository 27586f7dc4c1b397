"""Evaluation: metrics, the champion, the quality gate and the report.

A candidate model is promoted only if it clears absolute thresholds (it is good) AND is not worse
than the current champion, the newest *Approved* version in the model package group (it is an
improvement, or at least no regression beyond noise). Metrics travel with each model package in
``CustomerMetadataProperties`` (written by :func:`include.mlpipeline.sagemaker_requests.model_package_request`),
so finding the champion's numbers is two API calls and no S3 reads.

Batch transform output is the prediction source: one ``<input>.out`` per input object, one line
per input line, either ``prediction`` or, with a join filter, ``label,prediction`` /
``id,prediction``.

numpy and matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .run import split_s3_uri
from .sagemaker_requests import METRIC_PROPERTY_PREFIX

#: Metrics where a larger value is better; all others are errors (smaller is better).
HIGHER_IS_BETTER = frozenset({"r2", "accuracy", "f1", "auc", "purity"})
METRICS_FILE = "evaluation.json"
MODEL_QUALITY_FILE = "model_quality.json"
PLOT_FILE = "predicted_vs_actual.png"


# ------------------------------------------------------------------------------------ metrics


def _pairs(y_true: Sequence[float] | Any, y_pred: Sequence[float] | Any) -> tuple[Any, Any]:
    import numpy as np

    true = np.asarray(y_true, dtype=np.float64).ravel()
    pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if true.size == 0:
        raise ValueError("no predictions to evaluate")
    if true.shape != pred.shape:
        raise ValueError(f"{true.size} labels but {pred.size} predictions")
    if not (np.isfinite(true).all() and np.isfinite(pred).all()):
        raise ValueError(f"non-finite values: {int((~np.isfinite(pred)).sum())} predictions")
    return true, pred


def _macro_f1(true: Any, pred: Any) -> float:
    import numpy as np

    scores = []
    for c in np.unique(true):
        tp = float(np.sum((pred == c) & (true == c)))
        fp = float(np.sum((pred == c) & (true != c)))
        fn = float(np.sum((pred != c) & (true == c)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def _auc(true: Any, score: Any) -> float:
    """Area under the ROC curve by the rank statistic (ties averaged); 0.5 with one class only."""
    import numpy as np

    pos, neg = true == 1, true != 1
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    i = 0
    while i < len(score):  # average ranks over ties
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(y_true: Sequence[float] | Any, y_pred: Sequence[float] | Any, *, binary: bool) -> dict[str, float]:
    """``accuracy``, macro ``f1`` (and ``auc`` for binary) of predictions against class labels.

    For ``binary`` the predictions may be probabilities (XGBoost's ``binary:logistic``): the class
    is ``p >= 0.5`` and ``auc`` ranks the probabilities.
    """
    import numpy as np

    true, pred = _pairs(y_true, y_pred)
    if binary:
        label = (pred >= 0.5).astype(np.float64)
        out = {"accuracy": float(np.mean(label == true)), "f1": _macro_f1(true, label), "auc": _auc(true, pred)}
    else:
        label = np.rint(pred)
        out = {"accuracy": float(np.mean(label == true)), "f1": _macro_f1(true, label)}
    out["n"] = float(true.size)
    return out


def clustering_metrics(y_true: Sequence[float] | Any, clusters: Sequence[float] | Any) -> dict[str, float]:
    """``purity``: the share of rows whose cluster's most common label is their own label."""
    import numpy as np

    true, pred = _pairs(y_true, clusters)
    hits = 0
    for c in np.unique(pred):
        _, counts = np.unique(true[pred == c], return_counts=True)
        hits += int(counts.max())
    return {"purity": hits / true.size, "clusters": float(np.unique(pred).size), "n": float(true.size)}


def metrics_for_task(task: str, y_true: Sequence[float] | Any, y_pred: Sequence[float] | Any) -> dict[str, float]:
    """The metrics of ``evaluation.task`` (regression, binary, multiclass, clustering)."""
    if task == "regression":
        return regression_metrics(y_true, y_pred)
    if task in ("binary", "multiclass"):
        return classification_metrics(y_true, y_pred, binary=task == "binary")
    if task == "clustering":
        return clustering_metrics(y_true, y_pred)
    raise ValueError(f"unknown evaluation task {task!r}")


def regression_metrics(y_true: Sequence[float] | Any, y_pred: Sequence[float] | Any) -> dict[str, float]:
    """``rmse``, ``mae``, ``mse``, ``r2`` and ``n`` of predictions against labels.

    ``r2`` is ``1 - SS_res / SS_tot``; with constant labels (``SS_tot == 0``) it is 1.0 for a
    perfect fit and 0.0 otherwise, rather than a division by zero.

    Raises:
        ValueError: empty input, different lengths, or non-finite values (a NaN prediction is a
            model bug that must not average into a passing score).
    """
    import numpy as np

    true = np.asarray(y_true, dtype=np.float64).ravel()
    pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if true.size == 0:
        raise ValueError("no predictions to evaluate")
    if true.shape != pred.shape:
        raise ValueError(f"{true.size} labels but {pred.size} predictions")
    if not (np.isfinite(true).all() and np.isfinite(pred).all()):
        bad = int((~np.isfinite(pred)).sum())
        raise ValueError(f"non-finite values: {bad} predictions and {int((~np.isfinite(true)).sum())} labels")
    errors = pred - true
    mse = float(np.mean(errors**2))
    ss_tot = float(np.sum((true - true.mean()) ** 2))
    ss_res = float(np.sum(errors**2))
    r2 = (1.0 if ss_res == 0 else 0.0) if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return {
        "rmse": math.sqrt(mse),
        "mae": float(np.mean(np.abs(errors))),
        "mse": mse,
        "r2": r2,
        "n": float(true.size),
    }


# --------------------------------------------------------------------------------------- gate


@dataclass(frozen=True)
class GateDecision:
    """Whether a candidate may be registered / promoted, and why.

    Attributes:
        passed: every threshold met and no regression against the champion.
        reasons: for a failure the failed checks; for a pass the checks that passed.
        notes: context that did not decide anything (no champion, a metric it lacks).
    """

    passed: bool
    reasons: list[str]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def gate(
    metrics: Mapping[str, float],
    thresholds: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None = None,
    tolerance: float = 0.0,
    *,
    compare: Sequence[str] = ("rmse",),
) -> GateDecision:
    """Decide on a candidate: thresholds (``max_rmse``, ``min_r2``...) AND the champion.

    Against the champion, for each metric in ``compare``, the candidate may be worse by at most
    ``tolerance`` relative to the champion's value (``rmse <= champion * (1 + tolerance)``;
    ``r2 >= champion - tolerance * |champion|``): retraining on fresh data wobbles a little, and
    a zero tolerance would reject an equally good model half of the time.
    """
    failures: list[str] = []
    passes: list[str] = []
    notes: list[str] = []

    def value_of(name: str) -> float | None:
        value = metrics.get(name)
        if value is None or not math.isfinite(float(value)):
            failures.append(f"{name}: missing or not finite in the candidate's metrics ({value!r})")
            return None
        return float(value)

    for key, bound in sorted(thresholds.items()):
        kind, _, name = key.partition("_")
        if kind not in ("min", "max") or not name:
            raise ValueError(f"threshold {key!r} must look like max_<metric> or min_<metric>")
        value = value_of(name)
        if value is None:
            continue
        ok = value <= bound if kind == "max" else value >= bound
        text = f"{name} {_fmt(value)} {'<=' if kind == 'max' else '>='} {kind} threshold {_fmt(bound)}"
        if ok:
            passes.append(text)
        else:
            op = "above" if kind == "max" else "below"
            failures.append(f"{name} {_fmt(value)} is {op} the {kind} threshold {_fmt(bound)}")

    if champion_metrics is None:
        notes.append("no approved champion: threshold checks only")
    else:
        for name in compare:
            champ = champion_metrics.get(name)
            if champ is None or not math.isfinite(float(champ)):
                notes.append(f"champion has no {name}: not compared")
                continue
            value = value_of(name)
            if value is None:
                continue
            champ = float(champ)
            if name in HIGHER_IS_BETTER:
                allowed = champ - tolerance * abs(champ)
                ok = value >= allowed
                relation = f">= {_fmt(allowed)}"
            else:
                allowed = champ * (1 + tolerance) if champ >= 0 else champ * (1 - tolerance)
                ok = value <= allowed
                relation = f"<= {_fmt(allowed)}"
            if ok:
                passes.append(
                    f"{name} {_fmt(value)} vs champion {_fmt(champ)}: within tolerance {tolerance:g} ({relation})"
                )
            else:
                failures.append(
                    f"{name} {_fmt(value)} is worse than the champion's {_fmt(champ)} beyond tolerance "
                    f"{tolerance:g} (needed {relation})"
                )
    if not thresholds and champion_metrics is None:
        notes.append("no thresholds configured: nothing to check")
    failures = list(dict.fromkeys(failures))
    return GateDecision(passed=not failures, reasons=failures or passes, notes=notes)


def gate_from_config(
    metrics: Mapping[str, float], cfg: Any, champion: Mapping[str, float] | None
) -> GateDecision:
    """:func:`gate` with ``cfg.evaluation`` (a :class:`~include.mlpipeline.config.PipelineConfig`)."""
    ev = cfg.evaluation
    return gate(metrics, ev.thresholds, champion, ev.champion_tolerance, compare=ev.compare_metrics)


# ----------------------------------------------------------------------------------- champion


@dataclass(frozen=True)
class ApprovedPackage:
    """The newest approved version of a model package group: the champion.

    Attributes:
        arn / version: which package.
        metrics: ``metric.*`` customer metadata as floats (empty if it carried none).
        image / model_data_url: its first inference container, e.g. for a batch transform.
        properties: all customer metadata, as registered.
    """

    arn: str
    version: int
    metrics: dict[str, float]
    image: str | None
    model_data_url: str | None
    properties: dict[str, str]


def latest_approved_package(sagemaker_client: Any, group_name: str) -> ApprovedPackage | None:
    """The highest-version Approved package of ``group_name``, or ``None`` if there is none.

    Versions, not creation times, decide "newest": they are assigned in order by the registry and
    cannot tie. A group that does not exist yet simply has no champion.
    """
    summaries: list[Mapping[str, Any]] = []
    kwargs: dict[str, Any] = {
        "ModelPackageGroupName": group_name,
        "ModelApprovalStatus": "Approved",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
    }
    while True:
        try:
            page = sagemaker_client.list_model_packages(**kwargs)
        except Exception as exc:  # botocore ClientError, without importing botocore here
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))
            if code in ("ResourceNotFound", "ValidationException") and "does not exist" in message:
                return None
            raise
        summaries.extend(page.get("ModelPackageSummaryList", []))
        token = page.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
    if not summaries:
        return None
    best = max(
        summaries, key=lambda s: (int(s.get("ModelPackageVersion") or 0), str(s.get("CreationTime", "")))
    )
    arn = best["ModelPackageArn"]
    described = sagemaker_client.describe_model_package(ModelPackageName=arn)
    properties = dict(described.get("CustomerMetadataProperties") or {})
    containers = (described.get("InferenceSpecification") or {}).get("Containers") or [{}]
    return ApprovedPackage(
        arn=arn,
        version=int(best.get("ModelPackageVersion") or 0),
        metrics=metrics_from_properties(properties),
        image=containers[0].get("Image"),
        model_data_url=containers[0].get("ModelDataUrl"),
        properties=properties,
    )


def metrics_from_properties(properties: Mapping[str, str]) -> dict[str, float]:
    """``{"metric.rmse": "53.2", "run_id": ...}`` -> ``{"rmse": 53.2}``; unparsable values skipped."""
    metrics: dict[str, float] = {}
    for key, value in properties.items():
        if key.startswith(METRIC_PROPERTY_PREFIX):
            try:
                metrics[key[len(METRIC_PROPERTY_PREFIX) :]] = float(value)
            except (TypeError, ValueError):
                continue
    return metrics


def champion_metrics(sagemaker_client: Any, group_name: str) -> dict[str, float] | None:
    """Metrics of the current champion, or ``None`` when no version is approved yet."""
    package = latest_approved_package(sagemaker_client, group_name)
    return None if package is None else package.metrics


# -------------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class Predictions:
    """Parsed transform output: predictions and, for joined output, the first column (label or id)."""

    y_pred: list[float]
    first_column: list[str] | None = None

    @property
    def labels(self) -> list[float]:
        """The first column as numbers (for ``label,prediction`` output)."""
        if self.first_column is None:
            raise ValueError("these predictions were not joined with their labels")
        return [float(v) for v in self.first_column]


def parse_predictions(text: str, *, joined: bool = False) -> Predictions:
    """Parse batch transform text output.

    One line per record; the prediction is the last comma-separated field (a model answering
    several outputs per line still has its prediction last). With ``joined=True`` the first field
    is kept as well (the label or id a ``JoinSource: Input`` filter carried through).

    Raises:
        ValueError: naming the line that holds no number or, when joined, only one field.
    """
    preds: list[float] = []
    first: list[str] | None = [] if joined else None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            preds.append(float(fields[-1].strip("[]")))
        except ValueError:
            raise ValueError(f"line {number}: no numeric prediction in {line[:80]!r}") from None
        if first is not None:
            if len(fields) < 2:
                raise ValueError(f"line {number}: expected 'first,prediction' but got {line[:80]!r}")
            first.append(fields[0])
    return Predictions(preds, first)


def prediction_value(text: str, field: str | None = None) -> float:
    """One prediction from one output record: a number, a JSON object's ``field``
    (``{"closest_cluster": 3}``), ``{"predictions": [one]}``, or a JSON list of class
    probabilities (image classification), read as its most probable class."""
    text = text.strip()
    if not text.startswith(("{", "[")):
        return float(text.split(",")[-1])
    doc = json.loads(text)
    if isinstance(doc, dict) and "predictions" in doc and isinstance(doc["predictions"], list):
        if len(doc["predictions"]) != 1:
            raise ValueError(f"expected one prediction per record, got {len(doc['predictions'])}")
        doc = doc["predictions"][0]
    if isinstance(doc, dict):
        key = field or ("score" if "score" in doc else None)
        if key is None or key not in doc:
            raise ValueError(f"prediction field {field!r} not in {sorted(doc)} (inference.prediction_field)")
        doc = doc[key]
    if isinstance(doc, list):
        if not doc:
            raise ValueError("empty prediction list")
        if len(doc) == 1:
            return float(doc[0])
        return float(max(range(len(doc)), key=lambda i: float(doc[i])))
    return float(doc)


def read_prediction_values(s3_client: Any, output_uri: str, field: str | None = None) -> list[float]:
    """Every record of every ``.out`` object under ``output_uri`` in key order, one value each."""
    values = []
    for number, line in enumerate(_read_text(s3_client, output_uri, ".out").splitlines(), start=1):
        if line.strip():
            try:
                values.append(prediction_value(line, field))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{output_uri}: record {number}: {exc}: {line[:80]!r}") from None
    return values


def objects_under(s3_client: Any, uri: str, suffix: str = "") -> list[str]:
    bucket, prefix = split_s3_uri(uri)
    keys: list[str] = []
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(
            o["Key"]
            for o in page.get("Contents", [])
            if o["Key"].endswith(suffix) and not o["Key"].endswith("/")
        )
    return sorted(keys)


def _read_text(s3_client: Any, uri: str, suffix: str = "") -> str:
    """All objects under ``uri`` (a prefix) or the object ``uri``, concatenated in key order."""
    bucket, _ = split_s3_uri(uri)
    keys = objects_under(s3_client, uri, suffix)
    if not keys:
        raise FileNotFoundError(f"no objects{f' ending in {suffix}' if suffix else ''} under {uri}")
    parts = []
    for key in keys:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        parts.append(body if body.endswith("\n") or not body else body + "\n")
    return "".join(parts)


def read_predictions(s3_client: Any, output_uri: str, *, joined: bool = False) -> Predictions:
    """Read and parse every ``.out`` object a transform job wrote under ``output_uri``."""
    return parse_predictions(_read_text(s3_client, output_uri, ".out"), joined=joined)


def read_labels(s3_client: Any, labels_uri: str) -> list[float]:
    """Labels written by ETL under ``test_labels/``: one number per line."""
    labels: list[float] = []
    for number, line in enumerate(_read_text(s3_client, labels_uri).splitlines(), start=1):
        if line.strip():
            try:
                labels.append(float(line.split(",")[0]))
            except ValueError:
                raise ValueError(f"{labels_uri}: line {number}: not a number: {line[:80]!r}") from None
    return labels


def evaluation_pairs(
    s3_client: Any, predictions_uri: str, labels_uri: str | None = None, field: str | None = None
) -> tuple[list[float], list[float]]:
    """``(y_true, y_pred)`` from a transform's output: joined ``label,prediction`` lines when
    ``labels_uri`` is ``None``, else predictions aligned line by line with ETL's ``test_labels``."""
    if labels_uri is None:
        predictions = read_predictions(s3_client, predictions_uri, joined=True)
        return predictions.labels, predictions.y_pred
    y_pred = read_prediction_values(s3_client, predictions_uri, field)
    labels = read_labels(s3_client, labels_uri)
    if len(labels) != len(y_pred):
        raise ValueError(
            f"{len(labels)} labels under {labels_uri} but {len(y_pred)} predictions under "
            f"{predictions_uri}: the transform dropped or split records"
        )
    return labels, y_pred


# ------------------------------------------------------------------------------------- report


def plot_predicted_vs_actual(
    y_true: Sequence[float] | Any,
    y_pred: Sequence[float] | Any,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Scatter of predicted against actual with the identity line, as a PNG.

    Uses matplotlib's object API with the Agg canvas, never pyplot: no global backend switch, no
    GUI, safe in a worker process that plots many reports.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    true = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    figure = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    ax.scatter(true, pred, s=12, alpha=0.6, edgecolors="none")
    low = float(min(true.min(), pred.min()))
    high = float(max(true.max(), pred.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1, linestyle="--", label="perfect")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    metrics = regression_metrics(true, pred)
    ax.set_title(title or f"n={int(metrics['n'])}  rmse={metrics['rmse']:.3g}  r2={metrics['r2']:.3g}")
    ax.legend(loc="upper left")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def model_quality_statistics(
    y_true: Sequence[float] | Any, y_pred: Sequence[float] | Any, *, resamples: int = 100, seed: int = 0
) -> dict[str, Any]:
    """Metrics in SageMaker's model-quality ``regression_metrics`` JSON, which the model registry
    shows for ``ModelMetrics.ModelQuality.Statistics``; standard deviations by a seeded bootstrap
    over at most 10 000 rows, so the cost stays bounded."""
    import numpy as np

    true = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    point = regression_metrics(true, pred)
    rng = np.random.default_rng(seed)
    size = min(len(true), 10_000)
    samples: dict[str, list[float]] = {k: [] for k in ("mae", "mse", "rmse", "r2")}
    for _ in range(resamples):
        idx = rng.integers(0, len(true), size=size)
        m = regression_metrics(true[idx], pred[idx])
        for key in samples:
            samples[key].append(m[key])
    return {
        "regression_metrics": {
            key: {"value": point[key], "standard_deviation": float(np.std(samples[key]))} for key in samples
        }
    }


def plot_confusion(y_true: Sequence[float] | Any, y_pred: Sequence[float] | Any, path: str | Path, *, task: str) -> Path:
    """Counts of (actual, predicted) classes - or (label, cluster) - as a PNG heatmap."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    true = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    if task == "binary":
        pred = (pred >= 0.5).astype(float)
    else:
        pred = np.rint(pred)
    rows, cols = np.unique(true), np.unique(pred)
    counts = np.array([[np.sum((true == r) & (pred == c)) for c in cols] for r in rows])
    figure = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    ax.imshow(counts, cmap="Blues")
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)), [f"{c:g}" for c in cols])
    ax.set_yticks(range(len(rows)), [f"{r:g}" for r in rows])
    ax.set_xlabel("cluster" if task == "clustering" else "predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"n={true.size}")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def task_quality_statistics(task: str, y_true: Sequence[float] | Any, y_pred: Sequence[float] | Any) -> dict[str, Any]:
    """Model-quality JSON for the registry: SageMaker's regression / binary / multiclass shapes
    (``{"<kind>_classification_metrics": {"accuracy": {"value", "standard_deviation"}}}``)."""
    if task == "regression":
        return model_quality_statistics(y_true, y_pred)
    import numpy as np

    true, pred = _pairs(y_true, y_pred)
    point = metrics_for_task(task, true, pred)
    rng = np.random.default_rng(0)
    keys = [k for k in point if k not in ("n", "clusters")]
    samples: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(50):
        idx = rng.integers(0, true.size, size=min(true.size, 10_000))
        m = metrics_for_task(task, true[idx], pred[idx])
        for k in keys:
            samples[k].append(m[k])
    section = {"binary": "binary_classification_metrics", "multiclass": "multiclass_classification_metrics",
               "clustering": "clustering_metrics"}[task]
    return {section: {k: {"value": point[k], "standard_deviation": float(np.std(samples[k]))} for k in keys}}


@dataclass(frozen=True)
class ReportUris:
    """Where :func:`write_report` put the report."""

    metrics_uri: str
    model_quality_uri: str
    plot_uri: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def write_report(
    s3_client: Any,
    report_uri: str,
    *,
    y_true: Sequence[float] | Any,
    y_pred: Sequence[float] | Any,
    metrics: Mapping[str, float] | None = None,
    decision: GateDecision | None = None,
    champion: Mapping[str, float] | None = None,
    extra: Mapping[str, Any] | None = None,
    task: str = "regression",
) -> ReportUris:
    """Upload ``evaluation.json`` (metrics, gate decision, champion), ``model_quality.json`` (the
    registry's format) and ``predicted_vs_actual.png`` under the ``report_uri`` prefix."""
    import tempfile

    metrics = dict(metrics) if metrics is not None else metrics_for_task(task, y_true, y_pred)
    bucket, key_prefix = split_s3_uri(report_uri if report_uri.endswith("/") else report_uri + "/")
    document = {
        "metrics": metrics,
        "gate": decision.to_dict() if decision is not None else None,
        "champion_metrics": dict(champion) if champion is not None else None,
        **(dict(extra) if extra else {}),
    }
    s3_client.put_object(
        Bucket=bucket,
        Key=key_prefix + METRICS_FILE,
        Body=json.dumps(document, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )
    s3_client.put_object(
        Bucket=bucket,
        Key=key_prefix + MODEL_QUALITY_FILE,
        Body=json.dumps(task_quality_statistics(task, y_true, y_pred), indent=2).encode(),
        ContentType="application/json",
    )
    with tempfile.TemporaryDirectory(prefix="mlpipeline-report-") as tmp:
        if task == "regression":
            png = plot_predicted_vs_actual(y_true, y_pred, Path(tmp) / PLOT_FILE)
        else:
            png = plot_confusion(y_true, y_pred, Path(tmp) / PLOT_FILE, task=task)
        s3_client.upload_file(
            str(png), bucket, key_prefix + PLOT_FILE, ExtraArgs={"ContentType": "image/png"}
        )
    base = f"s3://{bucket}/{key_prefix}"
    return ReportUris(
        metrics_uri=base + METRICS_FILE,
        model_quality_uri=base + MODEL_QUALITY_FILE,
        plot_uri=base + PLOT_FILE,
    )
