"""kmeans: the model and its file, shared by training and serving."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "model_algo-1"


def assign(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest center and the squared Euclidean distance to it, per row."""
    x64 = x.astype(np.float64, copy=False)
    c64 = centers.astype(np.float64, copy=False)
    d2 = (x64 * x64).sum(1)[:, None] - 2.0 * x64 @ c64.T + (c64 * c64).sum(1)[None, :]
    idx = d2.argmin(1)
    best = np.maximum(d2[np.arange(len(x64)), idx], 0.0)
    return idx, best


_LIST_MAGIC = 0x112
_V1_MAGIC, _V2_MAGIC, _V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
_DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8, 6: np.int64}


def save_ndarray_list(path: Path, arrays: list[np.ndarray]) -> None:
    """MXNet's ``mx.nd.save(path, [array, ...])`` format (dense, CPU, V2 records, no names)."""
    out = io.BytesIO()
    out.write(struct.pack("<QQQ", _LIST_MAGIC, 0, len(arrays)))
    for arr in arrays:
        a = np.ascontiguousarray(arr, dtype=np.float32)
        out.write(struct.pack("<Ii", _V2_MAGIC, 0))  # magic, storage type default (dense)
        out.write(struct.pack(f"<I{a.ndim}q", a.ndim, *a.shape))
        out.write(struct.pack("<iii", 1, 0, 0))  # context cpu(0), type flag float32
        out.write(a.astype("<f4").tobytes())
    out.write(struct.pack("<Q", 0))  # no names
    path.write_bytes(out.getvalue())


def load_ndarray_list(data: bytes) -> list[np.ndarray]:
    """Read an ``mx.nd.save`` file of dense arrays (V1/V2/V3 records), e.g. a real K-Means model_algo-1."""
    pos = 0

    def take(fmt: str) -> tuple[Any, ...]:
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise ValueError("truncated NDArray file")
        vals = struct.unpack_from(fmt, data, pos)
        pos += size
        return vals

    magic, _reserved, count = take("<QQQ")
    if magic != _LIST_MAGIC:
        raise ValueError(f"not an MXNet NDArray file (magic 0x{magic:x})")
    arrays = []
    for _ in range(count):
        (rec_magic,) = take("<I")
        if rec_magic in (_V2_MAGIC, _V3_MAGIC):
            (stype,) = take("<i")
            if stype != 0:
                raise ValueError("sparse NDArrays are not supported")
        if rec_magic in (_V1_MAGIC, _V2_MAGIC, _V3_MAGIC):
            (ndim,) = take("<i")
            shape = take(f"<{ndim}q") if ndim > 0 else ()
        else:  # legacy: the magic is ndim, dims are uint32
            ndim = rec_magic
            shape = take(f"<{ndim}I")
        if ndim <= 0:
            arrays.append(np.zeros((0,), dtype=np.float32))
            continue
        _dev_type, _dev_id, type_flag = take("<iii")
        dtype = np.dtype(_DTYPES.get(type_flag, np.float32)).newbyteorder("<")
        size = int(np.prod(shape)) * dtype.itemsize
        if pos + size > len(data):
            raise ValueError("truncated NDArray data")
        arrays.append(np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=pos).reshape(shape))
        pos += size
    return arrays
