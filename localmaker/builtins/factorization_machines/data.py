"""factorization_machines: reading the training channels and request payloads."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from localmaker.builtins.runtime import ClientError, TrainingEnv
from smformats.recordio import CONTENT_TYPE as RECORDIO

from .model import BINARY


@dataclass
class Row:
    keys: np.ndarray  # int64 column indices
    values: np.ndarray  # float32
    width: int | None  # the sparse tensor's shape[0], or the dense width
    label: list[float] | None


def parse_record(payload: bytes) -> Row:
    """One ``aialgs.data.Record``: features under ``values`` (dense, or sparse with keys + shape), label."""
    from smformats import recordio as rio

    features, labels = rio.decode_tensors(payload)
    if rio.VALUES_KEY not in features:
        raise ValueError(f"no {rio.VALUES_KEY!r} features entry (keys: {sorted(features)})")
    tensor = features[rio.VALUES_KEY]
    values, keys, shape = tensor.values, tensor.keys, tensor.shape
    if keys:
        if len(keys) != len(values):
            raise ValueError(f"sparse tensor has {len(keys)} keys but {len(values)} values")
        row = Row(np.asarray(keys, dtype=np.int64), np.asarray(values, dtype=np.float32),
                  int(shape[0]) if shape else None, None)
    else:
        row = Row(np.arange(len(values), dtype=np.int64), np.asarray(values, dtype=np.float32), len(values), None)
    label = labels.get(rio.VALUES_KEY)
    if label is not None:
        lv, lk, lshape = label.values, label.keys, label.shape
        if lk:  # a sparse label: densify
            dense = [0.0] * (int(lshape[0]) if lshape else max(lk) + 1)
            for k, v in zip(lk, lv, strict=True):
                dense[k] = v
            lv = dense
        row.label = list(lv)
    return row


def iter_rows(stream: Any) -> Iterator[Row]:
    from smformats.recordio import RecordIOError, iter_recordio

    for index, payload in enumerate(iter_recordio(stream)):
        try:
            yield parse_record(payload)
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise RecordIOError(f"record {index}: invalid aialgs.data.Record protobuf: {exc}") from None


def to_csr(rows: list[Row], feature_dim: int, where: str,
           error: Callable[[str], Exception] = ClientError) -> sp.csr_matrix:
    """Stack rows into a (n, feature_dim) CSR matrix, checking every row against feature_dim."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    for i, row in enumerate(rows):
        if row.width is not None and row.width != feature_dim:
            raise error(f"{where}: record {i + 1} has {row.width} features (tensor shape) but feature_dim is "
                        f"{feature_dim}.")
        if len(row.keys) and (row.keys.max() >= feature_dim or row.keys.min() < 0):
            raise error(f"{where}: record {i + 1} has feature index {int(row.keys.max())}, outside "
                        f"feature_dim={feature_dim}.")
        if not np.isfinite(row.values).all():
            raise error(f"{where}: record {i + 1} has a NaN or infinite feature.")
        indptr[i + 1] = indptr[i] + len(row.keys)
    indices = np.concatenate([r.keys for r in rows]) if rows else np.zeros(0, dtype=np.int64)
    data = np.concatenate([r.values for r in rows]) if rows else np.zeros(0, dtype=np.float32)
    m = sp.csr_matrix((data.astype(np.float64), indices, indptr), shape=(len(rows), feature_dim))
    m.sum_duplicates()
    return m


