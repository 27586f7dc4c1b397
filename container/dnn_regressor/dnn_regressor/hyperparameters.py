"""Hyperparameters: parsed from SageMaker's strings, validated with messages a user can act on.

SageMaker passes every hyperparameter as a string (tuning jobs too, e.g. ``"0.0031"`` for a
continuous range and ``"12"`` for an integer range). A typo'd name silently falling back to a
default wastes a training run, so unknown names are an error; names SageMaker itself injects
(``_tuning_objective_metric``, ``sagemaker_*``) are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ClientError

HEADER_CHOICES = ("auto", "true", "false")


@dataclass(frozen=True)
class Hyperparameters:
    """Validated training settings.

    Attributes:
        hidden_units: widths of the hidden Dense(relu) layers, input side first.
        learning_rate: Adam step size.
        epochs: upper bound on passes over the training data.
        batch_size: global batch per optimisation step, split evenly across hosts.
        dropout: dropout rate after each hidden layer (0 disables).
        early_stopping_patience: epochs without a better validation loss before stopping;
            0 disables early stopping (the best epoch's weights are still the ones saved).
        seed: seeds weight initialisation and shuffling, for repeatable runs.
        label: label column, a header name or a 0-based index (negative counts from the end).
        header: "auto" (detect), "true" or "false": whether CSV files start with a header row.
    """

    hidden_units: tuple[int, ...] = (64, 32)
    learning_rate: float = 0.001
    epochs: int = 100
    batch_size: int = 64
    dropout: float = 0.0
    early_stopping_patience: int = 10
    seed: int = 42
    label: str = "0"
    header: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden_units"] = list(self.hidden_units)
        return out


def _bad(name: str, raw: str, expected: str) -> ClientError:
    return ClientError(f"hyperparameter '{name}' must be {expected}, got '{raw}'")


def _int(name: str, raw: str, lo: int, hi: int) -> int:
    expected = f"an integer from {lo} to {hi}"
    try:
        value = float(raw.strip())
    except ValueError:
        raise _bad(name, raw, expected) from None
    if not math.isfinite(value) or value != int(value) or not lo <= int(value) <= hi:
        raise _bad(name, raw, expected)
    return int(value)


def _float(name: str, raw: str, lo: float, hi: float, *, lo_open: bool, hi_open: bool) -> float:
    expected = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    try:
        value = float(raw.strip())
    except ValueError:
        raise _bad(name, raw, expected) from None
    if not math.isfinite(value):
        raise _bad(name, raw, expected)
    if value < lo or (lo_open and value == lo) or value > hi or (hi_open and value == hi):
        raise _bad(name, raw, expected)
    return value


def _hidden_units(raw: str) -> tuple[int, ...]:
    expected = "a comma-separated list of 1 to 16 layer widths from 1 to 4096, e.g. '64,32'"
    text = raw.strip().strip("[]()").strip()
    if not text:
        raise _bad("hidden_units", raw, expected)
    units = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= 4096:
            raise _bad("hidden_units", raw, expected)
        units.append(int(part))
    if len(units) > 16:
        raise _bad("hidden_units", raw, expected)
    return tuple(units)


def _header(raw: str) -> str:
    value = raw.strip().lower()
    if value not in HEADER_CHOICES:
        raise _bad("header", raw, "one of " + ", ".join(f"'{c}'" for c in HEADER_CHOICES))
    return value


def _label(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise _bad("label", raw, "a column name or a 0-based column index")
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {
    "hidden_units": _hidden_units,
    "learning_rate": lambda r: _float("learning_rate", r, 0.0, 1.0, lo_open=True, hi_open=False),
    "epochs": lambda r: _int("epochs", r, 1, 100_000),
    "batch_size": lambda r: _int("batch_size", r, 1, 1_048_576),
    "dropout": lambda r: _float("dropout", r, 0.0, 1.0, lo_open=False, hi_open=True),
    "early_stopping_patience": lambda r: _int("early_stopping_patience", r, 0, 100_000),
    "seed": lambda r: _int("seed", r, 0, 2**31 - 1),
    "label": _label,
    "header": _header,
}


def is_platform_injected(name: str) -> bool:
    """Names SageMaker adds on its own (tuning, script mode) that are not ours to validate."""
    return name.startswith("_") or name.startswith("sagemaker_")


def parse_hyperparameters(raw: Mapping[str, Any]) -> Hyperparameters:
    """Validate every given value; report all unknown names at once so one fix suffices."""
    unknown = sorted(k for k in raw if k not in _PARSERS and not is_platform_injected(k))
    if unknown:
        raise ClientError(
            f"unknown hyperparameter(s) {', '.join(repr(u) for u in unknown)}; "
            f"this algorithm accepts {', '.join(sorted(_PARSERS))}"
        )
    values = {
        name: _PARSERS[name](value if isinstance(value, str) else str(value))
        for name, value in raw.items()
        if name in _PARSERS
    }
    return Hyperparameters(**values)
