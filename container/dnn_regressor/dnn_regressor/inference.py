"""A loaded model, and a forward pass cheap enough for single-row requests, without TensorFlow.

``keras.Model.predict`` costs milliseconds per call (it builds a data pipeline every time),
which would dominate a one-row request, and importing TensorFlow costs seconds per worker. The
network is a plain MLP, so serving runs its forward pass in numpy.

Training exports that pass next to ``model.keras`` (:func:`export_inference`): ``inference.npz``
(the weights, normalisation statistics, and probe rows with Keras' outputs for them) and
``inference.json`` (the layers in order, each with its activation, and the npz's sha256). It
reloads the files with the serving loader and checks them against Keras on the probe rows, and
fails the job if they differ. Serving (:func:`load_regressor`) reads only those two files and
numpy, re-checks the probe rows, and never imports TensorFlow. A model directory from before the
export (no ``inference.json``) still loads: through Keras, compared with numpy on probe rows
there (within 1e-5, relative for large outputs); any layer numpy does not know, or any mismatch,
falls back to a ``tf.function`` with a fixed input signature, traced once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .model import METADATA_FILE, ModelLoadError, load_keras_model, read_metadata

ENGINE_ENV = "DNN_REGRESSOR_ENGINE"
TOLERANCE = 1e-5
_EPSILON = 1e-7  # keras.backend.epsilon(), the floor Normalization puts under sqrt(variance)

INFERENCE_FILE = "inference.json"
ARRAYS_FILE = "inference.npz"
EXPORT_FORMAT_VERSION = 1

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda h: h,
    "relu": lambda h: np.maximum(h, 0.0, out=h),
    "tanh": np.tanh,
    "sigmoid": lambda h: 1.0 / (1.0 + np.exp(-h)),
}


class ExportError(Exception):
    """Training could not write a numpy inference form that reproduces the Keras model."""


def inference_layers(model: Any) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The Keras model as numpy operations: layer descriptions plus their float32 arrays.

    Handles chains of Normalization (plain or inverted), Dense (linear, relu, tanh, sigmoid) and
    Dropout (nothing at inference). Raises :class:`ExportError` naming any other layer.
    """
    layers: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for index, layer in enumerate(model.layers):
        kind = type(layer).__name__
        prefix = f"layer{index}"
        if kind in ("InputLayer", "Dropout"):
            continue
        if kind == "Normalization":
            if tuple(getattr(layer, "axis", ())) not in ((-1,), (1,)):
                raise ExportError(f"layer '{layer.name}' normalises over axis {layer.axis}; numpy serving needs axis -1")
            mean = np.asarray(layer.mean, dtype=np.float32).reshape(-1)
            scale = np.maximum(np.sqrt(np.asarray(layer.variance, dtype=np.float32).reshape(-1)), _EPSILON)
            arrays[f"{prefix}_mean"], arrays[f"{prefix}_scale"] = mean, scale.astype(np.float32)
            layers.append(
                {
                    "name": layer.name,
                    "op": "unstandardize" if layer.invert else "standardize",
                    "mean": f"{prefix}_mean",
                    "scale": f"{prefix}_scale",
                }
            )
        elif kind == "Dense":
            activation = getattr(layer.activation, "__name__", "")
            if activation not in _ACTIVATIONS:
                raise ExportError(
                    f"layer '{layer.name}' uses activation {activation!r}; numpy serving knows {sorted(_ACTIVATIONS)}"
                )
            weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
            kernel = weights[0]
            bias = weights[1] if layer.use_bias else np.zeros(kernel.shape[1], np.float32)
            arrays[f"{prefix}_kernel"], arrays[f"{prefix}_bias"] = kernel, bias
            layers.append(
                {
                    "name": layer.name,
                    "op": "dense",
                    "kernel": f"{prefix}_kernel",
                    "bias": f"{prefix}_bias",
                    "activation": activation,
                }
            )
        else:
            raise ExportError(f"layer '{layer.name}' is a {kind}; numpy serving knows Normalization, Dense and Dropout")
    return layers, arrays


Op = Callable[[np.ndarray], np.ndarray]


def _standardize(mean: np.ndarray, scale: np.ndarray) -> Op:
    return lambda h: (h - mean) / scale


def _unstandardize(mean: np.ndarray, scale: np.ndarray) -> Op:
    return lambda h: mean + h * scale


