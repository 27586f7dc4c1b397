"""pca: the model and its file, shared by training and serving."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_FILE = "model_algo-1"


@dataclass
class PCAModel:
    """The real artifact's arrays: ``mean`` (1, d), ``v`` (d, k) and ``s`` (k,), smallest component first."""

    mean: np.ndarray
    v: np.ndarray
    s: np.ndarray

    @property
    def feature_dim(self) -> int:
        return int(self.v.shape[0])

    def project(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float64) - self.mean) @ self.v

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean.astype(np.float32), v=self.v.astype(np.float32), s=self.s.astype(np.float32))
        path.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> PCAModel:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["mean"].astype(np.float64), z["v"].astype(np.float64), z["s"].astype(np.float64))
