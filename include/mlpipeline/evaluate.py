"""Evaluation: the champion, the quality gate and the report (the metrics are :mod:`.metrics`).

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

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import codec, s3
from .metrics import metrics_for_task, predicted_labels, quality_statistics, regression_metrics
from .sagemaker_requests import METRIC_PROPERTY_PREFIX

#: Metrics where a larger value is better; all others are errors (smaller is better).
HIGHER_IS_BETTER = frozenset({"r2", "accuracy", "f1", "auc", "purity"})
METRICS_FILE = "evaluation.json"
MODEL_QUALITY_FILE = "model_quality.json"
PLOT_FILE = "predicted_vs_actual.png"


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
    """Parse batch transform text output (CSV: :func:`.codec.decode_predictions`).

    One line per record; the prediction is the last comma-separated field. With ``joined=True``
    the first field is kept as well (the label or id a ``JoinSource: Input`` filter carried through).

    Raises:
        ValueError: naming the line that holds no number or, when joined, only one field.
    """
    if joined:
        pairs = codec.decode_joined(text)
        return Predictions([p for _, p in pairs], [first for first, _ in pairs])
    return Predictions(codec.decode_predictions(text, codec.CSV))


def read_prediction_values(s3_client: Any, output_uri: str, field: str | None = None) -> list[float]:
    """Every record of every ``.out`` object under ``output_uri`` in key order, one value each
    (:func:`.codec.record_value`: the transform's output type is read from each line)."""
    try:
        return codec.decode_records(_read_text(s3_client, output_uri, ".out"), field)
    except codec.ResponseError as exc:
        raise ValueError(f"{output_uri}: {exc}") from None


def _read_text(s3_client: Any, uri: str, suffix: str = "") -> str:
    """All objects under ``uri`` (a prefix) or the object ``uri``, concatenated in key order."""
    objects = s3.list_uris(s3_client, uri, suffix)
    if not objects:
        raise FileNotFoundError(f"no objects{f' ending in {suffix}' if suffix else ''} under {uri}")
    parts = []
    for obj in objects:
        body = s3.get_text(s3_client, obj)
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


def plot_confusion(y_true: Sequence[float] | Any, y_pred: Sequence[float] | Any, path: str | Path, *, task: str) -> Path:
    """Counts of (actual, predicted) classes - or (label, cluster) - as a PNG heatmap."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    true = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    pred = predicted_labels(pred, binary=task == "binary")
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
    base = s3.as_prefix(report_uri)
    document = {
        "metrics": metrics,
        "gate": decision.to_dict() if decision is not None else None,
        "champion_metrics": dict(champion) if champion is not None else None,
        **(dict(extra) if extra else {}),
    }
    s3.put_json(s3_client, base + METRICS_FILE, document, sort_keys=True)
    s3.put_json(s3_client, base + MODEL_QUALITY_FILE, quality_statistics(task, y_true, y_pred))
    with tempfile.TemporaryDirectory(prefix="mlpipeline-report-") as tmp:
        if task == "regression":
            png = plot_predicted_vs_actual(y_true, y_pred, Path(tmp) / PLOT_FILE)
        else:
            png = plot_confusion(y_true, y_pred, Path(tmp) / PLOT_FILE, task=task)
        s3.upload_file(s3_client, png, base + PLOT_FILE, content_type="image/png")
    return ReportUris(
        metrics_uri=base + METRICS_FILE,
        model_quality_uri=base + MODEL_QUALITY_FILE,
        plot_uri=base + PLOT_FILE,
    )
