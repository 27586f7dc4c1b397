"""kmeans: hyperparameters, the algorithm and the ``train`` entry point."""

from __future__ import annotations

import io
import json
import math
import os
import socket
import struct
import time
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

from .data import read_channel
from .model import MODEL_FILE, assign, save_ndarray_list

SEED = 0
METRICS = ("msd", "ssd")
PEER_TIMEOUT = float(os.environ.get("KMEANS_PEER_TIMEOUT", "600"))


def auto_or_positive_int(v: str) -> int | None:
    """``auto`` (None: the algorithm decides) or a positive integer, as extra_center_factor and
    local_lloyd_num_trials take."""
    if str(v).strip().lower() == "auto":
        return None
    return int_in(1)(v)


def eval_metrics(v: str) -> list[str]:
    """A JSON list drawn from msd / ssd (the real algorithm rejects anything that is not JSON)."""
    try:
        doc = json.loads(v)
    except ValueError:
        raise ValueError('must be a JSON list such as ["msd"] or ["msd","ssd"]') from None
    if not isinstance(doc, list) or not doc or not all(isinstance(m, str) for m in doc):
        raise ValueError('must be a non-empty JSON list such as ["msd"] or ["msd","ssd"]')
    bad = [m for m in doc if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metric(s) {bad}; allowed: {list(METRICS)}")
    return list(dict.fromkeys(doc))


#: the real algorithm's hyperparameters; required ones first so the missing-names message reads as AWS's
SPEC: dict[str, HP] = {
    "k": HP(int_in(1), required=True),
    "feature_dim": HP(int_in(1), required=True),
    "mini_batch_size": HP(int_in(1), 5000),
    "epochs": HP(int_in(1), 1),
    "init_method": HP(one_of("random", "kmeans++"), "random"),
    "extra_center_factor": HP(auto_or_positive_int, None),
    "local_lloyd_max_iter": HP(int_in(1), 300),
    "local_lloyd_tol": HP(float_in(0.0, 1.0), 0.0001),
    "local_lloyd_init_method": HP(one_of("random", "kmeans++"), "kmeans++"),
    "local_lloyd_num_trials": HP(auto_or_positive_int, None),
    "half_life_time_size": HP(int_in(0), 0),
    "eval_metrics": HP(eval_metrics, ["msd"]),
    "force_dense": HP(boolean, True),  # the SageMaker Python SDK always sends force_dense=True
}


#: names of the SageMaker Python SDK's KMeans attributes that are sent under another hyperparameter name
SDK_ALIASES = {"max_iterations": "local_lloyd_max_iter", "tol": "local_lloyd_tol",
               "num_trials": "local_lloyd_num_trials", "local_init_method": "local_lloyd_init_method",
               "center_factor": "extra_center_factor"}


def parse_hps(given: dict[str, str]) -> dict[str, Any]:
    """:func:`parse_hyperparameters` with a hint when an SDK attribute name was sent as a hyperparameter."""
    try:
        return parse_hyperparameters(given, SPEC)
    except ClientError as exc:
        hints = [f"'{n}' is sent as '{SDK_ALIASES[n]}'" for n in given if n in SDK_ALIASES]
        if hints and "unexpected" in str(exc):
            raise ClientError(f"{exc}; the SageMaker Python SDK's {', '.join(hints)}") from None
        raise


def seed_centers(x: np.ndarray, w: np.ndarray, n: int, method: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` initial centers drawn from the (weighted) points: uniformly (random) or by D^2 sampling (kmeans++)."""
    p = w / w.sum()
    if method == "random":
        idx = rng.choice(len(x), size=n, replace=False, p=p) if np.count_nonzero(p) >= n else \
            rng.choice(len(x), size=n, replace=False)
        return x[idx].astype(np.float64)
    centers = [x[rng.choice(len(x), p=p)].astype(np.float64)]
    d2 = assign(x, np.asarray(centers))[1]
    for _ in range(1, n):
        mass = w * d2
        total = mass.sum()
        nxt = rng.choice(len(x), p=mass / total) if total > 0 else rng.integers(len(x))
        centers.append(x[nxt].astype(np.float64))
        d2 = np.minimum(d2, assign(x, x[nxt : nxt + 1])[1])
    return np.asarray(centers)


def minibatch_kmeans(x: np.ndarray, n_centers: int, batch_size: int, epochs: int, init: str,
                     half_life: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Web-scale k-means: each center the running (optionally decayed) mean of the points it won.

    Returns the centers and their weights (how many points, decayed, each one stands for)."""
    order = rng.permutation(len(x))
    sample = x[order[: max(batch_size, n_centers)]]
    centers = seed_centers(sample, np.ones(len(sample)), n_centers, init, rng)
    weights = np.zeros(n_centers)
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            batch = x[order[start : start + batch_size]].astype(np.float64)
            if half_life > 0:
                weights *= 0.5 ** (len(batch) / half_life)
            idx, _ = assign(batch, centers)
            counts = np.bincount(idx, minlength=n_centers).astype(np.float64)
            sums = np.zeros_like(centers)
            np.add.at(sums, idx, batch)
            won = counts > 0
            centers[won] = (weights[won, None] * centers[won] + sums[won]) / (weights[won] + counts[won])[:, None]
            weights += counts
        order = rng.permutation(len(x))
    return centers, weights


def lloyd(x: np.ndarray, w: np.ndarray, k: int, init: str, max_iter: int, tol: float, trials: int,
          rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Weighted Lloyd EM to ``k`` centers, best (lowest weighted ssd) of ``trials`` runs."""
    best: tuple[np.ndarray, float] | None = None
    for _ in range(trials):
        centers = seed_centers(x, w, k, init, rng)
        prev = math.inf
        for _ in range(max_iter):
            idx, d2 = assign(x, centers)
            ssd = float((w * d2).sum())
            mass = np.bincount(idx, weights=w, minlength=k)
            sums = np.zeros_like(centers)
            np.add.at(sums, idx, x * w[:, None])
            full = mass > 0
            centers[full] = sums[full] / mass[full, None]
            for j in np.flatnonzero(~full):  # an empty cluster restarts at the worst-served point
                far = int(np.argmax(w * d2))
                centers[j] = x[far]
                d2[far] = 0.0
            if prev < math.inf and (prev - ssd) <= tol * max(prev, 1e-12):
                break
            prev = ssd
        ssd = float((w * assign(x, centers)[1]).sum())
        if best is None or ssd < best[1]:
            best = (centers.copy(), ssd)
    assert best is not None
    return best


def auto_center_factor(n_records: int, k: int) -> int:
    """``extra_center_factor=auto``: more centers than k (a finer summary for the final reduction)
    when the data can fill them, up to 10x; 1 for small data sets. (AWS does not publish its rule.)"""
    return max(1, min(10, n_records // (20 * k)))


def reduce_centers(points: np.ndarray, weights: np.ndarray, k: int, hp: dict[str, Any],
                   rng: np.random.Generator) -> np.ndarray:
    """Finalize: the K weighted mini-batch centers (of every host) -> k centers by local Lloyd."""
    keep = weights > 0
    points, weights = points[keep], weights[keep]
    if len(points) == k:
        log(f"No shrinking is required as the number of centers ({len(points)}) equals k.")
        return points
    trials = hp["local_lloyd_num_trials"] or (10 if len(points) > k else 1)
    log(f"shrinking {len(points)} centers into {k} (local Lloyd: init {hp['local_lloyd_init_method']}, "
        f"max_iter {hp['local_lloyd_max_iter']}, tol {hp['local_lloyd_tol']}, {trials} trials)")
    centers, _ = lloyd(points, weights, k, hp["local_lloyd_init_method"], hp["local_lloyd_max_iter"],
                       hp["local_lloyd_tol"], trials, rng)
    return centers


def scores(x: np.ndarray, centers: np.ndarray) -> dict[str, float]:
    """msd (mean squared distance to the closest center) and ssd (their sum), the real eval metrics."""
    d2 = assign(x, centers)[1]
    return {"msd": float(d2.mean()), "ssd": float(d2.sum())}


def _address(host: str) -> tuple[str, int]:
    addresses = json.loads(os.environ.get("TRAINING_HOST_ADDRESSES") or "{}")
    addr = addresses.get(host) or f"{host}:7777"
    name, _, port = addr.rpartition(":")
    return name, int(port)


def _pack(centers: np.ndarray, weights: np.ndarray, host: str, n: int) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, centers=centers, weights=weights, host=np.array(host), n=np.array(n))
    body = buf.getvalue()
    return b"KMW1" + struct.pack("<Q", len(body)) + body


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = conn.recv(min(1 << 20, size - got))
        if not chunk:
            raise ConnectionError("peer closed the connection early")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def listen(env: TrainingEnv) -> socket.socket:
    """algo-1 listens on its reserved address before training, so peers can report as soon as they finish."""
    # bind the address the platform passes (localmaker: 127.0.0.1), else the host's own address
    name, port = _address(env.current_host)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((os.environ.get("SAGEMAKER_BIND_TO_HOST") or name, port))
    srv.listen(len(env.hosts))
    return srv


def gather(srv: socket.socket, peers: list[str]) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """Receive every peer's weighted centers (algo-1 side)."""
    out = []
    deadline = time.monotonic() + PEER_TIMEOUT
    waiting = set(peers)
    while waiting:
        srv.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            conn, _ = srv.accept()
        except TimeoutError:
            raise RuntimeError(f"hosts {sorted(waiting)} did not send their centers within {PEER_TIMEOUT:.0f} s") from None
        with conn:
            conn.settimeout(60)
            if _recv_exact(conn, 4) != b"KMW1":
                continue
            (size,) = struct.unpack("<Q", _recv_exact(conn, 8))
            doc = np.load(io.BytesIO(_recv_exact(conn, size)), allow_pickle=False)
            host = str(doc["host"])
            out.append((host, doc["centers"], doc["weights"], int(doc["n"])))
            conn.sendall(b"OK")
            waiting.discard(host)
    srv.close()
    return out


def report(env: TrainingEnv, centers: np.ndarray, weights: np.ndarray, n: int) -> None:
    """Send this host's weighted centers to algo-1 (retrying until it listens) and wait for its ack."""
    leader = sorted(env.hosts)[0]
    payload = _pack(centers, weights, env.current_host, n)
    deadline = time.monotonic() + PEER_TIMEOUT
    while True:
        try:
            with socket.create_connection(_address(leader), timeout=10) as conn:
                conn.settimeout(PEER_TIMEOUT)
                conn.sendall(payload)
                if _recv_exact(conn, 2) == b"OK":
                    return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not reach {leader} to send this host's centers: {exc}") from exc
            time.sleep(0.2)


def log(message: str) -> None:
    """The real image's log line shape: ``[MM/DD/YYYY HH:MM:SS INFO <pid>] message``."""
    print(f"[{time.strftime('%m/%d/%Y %H:%M:%S')} INFO {os.getpid()}] {message}", flush=True)


def train(env: TrainingEnv) -> None:
    hp = parse_hps(env.hyperparameters)
    k, dim = hp["k"], hp["feature_dim"]
    if not env.has_channel("train"):
        raise ClientError("K-Means needs a 'train' channel (and optionally 'test').")
    unknown = sorted(set(env.channels) - {"train", "test"})
    if unknown:
        raise ClientError(f"Unsupported channel(s) {unknown}: K-Means reads 'train' and optionally 'test'.")
    multi = len(env.hosts) > 1
    srv = listen(env) if multi and env.is_leader else None
    log(f"Reading the train channel (host={env.current_host}, hosts={env.hosts})")
    x = read_channel(env, "train", dim, allow_empty=multi)
    rng = np.random.default_rng([SEED, sorted(env.hosts).index(env.current_host) if env.current_host in env.hosts else 0])

    centers = np.zeros((0, dim))
    weights = np.zeros(0)
    if len(x):
        factor = hp["extra_center_factor"] or auto_center_factor(len(x), k)
        n_centers = min(k * factor, len(x))
        if not multi and len(np.unique(x, axis=0)) < k:
            raise ClientError(f"k={k} exceeds the number of distinct training records "
                              f"({len(np.unique(x, axis=0))}).")
        started = time.monotonic()
        centers, weights = minibatch_kmeans(x, n_centers, hp["mini_batch_size"], hp["epochs"],
                                            hp["init_method"], hp["half_life_time_size"], rng)
        secs = max(time.monotonic() - started, 1e-6)
        log(f"#progress_metric: host={env.current_host}, completed 100.0 % of epochs")
        log(f"#throughput_metric: host={env.current_host}, train throughput="
            f"{len(x) * hp['epochs'] / secs} records/second")
        log(f"{env.current_host}: {len(x)} records, {n_centers} centers (extra_center_factor {factor}), "
            f"train msd {scores(x, centers)['msd']}")
    else:
        log(f"{env.current_host}: this host's shard of the train channel is empty")

    if multi and not env.is_leader:
        report(env, centers, weights, len(x))
        log(f"sent {len(centers)} weighted centers to {sorted(env.hosts)[0]}; it writes the model")
        return
    total = len(x)
    if srv is not None:
        for host, c, w, n in gather(srv, [h for h in env.hosts if h != env.current_host]):
            if c.size and c.shape[1] != dim:
                raise RuntimeError(f"{host} sent centers of dimension {c.shape[1]}, expected {dim}")
            log(f"received {len(c)} weighted centers from {host} ({n} records)")
            centers = np.concatenate([centers, c.reshape(-1, dim)])
            weights = np.concatenate([weights, w])
            total += n
    if np.count_nonzero(weights) < k:
        raise ClientError(f"k={k} exceeds the number of distinct training records across all hosts ({total}).")
    final = reduce_centers(centers, weights, k, hp, rng).astype(np.float32)

    env.model_dir.mkdir(parents=True, exist_ok=True)
    save_ndarray_list(env.model_dir / MODEL_FILE, [final])
    log(f"model {MODEL_FILE}: {k} centers of dimension {dim} from {total} records")

    if env.has_channel("test"):
        xt = read_channel(env, "test", dim)
        result = scores(xt, final)
        for metric in hp["eval_metrics"]:
            log(f"#quality_metric: host={env.current_host}, test {metric} <loss>={result[metric]}")
