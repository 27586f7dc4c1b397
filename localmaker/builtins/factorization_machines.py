"""SageMaker's Factorization Machines (``<account>.dkr.ecr.<region>.amazonaws.com/factorization-machines:1``),
run locally: ``train`` and ``serve``.

What it emulates (SageMaker developer guide: "Factorization Machines Algorithm", "Factorization Machines
Hyperparameters", "Tune a Factorization Machines Model", "Factorization Machine Response Formats"):

* hyperparameters ``feature_dim``, ``num_factors`` and ``predictor_type`` (``binary_classifier`` |
  ``regressor``; all three required), ``mini_batch_size`` (1000), ``epochs`` (1), ``clip_gradient``,
  ``eps``, ``rescale_grad``, ``bias_lr`` (0.1), ``linear_lr`` (0.001), ``factors_lr`` (0.0001),
  ``bias_wd`` (0.01), ``linear_wd`` (0.001), ``factors_wd`` (0.00001) and, for each of bias / linear /
  factors, ``*_init_method`` (``normal`` default, ``uniform``, ``constant``) with ``*_init_sigma`` (0.01,
  0.01, 0.001), ``*_init_scale`` and ``*_init_value`` -- the documented defaults; learning rates, weight
  decays, scales and sigmas must be non-negative; missing / unknown / malformed names fail with the 1P
  ``ValidationError`` wording of :mod:`.runtime`;
* channels ``train`` (required) and ``test`` (optional) in ``application/x-recordio-protobuf`` only, as
  the real algorithm ("CSV is not a good candidate"): dense or **sparse** Float32 tensors (``keys`` +
  ``shape``, as the SDK's ``write_spmatrix_to_sparse_tensor`` writes one-hot user/item rows), one label
  per record (0/1 for ``binary_classifier``);
* per-epoch training metrics and the test scores in the 1P log format::

      #quality_metric: host=algo-1, epoch=3, batch=19 train rmse <loss>=0.91
      #quality_metric: host=algo-1, epoch=3, train rmse <loss>=0.91
      #test_score (algo-1) : ('rmse', 0.93)
      #quality_metric: host=algo-1, test rmse <loss>=0.93

  (``binary_classification_accuracy <score>``, ``binary_classification_cross_entropy <loss>`` and
  ``binary_f_1.000 <score>`` at threshold 0.5 for the classifier), which the manifest's metric
  definitions (``test:rmse``, ``test:binary_classification_accuracy``,
  ``test:binary_classification_cross_entropy``, ``test:binary_f_beta``, train ones) read;
* ``/invocations`` taking application/json (``{"instances": [{"features": [...]}]}`` dense, or the sparse
  ``{"data": {"features": {"keys": [...], "shape": [feature_dim], "values": [...]}}}``),
  application/jsonlines (one such instance a line) and RecordIO-protobuf (dense or sparse records), and
  answering ``{"predictions": [{"score": 0.83, "predicted_label": 1.0}]}`` (classifier: score =
  P(label 1), label 1 when score >= 0.5) or ``{"predictions": [{"score": 3.7}]}`` (regressor) as JSON,
  JSON Lines or RecordIO-protobuf (label map keys ``score`` / ``predicted_label``).

The model is Rendle's second-order factorization machine,
``y = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j``, computed in O(nnz * num_factors) with
``0.5 * sum_f ((X V)_f^2 - (X^2 V^2)_f)`` on SciPy CSR matrices, trained by mini-batch Adam
(MXNet-style: gradient times ``rescale_grad`` (default 1 / batch size), clipped to ``clip_gradient``,
plus ``wd * weight``, then Adam with ``eps`` (default 1e-8)), each parameter group with its own learning
rate and weight decay; linear and factor rows are updated lazily (only the rows a mini-batch touches, as
MXNet's sparse Adam). Squared loss for the regressor, logistic loss for the classifier.

Not the real thing: AWS does not document its optimizer (Adam is our choice) nor the defaults of
``*_init_scale`` / ``*_init_value`` (here 0.01 and 0.0); ``model.tar.gz`` holds ``model_algo-1`` as a
NumPy ``.npz`` (``w0``, ``w``, ``V``), not the MXNet parameter archive, so artifacts do not move between
AWS and localmaker; several hosts do not train together (algo-1 trains on the data it sees -- all of it
with FullyReplicated -- and the others write nothing); GPU and Pipe-mode specifics are not emulated; a
text/csv request is refused (415) because the algorithm documents JSON and RecordIO only.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from localmaker.builtins import runtime as rt
from localmaker.builtins.runtime import HP, ClientError, TrainingEnv
from smformats.recordio import CONTENT_TYPE as RECORDIO

BINARY, REGRESSOR = "binary_classifier", "regressor"
CHANNELS = ("train", "test")
MODEL_FILE = "model_algo-1"
SEED = 0
#: the host named in metric lines (``current_host`` of the resource config; set by :func:`train`)
HOST = "algo-1"
GROUPS = ("bias", "linear", "factors")


# ---- hyperparameters ------------------------------------------------------------------------------------
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


# ---- data: dense or sparse RecordIO-protobuf --------------------------------------------------------------
@dataclass
class Row:
    keys: np.ndarray  # int64 column indices
    values: np.ndarray  # float32
    width: int | None  # the sparse tensor's shape[0], or the dense width
    label: list[float] | None


def parse_record(payload: bytes) -> Row:
    """One ``aialgs.data.Record``: features under ``values`` (dense, or sparse with keys + shape), label."""
    from smformats import recordio as rio

    features, labels = rio.decode_tensors(payload)
    if rio.VALUES_KEY not in features:
        raise ValueError(f"no {rio.VALUES_KEY!r} features entry (keys: {sorted(features)})")
    tensor = features[rio.VALUES_KEY]
    values, keys, shape = tensor.values, tensor.keys, tensor.shape
    if keys:
        if len(keys) != len(values):
            raise ValueError(f"sparse tensor has {len(keys)} keys but {len(values)} values")
        row = Row(np.asarray(keys, dtype=np.int64), np.asarray(values, dtype=np.float32),
                  int(shape[0]) if shape else None, None)
    else:
        row = Row(np.arange(len(values), dtype=np.int64), np.asarray(values, dtype=np.float32), len(values), None)
    label = labels.get(rio.VALUES_KEY)
    if label is not None:
        lv, lk, lshape = label.values, label.keys, label.shape
        if lk:  # a sparse label: densify
            dense = [0.0] * (int(lshape[0]) if lshape else max(lk) + 1)
            for k, v in zip(lk, lv, strict=True):
                dense[k] = v
            lv = dense
        row.label = list(lv)
    return row


def iter_rows(stream: Any) -> Iterator[Row]:
    from smformats.recordio import RecordIOError, iter_recordio

    for index, payload in enumerate(iter_recordio(stream)):
        try:
            yield parse_record(payload)
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise RecordIOError(f"record {index}: invalid aialgs.data.Record protobuf: {exc}") from None


def to_csr(rows: list[Row], feature_dim: int, where: str,
           error: Callable[[str], Exception] = ClientError) -> sp.csr_matrix:
    """Stack rows into a (n, feature_dim) CSR matrix, checking every row against feature_dim."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    for i, row in enumerate(rows):
        if row.width is not None and row.width != feature_dim:
            raise error(f"{where}: record {i + 1} has {row.width} features (tensor shape) but feature_dim is "
                        f"{feature_dim}.")
        if len(row.keys) and (row.keys.max() >= feature_dim or row.keys.min() < 0):
            raise error(f"{where}: record {i + 1} has feature index {int(row.keys.max())}, outside "
                        f"feature_dim={feature_dim}.")
        if not np.isfinite(row.values).all():
            raise error(f"{where}: record {i + 1} has a NaN or infinite feature.")
        indptr[i + 1] = indptr[i] + len(row.keys)
    indices = np.concatenate([r.keys for r in rows]) if rows else np.zeros(0, dtype=np.int64)
    data = np.concatenate([r.values for r in rows]) if rows else np.zeros(0, dtype=np.float32)
    m = sp.csr_matrix((data.astype(np.float64), indices, indptr), shape=(len(rows), feature_dim))
    m.sum_duplicates()
    return m


