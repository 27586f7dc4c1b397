"""Split: a row's channel and train shard from a keyed hash of its id or values (deterministic)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config import SplitConfig

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def row_keys(frame: pd.DataFrame, key_columns: Sequence[str]) -> list[bytes]:
    """Stable per-row keys for hashing: the id as UTF-8, or the row's values as little-endian
    float64 (``-0.0`` as ``0.0``, every NaN alike), independent of how the number was spelled."""
    import numpy as np
    import pandas as pd

    if not all(pd.api.types.is_numeric_dtype(frame[c]) for c in key_columns):
        return [
            "\x1f".join(map(str, row)).encode("utf-8")
            for row in frame[list(key_columns)].itertuples(index=False)
        ]
    values = frame[list(key_columns)].astype("float64").to_numpy(dtype="<f8", na_value=np.nan, copy=True)
    values += 0.0
    values[np.isnan(values)] = np.nan
    contiguous = np.ascontiguousarray(values)
    width = contiguous.shape[1] * 8
    flat = contiguous.tobytes()
    return [flat[i * width : (i + 1) * width] for i in range(contiguous.shape[0])]


def hash_fraction(key: bytes, seed: int, *, salt: bytes = b"split") -> float:
    """A uniform number in ``[0, 1)`` determined by ``key``, ``seed`` and ``salt`` alone."""
    digest = hashlib.blake2b(
        key, digest_size=8, key=seed.to_bytes(8, "little"), person=salt.ljust(16, b"\0")[:16]
    )
    return int.from_bytes(digest.digest(), "big") / 2**64


def assign_channels(keys: Sequence[bytes], split: SplitConfig) -> list[str]:
    """Channel of each row key: ``train`` / ``validation`` / ``test`` by cumulative fraction."""
    train_edge = split.train
    validation_edge = split.train + split.validation
    channels = []
    for key in keys:
        u = hash_fraction(key, split.seed)
        channels.append("train" if u < train_edge else "validation" if u < validation_edge else "test")
    return channels


def assign_shards(keys: Sequence[bytes], seed: int, shards: int) -> list[int]:
    """Shard of each train row; hashed independently of the split so shards stay balanced."""
    if shards <= 1:
        return [0] * len(keys)
    return [min(int(hash_fraction(key, seed, salt=b"shard") * shards), shards - 1) for key in keys]
