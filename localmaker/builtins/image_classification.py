"""SageMaker's built-in Image Classification (MXNet) image, ``image-classification:1``, run locally.

The contract is the real algorithm's (developer guide "Image Classification - MXNet", its
hyperparameters page, and the image-classification-lst-format notebook):

* Training in the *image format*: channels ``train`` and ``validation`` hold JPEG/PNG files,
  ``train_lst`` and ``validation_lst`` one ``.lst`` file each (``index<TAB>label<TAB>path``, paths
  relative to the image channel), ContentType ``application/x-image`` (or ``image/jpeg`` /
  ``image/png``). RecordIO (``application/x-recordio``, ``.rec``) and augmented manifests
  (``RecordWrapperType: RecordIO``) are MXNet formats this image cannot read: they fail with a
  ClientError that says what is supported. An optional ``model`` channel (incremental training)
  takes a ``model.tar.gz`` this algorithm produced, with the same ``num_classes`` / ``image_shape``.
* Hyperparameters: all documented names are accepted and validated with their documented
  ranges; ``num_classes`` and ``num_training_samples`` are required (1P wording). Images are
  decoded to ``image_shape`` (channels,height,width): with ``resize`` the shorter side is scaled
  to it and the centre cropped, otherwise the image is resized to height x width.
  ``num_training_samples`` only shapes schedules on AWS; a mismatch with the train list is logged
  as a warning. Labels outside ``[0, num_classes)`` fail the job naming file and line.
* ``use_pretrained_model=1`` fails with a ClientError: the ImageNet-pretrained ResNet weights are
  not available offline, and training from scratch instead would silently give a different model
  than the one asked for. ``multi_label=1`` (which needs augmented-manifest multi-hot labels) is
  refused the same way. ``num_layers``, ``precision_dtype`` and ``kv_store`` are validated and
  logged, they do not change the local network.
* Logs as the real one (``Epoch[0] Batch [20]\\tSpeed: ... samples/sec\\taccuracy=...``,
  ``Epoch[0] Train-accuracy=...``, ``Epoch[0] Time cost=...``, ``Epoch[0] Validation-accuracy=...``,
  ``Storing the best model with validation accuracy: ...``, ``Saved checkpoint to "..."``, and
  ``Train-/Validation-top_k_accuracy_<k>`` with ``top_k``); images.yaml's metric definitions read them.

The network is NOT ResNet. It is a small convolutional net in numpy, trained by the documented
optimizers (``sgd``/``nag`` with ``momentum`` and ``weight_decay``, ``adam`` with ``beta_1``/``beta_2``/
``eps``, ``rmsprop`` with ``gamma``/``eps``) for ``epochs`` over ``mini_batch_size`` batches, with the
``lr_scheduler_step``/``lr_scheduler_factor`` schedule, ``augmentation_type`` (crop: random crop +
horizontal flip; crop_color: + hue/saturation/lightness jitter; crop_color_transform: + rotation,
shear, aspect change) and early stopping on validation accuracy::

    input (C,H,W), normalised with the ImageNet channel means/stds
    -> average-pool stem by s = max(1, min(H,W) // 32)   (224x224 -> 32x32; 32x32 unchanged)
    -> conv 3x3, 16 filters, same padding, no bias -> batch norm -> ReLU
    -> adaptive average pool to an 8x8 grid
    -> fully connected -> softmax over num_classes

The model directory has the real artifact names (what a model.tar.gz from AWS contains), holding
local formats - nothing pickled, nothing executable:

* ``image-classification-symbol.json`` - JSON description of the network above (layer list,
  num_classes, image_shape, normalisation, the hyperparameters used); not an MXNet symbol.
* ``image-classification-NNNN.params`` - the weights as a numpy ``.npz`` archive (``allow_pickle``
  off when read); NNNN is the 1-based epoch of the best validation accuracy, or, with
  ``checkpoint_frequency``, every k-th epoch (serving loads the highest-numbered file).
* ``model-shapes.json`` - ``[{"name": "data", "shape": [1, C, H, W]}]`` as MXNet writes it.

Inference: one JPEG/PNG image per request (``application/x-image``, ``image/jpeg``, ``image/png``);
the response is the JSON list of the class probabilities (``[0.1, 0.7, 0.2]``), or with
``Accept: application/jsonlines`` one line ``{"prediction": [...]}``. In batch transform
(``SAGEMAKER_BATCH=true``) a request without an Accept gets the JSON Lines form, as the guide says
("JSON Lines text format for batch transform") and the lst-format notebook reads the
``.out`` files (``data["prediction"]``). Bytes that are not an image -> 400.
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The network's matrices are small (27 x 16 conv weights): BLAS threads buy nothing and, on a shared
# machine, oversubscribe the cores (measured 7x slower under load). Set before numpy loads BLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from localmaker import safepath  # noqa: E402
from localmaker.builtins.runtime import (  # noqa: E402
    HP,
    ClientError,
    TrainingEnv,
    boolean,
    float_in,
    int_in,
    main,
    one_of,
    parse_hyperparameters,
)
from smformats.imagelist import LstEntry, LstError, read_lst  # noqa: E402

PREFIX = "image-classification"
SYMBOL_FILE = f"{PREFIX}-symbol.json"
SHAPES_FILE = "model-shapes.json"
IMAGE_TYPES = ("application/x-image", "image/jpeg", "image/png")
RECORDIO_TYPE = "application/x-recordio"
JSON_TYPE = "application/json"
JSONLINES_TYPE = "application/jsonlines"
NUM_LAYERS = (18, 34, 50, 101, 152, 200, 20, 32, 44, 56, 110)
FILTERS = 16
GRID = 8
STEM_TARGET = 32
BATCH_LOG_EVERY = 20
BN_MOMENTUM = 0.9
BN_EPS = 2e-5
PARAM_NAMES = ("conv_weight", "bn_gamma", "bn_beta", "fc_weight", "fc_bias")
AUX_NAMES = ("bn_moving_mean", "bn_moving_var")
# ImageNet channel statistics (0..255), as the real algorithm's MXNet iterators normalise
MEAN_RGB = (123.68, 116.779, 103.939)
STD_RGB = (58.393, 57.12, 57.375)


def log(message: str) -> None:
    """A log line in the real algorithm's format: ``[MM/DD/YYYY HH:MM:SS INFO <thread>] message``."""
    stamp = time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime())
    print(f"[{stamp} INFO {threading.get_ident()}] {message}", flush=True)


