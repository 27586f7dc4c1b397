"""Rules that span several keys or sections (the label is a column, the split sums to 1, a
tuning objective is a defined metric, ...), each reported against the key a user would change.

They run on the validated :class:`~.schema.PipelineConfig`; :func:`.layers.load_config` turns the
returned key paths into ``file: dotted.key: message`` problems with the layers' provenance.
"""

from __future__ import annotations

from .hyperparameters import hyperparameter_problems
from .messages import KeyPath
from .schema import CategoricalRange, ContinuousRange, IntegerRange, PipelineConfig, is_builtin_image


def cross_checks(cfg: PipelineConfig) -> list[tuple[KeyPath, str]]:
    """Rules spanning several keys, reported against the key a user would change."""
    problems: list[tuple[KeyPath, str]] = []
    data = cfg.data
    if data.label_column not in data.columns:
        problems.append(
            (
                ("data", "label_column"),
                f"{data.label_column!r} is not one of data.columns ({', '.join(data.columns)})",
            )
        )
    if data.id_column is not None and data.id_column in data.columns:
        problems.append(
            (
                ("data", "id_column"),
                f"{data.id_column!r} is a row key, not a feature: remove it from data.columns",
            )
        )
    for name, spec in data.columns.items():
        if spec.min is not None and spec.max is not None and spec.min > spec.max:
            problems.append((("data", "columns", name, "min"), f"must be <= max ({spec.min} > {spec.max})"))
        if spec.fill_value is not None and not spec.nullable:
            problems.append(
                (
                    ("data", "columns", name, "fill_value"),
                    "only applies to nullable columns: set nullable: true",
                )
            )
    if data.label_column in data.columns and data.columns[data.label_column].nullable:
        problems.append(
            (("data", "columns", data.label_column, "nullable"), "the label column cannot be nullable")
        )
    total = data.split.train + data.split.validation + data.split.test
    if abs(total - 1.0) > 1e-6:
        problems.append((("data", "split"), f"train + validation + test must be 1 (got {total:g})"))
    if data.batch_source_uri and not data.batch_id_column:
        problems.append((("data", "batch_id_column"), "required when data.batch_source_uri is set"))

    metric_names = [m.name for m in cfg.training.metric_definitions]
    if len(set(metric_names)) != len(metric_names):
        problems.append((("training", "metric_definitions"), "metric names must be unique"))

    tuning = cfg.tuning
    if tuning.enabled and tuning.objective is None:
        problems.append((("tuning", "objective"), "required when tuning.enabled is true"))
    if tuning.enabled and not tuning.parameter_ranges:
        problems.append(
            (("tuning", "parameter_ranges"), "at least one range is required when tuning.enabled is true")
        )
    builtin = is_builtin_image(cfg.training.image_uri) and not metric_names
    if tuning.objective is not None and not builtin and tuning.objective.metric not in metric_names:
        problems.append(
            (
                ("tuning", "objective", "metric"),
                f"{tuning.objective.metric!r} is not in training.metric_definitions ({', '.join(metric_names) or 'none'})",
            )
        )
    if tuning.max_parallel_jobs > tuning.max_jobs:
        problems.append(
            (
                ("tuning", "max_parallel_jobs"),
                f"must be <= tuning.max_jobs ({tuning.max_parallel_jobs} > {tuning.max_jobs})",
            )
        )
    for name, rng in tuning.parameter_ranges.items():
        key = ("tuning", "parameter_ranges", name)
        if isinstance(rng, IntegerRange | ContinuousRange):
            if rng.min >= rng.max:
                problems.append(((*key, "min"), f"must be < max ({rng.min} >= {rng.max})"))
            if rng.scaling in ("Logarithmic", "ReverseLogarithmic") and rng.min <= 0:
                problems.append(((*key, "min"), f"must be > 0 for {rng.scaling} scaling (got {rng.min})"))
            if rng.scaling == "ReverseLogarithmic" and rng.max >= 1:
                problems.append(
                    ((*key, "max"), f"must be < 1 for ReverseLogarithmic scaling (got {rng.max})")
                )
    if tuning.strategy == "Grid":
        not_categorical = [
            f"{n} ({r.type})"
            for n, r in tuning.parameter_ranges.items()
            if not isinstance(r, CategoricalRange)
        ]
        if not_categorical:
            problems.append(
                (
                    ("tuning", "strategy"),
                    f"Grid supports categorical ranges only; tuning.parameter_ranges has {', '.join(not_categorical)}",
                )
            )

    problems.extend(hyperparameter_problems(cfg))

    ev = cfg.evaluation
    if ev.primary_metric not in ev.metrics:
        problems.append(
            (("evaluation", "primary_metric"), f"{ev.primary_metric!r} is not in evaluation.metrics")
        )
    for threshold in ev.thresholds:
        if threshold.split("_", 1)[1] not in ev.metrics:
            problems.append(
                (
                    ("evaluation", "thresholds", threshold),
                    f"metric {threshold.split('_', 1)[1]!r} is not in evaluation.metrics",
                )
            )
    for name in ev.compare_metrics:
        if name not in ev.metrics:
            problems.append((("evaluation", "compare_metrics"), f"{name!r} is not in evaluation.metrics"))
    if cfg.endpoint.dev_name == cfg.endpoint.prod_name:
        problems.append(
            (("endpoint", "prod_name"), f"must differ from endpoint.dev_name ({cfg.endpoint.dev_name!r})")
        )
    return problems
