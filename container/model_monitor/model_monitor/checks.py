"""Evaluate a window of traffic against a baseline: Model Monitor's checks and descriptions.

Checks, with Model Monitor's ``constraint_check_type`` names:

* ``missing_column_check`` / ``extra_column_check``: fewer / more columns than the baseline (one
  violation per missing or extra column, named in ``feature_name``).
* ``data_type_check``: the share of present values that fit the baseline type is below
  ``datatype_check_threshold`` (1.0 = every value). A Fractional feature accepts integers; an
  Integral feature accepts whole-valued decimals such as ``2.0``, because JSON serializers write
  floats for integer features and the value is the same (a deliberate leniency).
* ``completeness_check``: the present share is below the feature's ``completeness``.
* ``categorical_values_check``: for a String feature with ``domains``, the share of values in the
  domain is below ``domain_content_threshold``.
* ``baseline_drift_check``: the distribution distance to the baseline exceeds the threshold.
  Numerical features: ``linf`` (default) is the L-infinity distance between the baseline and
  current CDFs, the distance Model Monitor uses (the two-sample Kolmogorov-Smirnov statistic);
  ``psi`` is the population stability index over the baseline's 10 buckets. String features: the
  L-infinity distance between the category frequencies (``categorical_drift_method`` LInfinity),
  against ``categorical_comparison_threshold``.
  ``comparison_method: Robust`` (the default Model Monitor writes) additionally requires the
  distance to be statistically significant (two-sample KS critical value at 95% for the two
  sample sizes), so a small window cannot raise an alarm on sampling noise alone; ``Simple``
  compares with the threshold only. AWS does not publish its Robust rule; this is ours.

Thresholds: a feature's ``monitoringConfigOverrides`` wins, then the ``drift_threshold``
environment variable (numerical only), then the constraints' ``monitoring_config``, then Model
Monitor's defaults. ``evaluate_constraints: Disabled`` turns every check off and
``perform_comparison: Disabled`` the drift check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import MonitorError
from .stats import NUMERIC_TYPES, suggest_constraints
from .table import FRACTIONAL, INTEGRAL, Table, Typed

if TYPE_CHECKING:
    import numpy as np

KS_C_ALPHA_05 = math.sqrt(-math.log(0.05 / 2) / 2)  # 1.3581: two-sample KS at alpha = 0.05
PSI_EPSILON = 1e-4


@dataclass
class DriftResult:
    """One feature's distance to the baseline, kept for the report and the plot.

    Attributes:
        feature / kind: the name and ``numerical`` or ``categorical``.
        method: ``linf``, ``psi`` or ``linf-categorical``.
        distance / threshold: the comparison made.
        critical: the significance bound a Robust comparison also required (None when not used).
        drifted: whether it became a violation.
        n_baseline / n_current: sample sizes behind the distance.
        baseline / current: what the plot draws (numeric samples, or value -> frequency maps).
    """

    feature: str
    kind: str
    method: str
    distance: float
    threshold: float
    critical: float | None
    drifted: bool
    n_baseline: int
    n_current: int
    baseline: Any = field(repr=False, default=None)
    current: Any = field(repr=False, default=None)

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "method": self.method,
            "distance": round(self.distance, 6),
            "threshold": self.threshold,
            "significance_bound": None if self.critical is None else round(self.critical, 6),
            "drifted": self.drifted,
            "n_baseline": self.n_baseline,
            "n_current": self.n_current,
        }


@dataclass
class Evaluation:
    """The outcome of the checks: violations in Model Monitor's schema, plus the drift details."""

    violations: list[dict[str, str]] = field(default_factory=list)
    drift: list[DriftResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, feature: str, check: str, description: str) -> None:
        self.violations.append(
            {"feature_name": feature, "constraint_check_type": check, "description": description}
        )


def pct(fraction: float) -> str:
    """A share as Model Monitor prints it: ``100.0``, ``99.7175``."""
    return repr(round(fraction * 100, 4))


def ks_distance(baseline_sorted: np.ndarray, current: np.ndarray) -> float:
    """L-infinity distance between two empirical CDFs (the two-sample KS statistic)."""
    import numpy as np

    cur = np.sort(current)
    points = np.concatenate([baseline_sorted, cur])
    cdf_b = np.searchsorted(baseline_sorted, points, side="right") / len(baseline_sorted)
    cdf_c = np.searchsorted(cur, points, side="right") / len(cur)
    return float(np.max(np.abs(cdf_b - cdf_c)))