def _dense(kernel: np.ndarray, bias: np.ndarray, activation: Op) -> Op:
    return lambda h: activation(h @ kernel + bias)


@dataclass
class NumpyMLP:
    """The network as a list of numpy operations, float32 like the Keras graph.

    Attributes:
        n_inputs: the feature count the first operation takes.
    """

    ops: list[Callable[[np.ndarray], np.ndarray]] = field(default_factory=list)
    n_inputs: int | None = None

    @classmethod
    def from_layers(cls, layers: list[dict[str, Any]], arrays: Any) -> NumpyMLP:
        """Build from :func:`inference_layers` output; ``ValueError`` names what is inconsistent."""
        ops: list[Callable[[np.ndarray], np.ndarray]] = []
        width: int | None = None
        n_inputs: int | None = None
        for spec in layers:
            op = spec.get("op")
            if op in ("standardize", "unstandardize"):
                mean = np.asarray(arrays[spec["mean"]], dtype=np.float32).reshape(-1)
                scale = np.asarray(arrays[spec["scale"]], dtype=np.float32).reshape(-1)
                if mean.shape != scale.shape or (width is not None and mean.size not in (1, width)):
                    raise ValueError(f"layer '{spec.get('name')}' has {mean.size} statistics for width {width}")
                if op == "standardize":
                    ops.append(_standardize(mean, scale))
                else:
                    ops.append(_unstandardize(mean, scale))
                if width is None:
                    width = n_inputs = mean.size
            elif op == "dense":
                kernel = np.asarray(arrays[spec["kernel"]], dtype=np.float32)
                bias = np.asarray(arrays[spec["bias"]], dtype=np.float32).reshape(-1)
                activation = spec.get("activation")
                if activation not in _ACTIVATIONS:
                    raise ValueError(f"layer '{spec.get('name')}' has unknown activation {activation!r}")
                if kernel.ndim != 2 or bias.shape != (kernel.shape[1],) or (width is not None and kernel.shape[0] != width):
                    raise ValueError(
                        f"layer '{spec.get('name')}' has a kernel of shape {kernel.shape} and a bias of shape "
                        f"{bias.shape} after a layer of width {width}"
                    )
                if n_inputs is None:
                    n_inputs = kernel.shape[0]
                width = kernel.shape[1]
                ops.append(_dense(kernel, bias, _ACTIVATIONS[activation]))
            else:
                raise ValueError(f"layer '{spec.get('name')}' has unknown op {op!r}")
        if width != 1:
            raise ValueError(f"the last layer has width {width}; a regressor ends with one output")
        return cls(ops, n_inputs)

    @classmethod
    def from_keras(cls, model: Any) -> NumpyMLP | None:
        """Translate a chain of Normalization/Dense/Dropout layers; ``None`` if anything else."""
        try:
            layers, arrays = inference_layers(model)
        except ExportError:
            return None
        return cls.from_layers(layers, arrays)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float32)
        for op in self.ops:
            h = op(h)
        return h


def _max_difference(fast: np.ndarray, reference: np.ndarray) -> tuple[float, bool]:
    fast, reference = np.asarray(fast).reshape(-1), np.asarray(reference).reshape(-1)
    diff = float(np.max(np.abs(fast - reference))) if fast.size else 0.0
    return diff, bool(np.allclose(fast, reference, rtol=TOLERANCE, atol=TOLERANCE))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        write(handle)
    tmp.replace(path)


