"""A loaded model, and a forward pass cheap enough for single-row requests.

``keras.Model.predict`` costs milliseconds per call (it builds a data pipeline every time),
which would dominate a one-row request. The network is a plain MLP, so serving runs its forward
pass in numpy from the loaded weights: tens of microseconds per row, no TensorFlow runtime in
the request path. Before trusting it, loading compares it with Keras on probe rows
(within 1e-5, relative for large outputs); any layer it does not know, or any mismatch, falls
back to a ``tf.function`` with a fixed input signature, traced once.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .model import ModelLoadError, load_keras_model, read_metadata

ENGINE_ENV = "DNN_REGRESSOR_ENGINE"
TOLERANCE = 1e-5
_EPSILON = 1e-7  # keras.backend.epsilon(), the floor Normalization puts under sqrt(variance)

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda h: h,
    "relu": lambda h: np.maximum(h, 0.0, out=h),
    "tanh": np.tanh,
    "sigmoid": lambda h: 1.0 / (1.0 + np.exp(-h)),
}


@dataclass
class NumpyMLP:
    """The network as a list of numpy operations, float32 like the Keras graph."""

    ops: list[Callable[[np.ndarray], np.ndarray]] = field(default_factory=list)

    @classmethod
    def from_keras(cls, model: Any) -> NumpyMLP | None:
        """Translate a chain of Normalization/Dense/Dropout layers; ``None`` if anything else."""
        ops: list[Callable[[np.ndarray], np.ndarray]] = []
        for layer in model.layers:
            kind = type(layer).__name__
            if kind in ("InputLayer", "Dropout"):
                continue
            if kind == "Normalization":
                if tuple(getattr(layer, "axis", ())) not in ((-1,), (1,)):
                    return None
                mean = np.asarray(layer.mean, dtype=np.float32).reshape(-1)
                denom = np.maximum(
                    np.sqrt(np.asarray(layer.variance, dtype=np.float32).reshape(-1)), _EPSILON
                )
                denom = denom.astype(np.float32)
                if layer.invert:
                    ops.append(lambda h, m=mean, d=denom: m + h * d)
                else:
                    ops.append(lambda h, m=mean, d=denom: (h - m) / d)
            elif kind == "Dense":
                activation = getattr(layer.activation, "__name__", "")
                if activation not in _ACTIVATIONS:
                    return None
                weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
                kernel = weights[0]
                bias = weights[1] if layer.use_bias else np.zeros(kernel.shape[1], np.float32)
                act = _ACTIVATIONS[activation]
                ops.append(lambda h, k=kernel, b=bias, a=act: a(h @ k + b))
            else:
                return None
        return cls(ops)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float32)
        for op in self.ops:
            h = op(h)
        return h


def _probe_rows(metadata: dict[str, Any], n_features: int, rows: int = 256) -> np.ndarray:
    """Rows spread over +-3 training standard deviations, where real traffic lands."""
    norm = metadata.get("normalization") or {}
    mean = np.asarray(norm.get("feature_mean") or np.zeros(n_features), dtype=np.float64)
    std = np.asarray(norm.get("feature_std") or np.ones(n_features), dtype=np.float64)
    rng = np.random.default_rng(0)
    return (mean + 3.0 * std * rng.uniform(-1.0, 1.0, size=(rows, n_features))).astype(np.float32)


@dataclass
class Regressor:
    """What the server holds per worker: the forward pass plus the feature contract.

    Attributes:
        feature_names: the column order requests must follow.
        engine: "numpy" (the verified fast path) or "tensorflow" (the fallback).
        max_abs_diff: largest difference numpy vs Keras seen on the probe rows.
    """

    metadata: dict[str, Any]
    forward: Callable[[np.ndarray], np.ndarray]
    engine: str
    max_abs_diff: float | None = None
    keras_model: Any = field(default=None, repr=False)

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata["feature_names"])

    @property
    def n_features(self) -> int:
        return len(self.metadata["feature_names"])

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """One forward pass over all rows (shape (n, n_features)); returns shape (n,)."""
        x = np.asarray(rows, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {x.shape}")
        return np.asarray(self.forward(x), dtype=np.float32).reshape(-1)


def _tf_forward(model: Any, n_features: int) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    fn = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([None, n_features], tf.float32)],
        reduce_retracing=True,
    )
    return lambda x: fn(tf.constant(x, dtype=tf.float32)).numpy()


def load_regressor(model_dir: Path, engine: str | None = None) -> Regressor:
    """Load, verify and wrap a model directory written by ``train``.

    ``engine`` (or env ``DNN_REGRESSOR_ENGINE``): "auto" (default: numpy if it matches Keras),
    "numpy" (fail if it cannot be used) or "tensorflow".
    """
    started = time.monotonic()
    engine = (engine or os.environ.get(ENGINE_ENV) or "auto").lower()
    if engine not in ("auto", "numpy", "tensorflow"):
        raise ModelLoadError(f"{ENGINE_ENV}={engine!r}: expected auto, numpy or tensorflow")
    metadata = read_metadata(model_dir)
    n_features = len(metadata["feature_names"])
    model = load_keras_model(model_dir, n_features)
    tf_forward = _tf_forward(model, n_features)
    probe = _probe_rows(metadata, n_features)
    reference = tf_forward(probe).reshape(-1)
    chosen: Callable[[np.ndarray], np.ndarray] = tf_forward
    name, diff = "tensorflow", None
    if engine != "tensorflow":
        mlp = NumpyMLP.from_keras(model)
        if mlp is not None:
            fast = mlp(probe).reshape(-1)
            diff = float(np.max(np.abs(fast - reference)))
            if np.allclose(fast, reference, rtol=TOLERANCE, atol=TOLERANCE):
                chosen, name = mlp, "numpy"
        if engine == "numpy" and name != "numpy":
            raise ModelLoadError(
                f"the numpy engine cannot reproduce this model (max difference {diff}); use {ENGINE_ENV}=auto"
            )
    print(
        f"loaded model from {model_dir}: {n_features} features, engine {name}"
        + (f" (max |numpy - keras| on probe rows {diff:.3g})" if diff is not None else "")
        + f", in {time.monotonic() - started:.2f} s",
        file=sys.stderr,
        flush=True,
    )
    return Regressor(metadata=metadata, forward=chosen, engine=name, max_abs_diff=diff, keras_model=model)
