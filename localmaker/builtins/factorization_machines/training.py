"""factorization_machines: hyperparameters, the algorithm and the ``train`` entry point."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from localmaker.builtins import runtime as rt
from localmaker.builtins.runtime import HP, TrainingEnv

from .data import read_channel
from .model import BINARY, MODEL_FILE, REGRESSOR, FMModel, _sigmoid, raw_output

CHANNELS = ("train", "test")
SEED = 0
#: the host named in metric lines (``current_host`` of the resource config; set by :func:`train`)
HOST = "algo-1"
GROUPS = ("bias", "linear", "factors")


def _init_spec(group: str, sigma: float) -> dict[str, HP]:
    return {
        f"{group}_init_method": HP(rt.one_of("normal", "uniform", "constant"), "normal"),
        f"{group}_init_scale": HP(rt.float_in(0.0)),
        f"{group}_init_sigma": HP(rt.float_in(0.0), sigma),
        f"{group}_init_value": HP(rt.float_in()),
    }


#: the real algorithm's hyperparameters and documented defaults; required ones first
SPEC: dict[str, HP] = {
    "feature_dim": HP(rt.int_in(1), required=True),
    "num_factors": HP(rt.int_in(1), required=True),
    "predictor_type": HP(rt.one_of(BINARY, REGRESSOR), required=True),
    "mini_batch_size": HP(rt.int_in(1), 1000),
    "epochs": HP(rt.int_in(1), 1),
    "clip_gradient": HP(rt.float_in()),
    "eps": HP(rt.float_in()),
    "rescale_grad": HP(rt.float_in()),
    "bias_lr": HP(rt.float_in(0.0), 0.1),
    "linear_lr": HP(rt.float_in(0.0), 0.001),
    "factors_lr": HP(rt.float_in(0.0), 0.0001),
    "bias_wd": HP(rt.float_in(0.0), 0.01),
    "linear_wd": HP(rt.float_in(0.0), 0.001),
    "factors_wd": HP(rt.float_in(0.0), 0.00001),
    **_init_spec("bias", 0.01),
    **_init_spec("linear", 0.01),
    **_init_spec("factors", 0.001),
}


def parse_config(given: dict[str, str]) -> dict[str, Any]:
    return rt.parse_hyperparameters(given, SPEC)


def _init(hp: dict[str, Any], group: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    method = hp[f"{group}_init_method"]
    if method == "normal":
        return rng.normal(0.0, hp[f"{group}_init_sigma"], size=shape)
    if method == "uniform":
        scale = hp[f"{group}_init_scale"]
        scale = 0.01 if scale is None else scale
        return rng.uniform(-scale, scale, size=shape)
    value = hp[f"{group}_init_value"]
    return np.full(shape, 0.0 if value is None else value)


class LazyAdam:
    """Adam over one parameter group, MXNet-style: rescale, clip, add weight decay, then the Adam step;
    ``rows`` restricts the update to the rows a sparse mini-batch touched (lazy update)."""

    def __init__(self, param: np.ndarray, lr: float, wd: float, hp: dict[str, Any]) -> None:
        self.param, self.lr, self.wd = param, lr, wd
        self.m = np.zeros_like(param)
        self.s = np.zeros_like(param)
        self.t = 0
        self.eps = 1e-8 if hp["eps"] is None else hp["eps"]
        self.clip = hp["clip_gradient"]
        self.beta1, self.beta2 = 0.9, 0.999

    def step(self, grad: np.ndarray, rows: np.ndarray | None = None) -> None:
        self.t += 1
        if self.clip is not None and self.clip > 0:
            grad = np.clip(grad, -self.clip, self.clip)
        p = self.param if rows is None else self.param[rows]
        grad = grad + self.wd * p
        m = self.m if rows is None else self.m[rows]
        s = self.s if rows is None else self.s[rows]
        m = self.beta1 * m + (1 - self.beta1) * grad
        s = self.beta2 * s + (1 - self.beta2) * grad * grad
        lr = self.lr * math.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        p = p - lr * m / (np.sqrt(s) + self.eps)
        if rows is None:
            self.m[...], self.s[...], self.param[...] = m, s, p
        else:
            self.m[rows], self.s[rows], self.param[rows] = m, s, p


class EpochMetrics:
    """Running training metrics over an epoch (on each mini-batch's output before its update)."""

    def __init__(self, predictor_type: str) -> None:
        self.binary = predictor_type == BINARY
        self.n = 0
        self.sq = self.ce = 0.0
        self.correct = self.tp = self.fp = self.fn = 0

    def add(self, z: np.ndarray, y: np.ndarray) -> None:
        self.n += len(y)
        if not self.binary:
            self.sq += float(((z - y) ** 2).sum())
            return
        p = _sigmoid(z)
        self.ce += float(np.sum(np.logaddexp(0.0, z) - y * z))
        pred = p >= 0.5
        self.correct += int((pred == (y == 1)).sum())
        self.tp += int((pred & (y == 1)).sum())
        self.fp += int((pred & (y == 0)).sum())
        self.fn += int((~pred & (y == 1)).sum())

    def values(self) -> list[tuple[str, float, str]]:
        n = max(self.n, 1)
        if not self.binary:
            return [("rmse", math.sqrt(self.sq / n), "loss")]
        return binary_scores(self.correct / n, self.ce / n, self.tp, self.fp, self.fn)


def binary_scores(accuracy: float, cross_entropy: float, tp: int, fp: int, fn: int) -> list[tuple[str, float, str]]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return [("binary_classification_accuracy", accuracy, "score"),
            ("binary_classification_cross_entropy", cross_entropy, "loss"),
            ("binary_f_1.000", f1, "score")]


def evaluate(model: FMModel, x: sp.csr_matrix, y: np.ndarray) -> list[tuple[str, float, str]]:
    """The test scores the real algorithm reports: rmse, or accuracy / cross entropy / F1 at 0.5."""
    metrics = EpochMetrics(model.predictor_type)
    metrics.add(model.raw(x), y)
    return metrics.values()


def info(message: str) -> None:
    """A log line in the real images' format: ``[MM/DD/YYYY HH:MM:SS INFO <pid>] message``."""
    rt.log(f"[{time.strftime('%m/%d/%Y %H:%M:%S')} INFO {os.getpid()}] {message}")


def fit(x: sp.csr_matrix, y: np.ndarray, hp: dict[str, Any], seed: int = SEED, log: Any = info) -> FMModel:
    """Mini-batch training of a second-order FM (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    k = hp["num_factors"]
    w0 = _init(hp, "bias", (1,), rng)
    w = _init(hp, "linear", (d,), rng)
    v = _init(hp, "factors", (d, k), rng)
    opt = {"bias": LazyAdam(w0, hp["bias_lr"], hp["bias_wd"], hp),
           "linear": LazyAdam(w, hp["linear_lr"], hp["linear_wd"], hp),
           "factors": LazyAdam(v, hp["factors_lr"], hp["factors_wd"], hp)}
    bs = hp["mini_batch_size"]
    binary = hp["predictor_type"] == BINARY
    n_batches = math.ceil(n / bs)
    log_every = max(1, n_batches // 4)
    for epoch in range(hp["epochs"]):
        started = time.monotonic()
        order = rng.permutation(n)
        metrics = EpochMetrics(hp["predictor_type"])
        for b, start in enumerate(range(0, n, bs)):
            idx = order[start: start + bs]
            xb, yb = x[idx], y[idx]
            z, xv, x2 = raw_output(xb, float(w0[0]), w, v)
            metrics.add(z, yb)
            g = (_sigmoid(z) - yb) if binary else (z - yb)
            scale = hp["rescale_grad"] if hp["rescale_grad"] is not None else 1.0 / len(idx)
            g = g * scale
            rows = np.unique(xb.indices)
            xt = xb.T.tocsr()
            grad_w = xt @ g
            grad_v = xt @ (g[:, None] * xv) - (x2.T @ g)[:, None] * v
            opt["bias"].step(np.array([g.sum()]))
            opt["linear"].step(grad_w[rows], rows)
            opt["factors"].step(grad_v[rows], rows)
            if b % log_every == 0 or b == n_batches - 1:
                for name, value, kind in metrics.values():
                    log(f"#quality_metric: host={HOST}, epoch={epoch}, batch={b} train {name} <{kind}>={value!r}")
        secs = max(time.monotonic() - started, 1e-9)
        for name, value, kind in metrics.values():
            log(f"#quality_metric: host={HOST}, epoch={epoch}, train {name} <{kind}>={value!r}")
        log(f"#progress_metric: host={HOST}, completed {100.0 * (epoch + 1) / hp['epochs']:.0f} % of epochs")
        log(f"#throughput_metric: host={HOST}, train throughput={n / secs:.1f} records/second")
    return FMModel(hp["predictor_type"], float(w0[0]), w, v, {"num_factors": k, "epochs": hp["epochs"]})


def train(env: TrainingEnv) -> None:
    global HOST
    HOST = env.current_host
    hp = parse_config(env.hyperparameters)
    rt.check_labelled_channels(env, CHANNELS, "Factorization Machines", "'train' and optionally 'test'")
    if not rt.on_leader(env, "the model is trained", info):
        return
    x, y = read_channel(env, "train", hp)
    info(f"{x.shape[1]} feature(s) (feature_dim), {x.shape[0]} training records, {x.nnz} non-zero values "
         f"({x.nnz / max(1, x.shape[0]):.1f} per record).")
    model = fit(x, y, hp)
    env.model_dir.mkdir(parents=True, exist_ok=True)
    model.save(env.model_dir / MODEL_FILE)
    if env.has_channel("test"):
        xt, yt = read_channel(env, "test", hp)
        results = evaluate(model, xt, yt)
        for name, value, _ in results:
            info(f"#test_score ({HOST}) : ('{name}', {value!r})")
        for name, value, kind in results:
            info(f"#quality_metric: host={HOST}, test {name} <{kind}>={value!r}")
    else:
        info("Test data is not provided.")