# ---- hyperparameters ----------------------------------------------------------------------------------
def parse_image_shape(value: str) -> tuple[int, int, int]:
    """``"3,224,224"`` (spaces allowed) -> (channels, height, width); 1 or 3 channels, sides >= 8."""
    parts = [p.strip() for p in str(value).strip().strip("'\"").split(",")]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError("must be 'num_channels,height,width', e.g. '3,224,224'")
    c, h, w = (int(p) for p in parts)
    if c not in (1, 3):
        raise ValueError("num_channels must be 3 (RGB) or 1 (grey)")
    if h < 8 or w < 8:
        raise ValueError("height and width must be at least 8")
    return c, h, w


def parse_steps(value: str) -> list[int]:
    """``"10, 20"`` -> [10, 20]: strictly increasing positive epochs."""
    try:
        steps = [int(s) for s in str(value).split(",") if s.strip()]
    except ValueError:
        raise ValueError("must be a comma-separated list of epochs, e.g. '10,20'") from None
    if not steps or any(s < 1 for s in steps) or steps != sorted(set(steps)):
        raise ValueError("must be increasing positive epochs, e.g. '10,20'")
    return steps


def _flag(v: str) -> int:
    s = str(v).strip()
    if s not in ("0", "1"):
        raise ValueError("must be 0 or 1")
    return int(s)


def _num_layers(v: str) -> int:
    n = int_in(1)(v)
    if n not in NUM_LAYERS:
        raise ValueError(f"must be one of {sorted(NUM_LAYERS)}")
    return n


def _top_k(v: str) -> int:
    k = int_in()(v)
    if k <= 1:
        raise ValueError("must be an integer larger than 1 (top-1 accuracy is the accuracy)")
    return k


def _early_stopping(v: str) -> bool:
    return boolean(v)


SPEC: dict[str, HP] = {
    "num_classes": HP(int_in(1), required=True),
    "num_training_samples": HP(int_in(1), required=True),
    "augmentation_type": HP(one_of("crop", "crop_color", "crop_color_transform")),
    "beta_1": HP(float_in(0, 1), 0.9),
    "beta_2": HP(float_in(0, 1), 0.999),
    "checkpoint_frequency": HP(int_in(1)),
    "early_stopping": HP(_early_stopping, False),
    "early_stopping_min_epochs": HP(int_in(1), 10),
    "early_stopping_patience": HP(int_in(1), 5),
    "early_stopping_tolerance": HP(float_in(0, 1), 0.0),
    "epochs": HP(int_in(1), 30),
    "eps": HP(float_in(0, 1), 1e-8),
    "gamma": HP(float_in(0, 1), 0.9),
    "image_shape": HP(parse_image_shape, (3, 224, 224)),
    "kv_store": HP(one_of("dist_sync", "dist_async")),
    "learning_rate": HP(float_in(0, 1), 0.1),
    "lr_scheduler_factor": HP(float_in(0, 1), 0.1),
    "lr_scheduler_step": HP(parse_steps),
    "mini_batch_size": HP(int_in(1), 32),
    "momentum": HP(float_in(0, 1), 0.9),
    "multi_label": HP(_flag, 0),
    "num_layers": HP(_num_layers, 152),
    "optimizer": HP(one_of("sgd", "adam", "rmsprop", "nag"), "sgd"),
    "precision_dtype": HP(one_of("float32", "float16"), "float32"),
    "resize": HP(int_in(1)),
    "top_k": HP(_top_k),
    "use_pretrained_model": HP(_flag, 0),
    "use_weighted_loss": HP(_flag, 0),
    "weight_decay": HP(float_in(0, 1), 0.0001),
}