def read_channel(env: TrainingEnv, name: str, hp: dict[str, Any]) -> tuple[sp.csr_matrix, np.ndarray]:
    from smformats.recordio import RecordIOError

    ctype = env.content_type(name, RECORDIO)
    if ctype not in (RECORDIO, "application/x-recordio"):
        raise ClientError(
            f"Content type '{ctype}' of channel '{name}' is not supported: Factorization Machines trains on "
            "application/x-recordio-protobuf (dense or sparse Float32 tensors) only."
        )
    rows: list[Row] = []
    root = env.channel_dir(name)
    for path in env.channel_files(name):
        try:
            with path.open("rb") as fh:
                rows.extend(iter_rows(fh))
        except RecordIOError as exc:
            raise ClientError(f"Channel '{name}', file {path.relative_to(root)}: not valid RecordIO-protobuf: "
                              f"{exc}") from None
    if not rows:
        raise ClientError(f"Channel '{name}' has no records.")
    x = to_csr(rows, hp["feature_dim"], f"Channel '{name}'")
    missing = next((i for i, r in enumerate(rows) if r.label is None), None)
    if missing is not None:
        raise ClientError(f"Channel '{name}': record {missing + 1} has no label. Factorization Machines is "
                          "supervised: put the label in each record.")
    sizes = {len(r.label or ()) for r in rows}
    if sizes != {1}:
        raise ClientError(f"Channel '{name}': each record must have exactly one label, found sizes {sorted(sizes)}.")
    y = np.asarray([r.label[0] for r in rows if r.label], dtype=np.float64)
    if not np.isfinite(y).all():
        raise ClientError(f"Channel '{name}': labels contain NaN or infinite values.")
    if hp["predictor_type"] == BINARY:
        bad = y[(y != 0) & (y != 1)]
        if bad.size:
            raise ClientError(f"Channel '{name}': label {bad[0]:g} is not valid for predictor_type "
                              "'binary_classifier'; labels must be 0 or 1.")
    return x, y


def _json_instance(item: Any, i: int) -> Row:
    """One instance: ``[...]``, ``{"features": [...]}`` or ``{"data": {"features": {"values", "keys", "shape"}}}``."""
    from localmaker.builtins.serving import HttpError

    if isinstance(item, dict) and "data" in item:
        try:
            feats = item["data"]["features"]
            values = [float(v) for v in feats["values"]]
            keys = feats.get("keys")
            shape = feats.get("shape")
        except (KeyError, TypeError, ValueError):
            raise HttpError(400, f"instance {i}: expected data.features with numeric 'values'") from None
        if keys is None:
            return Row(np.arange(len(values)), np.asarray(values, dtype=np.float32), len(values), None)
        try:
            key_arr = np.asarray([int(k) for k in keys], dtype=np.int64)
            width = int(shape[0]) if shape else None
        except (TypeError, ValueError, IndexError):
            raise HttpError(400, f"instance {i}: 'keys' and 'shape' must be integers") from None
        if len(key_arr) != len(values):
            raise HttpError(400, f"instance {i}: {len(key_arr)} keys but {len(values)} values")
        return Row(key_arr, np.asarray(values, dtype=np.float32), width, None)
    if isinstance(item, dict):
        if "features" not in item:
            raise HttpError(400, f"instance {i}: expected 'features' or 'data'")
        item = item["features"]
    if not isinstance(item, list):
        raise HttpError(400, f"instance {i}: expected a list of numbers")
    try:
        values = [float(v) for v in item]
    except (TypeError, ValueError):
        raise HttpError(400, f"instance {i}: features must be numbers") from None
    return Row(np.arange(len(values)), np.asarray(values, dtype=np.float32), len(values), None)


def decode(body: bytes, content_type: str, feature_dim: int) -> sp.csr_matrix:
    from localmaker.builtins import serving

    ctype = serving.media_type(content_type)
    if ctype == serving.JSON:
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise serving.HttpError(400, f"the body is not valid JSON: {exc}") from None
        items = doc["instances"] if isinstance(doc, dict) and "instances" in doc else [doc]
        if not isinstance(items, list) or not items:
            raise serving.HttpError(400, "'instances' must be a non-empty list")
        rows = [_json_instance(item, i) for i, item in enumerate(items, start=1)]
    elif ctype == serving.JSONLINES:
        rows = [_json_instance(item, i) for i, item in serving.json_lines(body)]
    elif ctype in (RECORDIO, "application/x-recordio"):
        from smformats.recordio import RecordIOError

        try:
            rows = list(iter_rows(io.BytesIO(body)))
        except RecordIOError as exc:
            raise serving.HttpError(400, f"the body is not RecordIO-protobuf: {exc}") from None
    else:
        raise serving.unsupported_content_type(ctype, [serving.JSON, serving.JSONLINES, RECORDIO])
    if not rows:
        raise serving.HttpError(400, "the request has no records")

    def bad(message: str) -> serving.HttpError:
        return serving.HttpError(400, message)

    return to_csr(rows, feature_dim, "request", error=bad)