def export_inference(model: Any, directory: Path, probe: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Write ``inference.npz`` + ``inference.json`` for ``model`` and prove they reproduce it.

    ``reference`` is Keras' output for the ``probe`` rows. The files are read back with the
    loader serving uses and run on the probe rows; any difference beyond the tolerance raises
    :class:`ExportError` (and removes the files). Returns the summary metadata.json records.
    """
    layers, arrays = inference_layers(model)
    probe = np.asarray(probe, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32).reshape(-1)
    arrays = {**arrays, "probe_inputs": probe, "probe_outputs": reference}
    arrays_path, spec_path = directory / ARRAYS_FILE, directory / INFERENCE_FILE
    _write_atomically(arrays_path, lambda handle: np.savez(handle, allow_pickle=False, **arrays))
    spec = {
        "format_version": EXPORT_FORMAT_VERSION,
        "engine": "numpy",
        "n_features": int(probe.shape[1]),
        "arrays_file": ARRAYS_FILE,
        "arrays_sha256": _sha256(arrays_path),
        "layers": layers,
        "probe": {
            "inputs": "probe_inputs",
            "outputs": "probe_outputs",
            "rows": int(probe.shape[0]),
            "tolerance": TOLERANCE,
            "outputs_from": "keras model(x, training=False) at the end of training",
        },
    }
    text = json.dumps(spec, indent=2) + "\n"
    _write_atomically(spec_path, lambda handle: handle.write(text.encode()))
    try:
        fast = load_exported(directory, int(probe.shape[1])).mlp(probe).reshape(-1)
        worst = int(np.argmax(np.abs(fast - reference)))
        diff, close = _max_difference(fast, reference)
        if not close:
            raise ExportError(
                f"the numpy inference form does not reproduce the Keras model: on probe row {worst + 1} of "
                f"{len(probe)} numpy gives {fast[worst]:.9g} and Keras {reference[worst]:.9g} (max difference "
                f"{diff:.3g}, tolerance {TOLERANCE:g} absolute and relative); serving cannot use it"
            )
    except (ExportError, ModelLoadError) as exc:
        arrays_path.unlink(missing_ok=True)
        spec_path.unlink(missing_ok=True)
        raise ExportError(str(exc)) from exc
    return {
        "file": INFERENCE_FILE,
        "arrays_file": ARRAYS_FILE,
        "engine": "numpy",
        "probe_rows": int(probe.shape[0]),
        "max_abs_diff_vs_keras": diff,
    }


@dataclass(frozen=True)
class Exported:
    """The forward pass read from ``inference.npz``/``inference.json``, re-checked on load.

    Attributes:
        probe_diff: max |numpy here - Keras at training| on the recorded probe rows (None: none).
        probe_ok: that difference is within the tolerance.
    """

    mlp: NumpyMLP
    probe_diff: float | None
    probe_ok: bool


def load_exported(directory: Path, n_features: int) -> Exported:
    """The exported forward pass (numpy only), checked against the Keras outputs it records.

    Every problem with the files is a :class:`ModelLoadError` naming the file.
    """
    spec_path = directory / INFERENCE_FILE
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{spec_path} is unreadable or not JSON: {exc}") from exc
    if not isinstance(spec, dict) or spec.get("format_version") != EXPORT_FORMAT_VERSION:
        version = spec.get("format_version") if isinstance(spec, dict) else None
        raise ModelLoadError(f"{spec_path} has format_version {version!r}; this server reads {EXPORT_FORMAT_VERSION}")
    arrays_path = directory / str(spec.get("arrays_file") or ARRAYS_FILE)
    if arrays_path.parent != directory:
        raise ModelLoadError(f"{spec_path}: arrays_file must name a file in the model directory")
    if not arrays_path.is_file():
        raise ModelLoadError(f"{arrays_path} is missing (it comes with {INFERENCE_FILE})")
    if _sha256(arrays_path) != spec.get("arrays_sha256"):
        raise ModelLoadError(
            f"{arrays_path} does not match the sha256 recorded in {INFERENCE_FILE} (a partial copy, or files "
            "from two different trainings)"
        )
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        mlp = NumpyMLP.from_layers(list(spec.get("layers") or []), arrays)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{arrays_path} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if mlp.n_inputs != n_features:
        raise ModelLoadError(
            f"{spec_path} takes {mlp.n_inputs} inputs, but {METADATA_FILE} lists {n_features} features"
        )
    probe = spec.get("probe") or {}
    if probe.get("inputs") not in arrays or probe.get("outputs") not in arrays:
        return Exported(mlp, None, True)
    diff, close = _max_difference(mlp(arrays[probe["inputs"]]), arrays[probe["outputs"]])
    return Exported(mlp, diff, close)


def probe_rows(
    feature_mean: Any, feature_std: Any, n_features: int, rows: int = 256, seed: int = 0
) -> np.ndarray:
    """Rows spread over +-3 training standard deviations, where real traffic lands."""
    mean = np.asarray(feature_mean if feature_mean is not None else np.zeros(n_features), dtype=np.float64)
    std = np.asarray(feature_std if feature_std is not None else np.ones(n_features), dtype=np.float64)
    rng = np.random.default_rng(seed)
    return (mean + 3.0 * std * rng.uniform(-1.0, 1.0, size=(rows, n_features))).astype(np.float32)


def _probe_rows(metadata: dict[str, Any], n_features: int, rows: int = 256) -> np.ndarray:
    norm = metadata.get("normalization") or {}
    return probe_rows(norm.get("feature_mean"), norm.get("feature_std"), n_features, rows)


@dataclass
class Regressor:
    """What the server holds per worker: the forward pass plus the feature contract.

    Attributes:
        feature_names: the column order requests must follow.
        engine: "numpy" (the verified fast path) or "tensorflow" (the fallback).
        max_abs_diff: largest difference numpy vs Keras seen on the probe rows.
        source: the file the forward pass came from: "inference.json" (no TensorFlow) or
            "model.keras" (a model trained before the export, or the tensorflow engine).
        keras_model: the Keras model when ``source`` is model.keras, else None.
    """

    metadata: dict[str, Any]
    forward: Callable[[np.ndarray], np.ndarray]
    engine: str
    max_abs_diff: float | None = None
    keras_model: Any = field(default=None, repr=False)
    source: str = "model.keras"

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


def _log_loaded(model_dir: Path, regressor: Regressor, started: float) -> None:
    diff = regressor.max_abs_diff
    print(
        f"loaded model from {model_dir} ({regressor.source}): {regressor.n_features} features, engine "
        f"{regressor.engine}"
        + (f" (max |numpy - keras| on probe rows {diff:.3g})" if diff is not None else "")
        + f", in {time.monotonic() - started:.2f} s",
        file=sys.stderr,
        flush=True,
    )


def load_regressor(model_dir: Path, engine: str | None = None) -> Regressor:
    """Load, verify and wrap a model directory written by ``train``.

    ``engine`` (or env ``DNN_REGRESSOR_ENGINE``): "auto" (default: numpy if it matches Keras),
    "numpy" (fail if it cannot be used) or "tensorflow". With ``inference.json`` present, "auto"
    and "numpy" serve from it alone and never import TensorFlow.
    """
    started = time.monotonic()
    engine = (engine or os.environ.get(ENGINE_ENV) or "auto").lower()
    if engine not in ("auto", "numpy", "tensorflow"):
        raise ModelLoadError(f"{ENGINE_ENV}={engine!r}: expected auto, numpy or tensorflow")
    metadata = read_metadata(model_dir)
    n_features = len(metadata["feature_names"])
    if engine != "tensorflow" and (model_dir / INFERENCE_FILE).exists():
        exported = load_exported(model_dir, n_features)
        if exported.probe_ok:
            regressor = Regressor(
                metadata=metadata,
                forward=exported.mlp,
                engine="numpy",
                max_abs_diff=exported.probe_diff,
                source=INFERENCE_FILE,
            )
            _log_loaded(model_dir, regressor, started)
            return regressor
        reason = (
            f"{INFERENCE_FILE}: numpy here differs from Keras at training by {exported.probe_diff:.3g} on its "
            f"probe rows (tolerance {TOLERANCE:g})"
        )
        if engine == "numpy":
            raise ModelLoadError(f"{reason}; use {ENGINE_ENV}=auto to serve through TensorFlow")
        print(f"{reason}; serving through TensorFlow from model.keras instead", file=sys.stderr, flush=True)
    model = load_keras_model(model_dir, n_features)
    tf_forward = _tf_forward(model, n_features)
    probe = _probe_rows(metadata, n_features)
    reference = tf_forward(probe).reshape(-1)
    chosen: Callable[[np.ndarray], np.ndarray] = tf_forward
    name, diff = "tensorflow", None
    if engine != "tensorflow":
        mlp = NumpyMLP.from_keras(model)
        if mlp is not None:
            diff, close = _max_difference(mlp(probe), reference)
            if close:
                chosen, name = mlp, "numpy"
        if engine == "numpy" and name != "numpy":
            raise ModelLoadError(
                f"the numpy engine cannot reproduce this model (max difference {diff}); use {ENGINE_ENV}=auto"
            )
    regressor = Regressor(metadata=metadata, forward=chosen, engine=name, max_abs_diff=diff, keras_model=model)
    _log_loaded(model_dir, regressor, started)
    return regressor
