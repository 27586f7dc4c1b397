"""knn: hyperparameters, the algorithm and the ``train`` entry point."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from localmaker.builtins import runtime as rt
from localmaker.builtins.runtime import HP, ClientError, TrainingEnv

from .data import labels_of
from .model import CLASSIFIER, MODEL_FILE, REGRESSOR, KNNModel, projection_matrix

CHANNELS = ("train", "test")
SEED = 0
PQ_M_VALUES = (1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96)
#: the host named in metric lines (``current_host`` of the resource config; set by :func:`train`)
HOST = "algo-1"


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


def info(message: str) -> None:
    """A log line in the real images' format: ``[MM/DD/YYYY HH:MM:SS INFO <pid>] message``."""
    rt.log(f"[{time.strftime('%m/%d/%Y %H:%M:%S')} INFO {os.getpid()}] {message}")


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
    rt.check_labelled_channels(env, CHANNELS, "k-NN", "'train' and optionally 'test'")
    if not rt.on_leader(env, "the index is built", info):
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
