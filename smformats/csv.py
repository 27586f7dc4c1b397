"""Label-first, header-less CSV: the layout SageMaker's CSV-reading algorithms expect.

Built-in algorithms (XGBoost, Linear Learner, KNN...) and our BYOC regressor read ``text/csv``
training data as "label in the first column, no header, no index"; batch transform and
endpoints take the same rows without the label. These helpers write and read exactly that,
append-friendly so the ETL can stream chunk by chunk.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
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
    rows: list[list[float]] = []
    width: int | None = None
    try:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            fields = line.split(",")
            if width is None:
                width = len(fields)
            elif len(fields) != width:
                raise ValueError(f"line {number}: expected {width} fields, got {len(fields)}")
            try:
                rows.append([float(f) for f in fields])
            except ValueError:
                raise ValueError(f"line {number}: non-numeric field in {line[:80]!r}") from None
    finally:
        if isinstance(source, str | Path):
            handle.close()
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), width or 0)
    if not has_label:
        return None, matrix
    if matrix.shape[1] < 2 and len(rows):
        raise ValueError("a labelled CSV needs a label and at least one feature per line")
    return matrix[:, 0], matrix[:, 1:]
