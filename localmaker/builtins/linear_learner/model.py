"""linear_learner: the model and its file, shared by training and serving."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REGRESSOR, BINARY, MULTICLASS = "regressor", "binary_classifier", "multiclass_classifier"
MODEL_FILE = "model_algo-1"


@dataclass
class LinearModel:
    """A trained linear model in the original feature space's terms (standardisation kept apart)."""

    predictor_type: str
    weights: np.ndarray  # (feature_dim, k)
    bias: np.ndarray  # (k,)
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float = 0.0
    y_scale: float = 1.0
    threshold: float = 0.5
    loss: str = "squared_loss"
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.weights.shape[0])

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The linear output (n, k) for raw features (standardised with the training statistics)."""
        return ((x - self.x_mean) / self.x_scale) @ self.weights + self.bias

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Regression: the prediction; binary: P(label=1) (logistic) or the margin (hinge);
        multiclass: per-class probabilities."""
        z = self.raw(x.astype(np.float64))
        if self.predictor_type == REGRESSOR:
            return z[:, 0] * self.y_scale + self.y_mean
        if self.predictor_type == BINARY:
            return _sigmoid(z[:, 0]) if self.loss == "logistic" else z[:, 0]
        return _softmax(z)

    def predict_labels(self, scores: np.ndarray) -> np.ndarray:
        if self.predictor_type == BINARY:
            return (scores >= self.threshold).astype(np.int64)
        return np.argmax(scores, axis=1)

    def save(self, path: Path) -> None:
        meta = {"predictor_type": self.predictor_type, "y_mean": self.y_mean, "y_scale": self.y_scale,
                "threshold": self.threshold, "loss": self.loss, "hyperparameters": self.hyperparameters}
        buf = io.BytesIO()
        np.savez(buf, weights=self.weights, bias=self.bias, x_mean=self.x_mean, x_scale=self.x_scale,
                 meta=np.array(json.dumps(meta, default=str)))
        path.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(meta["predictor_type"], z["weights"], z["bias"], z["x_mean"], z["x_scale"],
                       float(meta["y_mean"]), float(meta["y_scale"]), float(meta["threshold"]), meta["loss"],
                       meta.get("hyperparameters", {}))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
