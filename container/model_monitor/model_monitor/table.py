"""Columns of raw tokens, and how a token is typed the way Model Monitor types it.

Model Monitor (Deequ underneath) reads every value as text and classifies it: ``Integral``
(``[+-]?digits``), ``Fractional`` (a decimal or exponent number), otherwise ``String``; a column
is ``Unknown`` when nothing is present, ``String`` when any present value is a string,
``Fractional`` when any is fractional, else ``Integral``. Keeping the raw text (instead of letting
a CSV parser coerce types) is what makes ``"3.0"`` Fractional and ``"abc"`` in a numeric column
detectable, which the data-type check depends on.

Missing means: an empty field, JSON ``null``, or the tokens ``nan``/``NaN``/``null``/``None``
that serializers write for missing values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MonitorError

if TYPE_CHECKING:
    import numpy as np

MISSING, INTEGRAL, FRACTIONAL, STRING = 0, 1, 2, 3
MISSING_TOKENS = frozenset({"", "nan", "NaN", "NAN", "null", "NULL", "None"})
_INTEGRAL = re.compile(r"[+-]?\d+")
_FRACTIONAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")


@dataclass
class Table:
    """A data set as named columns of raw tokens (``str``, or ``None`` when missing).

    Attributes:
        columns: names in data-set order (position matters for unnamed capture columns).
        values: name -> one token per row.
        n_rows: the row count (every column has this length).
    """

    columns: list[str]
    values: dict[str, list[str | None]]
    n_rows: int

    @classmethod
    def empty(cls) -> Table:
        return cls([], {}, 0)

    def drop(self, name: str) -> Table:
        """The table without one column (the label, in a baseline)."""
        return Table(
            [c for c in self.columns if c != name],
            {c: v for c, v in self.values.items() if c != name},
            self.n_rows,
        )


@dataclass
class Typed:
    """One column, classified token by token.

    Attributes:
        kinds: per row MISSING/INTEGRAL/FRACTIONAL/STRING.
        numbers: per row the numeric value, NaN unless INTEGRAL or FRACTIONAL.
        tokens: per row the stripped token ("" when missing).
    """

    kinds: np.ndarray
    numbers: np.ndarray
    tokens: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return self.kinds != MISSING

    @property
    def numeric(self) -> np.ndarray:
        return (self.kinds == INTEGRAL) | (self.kinds == FRACTIONAL)


def token_kind(token: str) -> int:
    """Classify one stripped token."""
    if token in MISSING_TOKENS:
        return MISSING
    if _INTEGRAL.fullmatch(token):
        return INTEGRAL
    if _FRACTIONAL.fullmatch(token):
        return FRACTIONAL
    return STRING


def classify(values: Sequence[Any]) -> Typed:
    """Type every token of a column; work is per distinct token, so repeated values are cheap."""
    import numpy as np

    cleaned = np.array([v.strip() if isinstance(v, str) else "" for v in values], dtype=object)
    if cleaned.size == 0:
        return Typed(np.zeros(0, dtype=np.int8), np.zeros(0, dtype=float), cleaned)
    # distinct tokens via a dict, not np.unique on fixed-width unicode: one huge payload
    # column (a JSON-encoded image) must not cost rows x longest-token memory
    index: dict[str, int] = {}
    inverse = np.fromiter(
        (index.setdefault(t, len(index)) for t in cleaned), dtype=np.int64, count=cleaned.size
    )
    uniques = list(index)
    kinds_u = np.array([token_kind(t) for t in uniques], dtype=np.int8)
    numbers_u = np.full(len(uniques), np.nan)
    for i, (tok, kind) in enumerate(zip(uniques, kinds_u, strict=True)):
        if kind in (INTEGRAL, FRACTIONAL):
            number = float(tok)
            if math.isfinite(number):
                numbers_u[i] = number
            else:  # "1e999": a number no statistic can use
                kinds_u[i] = STRING
    return Typed(kinds_u[inverse], numbers_u[inverse], cleaned)


def infer_type(kinds: np.ndarray) -> str:
    """Deequ's column-type rule, as Model Monitor reports it in ``inferred_type``."""
    import numpy as np

    if not np.any(kinds != MISSING):
        return "Unknown"
    if np.any(kinds == STRING):
        return "String"
    if np.any(kinds == FRACTIONAL):
        return "Fractional"
    return "Integral"


def to_token(value: Any) -> str | None:
    """A JSON value as the text a CSV would have carried, so both encodings type alike."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return None if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def data_files(root: Path) -> list[Path]:
    """Every regular, non-hidden file under ``root``, in a stable order (nested folders included)."""
    if not root.exists():
        return []
    if root.is_file():
        return [root]
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not any(part.startswith((".", "_")) for part in rel.parts):
            files.append(path)
    return files


def read_csv_files(files: Iterable[Path], header: bool, feature_names: list[str] | None) -> Table:
    """Baseline CSVs -> Table of raw text; every file must agree on the columns."""
    import pandas as pd

    columns: list[str] | None = None
    chunks: list[dict[str, list[str | None]]] = []
    n_rows = 0
    for path in files:
        try:
            frame = pd.read_csv(
                path,
                header=0 if header else None,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=True,
                encoding="utf-8",
            )
        except pd.errors.EmptyDataError:
            continue
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise MonitorError(f"{path} is not readable as CSV: {' '.join(str(exc).split())}") from exc
        if header:
            names = [str(c).strip() for c in frame.columns]
        elif feature_names is not None:
            if len(feature_names) != frame.shape[1]:
                raise MonitorError(
                    f"{path} has {frame.shape[1]} columns but feature_names lists {len(feature_names)}: "
                    f"{','.join(feature_names)}"
                )
            names = list(feature_names)
        else:  # Model Monitor's names for header-less columns
            names = [f"_c{i}" for i in range(frame.shape[1])]
        if columns is None:
            columns = names
        elif names != columns:
            raise MonitorError(
                f"{path} has columns {names} but the first file has {columns}; all files of a data set "
                "must share one layout"
            )
        chunks.append(
            {
                name: [v if isinstance(v, str) else None for v in frame.iloc[:, i].tolist()]
                for i, name in enumerate(names)
            }
        )
        n_rows += len(frame)
    if columns is None:
        return Table.empty()
    values = {name: [v for chunk in chunks for v in chunk[name]] for name in columns}
    return Table(columns, values, n_rows)


def read_json_lines(files: Iterable[Path]) -> Table:
    """JSON-lines files of objects -> Table; columns in first-seen order, absent keys missing."""
    rows: list[dict[str, Any]] = []
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise MonitorError(f"{path}:{number} is not JSON ({exc.msg})") from exc
                if not isinstance(obj, dict):
                    raise MonitorError(f"{path}:{number} must be a JSON object of feature -> value")
                rows.append(obj)
    return table_from_named_rows(rows)


def table_from_named_rows(rows: list[dict[str, Any]]) -> Table:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    values = {name: [to_token(row.get(name)) for row in rows] for name in columns}
    return Table(list(columns), values, len(rows))
