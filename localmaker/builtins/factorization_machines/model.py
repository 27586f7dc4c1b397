"""factorization_machines: the model and its file, shared by training and serving."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

BINARY, REGRESSOR = "binary_classifier", "regressor"
MODEL_FILE = "model_algo-1"


@dataclass
class FMModel:
    predictor_type: str
    w0: float
    w: np.ndarray  # (feature_dim,)
    v: np.ndarray  # (feature_dim, num_factors)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.w.shape[0])

    def raw(self, x: sp.csr_matrix) -> np.ndarray:
        return raw_output(x, self.w0, self.w, self.v)[0]

    def scores(self, x: sp.csr_matrix) -> np.ndarray:
        z = self.raw(x)
        return _sigmoid(z) if self.predictor_type == BINARY else z

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        meta = {"predictor_type": self.predictor_type, **self.meta}
        np.savez(buf, w0=np.array([self.w0], dtype=np.float32), w=self.w.astype(np.float32),
                 V=self.v.astype(np.float32), meta=np.array(json.dumps(meta, default=str)))
        path.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> FMModel:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            ptype = meta.pop("predictor_type")
            return cls(ptype, float(z["w0"][0]), z["w"].astype(np.float64), z["V"].astype(np.float64), meta)


def raw_output(x: sp.csr_matrix, w0: float, w: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """``(y_hat, X V, X∘X)``: the FM output and the pieces its gradient reuses."""
    xv = x @ v
    x2 = x.multiply(x).tocsr()
    inter = 0.5 * ((xv * xv).sum(axis=1) - (x2 @ (v * v)).sum(axis=1))
    return w0 + x @ w + inter, xv, x2


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
