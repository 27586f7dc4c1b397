"""Label-first, header-less CSV: the layout SageMaker's CSV-reading algorithms expect.

Built-in algorithms (XGBoost, Linear Learner, KNN...) and our BYOC regressor read ``text/csv``
training data as "label in the first column, no header, no index"; batch transform and
endpoints take the same rows without the label. These helpers write and read exactly that,
append-friendly so the ETL can stream chunk by chunk.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # pragma: no cover - typing only; pandas/numpy are imported where used
    import numpy as np
    import pandas as pd

CONTENT_TYPE = "text/csv"


def algorithm_columns(label: str | None, features: Sequence[str]) -> list[str]:
    """Column order the algorithm reads: label first (when there is one), then the features."""
    return ([label] if label is not None else []) + [f for f in features if f != label]


def write_algorithm_csv(
    frame: pd.DataFrame,
    target: str | Path | TextIO,
    *,
    label: str | None,
    features: Sequence[str],
    append: bool = False,
) -> int:
    """Write ``frame`` label-first without header or index; returns the rows written.

    ``label=None`` writes features only (inference input). ``append=True`` adds to an existing
    file, which is how the ETL streams chunks into one channel file.
    """
    columns = algorithm_columns(label, features)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"frame lacks columns {missing} needed for the algorithm CSV")
    if isinstance(target, str | Path):
        with open(target, "a" if append else "w", encoding="utf-8", newline="") as fh:
            frame.to_csv(fh, columns=columns, header=False, index=False, lineterminator="\n")
    else:
        frame.to_csv(target, columns=columns, header=False, index=False, lineterminator="\n")
    return len(frame)


def write_csv_with_header(frame: pd.DataFrame, target: str | Path, *, append: bool = False) -> int:
    """Write a CSV with a header line (written only when the file is new or empty).

    For human-facing files such as the quarantine, where column names matter more than layout.
    """
    path = Path(target)
    header = not (append and path.exists() and path.stat().st_size > 0)
    with open(path, "a" if append else "w", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, header=header, index=False, lineterminator="\n")
    return len(frame)


class CsvRowError(ValueError):
    """A line of header-less numeric CSV is malformed. ``lineno`` is 1-based; a non-numeric cell
    sets ``column`` (1-based) and ``cell``, a line of the wrong length ``width`` (the first line's)
    and ``got``. Readers turn it into their own wording."""

    def __init__(
        self, lineno: int, line: str, *, column: int | None = None, cell: str | None = None,
        width: int | None = None, got: int | None = None,
    ) -> None:
        self.lineno, self.line, self.column, self.cell, self.width, self.got = lineno, line, column, cell, width, got
        if column is not None:
            super().__init__(f"line {lineno}, column {column}: {cell!r} is not a number")
        else:
            super().__init__(f"line {lineno}: expected {width} fields, got {got}")


def numeric_rows(lines: Iterable[str]) -> Iterator[tuple[int, list[float]]]:
    """``(line number, values)`` per non-blank line of header-less, comma-separated numbers; every
    line must have as many fields as the first.

    Raises:
        CsvRowError: the first non-numeric cell (checked first) or line of another length.
    """
    width: int | None = None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cells = line.rstrip("\r\n").split(",")
        try:
            row = [float(c) for c in cells]
        except ValueError:
            column = next(j for j, c in enumerate(cells, start=1) if not _is_float(c))
            raise CsvRowError(lineno, line, column=column, cell=cells[column - 1].strip()) from None
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise CsvRowError(lineno, line, width=width, got=len(row))
        yield lineno, row


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_algorithm_csv(
    source: str | Path | TextIO | bytes,
    *,
    has_label: bool = True,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Read a label-first, header-less CSV into ``(labels or None, features)`` float arrays.

    Raises:
        ValueError: a row with a different field count or a non-numeric field, naming the line.
    """
    import numpy as np

    if isinstance(source, bytes):
        handle: Any = io.StringIO(source.decode("utf-8"))
    elif isinstance(source, str | Path):
        handle = open(source, encoding="utf-8")
    else:
        handle = source
    try:
        rows = [row for _, row in numeric_rows(handle)]
    except CsvRowError as exc:
        if exc.column is not None:
            raise ValueError(f"line {exc.lineno}: non-numeric field in {exc.line.strip()[:80]!r}") from None
        raise ValueError(str(exc)) from None
    finally:
        if isinstance(source, str | Path):
            handle.close()
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(rows[0]) if rows else 0)
    if not has_label:
        return None, matrix
    if matrix.shape[1] < 2 and len(rows):
        raise ValueError("a labelled CSV needs a label and at least one feature per line")
    return matrix[:, 0], matrix[:, 1:]
