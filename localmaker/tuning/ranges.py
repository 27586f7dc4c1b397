"""Hyperparameter ranges: parsed and checked as SageMaker checks them, each value formatted as a trial gets it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import validation

MAX_PARAMETERS = 30


@dataclass
class Param:
    name: str
    kind: str  # Integer | Continuous | Categorical
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Linear"
    values: list[str] = field(default_factory=list)

    def fmt(self, v: Any) -> str:
        if self.kind == "Integer":
            return str(int(v))
        if self.kind == "Continuous":
            return repr(float(v))
        return str(v)

    def contains(self, s: str) -> bool:
        if self.kind == "Categorical":
            return s in self.values
        try:
            v = float(s)
        except ValueError:
            return False
        if self.kind == "Integer" and v != int(v):
            return False
        return self.low <= v <= self.high


def _number(name: str, which: str, raw: str, integer: bool) -> float:
    try:
        v = float(raw)
    except (TypeError, ValueError):
        v = math.nan
    if math.isnan(v) or math.isinf(v):
        raise validation(f"The {which} [{raw}] for hyperparameter [{name}] is not a valid number.")
    if integer and v != int(v):
        raise validation(f"The {which} [{raw}] for integer hyperparameter [{name}] must be an integer.")
    return v


def parse_ranges(ranges: dict[str, Any]) -> list[Param]:
    params: list[Param] = []
    if ranges.get("AutoParameters"):
        raise validation("AutoParameters (Autotune) are not supported by localmaker; give explicit parameter ranges.")
    for kind in ("Integer", "Continuous"):
        for r in ranges.get(f"{kind}ParameterRanges", []):
            name = r["Name"]
            integer = kind == "Integer"
            low = _number(name, "MinValue", r["MinValue"], integer)
            high = _number(name, "MaxValue", r["MaxValue"], integer)
            if low > high:
                raise validation(
                    f"The MinValue [{r['MinValue']}] for hyperparameter [{name}] must be less than or equal to "
                    f"its MaxValue [{r['MaxValue']}]."
                )
            scaling = r.get("ScalingType", "Auto")
            if scaling == "Auto":
                scaling = "Linear"
            if scaling == "Logarithmic" and low <= 0:
                raise validation(
                    f"Logarithmic scaling works only for ranges that have only values greater than 0: "
                    f"hyperparameter [{name}] has MinValue [{r['MinValue']}]."
                )
            if scaling == "ReverseLogarithmic":
                if integer:
                    raise validation(
                        f"ReverseLogarithmic scaling is supported only for continuous hyperparameters: [{name}]."
                    )
                if not (0 <= low and high < 1):
                    raise validation(
                        "ReverseLogarithmic scaling works only for ranges that are entirely within the range "
                        f"0 <= x < 1.0: hyperparameter [{name}]."
                    )
            params.append(Param(name, kind, low, high, scaling))
    for r in ranges.get("CategoricalParameterRanges", []):
        params.append(Param(r["Name"], "Categorical", values=[str(v) for v in r["Values"]]))
    names = [p.name for p in params]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise validation(f"Hyperparameter names must be unique across parameter ranges; repeated: {dup}.")
    if not params:
        raise validation("ParameterRanges must contain at least one hyperparameter range.")
    if len(params) > MAX_PARAMETERS:
        raise validation(
            f"The number of hyperparameters to tune ({len(params)}) exceeds the maximum of {MAX_PARAMETERS}."
        )
    return params
