"""The network, its normalisation, and the on-disk model format.

The model directory SageMaker packs into ``model.tar.gz`` holds four files:

* ``model.keras``: the Keras v3 archive (JSON config + HDF5 weights). No pickled code and no
  Lambda layers, so it loads with ``safe_mode=True`` and cannot run code on load.
* ``inference.npz`` + ``inference.json``: the same network as numpy arrays and a list of layers,
  which is all serving reads (no TensorFlow); see :mod:`dnn_regressor.inference`. The npz holds
  plain arrays only and is loaded with ``allow_pickle=False``.
* ``metadata.json``: what serving and the pipeline need without opening the network: feature
  names in serving order, label, metrics, hyperparameters, the normalisation statistics and the
  versions that produced it. Written last: its presence means the directory is complete.

Normalisation lives *inside* the network (a ``Normalization`` layer in front, an inverted one
behind the output), fitted on the training rows only. Serving therefore cannot apply different
statistics than training did, and the label's scale never slows the optimiser down.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1

#: Hidden layers use this activation; the numpy serving engine mirrors it exactly.
HIDDEN_ACTIVATION = "relu"


class ModelLoadError(Exception):
    """The model directory cannot be served; the message says what is missing or broken."""


@dataclass(frozen=True)
class Standardisation:
    """Mean and standard deviation of features and label over all training rows.

    A feature that is constant on the training rows gets std 1, so it is centred but not
    blown up by a division by ~0 when serving sees a different value.
    """

    feature_mean: np.ndarray
    feature_std: np.ndarray
    label_mean: float
    label_std: float
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "fitted_on": "train",
            "rows": self.rows,
            "feature_mean": self.feature_mean.tolist(),
            "feature_std": self.feature_std.tolist(),
            "label_mean": self.label_mean,
            "label_std": self.label_std,
        }


def _safe_std(variance: np.ndarray, mean: np.ndarray) -> np.ndarray:
    std = np.sqrt(np.maximum(variance, 0.0))
    return np.where(std <= 1e-7 * np.maximum(1.0, np.abs(mean)), 1.0, std)


def fit_standardisation(
    x: np.ndarray, y: np.ndarray, all_sum: Callable[[np.ndarray], np.ndarray]
) -> Standardisation:
    """Exact mean/std over the training rows of *all* hosts.

    Two all-reduces (sums for the mean, then squared deviations from that global mean) give the
    same numbers as one host holding all rows would compute, without the cancellation error of
    the one-pass sum-of-squares formula. ``all_sum`` is the identity on a single host.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    first = all_sum(np.concatenate([[len(x)], x.sum(axis=0), [y.sum()]]))
    n = first[0]
    if n < 1:
        raise ValueError("no training rows on any host")
    mean = first[1:-1] / n
    y_mean = first[-1] / n
    second = all_sum(np.concatenate([((x - mean) ** 2).sum(axis=0), [((y - y_mean) ** 2).sum()]]))
    std = _safe_std(second[:-1] / n, mean)
    y_std = float(_safe_std(np.array([second[-1] / n]), np.array([y_mean]))[0])
    return Standardisation(
        feature_mean=mean, feature_std=std, label_mean=float(y_mean), label_std=y_std, rows=int(n)
    )


def build_model(n_features: int, hidden_units: Sequence[int], dropout: float, stats: Standardisation) -> Any:
    """A plain MLP: standardise -> [Dense(relu) -> Dropout]* -> Dense(1) -> un-standardise.

    Built with the functional API from stock layers only, so the saved config is pure data.
    Call it inside ``strategy.scope()`` when training on several hosts.
    """
    import keras

    inputs = keras.Input(shape=(n_features,), name="features")
    h = keras.layers.Normalization(
        mean=stats.feature_mean.tolist(), variance=(stats.feature_std**2).tolist(), name="standardize"
    )(inputs)
    for i, units in enumerate(hidden_units):
        h = keras.layers.Dense(units, activation=HIDDEN_ACTIVATION, name=f"hidden_{i}")(h)
        if dropout > 0:
            h = keras.layers.Dropout(dropout, name=f"dropout_{i}")(h)
    out = keras.layers.Dense(1, name="output")(h)
    out = keras.layers.Normalization(
        mean=[stats.label_mean], variance=[stats.label_std**2], invert=True, name="unstandardize"
    )(out)
    return keras.Model(inputs, out, name="dnn_regressor")


def save_model(
    model: Any,
    metadata: dict[str, Any],
    directory: Path,
    export: Callable[[Path], dict[str, Any]] | None = None,
) -> None:
    """Write ``model.keras``, then ``export(directory)``'s files, then ``metadata.json`` (last: its
    presence means complete). What ``export`` returns is recorded as ``metadata["inference"]``."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / MODEL_FILE)
    if export is not None:
        metadata = {**metadata, "inference": export(directory)}
    tmp = directory / f".{METADATA_FILE}.tmp"
    tmp.write_text(json.dumps(metadata, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(directory / METADATA_FILE)


def read_metadata(directory: Path) -> dict[str, Any]:
    """Load and sanity-check ``metadata.json``; every problem is a :class:`ModelLoadError`."""
    if not directory.is_dir():
        raise ModelLoadError(f"model directory {directory} does not exist")
    path = directory / METADATA_FILE
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(
            f"{path} is missing; the model directory must come from this algorithm's training job"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is unreadable or not JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelLoadError(f"{path} has format_version {version!r}; this server reads {FORMAT_VERSION}")
    names = metadata.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelLoadError(f"{path}: 'feature_names' must be a non-empty list of strings")
    return metadata


def load_keras_model(directory: Path, n_features: int) -> Any:
    """Load ``model.keras`` in safe mode and check it takes ``n_features`` inputs."""
    path = directory / MODEL_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing")
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many types for a corrupt archive
        raise ModelLoadError(f"{path} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    shape = tuple(model.input_shape)
    if len(shape) != 2 or shape[1] != n_features:
        raise ModelLoadError(
            f"{path} takes inputs of shape {shape}, but {METADATA_FILE} lists {n_features} features"
        )
    return model