def validate_hyperparameters(given: dict[str, str]) -> dict[str, Any]:
    """Parse and cross-check hyperparameters; refuses what this local image cannot honour."""
    hp = parse_hyperparameters(given, SPEC)
    if hp["use_pretrained_model"] == 1:
        raise ClientError(
            "use_pretrained_model=1 needs the ImageNet-pretrained ResNet weights, which this local "
            "image-classification image does not have (no network access). Set use_pretrained_model=0 "
            "to train from scratch, or pass a model this algorithm trained in a 'model' channel "
            "(incremental training)."
        )
    if hp["multi_label"] == 1:
        raise ClientError(
            "multi_label=1 (multi-hot labels from augmented manifest files) is not supported by the local "
            "image-classification image; use single-label .lst files with multi_label=0."
        )
    if hp["checkpoint_frequency"] is not None and hp["checkpoint_frequency"] > hp["epochs"]:
        raise ClientError(
            f"checkpoint_frequency ({hp['checkpoint_frequency']}) must not be greater than epochs "
            f"({hp['epochs']}) (caused by ValidationError)"
        )
    return hp


# ---- images -------------------------------------------------------------------------------------------
def decode_image(data: bytes, shape: tuple[int, int, int], resize: int | None = None) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 (C, H, W) array of ``shape``; ``ValueError`` if not an image."""
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"not a decodable JPEG/PNG image ({type(exc).__name__}: {exc})") from None
    img = img.convert("RGB" if c == 3 else "L")
    if resize is not None:
        iw, ih = img.size
        scale = resize / min(iw, ih)
        nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
        img = img.resize((nw, nh), Image.Resampling.BILINEAR)
        if nw >= w and nh >= h:
            left, top = (nw - w) // 2, (nh - h) // 2
            img = img.crop((left, top, left + w, top + h))
    if img.size != (w, h):
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    if c == 1:
        return arr[None, :, :]
    return arr.transpose(2, 0, 1).copy()


def normalise(batch: np.ndarray) -> np.ndarray:
    """(N, C, H, W) pixels 0..255 -> float32 standardised with the ImageNet channel statistics."""
    c = batch.shape[1]
    mean = np.array(MEAN_RGB if c == 3 else (float(np.mean(MEAN_RGB)),), dtype=np.float32)
    std = np.array(STD_RGB if c == 3 else (float(np.mean(STD_RGB)),), dtype=np.float32)
    return (batch.astype(np.float32) - mean[None, :, None, None]) / std[None, :, None, None]


# ---- the network --------------------------------------------------------------------------------------
def stem_factor(h: int, w: int) -> int:
    return max(1, min(h, w) // STEM_TARGET)


def pool_matrix(h: int, w: int, grid: int) -> np.ndarray:
    """(h*w, g*g) matrix averaging each cell of an adaptive g x g grid (g = min(grid, h, w))."""
    gh, gw = min(grid, h), min(grid, w)
    rows = np.minimum((np.arange(h) * gh) // h, gh - 1)
    cols = np.minimum((np.arange(w) * gw) // w, gw - 1)
    cell = (rows[:, None] * gw + cols[None, :]).reshape(-1)
    p = np.zeros((h * w, gh * gw), dtype=np.float32)
    p[np.arange(h * w), cell] = 1.0
    p /= p.sum(axis=0, keepdims=True)
    return p


@dataclass
class Net:
    """Weights (``params``, trained), batch-norm statistics (``aux``) and the geometry of ``image_shape``."""

    shape: tuple[int, int, int]
    num_classes: int
    params: dict[str, np.ndarray]
    aux: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        c, h, w = self.shape
        self.s = stem_factor(h, w)
        self.h, self.w = h // self.s, w // self.s
        self.pool = pool_matrix(self.h, self.w, GRID)

    @classmethod
    def init(cls, shape: tuple[int, int, int], num_classes: int, seed: int = 0) -> Net:
        c, h, w = shape
        rng = np.random.default_rng(seed)
        s = stem_factor(h, w)
        cells = pool_matrix(h // s, w // s, GRID).shape[1]
        fan_conv, fan_fc = c * 9, FILTERS * cells
        params = {
            "conv_weight": (rng.standard_normal((fan_conv, FILTERS)) * math.sqrt(2.0 / fan_conv)).astype(np.float32),
            "bn_gamma": np.ones(FILTERS, dtype=np.float32),
            "bn_beta": np.zeros(FILTERS, dtype=np.float32),
            "fc_weight": (rng.standard_normal((fan_fc, num_classes)) * math.sqrt(1.0 / fan_fc)).astype(np.float32),
            "fc_bias": np.zeros(num_classes, dtype=np.float32),
        }
        aux = {"bn_moving_mean": np.zeros(FILTERS, dtype=np.float32),
               "bn_moving_var": np.ones(FILTERS, dtype=np.float32)}
        return cls(shape, num_classes, params, aux)

    def _cols(self, x: np.ndarray) -> np.ndarray:
        n, c = x.shape[:2]
        s = self.s
        x = x[:, :, : self.h * s, : self.w * s]
        if s > 1:
            x = x.reshape(n, c, self.h, s, self.w, s).mean(axis=(3, 5))
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # n, c, h, w, 3, 3
        return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * self.h * self.w, c * 9)

    def forward(self, x: np.ndarray, training: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Normalised (N, C, H, W) -> class probabilities (N, K) and the cache for :meth:`backward`.

        ``training`` normalises the conv outputs with the batch's statistics (and updates the
        moving ones, momentum 0.9 as MXNet's BatchNorm); otherwise the moving statistics are used.
        """
        p = self.params
        n = x.shape[0]
        cols = self._cols(x)
        z = cols @ p["conv_weight"]
        if training:
            mean, var = z.mean(axis=0), z.var(axis=0)
            self.aux["bn_moving_mean"] = (BN_MOMENTUM * self.aux["bn_moving_mean"] + (1 - BN_MOMENTUM) * mean).astype(np.float32)
            self.aux["bn_moving_var"] = (BN_MOMENTUM * self.aux["bn_moving_var"] + (1 - BN_MOMENTUM) * var).astype(np.float32)
        else:
            mean, var = self.aux["bn_moving_mean"], self.aux["bn_moving_var"]
        inv_std = 1.0 / np.sqrt(var + BN_EPS)
        zhat = (z - mean) * inv_std
        y = zhat * p["bn_gamma"] + p["bn_beta"]
        a = np.maximum(y, 0.0)
        pooled = a.reshape(n, self.h * self.w, FILTERS).transpose(0, 2, 1) @ self.pool  # n, F, cells
        feat = pooled.reshape(n, -1)
        logits = feat @ p["fc_weight"] + p["fc_bias"]
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        probs = e / e.sum(axis=1, keepdims=True)
        return probs, {"cols": cols, "zhat": zhat, "inv_std": inv_std, "y": y, "feat": feat}

    def backward(self, probs: np.ndarray, labels: np.ndarray, cache: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Gradients of the mean cross-entropy (the cache must come from a ``training`` forward)."""
        p = self.params
        n = probs.shape[0]
        d = probs.copy()
        d[np.arange(n), labels] -= 1.0
        d /= n
        grads = {"fc_weight": cache["feat"].T @ d, "fc_bias": d.sum(axis=0)}
        dfeat = (d @ p["fc_weight"].T).reshape(n, FILTERS, -1)
        da = (dfeat @ self.pool.T).transpose(0, 2, 1).reshape(n * self.h * self.w, FILTERS)
        dy = da * (cache["y"] > 0)
        zhat = cache["zhat"]
        grads["bn_gamma"] = (dy * zhat).sum(axis=0)
        grads["bn_beta"] = dy.sum(axis=0)
        dzhat = dy * p["bn_gamma"]
        m = dzhat.shape[0]
        dz = cache["inv_std"] / m * (m * dzhat - dzhat.sum(axis=0) - zhat * (dzhat * zhat).sum(axis=0))
        grads["conv_weight"] = cache["cols"].T @ dz
        return grads

    def predict(self, x: np.ndarray, batch: int = 64) -> np.ndarray:
        out = [self.forward(x[i : i + batch])[0] for i in range(0, len(x), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), dtype=np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything to save, keyed as MXNet's .params files are (``arg:...``, ``aux:...``)."""
        return {**{f"arg:{k}": v for k, v in self.params.items()}, **{f"aux:{k}": v for k, v in self.aux.items()}}

    def describe(self) -> dict[str, Any]:
        c, h, w = self.shape
        return {
            "format": "localmaker image-classification network (numpy), not an MXNet symbol",
            "image_shape": [c, h, w],
            "num_classes": self.num_classes,
            "normalisation": {"mean": list(MEAN_RGB), "std": list(STD_RGB), "scale": "0..255"},
            "layers": [
                {"op": "avg_pool", "name": "stem", "kernel": [self.s, self.s], "stride": [self.s, self.s]},
                {"op": "conv", "name": "conv", "kernel": [3, 3], "pad": [1, 1], "filters": FILTERS, "no_bias": True,
                 "params": ["conv_weight"]},
                {"op": "batch_norm", "name": "bn", "eps": BN_EPS, "momentum": BN_MOMENTUM,
                 "params": ["bn_gamma", "bn_beta"], "aux": ["bn_moving_mean", "bn_moving_var"]},
                {"op": "relu"},
                {"op": "adaptive_avg_pool", "grid": [min(GRID, self.h), min(GRID, self.w)]},
                {"op": "fully_connected", "name": "fc", "units": self.num_classes, "params": ["fc_weight", "fc_bias"]},
                {"op": "softmax"},
            ],
        }


# ---- optimizers (MXNet's update rules) ----------------------------------------------------------------
class Optimizer:
    def __init__(self, hp: dict[str, Any], params: dict[str, np.ndarray]) -> None:
        self.kind = hp["optimizer"]
        self.hp = hp
        self.t = 0
        self.state = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float) -> None:
        hp = self.hp
        self.t += 1
        for k, w in params.items():
            g = grads[k]
            m, v = self.state[k]
            if self.kind in ("sgd", "nag"):
                if k.endswith(("weight", "gamma")):  # MXNet's default wd_mult: no decay on biases/betas
                    g = g + hp["weight_decay"] * w
                mom = hp["momentum"]
                m *= mom
                m -= lr * g
                if self.kind == "sgd":
                    w += m
                else:  # Nesterov: look ahead along the new momentum
                    w += mom * m - lr * g
            elif self.kind == "adam":
                b1, b2 = hp["beta_1"], hp["beta_2"]
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                lr_t = lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
                w -= lr_t * m / (np.sqrt(v) + hp["eps"])
            else:  # rmsprop
                gam = hp["gamma"]
                v *= gam
                v += (1 - gam) * g * g
                w -= lr * g / np.sqrt(v + hp["eps"])


