"""xgboost_algo: reading the training channels and request payloads."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localmaker.builtins.runtime import ClientError

CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF = "csv", "libsvm", "parquet", "recordio-protobuf"
VALID_CONTENT_TYPES = [CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF, "text/csv", "text/libsvm", "text/x-libsvm",
                       "application/x-parquet", "application/x-recordio-protobuf"]


def get_content_type(content_type: str | None) -> str:
    """ContentType -> ``csv`` / ``libsvm`` / ``parquet`` / ``recordio-protobuf`` (missing means LIBSVM,
    as in the real image); ``label_size`` other than 1 and unknown types are the user's error."""
    if not content_type:
        return LIBSVM
    parts = [p.strip() for p in content_type.lower().split(";")]
    base, params = parts[0], {}
    for p in parts[1:]:
        if p:
            k, _, v = p.partition("=")
            params[k.strip()] = v.strip()
    if base in (CSV, "text/csv"):
        if "label_size" in params and params["label_size"] != "1":
            raise ClientError(f"{content_type} is not an accepted csv ContentType. "
                              "Optional parameter label_size must be equal to 1")
        return CSV
    if base in (LIBSVM, "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    if base in (PARQUET, "application/x-parquet"):
        return PARQUET
    if base in (RECORDIO_PROTOBUF, "application/x-recordio-protobuf"):
        return RECORDIO_PROTOBUF
    raise ClientError(f"{content_type} is not an accepted ContentType: {', '.join(VALID_CONTENT_TYPES)}.")


def validate_channels(channels: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Channel names as the real image's CreateAlgorithm spec: train (required), validation, code."""
    if "train" not in channels:
        raise ClientError("Missing required channel: train")
    out = {}
    for name, cfg in channels.items():
        if name not in ("train", "validation", "code"):
            raise ClientError(f"Extraneous channel found: {name}")
        cfg = dict(cfg)
        if not cfg.get("ContentType"):
            cfg["ContentType"] = "text/libsvm"
        if name != "code":
            get_content_type(cfg["ContentType"])
        out[name] = cfg
    return out


def data_files(root: Path) -> list[Path]:
    """The channel's data files: not hidden, not ``_SUCCESS``-style markers, not xgboost caches."""
    if not root.exists():
        return []
    if root.is_file():
        return [root]
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if not p.is_file() or any(part.startswith((".", "_")) for part in rel):
            continue
        if ".cache" in p.name and ("dtrain" in p.name or "dval" in p.name):
            continue
        out.append(p)
    return out


@dataclass
class Dataset:
    """Features (dense ndarray or scipy CSR), labels and optional instance weights of one channel."""

    features: Any
    labels: np.ndarray
    weights: np.ndarray | None = None

    @property
    def num_col(self) -> int:
        return int(self.features.shape[1])

    @property
    def num_row(self) -> int:
        return int(self.features.shape[0])


def csv_delimiter(line: str) -> str:
    """The delimiter of a CSV line as the real image finds it (``csv.Sniffer``); one column -> ``,``."""
    try:
        return csv.Sniffer().sniff(line, delimiters=",\t;| ").delimiter
    except csv.Error as exc:
        if not any(d in line.strip() for d in ",\t;|"):
            return ","
        raise ClientError(f"Could not determine delimiter on line {line[:50]}:\n{exc}") from None


def parse_csv_rows(text: str, delimiter: str, where: str) -> list[list[float]]:
    """Numbers per row; an empty cell is a missing value (NaN), as XGBoost reads CSV."""
    rows: list[list[float]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = []
        for j, cell in enumerate(line.rstrip("\r").split(delimiter), start=1):
            cell = cell.strip()
            try:
                row.append(float(cell) if cell else math.nan)
            except ValueError:
                raise ClientError(f"Failed to load csv data with exception:\n{where} line {i}, column {j}: "
                                  f"{cell[:40]!r} is not a number (CSV input has no header row and only "
                                  "numeric columns)") from None
        if rows and len(row) != len(rows[0]):
            raise ClientError(f"Failed to load csv data with exception:\n{where} line {i} has {len(row)} columns, "
                              f"the first line has {len(rows[0])}")
        rows.append(row)
    return rows


def load_csv(files: Sequence[Path], csv_weights: int = 0) -> Dataset | None:
    """Label in column 0 (weight in column 1 with ``csv_weights=1``), features after."""
    if not files:
        return None
    first = files[0].read_text(errors="replace").split("\n", 1)[0]
    delimiter = csv_delimiter(first)
    rows: list[list[float]] = []
    for f in files:
        part = parse_csv_rows(f.read_text(errors="replace"), delimiter, f.name)
        if rows and part and len(part[0]) != len(rows[0]):
            raise ClientError(f"Failed to load csv data with exception:\n{f.name} has {len(part[0])} columns, "
                              f"{files[0].name} has {len(rows[0])}")
        rows += part
    if not rows:
        return None
    data = np.asarray(rows, dtype=np.float32)
    skip = 2 if csv_weights == 1 else 1
    if data.shape[1] <= skip:
        raise ClientError(f"Failed to load csv data with exception:\nthe CSV rows have {data.shape[1]} column(s) "
                          "and no feature columns after the label")
    return Dataset(data[:, skip:], data[:, 0], data[:, 1] if csv_weights == 1 else None)


def parse_libsvm(text: str, where: str, with_labels: bool = True) -> tuple[list[float], list[float | None], list[int],
                                                                         list[int], list[float]]:
    """``<label>[:<weight>] <index>:<value> ...`` lines -> labels, weights, CSR row ptr, indices, values."""
    labels: list[float] = []
    weights: list[float | None] = []
    indptr, indices, values = [0], [], []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        try:
            if with_labels:
                head = tokens.pop(0).split(":")
                if len(head) > 2:
                    raise ValueError
                labels.append(float(head[0]))
                weights.append(float(head[1]) if len(head) == 2 else None)
            for tok in tokens:
                k, sep, v = tok.partition(":")
                if not sep:
                    raise ValueError
                if k == "qid":
                    continue
                idx = int(k)
                if idx < 0:
                    raise ValueError
                indices.append(idx)
                values.append(float(v))
        except (ValueError, IndexError):
            which = "First line" if n == 1 else f"Line {n}"
            raise ClientError(f"{which} '{line[:50]}...' of file '{where}' is not 'LIBSVM' format. "
                              "Please ensure the file is in 'LIBSVM' format.") from None
        indptr.append(len(indices))
    return labels, weights, indptr, indices, values


def load_libsvm(files: Sequence[Path]) -> Dataset | None:
    from scipy.sparse import csr_matrix

    labels: list[float] = []
    weights: list[float | None] = []
    indptr, indices, values = [0], [], []
    for f in files:
        lab, w, ptr, idx, val = parse_libsvm(f.read_text(errors="replace"), f.name)
        base = indptr[-1]
        labels += lab
        weights += w
        indptr += [base + p for p in ptr[1:]]
        indices += idx
        values += val
    if not labels:
        return None
    ncol = (max(indices) + 1) if indices else 1
    matrix = csr_matrix((np.asarray(values, dtype=np.float32), np.asarray(indices), np.asarray(indptr)),
                        shape=(len(labels), ncol))
    has_w = any(x is not None for x in weights)
    w_arr = np.asarray([1.0 if x is None else x for x in weights], dtype=np.float32) if has_w else None
    return Dataset(matrix, np.asarray(labels, dtype=np.float32), w_arr)


def load_parquet(files: Sequence[Path]) -> Dataset | None:
    import pandas as pd

    frames = []
    for f in files:
        try:
            frames.append(pd.read_parquet(f))
        except Exception as exc:  # noqa: BLE001 - any reader error is a data problem, named with the file
            raise ClientError(f"Failed to load parquet data with exception:\n{f.name}: {exc}") from None
    if not frames:
        return None
    try:
        data = np.vstack([fr.to_numpy(dtype=np.float32) for fr in frames])
    except (ValueError, TypeError) as exc:
        raise ClientError(f"Failed to load parquet data with exception:\n{exc}") from None
    if data.shape[0] == 0:
        return None
    return Dataset(data[:, 1:], data[:, 0])


def load_recordio(files: Sequence[Path]) -> Dataset | None:
    from smformats.recordio import RecordIOError, read_recordio_protobuf

    feats: list[tuple[float, ...]] = []
    labels: list[float] = []
    for f in files:
        try:
            with f.open("rb") as fh:
                for i, rec in enumerate(read_recordio_protobuf(fh)):
                    if not rec.label:
                        raise ClientError(f"Failed to load recordio-protobuf data: record {i} of {f.name} "
                                          "has no label")
                    feats.append(rec.features)
                    labels.append(rec.label[0])
        except RecordIOError as exc:
            raise ClientError(f"Failed to load recordio-protobuf data with exception:\n{f.name}: {exc}") from None
    if not feats:
        return None
    width = len(feats[0])
    if any(len(x) != width for x in feats):
        raise ClientError("Failed to load recordio-protobuf data: records have different feature counts")
    return Dataset(np.asarray(feats, dtype=np.float32), np.asarray(labels, dtype=np.float32))


def load_channel(root: Path, file_type: str, csv_weights: int = 0) -> Dataset | None:
    files = data_files(root)
    if file_type == CSV:
        return load_csv(files, csv_weights)
    if file_type == LIBSVM:
        return load_libsvm(files)
    if file_type == PARQUET:
        return load_parquet(files)
    return load_recordio(files)


def to_dmatrix(ds: Dataset, num_col: int) -> Any:
    """A DMatrix of ``num_col`` columns (LIBSVM channels may reach different maximum indices)."""
    import xgboost as xgb

    feats = ds.features
    if feats.shape[1] < num_col:
        if hasattr(feats, "tocsr"):
            from scipy.sparse import csr_matrix

            feats = csr_matrix((feats.data, feats.indices, feats.indptr), shape=(feats.shape[0], num_col))
        else:
            raise ClientError(f"The validation data has {feats.shape[1]} features, the training data {num_col}.")
    return xgb.DMatrix(feats, label=ds.labels, weight=ds.weights, missing=np.nan)
