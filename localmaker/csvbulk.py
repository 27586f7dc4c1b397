"""Field selection over a whole batch of CSV records at once, for batch transform's DataProcessing.

Applying InputFilter / JoinSource / OutputFilter record by record costs ~1.5 us a record each way
in Python, more than the model's own decode + forward + encode. When every record of a batch is
plain (ASCII, no quotes, no carriage returns), all have the same number of fields and the
JSONPath selects by index or slice only, the result is a gather of byte ranges: numpy finds every
field boundary in one pass and copies the selected fields with their separators. Anything else
returns None, and the caller's record-by-record path (with its exact csv quoting and its error
messages naming the record) runs instead; the two agree byte for byte where both apply.
"""

from __future__ import annotations

from typing import Any

from .jsonpath import apply_path

COMMA, NEWLINE = 44, 10


def select(
    records: list[bytes], steps: list[tuple[str, Any]], left: list[bytes] | None = None
) -> list[bytes] | None:
    """Each record's fields (after ``left``'s fields, when given: a join) selected by ``steps``.

    ``records`` and ``left`` hold one record each per item, without line breaks. Returns one CSV
    line per record, or None where the bulk path does not apply.
    """
    lines = select_lines(records, steps, left)
    return None if lines is None else lines.split(b"\n")[:-1]


def select_lines(
    records: list[bytes], steps: list[tuple[str, Any]], left: list[bytes] | None = None
) -> bytes | None:
    """What :func:`select` returns, as one buffer of newline-terminated lines."""
    if not records or any(kind == "key" for kind, _ in steps):
        return None
    if left is not None and len(left) != len(records):
        return None
    import numpy as np

    tables = []
    for part in (left, records):
        if part is None:
            continue
        table = _table(np, b"\n".join(part) + b"\n", len(part))
        if table is None:
            return None
        tables.append(table)
    if len(tables) == 1:
        arr, starts, ends = tables[0]
    else:
        (a1, s1, e1), (a2, s2, e2) = tables
        arr = np.concatenate([a1, a2])
        starts = np.hstack([s1, s2 + len(a1)])
        ends = np.hstack([e1, e2 + len(a1)])
    columns = _columns(starts.shape[1], steps)
    if columns is None:
        return None
    if len(columns) == 1 and bool((ends[:, columns[0]] == starts[:, columns[0]]).any()):
        return None  # a lone empty field, which csv.writer writes as ""
    return _gather(np, arr, starts[:, columns], ends[:, columns])


def _table(np: Any, buf: bytes, n: int) -> tuple[Any, Any, Any] | None:
    """``buf``'s bytes and each line's field (start, end) offsets, shape (lines, fields); None
    unless all ``n`` lines are plain and non-empty with the same number of fields."""
    if not buf.isascii() or b'"' in buf or b"\r" in buf:
        return None
    arr = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(arr == NEWLINE)
    if len(newlines) != n:
        return None
    commas = np.flatnonzero(arr == COMMA)
    per_line = np.diff(np.searchsorted(commas, newlines), prepend=0)
    k = int(per_line[0]) + 1
    if bool((per_line != k - 1).any()):
        return None
    line_starts = np.concatenate([[0], newlines[:-1] + 1])
    if bool((newlines == line_starts).any()):
        return None  # an empty line: the csv path reads it as no fields at all
    starts = np.empty((n, k), dtype=np.int64)
    ends = np.empty((n, k), dtype=np.int64)
    starts[:, 0] = line_starts
    ends[:, -1] = newlines
    if k > 1:
        inner = commas.reshape(n, k - 1)
        starts[:, 1:] = inner + 1
        ends[:, :-1] = inner
    return arr, starts, ends


def _columns(k: int, steps: list[tuple[str, Any]]) -> list[int] | None:
    """The column numbers the JSONPath selects from ``k`` fields; None where it fails (the caller's
    path then reports the failing record)."""
    try:
        chosen = apply_path(list(range(k)), steps)
    except (IndexError, TypeError, KeyError):
        return None
    columns = chosen if isinstance(chosen, list) else [chosen]
    return columns or None


def _gather(np: Any, arr: Any, starts: Any, ends: Any) -> bytes:
    """The selected fields, line by line, joined by commas, each line ending in a newline.

    Each field is copied with the byte after it (a comma or newline in the source), which is then
    overwritten with the separator the output needs there.
    """
    s = starts.ravel()
    lengths = ends.ravel() - s + 1
    stops = np.cumsum(lengths)
    index = np.repeat(s - (stops - lengths), lengths) + np.arange(int(stops[-1]))
    out = arr[index]
    out[stops - 1] = COMMA
    out[stops[starts.shape[1] - 1 :: starts.shape[1]] - 1] = NEWLINE
    return out.tobytes()
