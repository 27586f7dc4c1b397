"""SageMaker's k-nearest neighbors (``<account>.dkr.ecr.<region>.amazonaws.com/knn:1``) as a local program.

What it emulates (SageMaker developer guide: "k-NN Hyperparameters", "Data Formats for k-NN Training
Input", "k-NN Request and Response Formats", "Tune a k-NN Model"):

* hyperparameters ``feature_dim``, ``k``, ``predictor_type`` (``classifier`` | ``regressor``) and
  ``sample_size`` (all four required), ``mini_batch_size`` (default 5000), ``dimension_reduction_type``
  (``sign`` | ``fjlt``) with ``dimension_reduction_target`` (required with a type, 0 < target <
  feature_dim), ``index_type`` (``faiss.Flat`` default, ``faiss.IVFFlat``, ``faiss.IVFPQ``),
  ``index_metric`` (``L2`` default, ``INNER_PRODUCT``, ``COSINE``; the latter two are refused with
  ``faiss.IVFPQ`` as documented), ``faiss_index_ivf_nlists`` (``auto`` or a positive integer) and
  ``faiss_index_pq_m`` (one of 1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96); missing and
  unknown names fail with the 1P ``ValidationError`` wording of :mod:`.runtime`;
* channels ``train`` (required) and ``test`` (optional) in ``application/x-recordio-protobuf`` (the
  default; label under ``values``) or ``text/csv`` whose first ``label_size`` column (default 1) is the
  label; every record needs exactly one label;
* training = the real algorithm's three steps: sample ``sample_size`` records (uniformly, without
  replacement; all of them when there are fewer), reduce the dimension (``sign``: a random +-1
  projection; ``fjlt``: random signs, a normalised Walsh-Hadamard transform and a random choice of
  ``dimension_reduction_target`` coordinates), and build the index;
* the ``test`` channel scored as the real image logs it -- classifier accuracy, regressor mse::

      #test_score (algo-1) : ('accuracy', 0.98)
      #quality_metric: host=algo-1, test accuracy <score>=0.98
      #quality_metric: host=algo-1, test mse <loss>=0.0133

  which the manifest's metric definitions (``test:accuracy``, ``test:mse``) read;
* ``/invocations`` taking text/csv (``label_size`` parameter, default 0), application/json,
  application/jsonlines and RecordIO-protobuf, answering per ``Accept`` (default JSON)
  ``{"predictions": [{"predicted_label": 0.0}, ...]}`` as JSON, JSON Lines or RecordIO-protobuf (label
  map key ``predicted_label``), and with ``verbose=true`` on the Accept type
  (``application/json; verbose=true``) also ``distances`` (nearest first) and the neighbours' ``labels``.

Prediction: the classifier answers the most frequent label among the k neighbours (a tie goes to the
tied label met first, i.e. the one with the nearest neighbour); the regressor the mean of their labels.

Not the real thing: every ``index_type`` is an exact brute-force search here (``faiss.IVFFlat`` /
``faiss.IVFPQ`` are validated and recorded but do not approximate, so answers can be *better* than on
AWS); distances follow FAISS's conventions as we understand them -- squared Euclidean distance for L2,
the inner product for INNER_PRODUCT and cosine similarity for COSINE (for the latter two, larger is
nearer and comes first) -- not checked against a real endpoint; ``model.tar.gz`` holds
``model_algo-1`` as a NumPy ``.npz`` (sampled points, labels, projection), not the real FAISS index, so
a model trained on AWS does not host locally and vice versa. With several hosts, algo-1 builds the
model from the data it sees (all of it with FullyReplicated; only its shard with ShardedByS3Key) and
the other hosts write nothing. The exact wording of k-NN's own cross-parameter errors (target vs
feature_dim, k vs sample size...) is ours.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from localmaker.builtins import runtime as rt
from localmaker.builtins.runtime import HP, ClientError, TrainingEnv

CLASSIFIER, REGRESSOR = "classifier", "regressor"
CHANNELS = ("train", "test")
MODEL_FILE = "model_algo-1"
SEED = 0
PQ_M_VALUES = (1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96)
#: the host named in metric lines (``current_host`` of the resource config; set by :func:`train`)
HOST = "algo-1"


# ---- hyperparameters ------------------------------------------------------------------------------------
def _auto_or_positive_int(v: str) -> Any:
    return "auto" if str(v).strip().lower() == "auto" else rt.int_in(1)(v)


def _pq_m(v: str) -> int:
    i = rt.int_in(1)(v)
    if i not in PQ_M_VALUES:
        raise ValueError(f"must be one of {list(PQ_M_VALUES)}")
    return i


#: the real algorithm's hyperparameters; required ones first (the missing-names message lists them in order)
SPEC: dict[str, HP] = {
    "feature_dim": HP(rt.int_in(1), required=True),
    "k": HP(rt.int_in(1), required=True),
    "predictor_type": HP(rt.one_of(CLASSIFIER, REGRESSOR), required=True),
    "sample_size": HP(rt.int_in(1), required=True),
    "mini_batch_size": HP(rt.int_in(1), 5000),
    "dimension_reduction_type": HP(rt.one_of("sign", "fjlt")),
    "dimension_reduction_target": HP(rt.int_in(1)),
    "index_type": HP(rt.one_of("faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ"), "faiss.Flat"),
    "index_metric": HP(rt.one_of("L2", "INNER_PRODUCT", "COSINE"), "L2"),
    "faiss_index_ivf_nlists": HP(_auto_or_positive_int, "auto"),
    "faiss_index_pq_m": HP(_pq_m),
}


def parse_config(given: dict[str, str]) -> dict[str, Any]:
    """The 1P validation plus k-NN's documented rules between hyperparameters."""
    hp = rt.parse_hyperparameters(given, SPEC)
    if hp["dimension_reduction_type"] is not None:
        if hp["dimension_reduction_target"] is None:
            raise ClientError(
                "No value(s) were specified for 'dimension_reduction_target' which are required hyperparameter(s) "
                "when dimension_reduction_type is set (caused by ValidationError)"
            )
        if hp["dimension_reduction_target"] >= hp["feature_dim"]:
            raise ClientError(
                f"dimension_reduction_target ({hp['dimension_reduction_target']}) must be less than feature_dim "
                f"({hp['feature_dim']}) (caused by ValidationError)"
            )
    if hp["index_type"] == "faiss.IVFPQ" and hp["index_metric"] != "L2":
        raise ClientError(
            f"index_metric '{hp['index_metric']}' is not supported with index_type 'faiss.IVFPQ'; "
            "use 'L2' (caused by ValidationError)"
        )
    return hp


