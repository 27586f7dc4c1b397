"""Hyperparameters against their declarations (``training.hyperparameter_spec``): the checks
:func:`.checks.cross_checks` runs, so a wrong override fails the run's first task (a
:class:`~.messages.ConfigError`, which retries never fix) instead of the training container after
extract and ETL; and the one-line summaries the trigger form shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from .messages import KeyPath
from .schema import (
    CategoricalRange,
    ContinuousRange,
    HyperparameterSpec,
    HyperparameterValue,
    IntegerRange,
    PipelineConfig,
)

#: A value still holding a ``{placeholder}`` the run fills later (``"{rows.train}"``).
_PLACEHOLDER = re.compile(r"^\{[a-z_.]+\}$")


def _number(value: HyperparameterValue, kind: str) -> float | None:
    """``value`` as a number of ``kind`` (``int``/``float``), strings included; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            return None
    else:
        parsed = float(value)
    if not math.isfinite(parsed) or (kind == "int" and parsed != int(parsed)):
        return None
    return parsed


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


def _bounds(spec: HyperparameterSpec) -> str:
    if spec.min is not None and spec.max is not None and not (spec.min_exclusive or spec.max_exclusive):
        return f"from {_num(spec.min)} to {_num(spec.max)}"
    low = "" if spec.min is None else f"{'>' if spec.min_exclusive else '>='} {_num(spec.min)}"
    high = "" if spec.max is None else f"{'<' if spec.max_exclusive else '<='} {_num(spec.max)}"
    return " and ".join(part for part in (low, high) if part)


def allowed(spec: HyperparameterSpec) -> str:
    """What ``spec`` accepts, in words: ``an integer >= 1``, ``one of 'gbtree', 'dart'``."""
    if spec.values is not None:
        return "one of " + ", ".join(repr(v) for v in spec.values)
    kind = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}[spec.type]
    if spec.pattern is not None:
        return f"{kind} matching {spec.pattern}"
    bounds = _bounds(spec)
    return f"{kind} {bounds}" if bounds else kind


def _in_bounds(number: float, spec: HyperparameterSpec) -> bool:
    if spec.min is not None and (number < spec.min or (spec.min_exclusive and number == spec.min)):
        return False
    return spec.max is None or not (number > spec.max or (spec.max_exclusive and number == spec.max))


def value_problem(value: HyperparameterValue, spec: HyperparameterSpec) -> str | None:
    """Why ``value`` is not allowed by ``spec`` (None when it is)."""
    if isinstance(value, str) and _PLACEHOLDER.match(value):
        return None  # filled from the run's data later
    ok: bool
    if spec.values is not None:
        ok = value in spec.values or str(value) in [str(v) for v in spec.values]
    elif spec.type in ("int", "float"):
        number = _number(value, spec.type)
        ok = number is not None and _in_bounds(number, spec)
    elif spec.type == "bool":
        ok = isinstance(value, bool) or str(value).lower() in ("true", "false")
    else:
        # a number is a string to the job (SageMaker passes strings): "64" and 64 both mean 64
        ok = not isinstance(value, bool) and (spec.pattern is None or re.fullmatch(spec.pattern, str(value)) is not None)
    return None if ok else f"must be {allowed(spec)} (got {value!r})"


def hyperparameter_problems(cfg: PipelineConfig) -> list[tuple[KeyPath, str]]:
    """``training.hyperparameters`` and ``tuning.parameter_ranges`` against
    ``training.hyperparameter_spec``; nothing to check for a model that declares none."""
    specs: Mapping[str, HyperparameterSpec] = cfg.training.hyperparameter_spec
    if not specs:
        return []
    problems: list[tuple[KeyPath, str]] = []
    names = ", ".join(specs)
    for name, value in cfg.training.hyperparameters.items():
        key = ("training", "hyperparameters", name)
        if name not in specs:
            problems.append((key, f"unknown hyperparameter {name!r} = {value!r} (this model's are: {names})"))
        elif (problem := value_problem(value, specs[name])) is not None:
            problems.append((key, problem))
    for name, spec in specs.items():
        if spec.required and name not in cfg.training.hyperparameters:
            problems.append(
                (("training", "hyperparameters"), f"{name!r} is required ({allowed(spec)})")
            )
    for name, rng in cfg.tuning.parameter_ranges.items():
        key = ("tuning", "parameter_ranges", name)
        if name not in specs:
            problems.append((key, f"unknown hyperparameter {name!r} (this model's are: {names})"))
            continue
        ends: list[tuple[str, HyperparameterValue]]
        if isinstance(rng, IntegerRange | ContinuousRange):
            ends = [("min", rng.min), ("max", rng.max)]
        else:
            assert isinstance(rng, CategoricalRange)
            ends = [("values", v) for v in rng.values]
        for field, value in ends:
            if (problem := value_problem(value, specs[name])) is not None:
                problems.append(((*key, field), problem))
    return problems


def form_summary(cfg: PipelineConfig) -> str:
    """The trigger form's text for the ``hyperparameters`` param: each configured or declared
    hyperparameter with its default and what it accepts."""
    hps = cfg.training.hyperparameters
    specs = cfg.training.hyperparameter_spec
    lines = []
    for name in [*hps, *(n for n in specs if n not in hps)]:
        default = f"default {hps[name]!r}" if name in hps else "not set"
        accepts = f"; {allowed(specs[name])}" if name in specs else ""
        lines.append(f"{name}: {default}{accepts}")
    return "; ".join(lines)
