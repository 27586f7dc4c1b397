"""The BYOM data set: load (``sklearn://`` or ``file://`` CSV, 0/1 labels), split (stratified,
seeded), and the CSV forms it travels in between tasks and to the endpoint."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import PROJECT_ROOT
from .common import BringYourOwnModelError
from .config import DataSettings


@dataclass(frozen=True)
class Dataset:
    """Features (float64 rows), 0/1 labels and feature names."""

    features: Any
    labels: Any
    feature_names: list[str]

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])


def load_dataset(data: DataSettings) -> Dataset:
    """Read the configured source; labels must be 0/1 (binary:logistic's contract)."""
    import numpy as np

    scheme, _, rest = data.source.partition("://")
    if scheme == "sklearn":
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{rest}")()
        features = np.asarray(bunch.data, dtype=np.float64)
        labels = np.asarray(bunch.target, dtype=np.float64)
        names = [str(n) for n in getattr(bunch, "feature_names", [])] or [f"f{i}" for i in range(features.shape[1])]
    else:
        path = Path(rest)
        path = path if path.is_absolute() else PROJECT_ROOT / path
        features, labels, names = _read_labelled_csv(path, data.label_column)
    values = set(np.unique(labels).tolist())
    if not values <= {0.0, 1.0} or len(values) != 2:
        shown = sorted(values)[:10]
        raise BringYourOwnModelError(
            f"{data.source}: binary:logistic needs labels 0 and 1, the data has {shown}"
            + (" ..." if len(values) > 10 else "")
        )
    if not np.isfinite(features).all():
        raise BringYourOwnModelError(f"{data.source}: features contain NaN or infinite values")
    return Dataset(features=features, labels=labels, feature_names=names)


def _read_labelled_csv(path: Path, label_column: str) -> tuple[Any, Any, list[str]]:
    import numpy as np

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BringYourOwnModelError(f"file://{path}: cannot read: {exc.strerror or exc}") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or label_column not in header:
        raise BringYourOwnModelError(f"file://{path}: no {label_column!r} column in the header {header}")
    label_at = header.index(label_column)
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            rows.append([float(v) for v in row])
        except ValueError:
            raise BringYourOwnModelError(f"file://{path}: line {line}: not all numbers: {row[:5]}") from None
        if len(row) != len(header):
            raise BringYourOwnModelError(f"file://{path}: line {line}: {len(row)} fields, header has {len(header)}")
    table = np.asarray(rows, dtype=np.float64)
    names = [n for i, n in enumerate(header) if i != label_at]
    return np.delete(table, label_at, axis=1), table[:, label_at], names


def split_dataset(dataset: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Stratified and seeded: the same rows are held out on every run (and every retry)."""
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features, dataset.labels, test_size=test_fraction, random_state=seed, stratify=dataset.labels
    )
    return (
        Dataset(x_train, y_train, dataset.feature_names),
        Dataset(x_test, y_test, dataset.feature_names),
    )


def to_labelled_csv(dataset: Dataset) -> str:
    """``label,f1,...`` lines without a header; ``repr`` floats so the exact values round-trip."""
    return "".join(
        f"{int(label)}," + ",".join(repr(float(v)) for v in row) + "\n"
        for label, row in zip(dataset.labels, dataset.features, strict=True)
    )


def from_labelled_csv(text: str, feature_names: Sequence[str] | None = None) -> Dataset:
    import numpy as np

    table = np.asarray([[float(v) for v in line.split(",")] for line in text.splitlines() if line.strip()])
    if table.size == 0:
        raise BringYourOwnModelError("the CSV has no rows")
    names = list(feature_names or [f"f{i}" for i in range(table.shape[1] - 1)])
    return Dataset(features=table[:, 1:], labels=table[:, 0], feature_names=names)


def feature_rows_csv(features: Any) -> list[str]:
    """One ``text/csv`` line per row, features only: what the built-in container scores."""
    return [",".join(repr(float(v)) for v in row) for row in features]