# ---- dimension reduction ----------------------------------------------------------------------------------
def projection_matrix(kind: str, d: int, target: int, rng: np.random.Generator) -> np.ndarray:
    """A (d, target) float32 matrix: ``x @ P`` reduces a row; squared norms are kept in expectation."""
    if kind == "sign":
        return (rng.choice([-1.0, 1.0], size=(d, target)) / math.sqrt(target)).astype(np.float32)
    # fjlt: x -> (x * signs) padded to 2^m -> normalised Hadamard -> `target` random coordinates, rescaled
    size = 1 << max(0, (d - 1).bit_length())
    signs = rng.choice([-1.0, 1.0], size=d)
    hadamard = _hadamard(size) / math.sqrt(size)
    chosen = np.sort(rng.choice(size, size=target, replace=False))
    return (signs[:, None] * hadamard[:d][:, chosen] * math.sqrt(size / target)).astype(np.float32)


def _hadamard(n: int) -> np.ndarray:
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


# ---- the model --------------------------------------------------------------------------------------------
@dataclass
class KNNModel:
    """The index (the sampled points, reduced when asked) and its labels, plus how to query it."""

    points: np.ndarray  # (n, d') float32
    labels: np.ndarray  # (n,) float32
    k: int
    predictor_type: str
    index_metric: str = "L2"
    projection: np.ndarray | None = None  # (feature_dim, d')
    feature_dim: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.feature_dim:
            self.feature_dim = int(self.projection.shape[0] if self.projection is not None else self.points.shape[1])
        self._unit = _normalise(self.points) if self.index_metric == "COSINE" else None

    def reduce(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32, copy=False)
        return x @ self.projection if self.projection is not None else x

    def search(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)`` of the k nearest points per row, nearest first (exact search)."""
        q = self.reduce(x).astype(np.float64)
        p = self.points.astype(np.float64)
        k = min(self.k, len(p))
        if self.index_metric == "L2":
            score = (q * q).sum(1)[:, None] - 2.0 * q @ p.T + (p * p).sum(1)[None, :]
            score = np.maximum(score, 0.0)
            sign = 1.0
        elif self.index_metric == "INNER_PRODUCT":
            score, sign = -(q @ p.T), -1.0
        else:  # COSINE: similarity of unit vectors
            assert self._unit is not None
            score, sign = -(_normalise(q) @ self._unit.T.astype(np.float64)), -1.0
        part = np.argpartition(score, k - 1, axis=1)[:, :k] if k < score.shape[1] else np.tile(
            np.arange(score.shape[1]), (len(q), 1))
        rows = np.arange(len(q))[:, None]
        order = np.argsort(score[rows, part], axis=1, kind="stable")
        idx = part[rows, order]
        return sign * score[rows, idx], idx

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(predicted_label, distances, neighbour labels)`` per row."""
        dist, idx = self.search(x)
        neigh = self.labels[idx]
        if self.predictor_type == REGRESSOR:
            return neigh.astype(np.float64).mean(axis=1), dist, neigh
        return np.array([_vote(row) for row in neigh]), dist, neigh

    def save(self, path: Path) -> None:
        meta = {"k": self.k, "predictor_type": self.predictor_type, "index_metric": self.index_metric,
                "feature_dim": self.feature_dim, **self.meta}
        arrays = {"points": self.points, "labels": self.labels, "meta": np.array(json.dumps(meta))}
        if self.projection is not None:
            arrays["projection"] = self.projection
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> KNNModel:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            projection = z["projection"] if "projection" in z.files else None
            extra = {k: v for k, v in meta.items() if k not in ("k", "predictor_type", "index_metric", "feature_dim")}
            return cls(z["points"], z["labels"], int(meta["k"]), meta["predictor_type"], meta["index_metric"],
                       projection, int(meta["feature_dim"]), extra)


