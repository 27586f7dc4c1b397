"""image_classification: the model and its file, shared by training and serving."""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PREFIX = "image-classification"
SYMBOL_FILE = f"{PREFIX}-symbol.json"
SHAPES_FILE = "model-shapes.json"
NUM_LAYERS = (18, 34, 50, 101, 152, 200, 20, 32, 44, 56, 110)
FILTERS = 16
GRID = 8
STEM_TARGET = 32
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