def read_channel(env: TrainingEnv, name: str, hp: dict[str, Any]) -> tuple[sp.csr_matrix, np.ndarray]:
    from smformats.recordio import RecordIOError

    ctype = env.content_type(name, RECORDIO)
    if ctype not in (RECORDIO, "application/x-recordio"):
        raise ClientError(
            f"Content type '{ctype}' of channel '{name}' is not supported: Factorization Machines trains on "
            "application/x-recordio-protobuf (dense or sparse Float32 tensors) only."
        )
    rows: list[Row] = []
    root = env.channel_dir(name)
    for path in env.channel_files(name):
        try:
            with path.open("rb") as fh:
                rows.extend(iter_rows(fh))
        except RecordIOError as exc:
            raise ClientError(f"Channel '{name}', file {path.relative_to(root)}: not valid RecordIO-protobuf: "
                              f"{exc}") from None
    if not rows:
        raise ClientError(f"Channel '{name}' has no records.")
    x = to_csr(rows, hp["feature_dim"], f"Channel '{name}'")
    missing = next((i for i, r in enumerate(rows) if r.label is None), None)
    if missing is not None:
        raise ClientError(f"Channel '{name}': record {missing + 1} has no label. Factorization Machines is "
                          "supervised: put the label in each record.")
    sizes = {len(r.label or ()) for r in rows}
    if sizes != {1}:
        raise ClientError(f"Channel '{name}': each record must have exactly one label, found sizes {sorted(sizes)}.")
    y = np.asarray([r.label[0] for r in rows if r.label], dtype=np.float64)
    if not np.isfinite(y).all():
        raise ClientError(f"Channel '{name}': labels contain NaN or infinite values.")
    if hp["predictor_type"] == BINARY:
        bad = y[(y != 0) & (y != 1)]
        if bad.size:
            raise ClientError(f"Channel '{name}': label {bad[0]:g} is not valid for predictor_type "
                              "'binary_classifier'; labels must be 0 or 1.")
    return x, y


