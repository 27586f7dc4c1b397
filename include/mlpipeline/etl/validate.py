"""Validate: check a chunk's rows against the column schema; typed good rows, bad rows with reasons."""

from __future__ import annotations

from collections.abc import Mapping

from ..config import ColumnSpec
from .common import _LINE, _MISSING_TOKENS, _REASON, RawChunk, ValidatedChunk


def validate_chunk(
    chunk: RawChunk,
    columns: Mapping[str, ColumnSpec],
    *,
    id_column: str | None = None,
) -> ValidatedChunk:
    """Check every row against the schema; typed good rows and bad rows with reasons.

    A row may fail several checks; its ``reason`` lists them all, ``; ``-separated, so one look at
    the quarantine file tells the whole story. ``int`` columns come out as ``Int64``, ``float``
    columns as ``float64``; a nullable column's empty fields become its ``fill_value`` (or NA).
    """
    import numpy as np
    import pandas as pd

    raw = chunk.frame
    reasons = pd.Series("", index=raw.index, dtype=object)

    def flag(
        mask: pd.Series, name: str, suffix: str, values: pd.Series | None = None, *, quote: bool = False
    ) -> None:
        """Add ``{name}: {value}{suffix}`` (or ``{name}{suffix}`` without ``values``; the value
        ``repr``-quoted with ``quote``) to the reasons of rows in ``mask``; built for those rows
        only, since bad rows are usually few and formatting strings for every row is the
        expensive part."""
        if not mask.any():
            return
        rows = mask.index[mask.to_numpy()]
        if values is None:
            text: pd.Series | str = name + suffix
        else:
            shown = values.loc[rows].map(repr) if quote else values.loc[rows]
            text = name + ": " + shown + suffix
        current = reasons.loc[rows]
        reasons.loc[rows] = np.where(current.eq(""), text, current + "; " + text)

    typed: dict[str, pd.Series] = {}
    if id_column is not None:
        ids = raw[id_column].str.strip()
        flag(ids.eq(""), id_column, ": missing value")
        typed[id_column] = ids
    for name, spec in columns.items():
        text = raw[name].str.strip()
        missing = text.str.lower().isin(_MISSING_TOKENS)
        number = pd.to_numeric(text.where(~missing), errors="coerce")
        not_number = ~missing & (number.isna() | np.isinf(number))
        flag(not_number, name, " is not a finite number", text, quote=True)
        if not spec.nullable:
            flag(missing, name, ": missing value")
        ok = number.notna() & ~not_number
        if spec.type == "int":
            flag(ok & (number % 1 != 0), name, " is not an integer", text)
        if spec.min is not None:
            flag(ok & (number < spec.min), name, f" below min {spec.min:g}", text)
        if spec.max is not None:
            flag(ok & (number > spec.max), name, f" above max {spec.max:g}", text)
        if spec.nullable and spec.fill_value is not None:
            number = number.where(~missing, spec.fill_value)
        typed[name] = number

    bad_mask = reasons.ne("")
    good = pd.DataFrame({name: series[~bad_mask] for name, series in typed.items()})
    for name, spec in columns.items():
        good[name] = good[name].astype("Int64" if spec.type == "int" else "float64")

    bad = raw[bad_mask].copy()
    bad.insert(0, _REASON, reasons[bad_mask])
    bad = bad.reset_index()
    if chunk.malformed:
        source_columns = list(raw.columns)
        ragged = pd.DataFrame(
            [
                {_LINE: line, _REASON: reason, **dict(zip(source_columns, fields, strict=False))}
                for line, reason, fields in chunk.malformed
            ],
            columns=[_LINE, _REASON, *source_columns],
        )
        bad = (
            pd.concat([bad, ragged], ignore_index=True)
            .sort_values(_LINE, kind="stable")
            .reset_index(drop=True)
        )
    return ValidatedChunk(good=good, bad=bad)
