"""statistics.json and the constraints a baseline suggests, in Model Monitor's schemas.

The files are what downstream code already reads for Model Monitor (the SageMaker SDK's
``Statistics``/``Constraints``, SageMaker Studio, our pipeline), so the layout and field names are
Model Monitor's own: ``version``/``dataset.item_count``/``features[]`` with ``numerical_statistics``
(``common``, ``mean``, ``sum``, ``std_dev``, ``min``, ``max``, ``distribution.kll``) or
``string_statistics`` (``common``, ``distinct_count``, ``distribution.categorical``).

The numeric distribution is **an exact histogram in Model Monitor's KLL field layout, not a KLL
sketch**: ``kll.buckets`` are 10 equal-width buckets between min and max (the last one closed),
as Model Monitor reports them, and ``kll.sketch.data`` holds one compactor with the sorted values,
or 2048 evenly spaced quantiles when there are more (``k`` = 2048). That keeps the baseline
small while letting the analyzer rebuild the baseline CDF for the drift distance to within
1/2048. Like Deequ, ``std_dev`` is the population standard deviation.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from .table import Table, Typed, classify, infer_type

if TYPE_CHECKING:
    import numpy as np

SKETCH_K = 2048
SKETCH_C = 0.64
N_BUCKETS = 10
MAX_CATEGORIES = 1000  # categorical buckets kept per feature (most frequent first)
MAX_DOMAIN = 20  # distinct values up to which a String feature gets a domain constraint
NUMERIC_TYPES = ("Integral", "Fractional")


def classify_table(table: Table) -> dict[str, Typed]:
    """Type every column once; statistics and checks share the result."""
    return {name: classify(table.values[name]) for name in table.columns}


def dataset_statistics(table: Table, typed: dict[str, Typed] | None = None) -> dict[str, Any]:
    """The statistics.json document for a table."""
    typed = typed if typed is not None else classify_table(table)
    return {
        "version": 0.0,
        "dataset": {"item_count": table.n_rows},
        "features": [feature_statistics(name, typed[name], table.n_rows) for name in table.columns],
    }


def feature_statistics(name: str, typed: Typed, n_rows: int) -> dict[str, Any]:
    """One ``features[]`` entry: numerical for Integral/Fractional, string otherwise."""
    import numpy as np

    inferred = infer_type(typed.kinds)
    present = int(np.count_nonzero(typed.present))
    common = {"num_present": present, "num_missing": n_rows - present}
    entry: dict[str, Any] = {"name": name, "inferred_type": inferred}
    if inferred in NUMERIC_TYPES:
        values = np.sort(typed.numbers[typed.numeric])
        entry["numerical_statistics"] = {
            "common": common,
            "mean": float(values.mean()),
            "sum": float(values.sum()),
            "std_dev": float(values.std()),
            "min": float(values[0]),
            "max": float(values[-1]),
            "distribution": {"kll": kll_distribution(values)},
        }
        return entry
    counts = Counter(str(t) for t in typed.tokens[typed.present])
    order = sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))
    entry["string_statistics"] = {
        "common": common,
        "distinct_count": float(len(counts)),
        "distribution": {
            "categorical": {"buckets": [{"value": v, "count": c} for v, c in order[:MAX_CATEGORIES]]}
        },
    }
    return entry


def kll_distribution(sorted_values: np.ndarray) -> dict[str, Any]:
    """Exact 10-bucket histogram + a sample of the CDF, laid out like Model Monitor's ``kll``."""
    import numpy as np

    n = len(sorted_values)
    lo, hi = float(sorted_values[0]), float(sorted_values[-1])
    if lo == hi:
        buckets = [{"lower_bound": lo, "upper_bound": hi, "count": float(n)}]
    else:
        edges = np.linspace(lo, hi, N_BUCKETS + 1)
        counts, _ = np.histogram(sorted_values, bins=edges)
        buckets = [
            {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(counts[i])}
            for i in range(N_BUCKETS)
        ]
    if n <= SKETCH_K:
        sample = sorted_values
    else:
        sample = np.quantile(sorted_values, (np.arange(SKETCH_K) + 0.5) / SKETCH_K, method="inverted_cdf")
    return {
        "buckets": buckets,
        "sketch": {
            "parameters": {"c": SKETCH_C, "k": float(SKETCH_K)},
            "data": [[float(v) for v in sample]],
        },
    }


def suggested_completeness(present: int, total: int) -> float:
    """The completeness a baseline asks of future data.

    1.0 for a complete column. Otherwise, as Deequ's completeness suggestion does, the lower end
    of a 95% confidence interval of the observed fraction, floored to two decimals: traffic that
    is as complete as training must not be flagged because of sampling noise.
    """
    if total <= 0:
        return 1.0
    p = present / total
    if p >= 1.0:
        return 1.0
    bound = p - 1.96 * math.sqrt(p * (1 - p) / total)
    return max(0.0, math.floor(bound * 100) / 100)


def suggest_constraints(statistics: dict[str, Any], comparison_threshold: float = 0.1) -> dict[str, Any]:
    """constraints.json suggested from a baseline's statistics, as Model Monitor's baseline job does."""
    total = int(statistics.get("dataset", {}).get("item_count", 0))
    features = []
    for feat in statistics.get("features", []):
        inferred = feat.get("inferred_type", "Unknown")
        stats = feat.get("numerical_statistics") or feat.get("string_statistics") or {}
        present = int(stats.get("common", {}).get("num_present", 0))
        entry: dict[str, Any] = {
            "name": feat["name"],
            "inferred_type": inferred,
            "completeness": suggested_completeness(present, total),
        }
        if inferred in NUMERIC_TYPES and "numerical_statistics" in feat:
            entry["num_constraints"] = {"is_non_negative": bool(feat["numerical_statistics"]["min"] >= 0)}
        elif inferred == "String" and "string_statistics" in feat:
            s = feat["string_statistics"]
            buckets = s.get("distribution", {}).get("categorical", {}).get("buckets", [])
            if 0 < s.get("distinct_count", 0) <= MAX_DOMAIN and len(buckets) == s.get("distinct_count"):
                entry["string_constraints"] = {"domains": sorted(b["value"] for b in buckets)}
        features.append(entry)
    return {
        "version": 0.0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": float(comparison_threshold),
                "comparison_method": "Robust",
                "categorical_comparison_threshold": 0.1,
                "categorical_drift_method": "LInfinity",
            },
        },
    }
