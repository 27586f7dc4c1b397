"""pca: hyperparameters, the algorithm and the ``train`` entry point."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from localmaker.builtins import runtime as rt
from localmaker.builtins.runtime import HP, ClientError, TrainingEnv

from .model import MODEL_FILE, PCAModel

CHANNELS = ("train", "test")
#: the host named in metric lines (``current_host`` of the resource config; set by :func:`train`)
HOST = "algo-1"
SPEC: dict[str, HP] = {
    "feature_dim": HP(rt.int_in(1), required=True),
    "mini_batch_size": HP(rt.int_in(1), required=True),
    "num_components": HP(rt.int_in(1), required=True),
    "algorithm_mode": HP(rt.one_of("regular", "randomized"), "regular"),
    "subtract_mean": HP(rt.boolean, True),
    "extra_components": HP(rt.int_in(-1), -1),
}


def parse_config(given: dict[str, str]) -> dict[str, Any]:
    hp = rt.parse_hyperparameters(given, SPEC)
    if hp["num_components"] > hp["feature_dim"]:
        raise ClientError(
            f"num_components ({hp['num_components']}) cannot be larger than feature_dim ({hp['feature_dim']}) "
            "(caused by ValidationError)"
        )
    return hp


class ScatterAccumulator:
    """One streaming pass over mini-batches: count, sum and sum of outer products (float64)."""

    def __init__(self, d: int) -> None:
        self.n = 0
        self.total = np.zeros(d)
        self.outer = np.zeros((d, d))

    def add(self, batch: np.ndarray) -> None:
        b = batch.astype(np.float64)
        self.n += len(b)
        self.total += b.sum(axis=0)
        self.outer += b.T @ b

    def scatter(self, subtract_mean: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, X^T X of the (centred) data)``."""
        if not subtract_mean:
            return np.zeros((1, len(self.total))), self.outer.copy()
        mean = self.total / self.n
        return mean[None, :], self.outer - self.n * np.outer(mean, mean)


def fit(x: np.ndarray, hp: dict[str, Any], seed: int = 0) -> PCAModel:
    """The PCA model of ``x`` (rows = records) for the parsed hyperparameters."""
    n, d = x.shape
    k = hp["num_components"]
    acc = ScatterAccumulator(d)
    for start in range(0, n, hp["mini_batch_size"]):
        acc.add(x[start: start + hp["mini_batch_size"]])
    mean, scatter = acc.scatter(hp["subtract_mean"])
    scatter = (scatter + scatter.T) / 2.0
    if hp["algorithm_mode"] == "regular":
        vals, vecs = np.linalg.eigh(scatter)  # ascending
        vals, vecs = vals[-k:], vecs[:, -k:]
    else:
        extra = hp["extra_components"]
        extra = max(10, k) if extra == -1 else extra
        probes = min(d, k + extra)
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(scatter @ rng.standard_normal((d, probes)))
        for _ in range(2):  # power iterations sharpen the spectrum
            q, _ = np.linalg.qr(scatter @ q)
        small_vals, small_vecs = np.linalg.eigh(q.T @ scatter @ q)
        vals, vecs = small_vals[-k:], (q @ small_vecs)[:, -k:]
    # a deterministic sign per component (largest-magnitude loading positive), as sklearn's svd_flip
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    vecs = vecs * np.where(signs == 0, 1.0, signs)
    return PCAModel(mean, vecs, np.sqrt(np.clip(vals, 0.0, None)))


def info(message: str) -> None:
    rt.log(f"[{time.strftime('%m/%d/%Y %H:%M:%S')} INFO {os.getpid()}] {message}")


def train(env: TrainingEnv) -> None:
    global HOST
    HOST = env.current_host
    hp = parse_config(env.hyperparameters)
    rt.check_channels(env, CHANNELS, "PCA reads 'train' (and optionally 'test').")
    started = time.monotonic()
    x, _ = rt.read_dense_channel(env, "train", label_size=1, feature_dim=hp["feature_dim"])
    if len(x) < 2:
        raise ClientError(f"PCA needs at least 2 training records; the 'train' channel has {len(x)}.")
    info(f"{x.shape[1]} feature(s) found in 'data'.")
    model = fit(x, hp)
    elapsed = max(time.monotonic() - started, 1e-9)
    info(f"#progress_metric: host={HOST}, completed 100.0 % of epochs")
    info(f"#throughput_metric: host={HOST}, train throughput={len(x) / elapsed:.1f} records/second")
    info(f"Singular values (ascending, largest last): {[round(float(s), 6) for s in model.s]}")
    if env.has_channel("test"):
        xt, _ = rt.read_dense_channel(env, "test", label_size=1, feature_dim=hp["feature_dim"])
        recon = model.project(xt) @ model.v.T + model.mean
        info(f"Test data: {len(xt)} records, mean squared reconstruction error "
             f"{float(np.mean(np.sum((xt - recon) ** 2, axis=1))):.6g}.")
    else:
        info("Test data is not provided.")
    env.model_dir.mkdir(parents=True, exist_ok=True)
    model.save(env.model_dir / MODEL_FILE)
