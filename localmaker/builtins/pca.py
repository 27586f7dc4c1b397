"""SageMaker's PCA (``pca:1``) as a local program: ``train`` and ``serve``.

What it emulates (SageMaker developer guide: "PCA Hyperparameters", "PCA Response Formats",
"Common data formats for training"):

* hyperparameters ``feature_dim``, ``mini_batch_size`` and ``num_components`` (all three required, as
  the real one documents), ``algorithm_mode`` (``regular`` | ``randomized``), ``subtract_mean``
  (default true, applied in training *and* inference) and ``extra_components`` (randomized only;
  -1 = max(10, num_components)); unknown names are rejected with the 1P wording;
* the ``train`` channel (and an optional ``test`` channel, read and checked but, as far as we know,
  not scored by a metric on AWS) in ``application/x-recordio-protobuf`` or header-less ``text/csv``;
  CSV follows the common training format, so the first ``label_size`` columns (default 1) are a
  label and ignored: send ``text/csv;label_size=0`` for pure feature rows;
* ``model_algo-1`` with the real model's three arrays ``mean`` (1 x feature_dim), ``v``
  (feature_dim x num_components) and ``s`` (num_components singular values), **in ascending order**
  (largest component last), as the real artifact stores them (here a NumPy ``.npz`` instead of MXNet
  NDArrays) -- and projections come back in that same order;
* ``/invocations`` taking text/csv, application/json, application/jsonlines and RecordIO-protobuf and
  answering ``{"projections": [{"projection": [...]}, ...]}`` in JSON, JSON Lines or RecordIO-protobuf
  (label map key ``projection``).

How it computes: ``regular`` mode streams the data in ``mini_batch_size`` batches, accumulating the
exact sums (count, sum x, sum x x^T, float64) -- one pass, as the real one -- and takes the top
eigenvectors of the resulting scatter matrix (``s`` = sqrt of its eigenvalues = the singular values of
the centred data). ``randomized`` mode runs a randomized range finder with ``num_components +
extra_components`` probe vectors and two power iterations on the same scatter matrix, then solves the
small projected problem: an approximation that converges to ``regular`` as extra components grow.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localmaker.builtins import runtime as rt
from localmaker.builtins.runtime import HP, ClientError, TrainingEnv
from localmaker.builtins.serving import JSON, JSONLINES, RECORDIO, decode_dense, encode_records, negotiate

MODEL_FILE = "model_algo-1"
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


@dataclass
class PCAModel:
    """The real artifact's arrays: ``mean`` (1, d), ``v`` (d, k) and ``s`` (k,), smallest component first."""

    mean: np.ndarray
    v: np.ndarray
    s: np.ndarray

    @property
    def feature_dim(self) -> int:
        return int(self.v.shape[0])

    def project(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float64) - self.mean) @ self.v

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean.astype(np.float32), v=self.v.astype(np.float32), s=self.s.astype(np.float32))
        path.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> PCAModel:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["mean"].astype(np.float64), z["v"].astype(np.float64), z["s"].astype(np.float64))


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


def load(model_dir: Path) -> PCAModel:
    return PCAModel.load(rt.model_file(model_dir, MODEL_FILE))


def records(model: PCAModel, x: np.ndarray) -> list[dict[str, Any]]:
    return [{"projection": [float(np.float32(v)) for v in row]} for row in model.project(x)]


def invoke(model: PCAModel, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    out_type = negotiate(accept, [JSON, JSONLINES, RECORDIO], JSON)
    x = decode_dense(body, content_type, expect=model.feature_dim)
    return encode_records(records(model, x), out_type, key="projections")


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load, invoke)


if __name__ == "__main__":
    raise SystemExit(rt.main(train, serve))