# ---- augmentation -------------------------------------------------------------------------------------
def augment(batch: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Augmented float copy of a uint8 (N, C, H, W) batch, per the documented augmentation types."""
    x = batch.astype(np.float32)
    n, c, h, w = x.shape
    pad = max(1, min(h, w) // 8)
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
    out = np.empty_like(x)
    for i in range(n):
        top, left = rng.integers(0, 2 * pad + 1, size=2)
        img = padded[i, :, top : top + h, left : left + w]
        out[i] = img[:, :, ::-1] if rng.random() < 0.5 else img
    if kind in ("crop_color", "crop_color_transform") and c == 3:
        for i in range(n):
            out[i] = _jitter_hsl(out[i], rng)
    if kind == "crop_color_transform":
        from scipy.ndimage import affine_transform

        for i in range(n):
            angle = math.radians(rng.uniform(-10, 10))
            shear = rng.uniform(-0.1, 0.1)
            aspect = 1.0 + rng.uniform(-0.25, 0.25)
            m = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
            m = m @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([aspect, 1.0 / aspect])
            centre = np.array([(h - 1) / 2, (w - 1) / 2])
            offset = centre - m @ centre
            for ch in range(c):
                out[i, ch] = affine_transform(out[i, ch], m, offset=offset, order=1, mode="nearest")
    return np.clip(out, 0, 255)


def _jitter_hsl(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hue rotation (+-36 deg), saturation (+-50%) and lightness (+-50 levels) shifts of one RGB image."""
    hue = math.radians(rng.uniform(-36, 36))
    sat = 1.0 + rng.uniform(-50, 50) / 100.0
    light = rng.uniform(-50, 50)
    cos, sin = math.cos(hue), math.sin(hue)
    k = 1.0 / 3.0
    sq = math.sqrt(1.0 / 3.0)
    rot = np.array([
        [cos + (1 - cos) * k, k * (1 - cos) - sq * sin, k * (1 - cos) + sq * sin],
        [k * (1 - cos) + sq * sin, cos + k * (1 - cos), k * (1 - cos) - sq * sin],
        [k * (1 - cos) - sq * sin, k * (1 - cos) + sq * sin, cos + k * (1 - cos)],
    ], dtype=np.float32)
    x = np.tensordot(rot, img, axes=1)
    grey = x.mean(axis=0, keepdims=True)
    x = grey + sat * (x - grey) + light
    return x


# ---- data ---------------------------------------------------------------------------------------------
def _single_lst(env: TrainingEnv, channel: str) -> Path:
    files = env.channel_files(channel)
    if len(files) != 1:
        names = ", ".join(p.name for p in files[:5])
        raise ClientError(
            f"Channel '{channel}' must hold exactly one .lst file; found {len(files)} files ({names})."
        )
    return files[0]


def load_split(env: TrainingEnv, images: str, lst: str, hp: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Decode every image a channel's .lst names -> (uint8 images (N,C,H,W), int labels)."""
    lst_file = _single_lst(env, lst)
    try:
        entries: list[LstEntry] = read_lst(lst_file)
    except LstError as exc:
        raise ClientError(f"Channel '{lst}': {exc}") from None
    if not entries:
        raise ClientError(f"Channel '{lst}': {lst_file.name} lists no images.")
    k = hp["num_classes"]
    for n, e in enumerate(entries, start=1):
        if e.label >= k:
            raise ClientError(
                f"Channel '{lst}': {lst_file.name} row {n} (index {e.index}, {e.path}) has label {e.label}, "
                f"outside [0, num_classes) = [0, {k}). Labels are class indices from 0; check num_classes."
            )
    root = env.channel_dir(images)
    if not root.is_dir():
        raise ClientError(f"Channel '{images}' has no data directory {root}.")
    shape = hp["image_shape"]
    out = np.empty((len(entries), *shape), dtype=np.uint8)
    for i, e in enumerate(entries):
        try:
            f = safepath.inside(root, e.path)
        except safepath.PathEscape as exc:
            raise ClientError(
                f"Image '{e.path}' listed in channel '{lst}' ({lst_file.name}, index {e.index}) is not a path "
                f"inside channel '{images}': it {exc.reason}. Paths in a .lst file are relative to the image "
                "channel's S3 prefix."
            ) from None
        if not f.is_file():
            raise ClientError(
                f"Image '{e.path}' listed in channel '{lst}' ({lst_file.name}, index {e.index}) was not found in "
                f"channel '{images}'. Paths in a .lst file are relative to the image channel's S3 prefix."
            )
        try:
            out[i] = decode_image(f.read_bytes(), shape, hp["resize"])
        except ValueError as exc:
            raise ClientError(f"Channel '{images}': image '{e.path}' is {exc}") from None
    labels = np.array([e.label for e in entries], dtype=np.int64)
    return out, labels


def check_channels(env: TrainingEnv) -> None:
    """The image format's four channels, in a content type this image reads."""
    for name, cfg in env.channels.items():
        if name == "model":
            continue
        ctype = env.content_type(name, "application/x-image")
        if (cfg.get("RecordWrapperType") or "None") == "RecordIO":
            raise ClientError(
                f"Channel '{name}' uses an augmented manifest (RecordWrapperType RecordIO), which the local "
                "image-classification image does not read (no MXNet). Use the image format: JPEG/PNG files in "
                "'train'/'validation' with .lst files in 'train_lst'/'validation_lst', ContentType application/x-image."
            )
        if ctype == RECORDIO_TYPE:
            raise ClientError(
                f"Channel '{name}' has ContentType {RECORDIO_TYPE}: MXNet RecordIO (.rec) input is not supported by "
                "the local image-classification image (no MXNet). Use the image format: JPEG/PNG files in "
                "'train'/'validation' and one .lst file each in 'train_lst'/'validation_lst', ContentType "
                "application/x-image."
            )
        if ctype not in IMAGE_TYPES:
            raise ClientError(
                f"Channel '{name}' has ContentType {ctype}; the image format needs one of {list(IMAGE_TYPES)}."
            )
    missing = [c for c in ("train", "validation", "train_lst", "validation_lst") if not env.has_channel(c)]
    if missing:
        raise ClientError(
            f"Missing channel(s) {missing}. Training with the image format needs the channels 'train' and "
            "'validation' (JPEG/PNG files) and 'train_lst' and 'validation_lst' (one .lst file each)."
        )


def load_previous(env: TrainingEnv, hp: dict[str, Any]) -> Net | None:
    """Incremental training: the weights of a model.tar.gz this algorithm wrote, from channel 'model'."""
    if not env.has_channel("model"):
        return None
    files = env.channel_files("model")
    tars = [f for f in files if tarfile.is_tarfile(f)]
    if tars:
        target = env.base / "previous-model"
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tars[0]) as tf:
            tf.extractall(target, filter="data")
        root = target
    else:
        root = env.channel_dir("model")
    try:
        net = load_model(root)
    except (OSError, ValueError, KeyError) as exc:
        raise ClientError(f"Channel 'model': not a model trained by this image-classification algorithm ({exc})") from None
    if net.num_classes != hp["num_classes"] or net.shape != hp["image_shape"]:
        raise ClientError(
            "Channel 'model': the pretrained model has num_classes="
            f"{net.num_classes}, image_shape={','.join(map(str, net.shape))}; the new job must use the same values "
            f"(got num_classes={hp['num_classes']}, image_shape={','.join(map(str, hp['image_shape']))})."
        )
    return net


# ---- training -----------------------------------------------------------------------------------------
def topk_hits(probs: np.ndarray, y: np.ndarray, k: int) -> int:
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    return int((top == y[:, None]).any(axis=1).sum())


def save_params(net: Net, path: Path) -> None:
    with open(path, "wb") as f:
        np.savez(f, **net.arrays())


def train(env: TrainingEnv) -> None:
    hp = validate_hyperparameters(env.hyperparameters)
    check_channels(env)
    if len(env.hosts) > 1:
        log(f"Distributed training over {len(env.hosts)} hosts is not emulated; each host trains on its own data.")
    log(f"Hyperparameters: {json.dumps({k: v for k, v in hp.items() if v is not None}, default=str)}")
    log(
        f"num_layers={hp['num_layers']}: the local image trains a small numpy CNN (conv 3x3 x{FILTERS}, "
        f"{GRID}x{GRID} average pool, fully connected), not ResNet-{hp['num_layers']}."
    )
    if hp["precision_dtype"] == "float16":
        log("precision_dtype=float16: weights are kept in float32 locally.")
    t0 = time.time()
    x_train, y_train = load_split(env, "train", "train_lst", hp)
    x_val, y_val = load_split(env, "validation", "validation_lst", hp)
    log(f"Loaded {len(y_train)} training and {len(y_val)} validation images of shape "
        f"{','.join(map(str, hp['image_shape']))} in {time.time() - t0:.1f}s")
    if len(y_train) != hp["num_training_samples"]:
        log(
            f"WARNING: num_training_samples={hp['num_training_samples']} but the train .lst lists {len(y_train)} "
            "images; the real algorithm uses num_training_samples for its learning-rate schedule."
        )

    net = load_previous(env, hp)
    if net is not None:
        log("Initialised the weights from the model in channel 'model' (incremental training).")
    else:
        net = Net.init(hp["image_shape"], hp["num_classes"])
    opt = Optimizer(hp, net.params)
    rng = np.random.default_rng(0)
    model_dir = env.model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / SYMBOL_FILE).write_text(json.dumps({**net.describe(), "hyperparameters": {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()}}, indent=1))
    c, h, w = hp["image_shape"]
    (model_dir / SHAPES_FILE).write_text(json.dumps([{"shape": [1, c, h, w], "name": "data"}]))

    bs = hp["mini_batch_size"]
    k = hp["top_k"]
    lr = hp["learning_rate"]
    steps = set(hp["lr_scheduler_step"] or [])
    best_acc, best_file = -1.0, None
    since_best = 0
    x_val_n = normalise(x_val)
    for epoch in range(hp["epochs"]):
        if epoch in steps:
            lr *= hp["lr_scheduler_factor"]
            log(f"Epoch[{epoch}] Change learning rate to {lr:.5e}")
        tic = time.time()
        order = rng.permutation(len(y_train))
        correct = topk = seen = 0
        batch_tic = time.time()
        for b, start in enumerate(range(0, len(order), bs)):
            idx = order[start : start + bs]
            xb = x_train[idx]
            xb = augment(xb, hp["augmentation_type"], rng) if hp["augmentation_type"] else xb
            probs, cache = net.forward(normalise(xb), training=True)
            if not np.isfinite(probs).all():
                raise ClientError(
                    f"Training diverged in epoch {epoch} (non-finite network outputs) with optimizer={hp['optimizer']}, "
                    f"learning_rate={lr:g}; lower learning_rate."
                )
            yb = y_train[idx]
            opt.step(net.params, net.backward(probs, yb, cache), lr)
            correct += int((probs.argmax(axis=1) == yb).sum())
            topk += topk_hits(probs, yb, k) if k else 0
            seen += len(idx)
            if (b + 1) % BATCH_LOG_EVERY == 0:
                speed = BATCH_LOG_EVERY * bs / max(time.time() - batch_tic, 1e-9)
                log(f"Epoch[{epoch}] Batch [{b + 1}]\tSpeed: {speed:.2f} samples/sec\taccuracy={correct / seen:.6f}")
                batch_tic = time.time()
        log(f"Epoch[{epoch}] Train-accuracy={correct / seen:.6f}")
        if k:
            log(f"Epoch[{epoch}] Train-top_k_accuracy_{k}={topk / seen:.6f}")
        log(f"Epoch[{epoch}] Time cost={time.time() - tic:.3f}")
        probs = net.predict(x_val_n)
        acc = float((probs.argmax(axis=1) == y_val).mean())
        log(f"Epoch[{epoch}] Validation-accuracy={acc:.6f}")
        if k:
            log(f"Epoch[{epoch}] Validation-top_k_accuracy_{k}={topk_hits(probs, y_val, k) / len(y_val):.6f}")
        freq = hp["checkpoint_frequency"]
        improved = acc > best_acc and (best_acc <= 0 or (acc - best_acc) / best_acc > hp["early_stopping_tolerance"])
        if freq:
            if (epoch + 1) % freq == 0:
                path = model_dir / f"{PREFIX}-{epoch + 1:04d}.params"
                save_params(net, path)
                log(f'Saved checkpoint to "{path}"')
        elif acc > best_acc:
            log(f"Storing the best model with validation accuracy: {acc:.6f}")
            path = model_dir / f"{PREFIX}-{epoch + 1:04d}.params"
            save_params(net, path)
            if best_file is not None and best_file != path:
                best_file.unlink(missing_ok=True)
            best_file = path
            log(f'Saved checkpoint to "{path}"')
        since_best = 0 if improved else since_best + 1
        best_acc = max(best_acc, acc)
        if (hp["early_stopping"] and epoch + 1 >= hp["early_stopping_min_epochs"]
                and since_best >= hp["early_stopping_patience"]):
            log(f"Early stopping: no validation accuracy improvement above tolerance "
                f"{hp['early_stopping_tolerance']} for {since_best} epochs (best {best_acc:.6f}); stopping at epoch {epoch}.")
            break
    if not list(model_dir.glob(f"{PREFIX}-*.params")):
        # checkpoint_frequency that never fired before early stopping: keep the final weights
        path = model_dir / f"{PREFIX}-{epoch + 1:04d}.params"
        save_params(net, path)
        log(f'Saved checkpoint to "{path}"')


