"""kmeans: reading the training channels and request payloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from localmaker.builtins.runtime import (
    ClientError,
    TrainingEnv,
)
from smformats.recordio import CONTENT_TYPE as RECORDIO

CSV = "text/csv"


def read_recordio_file(path: Path, where: str) -> np.ndarray:
    """Dense float32 rows of one RecordIO-protobuf file (labels ignored: K-Means is unsupervised)."""
    from smformats.recordio import RecordIOError, read_recordio_protobuf

    try:
        with path.open("rb") as fh:
            rows = [r.features for r in read_recordio_protobuf(fh)]
    except RecordIOError as exc:
        raise ClientError(f"{where}: not valid RecordIO-protobuf: {exc}. Set the channel's ContentType "
                          "to text/csv for CSV data.") from None
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise ClientError(f"{where}: records have different numbers of features {sorted(widths)}")
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), widths.pop() if widths else 0)


def read_csv_file(path: Path, where: str, label_size: int) -> np.ndarray:
    """Header-less numeric CSV; the first ``label_size`` columns are labels and dropped."""
    from smformats.csv import CsvRowError, numeric_rows

    with path.open("r", encoding="utf-8", errors="replace") as fh:
        try:
            full = [row for _, row in numeric_rows(fh)]
        except CsvRowError as exc:
            if exc.column is not None:
                raise ClientError(f"{where}, line {exc.lineno}: {exc.cell!r} is not a number "
                                  "(K-Means reads header-less numeric CSV)") from None
            raise ClientError(f"{where}, line {exc.lineno}: {exc.got} columns, line 1 has {exc.width}") from None
    width = len(full[0]) if full else None
    rows = [row[label_size:] for row in full]
    if width is not None and width <= label_size:
        raise ClientError(f"{where}: {width} columns leave no features after label_size={label_size}")
    arr = np.asarray(rows, dtype=np.float32)
    return arr.reshape(len(rows), (width or 0) - label_size if rows else 0)


def read_channel(env: TrainingEnv, name: str, feature_dim: int, allow_empty: bool = False) -> np.ndarray:
    """All records of a channel as an (n, feature_dim) float32 matrix, checked against feature_dim."""
    ctype = env.content_type(name, RECORDIO)
    if ctype not in (RECORDIO, CSV):
        raise ClientError(f"Channel '{name}': content type '{ctype}' is not supported by K-Means; "
                          f"use {RECORDIO} or {CSV}.")
    root = env.channel_dir(name)
    if allow_empty and (not root.is_dir() or not any(p.is_file() for p in root.rglob("*"))):
        return np.zeros((0, feature_dim), dtype=np.float32)
    label_size = 0
    if ctype == CSV:
        raw = env.content_type_params(name).get("label_size", "0")
        try:
            label_size = int(raw)
            if label_size < 0:
                raise ValueError
        except ValueError:
            raise ClientError(f"Channel '{name}': label_size={raw!r} must be a non-negative integer") from None
    parts = []
    for path in env.channel_files(name):
        where = f"channel '{name}' file {path.relative_to(root)}"
        arr = read_recordio_file(path, where) if ctype == RECORDIO else read_csv_file(path, where, label_size)
        if len(arr) and arr.shape[1] != feature_dim:
            extra = f" after dropping label_size={label_size} column(s)" if ctype == CSV else ""
            raise ClientError(
                f"The hyperparameter feature_dim={feature_dim} does not match the data: {where} has "
                f"{arr.shape[1]} features per record{extra}. Set feature_dim to the number of features."
            )
        if len(arr):  # an empty file adds nothing (and has no width to check)
            parts.append(arr)
    data = np.concatenate(parts) if parts else np.zeros((0, feature_dim), dtype=np.float32)
    if not np.isfinite(data).all():
        row = int(np.argwhere(~np.isfinite(data))[0][0])
        raise ClientError(f"Channel '{name}': record {row + 1} has a NaN or infinite feature")
    if not len(data) and not allow_empty:
        raise ClientError(f"Channel '{name}' has no records.")
    return data
