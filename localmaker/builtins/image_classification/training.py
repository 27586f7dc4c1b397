"""image_classification: hyperparameters, the algorithm and the ``train`` entry point."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from localmaker.builtins.runtime import (
    HP,
    ClientError,
    TrainingEnv,
    boolean,
    float_in,
    int_in,
    one_of,
    parse_hyperparameters,
)

from .data import check_channels, load_previous, load_split, normalise
from .model import FILTERS, GRID, NUM_LAYERS, PREFIX, SHAPES_FILE, SYMBOL_FILE, Net, log

BATCH_LOG_EVERY = 20


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
