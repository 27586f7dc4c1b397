"""knn: the model and its file, shared by training and serving."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CLASSIFIER, REGRESSOR = "classifier", "regressor"
MODEL_FILE = "model_algo-1"


def projection_matrix(kind: str, d: int, target: int, rng: np.random.Generator) -> np.ndarray:
    """A (d, target) float32 matrix: ``x @ P`` reduces a row; squared norms are kept in expectation."""
    if kind == "sign":
        return (rng.choice([-1.0, 1.0], size=(d, target)) / math.sqrt(target)).astype(np.float32)
    # fjlt: x -> (x * signs) padded to 2^m -> normalised Hadamard -> `target` random coordinates, rescaled
    size = 1 << max(0, (d - 1).bit_length())
    signs = rng.choice([-1.0, 1.0], size=d)
    hadamard = _hadamard(size) / math.sqrt(size)
    chosen = np.sort(rng.choice(size, size=target, replace=False))
    return (signs[:, None] * hadamard[:d][:, chosen] * math.sqrt(size / target)).astype(np.float32)


def _hadamard(n: int) -> np.ndarray:
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


@dataclass
class KNNModel:
    """The index (the sampled points, reduced when asked) and its labels, plus how to query it."""

    points: np.ndarray  # (n, d') float32
    labels: np.ndarray  # (n,) float32
    k: int
    predictor_type: str
    index_metric: str = "L2"
    projection: np.ndarray | None = None  # (feature_dim, d')
    feature_dim: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.feature_dim:
            self.feature_dim = int(self.projection.shape[0] if self.projection is not None else self.points.shape[1])
        self._unit = _normalise(self.points) if self.index_metric == "COSINE" else None

    def reduce(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32, copy=False)
        return x @ self.projection if self.projection is not None else x

    def search(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)`` of the k nearest points per row, nearest first (exact search)."""
        q = self.reduce(x).astype(np.float64)
        p = self.points.astype(np.float64)
        k = min(self.k, len(p))
        if self.index_metric == "L2":
            score = (q * q).sum(1)[:, None] - 2.0 * q @ p.T + (p * p).sum(1)[None, :]
            score = np.maximum(score, 0.0)
            sign = 1.0
        elif self.index_metric == "INNER_PRODUCT":
            score, sign = -(q @ p.T), -1.0
        else:  # COSINE: similarity of unit vectors
            assert self._unit is not None
            score, sign = -(_normalise(q) @ self._unit.T.astype(np.float64)), -1.0
        part = np.argpartition(score, k - 1, axis=1)[:, :k] if k < score.shape[1] else np.tile(
            np.arange(score.shape[1]), (len(q), 1))
        rows = np.arange(len(q))[:, None]
        order = np.argsort(score[rows, part], axis=1, kind="stable")
        idx = part[rows, order]
        return sign * score[rows, idx], idx

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(predicted_label, distances, neighbour labels)`` per row."""
        dist, idx = self.search(x)
        neigh = self.labels[idx]
        if self.predictor_type == REGRESSOR:
            return neigh.astype(np.float64).mean(axis=1), dist, neigh
        return np.array([_vote(row) for row in neigh]), dist, neigh

    def save(self, path: Path) -> None:
        meta = {"k": self.k, "predictor_type": self.predictor_type, "index_metric": self.index_metric,
                "feature_dim": self.feature_dim, **self.meta}
        arrays = {"points": self.points, "labels": self.labels, "meta": np.array(json.dumps(meta))}
        if self.projection is not None:
            arrays["projection"] = self.projection
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> KNNModel:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            projection = z["projection"] if "projection" in z.files else None
            extra = {k: v for k, v in meta.items() if k not in ("k", "predictor_type", "index_metric", "feature_dim")}
            return cls(z["points"], z["labels"], int(meta["k"]), meta["predictor_type"], meta["index_metric"],
                       projection, int(meta["feature_dim"]), extra)


def _normalise(a: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(norms > 0, norms, 1.0)


def _vote(labels: np.ndarray) -> float:
    """The most frequent label; a tie goes to the tied label whose first occurrence is nearest."""
    values, first, counts = np.unique(labels, return_index=True, return_counts=True)
    best = counts == counts.max()
    return float(values[best][np.argmin(first[best])])