# ---- the model --------------------------------------------------------------------------------------------
@dataclass
class FMModel:
    predictor_type: str
    w0: float
    w: np.ndarray  # (feature_dim,)
    v: np.ndarray  # (feature_dim, num_factors)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.w.shape[0])

    def raw(self, x: sp.csr_matrix) -> np.ndarray:
        return raw_output(x, self.w0, self.w, self.v)[0]

    def scores(self, x: sp.csr_matrix) -> np.ndarray:
        z = self.raw(x)
        return _sigmoid(z) if self.predictor_type == BINARY else z

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        meta = {"predictor_type": self.predictor_type, **self.meta}
        np.savez(buf, w0=np.array([self.w0], dtype=np.float32), w=self.w.astype(np.float32),
                 V=self.v.astype(np.float32), meta=np.array(json.dumps(meta, default=str)))
        path.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> FMModel:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            ptype = meta.pop("predictor_type")
            return cls(ptype, float(z["w0"][0]), z["w"].astype(np.float64), z["V"].astype(np.float64), meta)


def raw_output(x: sp.csr_matrix, w0: float, w: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """``(y_hat, X V, X∘X)``: the FM output and the pieces its gradient reuses."""
    xv = x @ v
    x2 = x.multiply(x).tocsr()
    inter = 0.5 * ((xv * xv).sum(axis=1) - (x2 @ (v * v)).sum(axis=1))
    return w0 + x @ w + inter, xv, x2


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


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
    rt.check_channels(env, CHANNELS, "Factorization Machines reads 'train' and optionally 'test'.",
                      "The 'train' channel is required: Factorization Machines needs labelled training data.")
    if not env.is_leader:
        info(f"{env.current_host}: the model is trained on {sorted(env.hosts)[0]}; nothing to do on this host.")
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


# ---- serving ------------------------------------------------------------------------------------------------
def load(model_dir: Path) -> FMModel:
    return FMModel.load(rt.model_file(model_dir, MODEL_FILE))


def _json_instance(item: Any, i: int) -> Row:
    """One instance: ``[...]``, ``{"features": [...]}`` or ``{"data": {"features": {"values", "keys", "shape"}}}``."""
    from localmaker.builtins.serving import HttpError

    if isinstance(item, dict) and "data" in item:
        try:
            feats = item["data"]["features"]
            values = [float(v) for v in feats["values"]]
            keys = feats.get("keys")
            shape = feats.get("shape")
        except (KeyError, TypeError, ValueError):
            raise HttpError(400, f"instance {i}: expected data.features with numeric 'values'") from None
        if keys is None:
            return Row(np.arange(len(values)), np.asarray(values, dtype=np.float32), len(values), None)
        try:
            key_arr = np.asarray([int(k) for k in keys], dtype=np.int64)
            width = int(shape[0]) if shape else None
        except (TypeError, ValueError, IndexError):
            raise HttpError(400, f"instance {i}: 'keys' and 'shape' must be integers") from None
        if len(key_arr) != len(values):
            raise HttpError(400, f"instance {i}: {len(key_arr)} keys but {len(values)} values")
        return Row(key_arr, np.asarray(values, dtype=np.float32), width, None)
    if isinstance(item, dict):
        if "features" not in item:
            raise HttpError(400, f"instance {i}: expected 'features' or 'data'")
        item = item["features"]
    if not isinstance(item, list):
        raise HttpError(400, f"instance {i}: expected a list of numbers")
    try:
        values = [float(v) for v in item]
    except (TypeError, ValueError):
        raise HttpError(400, f"instance {i}: features must be numbers") from None
    return Row(np.arange(len(values)), np.asarray(values, dtype=np.float32), len(values), None)


def decode(body: bytes, content_type: str, feature_dim: int) -> sp.csr_matrix:
    from localmaker.builtins import serving

    ctype = serving.media_type(content_type)
    if ctype == serving.JSON:
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise serving.HttpError(400, f"the body is not valid JSON: {exc}") from None
        items = doc["instances"] if isinstance(doc, dict) and "instances" in doc else [doc]
        if not isinstance(items, list) or not items:
            raise serving.HttpError(400, "'instances' must be a non-empty list")
        rows = [_json_instance(item, i) for i, item in enumerate(items, start=1)]
    elif ctype == serving.JSONLINES:
        rows = [_json_instance(item, i) for i, item in serving.json_lines(body)]
    elif ctype in (RECORDIO, "application/x-recordio"):
        from smformats.recordio import RecordIOError

        try:
            rows = list(iter_rows(io.BytesIO(body)))
        except RecordIOError as exc:
            raise serving.HttpError(400, f"the body is not RecordIO-protobuf: {exc}") from None
    else:
        raise serving.unsupported_content_type(ctype, [serving.JSON, serving.JSONLINES, RECORDIO])
    if not rows:
        raise serving.HttpError(400, "the request has no records")

    def bad(message: str) -> serving.HttpError:
        return serving.HttpError(400, message)

    return to_csr(rows, feature_dim, "request", error=bad)


def records(model: FMModel, x: sp.csr_matrix) -> list[dict[str, Any]]:
    scores = model.scores(x)
    if model.predictor_type == REGRESSOR:
        return [{"score": float(np.float32(s))} for s in scores]
    return [{"score": float(np.float32(s)), "predicted_label": 1.0 if s >= 0.5 else 0.0} for s in scores]


def invoke(model: FMModel, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    from localmaker.builtins import serving

    out_type = serving.negotiate(accept, [serving.JSON, serving.JSONLINES, serving.RECORDIO], serving.JSON)
    x = decode(body, content_type, model.feature_dim)
    return serving.encode_records(records(model, x), out_type, key="predictions")


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load, invoke)


if __name__ == "__main__":
    raise SystemExit(rt.main(train, serve))