def psi_distance(buckets: list[dict[str, Any]], current: np.ndarray) -> float:
    """Population stability index over the baseline buckets; values beyond them fall in the ends."""
    import numpy as np

    base = np.array([b["count"] for b in buckets], dtype=float)
    if len(buckets) == 1:
        lo, hi = buckets[0]["lower_bound"], buckets[0]["upper_bound"]
        inside = np.count_nonzero((current >= lo) & (current <= hi))
        base = np.array([0.0, base[0], 0.0])
        cur = np.array([np.count_nonzero(current < lo), inside, np.count_nonzero(current > hi)], dtype=float)
    else:
        inner = np.array([b["upper_bound"] for b in buckets[:-1]], dtype=float)
        idx = np.searchsorted(inner, current, side="right")
        # numpy.histogram's closed last bucket: a value equal to an inner edge goes right
        cur = np.bincount(idx, minlength=len(buckets)).astype(float)
    p = np.maximum(base / max(base.sum(), 1.0), PSI_EPSILON)
    q = np.maximum(cur / max(cur.sum(), 1.0), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_critical(n_baseline: int, n_current: int) -> float:
    """The distance two same-distribution samples of these sizes exceed only 5% of the time."""
    return KS_C_ALPHA_05 * math.sqrt((n_baseline + n_current) / (n_baseline * n_current))


def _enabled(value: Any, default: bool = True) -> bool:
    if value is None:
        return default
    return str(value).strip().lower() in ("enabled", "true")


def _number(*candidates: Any, default: float) -> float:
    for value in candidates:
        if value is None:
            continue
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return default


def evaluate(
    table: Table,
    typed: dict[str, Typed],
    baseline_statistics: dict[str, Any] | None,
    constraints: dict[str, Any] | None,
    drift_threshold: float | None = None,
    drift_method: str = "linf",
) -> Evaluation:
    """All checks for one window; an empty window has nothing to violate."""
    result = Evaluation()
    if constraints is None:
        if baseline_statistics is None:
            raise MonitorError("analyze needs baseline_statistics or baseline_constraints")
        constraints = suggest_constraints(baseline_statistics)
        result.notes.append("no baseline_constraints: constraints suggested from baseline_statistics")
    config = constraints.get("monitoring_config") or {}
    if not _enabled(config.get("evaluate_constraints")):
        result.notes.append("monitoring_config.evaluate_constraints is Disabled: no checks run")
        return result
    if table.n_rows == 0:
        return result

    features = [f for f in constraints.get("features", []) if isinstance(f, dict) and "name" in f]
    names = [f["name"] for f in features]
    current = set(table.columns)
    baseline_names = set(names)
    missing = [n for n in names if n not in current]
    extra = [n for n in table.columns if n not in baseline_names]
    counts = f"Number of columns in current dataset: {len(table.columns)}, Number of columns in baseline constraints: {len(names)}"
    for name in missing:
        result.add(name, "missing_column_check", f"There are missing columns in current dataset. {counts}")
    for name in extra:
        result.add(name, "extra_column_check", f"There are extra columns in current dataset. {counts}")

    dist = config.get("distribution_constraints") or {}
    compare = _enabled(dist.get("perform_comparison"))
    robust = str(dist.get("comparison_method", "Robust")).strip().lower() == "robust"
    categorical_method = str(dist.get("categorical_drift_method", "LInfinity"))
    if compare and categorical_method.lower() != "linfinity":
        result.notes.append(f"categorical_drift_method {categorical_method} is not supported; used LInfinity")
    base_stats = {f.get("name"): f for f in (baseline_statistics or {}).get("features", [])}

    for feat in features:
        name = feat["name"]
        if name not in current:
            continue
        col = typed[name]
        overrides = feat.get("monitoringConfigOverrides") or {}
        inferred = feat.get("inferred_type", "Unknown")
        present = int(col.present.sum())
        _check_type(
            result,
            name,
            inferred,
            col,
            present,
            _number(
                overrides.get("datatype_check_threshold"), config.get("datatype_check_threshold"), default=1.0
            ),
        )
        _check_completeness(result, name, feat, present, table.n_rows)
        if inferred == "String" and isinstance(feat.get("string_constraints"), dict):
            _check_domain(
                result,
                name,
                feat["string_constraints"].get("domains"),
                col,
                present,
                _number(
                    overrides.get("domain_content_threshold"),
                    config.get("domain_content_threshold"),
                    default=1.0,
                ),
            )
        if compare and name in base_stats and present:
            threshold_num = _number(
                overrides.get("comparison_threshold"),
                drift_threshold,
                dist.get("comparison_threshold"),
                default=0.1,
            )
            threshold_cat = _number(
                overrides.get("categorical_comparison_threshold"),
                dist.get("categorical_comparison_threshold"),
                default=0.1,
            )
            drift = _drift(name, base_stats[name], col, threshold_num, threshold_cat, drift_method, robust)
            if drift is None:
                continue
            result.drift.append(drift)
            if drift.drifted:
                kind = "Numerical" if drift.kind == "numerical" else "Categorical"
                how = " (psi)" if drift.method == "psi" else ""
                result.add(
                    name,
                    "baseline_drift_check",
                    f"{kind} distance{how}: {drift.distance:.6g} exceeds {kind.lower()} threshold: {drift.threshold:g}",
                )
    return result


def _check_type(
    result: Evaluation, name: str, inferred: str, col: Typed, present: int, threshold: float
) -> None:
    import numpy as np

    if inferred not in NUMERIC_TYPES or present == 0:
        return
    if inferred == "Integral":
        whole = (col.kinds == FRACTIONAL) & (np.mod(np.nan_to_num(col.numbers), 1.0) == 0)
        matches = int(np.count_nonzero((col.kinds == INTEGRAL) | whole))
    else:
        matches = int(np.count_nonzero(col.numeric))
    share = matches / present
    if share < threshold:
        result.add(
            name,
            "data_type_check",
            f"Data type match requirement is not met. Expected data type: {inferred}, Expected match: "
            f"{pct(threshold)}%. Observed: Only {pct(share)}% of data is {inferred}.",
        )


def _check_completeness(
    result: Evaluation, name: str, feat: dict[str, Any], present: int, n_rows: int
) -> None:
    expected = _number(feat.get("completeness"), default=1.0)
    observed = present / n_rows
    if observed < expected - 1e-12:
        result.add(
            name,
            "completeness_check",
            f"Data completeness requirement is not met. Expected completeness: {pct(expected)}%. "
            f"Observed: Only {pct(observed)}% of data is present.",
        )


def _check_domain(
    result: Evaluation, name: str, domains: Any, col: Typed, present: int, threshold: float
) -> None:
    if not isinstance(domains, list) or not domains or present == 0:
        return
    domain = {str(d) for d in domains}
    values = [str(t) for t in col.tokens[col.present]]
    unseen = sorted({v for v in values if v not in domain})
    share = sum(1 for v in values if v in domain) / present
    if share < threshold:
        shown = ", ".join(repr(v) for v in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        result.add(
            name,
            "categorical_values_check",
            f"Categorical values requirement is not met. Expected: {pct(threshold)}% of values in the "
            f"baseline domain. Observed: Only {pct(share)}% of data is in the domain; unseen values: {shown}",
        )


def _drift(
    name: str,
    base: dict[str, Any],
    col: Typed,
    threshold_num: float,
    threshold_cat: float,
    method: str,
    robust: bool,
) -> DriftResult | None:
    import numpy as np

    if "numerical_statistics" in base:
        numeric = base["numerical_statistics"]
        kll = numeric.get("distribution", {}).get("kll", {})
        data = kll.get("sketch", {}).get("data") or []
        sample = np.sort(np.array([v for compactor in data for v in compactor], dtype=float))
        current = col.numbers[col.numeric]
        n_base = int(numeric.get("common", {}).get("num_present", len(sample)))
        if sample.size == 0 or current.size == 0 or n_base == 0:
            return None
        if method == "psi" and kll.get("buckets"):
            distance = psi_distance(kll["buckets"], current)
            critical = None
        else:
            method = "linf"
            distance = ks_distance(sample, current)
            critical = ks_critical(n_base, current.size) if robust else None
        drifted = distance > threshold_num and (critical is None or distance > critical)
        return DriftResult(
            name,
            "numerical",
            method,
            distance,
            threshold_num,
            critical,
            drifted,
            n_base,
            int(current.size),
            baseline=sample,
            current=current,
        )
    if "string_statistics" in base:
        buckets = base["string_statistics"].get("distribution", {}).get("categorical", {}).get("buckets", [])
        n_base = int(base["string_statistics"].get("common", {}).get("num_present", 0))
        if not buckets or n_base == 0:
            return None
        base_freq = {str(b["value"]): float(b["count"]) / n_base for b in buckets}
        tokens = [str(t) for t in col.tokens[col.present]]
        cur_freq: dict[str, float] = {}
        for t in tokens:
            cur_freq[t] = cur_freq.get(t, 0.0) + 1.0 / len(tokens)
        distance = max(
            abs(base_freq.get(k, 0.0) - cur_freq.get(k, 0.0)) for k in set(base_freq) | set(cur_freq)
        )
        critical = ks_critical(n_base, len(tokens)) if robust else None
        drifted = distance > threshold_cat and (critical is None or distance > critical)
        return DriftResult(
            name,
            "categorical",
            "linf-categorical",
            distance,
            threshold_cat,
            critical,
            drifted,
            n_base,
            len(tokens),
            baseline=base_freq,
            current=cur_freq,
        )
    return None