# ---- serving ------------------------------------------------------------------------------------------
def load_model(model_dir: Path) -> Net:
    """The network from a model directory (highest-numbered .params file)."""
    model_dir = Path(model_dir)
    desc = json.loads((model_dir / SYMBOL_FILE).read_text())
    params_files = sorted(model_dir.glob(f"{PREFIX}-[0-9][0-9][0-9][0-9].params"))
    if not params_files:
        raise FileNotFoundError(f"no {PREFIX}-NNNN.params file in {model_dir}")
    with np.load(params_files[-1], allow_pickle=False) as z:
        params = {k: z[f"arg:{k}"].astype(np.float32) for k in PARAM_NAMES}
        aux = {k: z[f"aux:{k}"].astype(np.float32) for k in AUX_NAMES}
    net = Net(tuple(int(v) for v in desc["image_shape"]), int(desc["num_classes"]), params, aux)
    if params["fc_weight"].shape != (FILTERS * net.pool.shape[1], net.num_classes):
        raise ValueError(f"{params_files[-1].name} does not match {SYMBOL_FILE}")
    return net


def invoke(net: Net, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    """One JPEG/PNG image -> JSON list of class probabilities (JSON Lines ``{"prediction": ...}`` on request)."""
    from localmaker.builtins.serving import HttpError, media_type, negotiate, unsupported_content_type

    ctype = media_type(content_type)
    if ctype not in IMAGE_TYPES:
        raise unsupported_content_type(ctype, IMAGE_TYPES)
    batch = os.environ.get("SAGEMAKER_BATCH", "").lower() == "true"
    out = negotiate(accept, [JSON_TYPE, JSONLINES_TYPE], JSONLINES_TYPE if batch else JSON_TYPE)
    if not body:
        raise HttpError(400, "the request body is empty; send one JPEG or PNG image")
    try:
        pixels = decode_image(body, net.shape)
    except ValueError as exc:
        raise HttpError(400, f"unable to read the request body as an image: {exc}") from None
    probs = net.forward(normalise(pixels[None]))[0][0]
    values = [float(p) for p in probs]
    if out == JSONLINES_TYPE:
        return (json.dumps({"prediction": values}) + "\n").encode(), JSONLINES_TYPE
    return json.dumps(values).encode(), JSON_TYPE


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load_model, invoke)


if __name__ == "__main__":
    raise SystemExit(main(train, serve))