def _normalise(a: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(norms > 0, norms, 1.0)


def _vote(labels: np.ndarray) -> float:
    """The most frequent label; a tie goes to the tied label whose first occurrence is nearest."""
    values, first, counts = np.unique(labels, return_index=True, return_counts=True)
    best = counts == counts.max()
    return float(values[best][np.argmin(first[best])])


# ---- training ---------------------------------------------------------------------------------------------
def info(message: str) -> None:
    """A log line in the real images' format: ``[MM/DD/YYYY HH:MM:SS INFO <pid>] message``."""
    rt.log(f"[{time.strftime('%m/%d/%Y %H:%M:%S')} INFO {os.getpid()}] {message}")


def labels_of(labels: np.ndarray | None, channel: str) -> np.ndarray:
    if labels is None:
        raise ClientError(
            f"Channel '{channel}' has no labels. k-NN is supervised: put the label in each RecordIO-protobuf "
            "record, or in the first column of text/csv data."
        )
    if labels.shape[1] != 1:
        raise ClientError(f"Channel '{channel}': each record must have exactly one label, found {labels.shape[1]}.")
    return labels[:, 0].astype(np.float32)


def fit(x: np.ndarray, y: np.ndarray, hp: dict[str, Any], seed: int = SEED) -> KNNModel:
    rng = np.random.default_rng(seed)
    n = len(x)
    if hp["sample_size"] < n:
        # the real algorithm samples while streaming mini-batches; a uniform sample without replacement
        keep = np.sort(rng.choice(n, size=hp["sample_size"], replace=False))
        x, y = x[keep], y[keep]
        info(f"Sampled {len(x)} of {n} training records (sample_size={hp['sample_size']}).")
    else:
        info(f"sample_size={hp['sample_size']} >= {n} training records: the index holds all of them.")
    if hp["k"] > len(x):
        raise ClientError(
            f"k ({hp['k']}) is larger than the number of points in the index ({len(x)}): raise sample_size or "
            "provide more training data, or lower k."
        )
    projection = None
    if hp["dimension_reduction_type"]:
        projection = projection_matrix(hp["dimension_reduction_type"], x.shape[1], hp["dimension_reduction_target"], rng)
        x = x @ projection
        info(f"Reduced the dimension from {hp['feature_dim']} to {hp['dimension_reduction_target']} "
             f"({hp['dimension_reduction_type']}).")
    if hp["index_type"] != "faiss.Flat":
        nlists = hp["faiss_index_ivf_nlists"]
        nlists = max(1, int(math.sqrt(len(x)))) if nlists == "auto" else nlists
        info(f"index_type {hp['index_type']} (nlists={nlists}, pq_m={hp['faiss_index_pq_m']}): "
             "the local index searches exhaustively (exact results).")
    meta = {"index_type": hp["index_type"], "dimension_reduction_type": hp["dimension_reduction_type"]}
    return KNNModel(x.astype(np.float32), y.astype(np.float32), hp["k"], hp["predictor_type"], hp["index_metric"],
                    projection, hp["feature_dim"], meta)


def scores(model: KNNModel, x: np.ndarray, y: np.ndarray, batch: int) -> tuple[str, float, str]:
    preds = np.concatenate([model.predict(x[i: i + batch])[0] for i in range(0, len(x), batch)])
    if model.predictor_type == CLASSIFIER:
        return "accuracy", float(np.mean(preds == y)), "score"
    return "mse", float(np.mean((preds - y.astype(np.float64)) ** 2)), "loss"


def train(env: TrainingEnv) -> None:
    global HOST
    HOST = env.current_host
    hp = parse_config(env.hyperparameters)
    rt.check_channels(env, CHANNELS, "k-NN reads 'train' and optionally 'test'.",
                      "The 'train' channel is required: k-NN needs labelled training data.")
    if not env.is_leader:
        info(f"{env.current_host}: the index is built on {sorted(env.hosts)[0]}; nothing to do on this host.")
        return
    started = time.monotonic()
    x, labels = rt.read_dense_channel(env, "train", label_size=1, feature_dim=hp["feature_dim"])
    y = labels_of(labels, "train")
    info(f"{x.shape[1]} feature(s) found in 'data'; {len(x)} training records.")
    model = fit(x, y, hp)
    secs = max(time.monotonic() - started, 1e-9)
    info(f"#progress_metric: host={HOST}, completed 100 % of epochs")
    info(f"#throughput_metric: host={HOST}, train throughput={len(x) / secs:.1f} records/second")
    env.model_dir.mkdir(parents=True, exist_ok=True)
    model.save(env.model_dir / MODEL_FILE)
    info(f"Index of {len(model.points)} points of dimension {model.points.shape[1]} written to {MODEL_FILE}.")
    if env.has_channel("test"):
        xt, lt = rt.read_dense_channel(env, "test", label_size=1, feature_dim=hp["feature_dim"])
        name, value, kind = scores(model, xt, labels_of(lt, "test"), hp["mini_batch_size"])
        info(f"#test_score ({HOST}) : ('{name}', {value!r})")
        info(f"#quality_metric: host={HOST}, test {name} <{kind}>={value!r}")
    else:
        info("Test data is not provided.")


# ---- serving ------------------------------------------------------------------------------------------------
def load(model_dir: Path) -> KNNModel:
    return KNNModel.load(rt.model_file(model_dir, MODEL_FILE))


def accept_type(accept: str | None) -> tuple[str, bool]:
    """The answer's media type and whether ``verbose=true`` was asked for on it."""
    from localmaker.builtins import serving

    supported = [serving.JSON, serving.JSONLINES, serving.RECORDIO]
    out = serving.negotiate(accept, supported, serving.JSON)
    verbose = False
    for part in (accept or "").split(","):
        media, *params = part.split(";")
        if serving.media_type(media) in (out, "*/*"):
            for param in params:
                key, _, value = param.partition("=")
                if key.strip().lower() == "verbose" and value.strip().strip('"').lower() == "true":
                    verbose = True
            break
    return out, verbose


def decode(body: bytes, content_type: str, feature_dim: int) -> np.ndarray:
    """The request's rows; text/csv takes a ``label_size`` parameter (leading columns dropped, default 0)."""
    from localmaker.builtins import serving

    ctype = serving.media_type(content_type)
    if ctype != serving.CSV:
        return serving.decode_dense(body, content_type, expect=feature_dim)
    label_size = 0
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "label_size":
            try:
                label_size = int(value.strip())
            except ValueError:
                raise serving.HttpError(400, f"label_size={value.strip()!r} is not an integer") from None
            if label_size < 0:
                raise serving.HttpError(400, "label_size must not be negative")
    rows = serving.decode_csv(body)[:, label_size:]
    if rows.shape[1] != feature_dim:
        raise serving.HttpError(400, f"rows have {rows.shape[1]} features after label_size={label_size}; "
                                     f"the model expects {feature_dim} features")
    return rows


def records(model: KNNModel, x: np.ndarray, verbose: bool) -> list[dict[str, Any]]:
    predicted, dist, neigh = model.predict(x)
    out = []
    for i, label in enumerate(predicted):
        rec: dict[str, Any] = {"predicted_label": float(np.float32(label))}
        if verbose:
            rec["distances"] = [float(np.float32(d)) for d in dist[i]]
            rec["labels"] = [float(np.float32(v)) for v in neigh[i]]
        out.append(rec)
    return out


def invoke(model: KNNModel, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    from localmaker.builtins import serving

    out_type, verbose = accept_type(accept)
    x = decode(body, content_type, model.feature_dim)
    return serving.encode_records(records(model, x, verbose), out_type, key="predictions")


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load, invoke)


if __name__ == "__main__":
    raise SystemExit(rt.main(train, serve))
