"""SageMaker's first-party K-Means (``<account>.dkr.ecr.<region>.amazonaws.com/kmeans:1``), run locally.

Training follows the real algorithm's shape ("web-scale" mini-batch k-means, then a local Lloyd
reduction): ``K = k * extra_center_factor`` centers are seeded (``init_method`` random | kmeans++)
and updated from mini-batches of ``mini_batch_size`` records for ``epochs`` passes, each center a
running mean of the points it won (``half_life_time_size`` decays old points' weight); the model is
then finalized by a weighted Lloyd EM on those K centers down to ``k`` (``local_lloyd_*``: init
method, iterations, tolerance on the change in ssd, best of ``num_trials``). The optional ``test``
channel is scored with the final centers and logged as the real image logs it::

    #quality_metric: host=algo-1, test msd <loss>=12.34
    #quality_metric: host=algo-1, test ssd <loss>=5678.9

which the manifest's metric definitions (``test:msd``, ``test:ssd``) turn into
``FinalMetricDataList`` and tuning objectives.

Data: channels ``train`` (required) and ``test`` (optional) in ``application/x-recordio-protobuf``
(default; labels, if any, are ignored) or ``text/csv`` (``label_size`` leading columns are dropped;
K-Means is unsupervised so it defaults to 0 and every column is a feature). ``feature_dim`` must
equal the data's width.

Several hosts (``InstanceCount`` > 1, usually ``ShardedByS3Key``): every host runs the mini-batch
phase on its own shard and sends its weighted centers to algo-1 over TCP (addresses from
``TRAINING_HOST_ADDRESSES``); algo-1 reduces the union to ``k`` centers, scores the test channel
and writes the one model. (The real image syncs through an MXNet kvstore instead; the result
- one model learnt from every shard - is the same in kind.)

Model artifact: ``model.tar.gz`` holds ``model_algo-1`` as the real one does, in MXNet's NDArray
list file format (``mx.nd.load('model_algo-1')[0]`` is the ``(k, feature_dim)`` float32 array of
centers), written and read here without MXNet following ``NDArray::Save`` (list magic 0x112, V2
dense records); the reader also takes V1/V3/legacy records, so a model.tar.gz trained on AWS should
host locally too (not checked against a real artifact: MXNet is not installed here).

Inference: ``text/csv``, ``application/json`` (1P shapes), ``application/jsonlines`` and
``application/x-recordio-protobuf`` requests; answers per ``Accept`` (default JSON)::

    {"predictions": [{"closest_cluster": 3.0, "distance_to_cluster": 1.23}, ...]}

as JSON, JSON Lines, CSV (``closest_cluster,distance_to_cluster``) or RecordIO-protobuf records
with label map keys ``closest_cluster`` and ``distance_to_cluster`` (float32).

Not emulated: the real algorithm's nondeterminism (a fixed seed makes local runs repeatable), GPU
instances, Pipe mode specifics, sparse math (sparse RecordIO tensors are densified).
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass
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
    main,
    one_of,
    parse_hyperparameters,
)
from smformats.recordio import CONTENT_TYPE as RECORDIO

CSV = "text/csv"
MODEL_FILE = "model_algo-1"
SEED = 0
METRICS = ("msd", "ssd")
PEER_TIMEOUT = float(os.environ.get("KMEANS_PEER_TIMEOUT", "600"))


# ---- hyperparameters ------------------------------------------------------------------------------------
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


# ---- data -----------------------------------------------------------------------------------------------
def read_recordio_file(path: Path, where: str) -> np.ndarray:
    """Dense float32 rows of one RecordIO-protobuf file (labels ignored: K-Means is unsupervised)."""
    from smformats.recordio import RecordIOError, read_recordio_protobuf

    try:
        with path.open("rb") as fh:
            rows = [r.features for r in read_recordio_protobuf(fh)]
    except RecordIOError as exc:
        raise ClientError(f"{where}: not valid RecordIO-protobuf: {exc}. Set the channel's ContentType "
                          "to text/csv for CSV data.") from None
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise ClientError(f"{where}: records have different numbers of features {sorted(widths)}")
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), widths.pop() if widths else 0)


def read_csv_file(path: Path, where: str, label_size: int) -> np.ndarray:
    """Header-less numeric CSV; the first ``label_size`` columns are labels and dropped."""
    from smformats.csv import CsvRowError, numeric_rows

    with path.open("r", encoding="utf-8", errors="replace") as fh:
        try:
            full = [row for _, row in numeric_rows(fh)]
        except CsvRowError as exc:
            if exc.column is not None:
                raise ClientError(f"{where}, line {exc.lineno}: {exc.cell!r} is not a number "
                                  "(K-Means reads header-less numeric CSV)") from None
            raise ClientError(f"{where}, line {exc.lineno}: {exc.got} columns, line 1 has {exc.width}") from None
    width = len(full[0]) if full else None
    rows = [row[label_size:] for row in full]
    if width is not None and width <= label_size:
        raise ClientError(f"{where}: {width} columns leave no features after label_size={label_size}")
    arr = np.asarray(rows, dtype=np.float32)
    return arr.reshape(len(rows), (width or 0) - label_size if rows else 0)


def read_channel(env: TrainingEnv, name: str, feature_dim: int, allow_empty: bool = False) -> np.ndarray:
    """All records of a channel as an (n, feature_dim) float32 matrix, checked against feature_dim."""
    ctype = env.content_type(name, RECORDIO)
    if ctype not in (RECORDIO, CSV):
        raise ClientError(f"Channel '{name}': content type '{ctype}' is not supported by K-Means; "
                          f"use {RECORDIO} or {CSV}.")
    root = env.channel_dir(name)
    if allow_empty and (not root.is_dir() or not any(p.is_file() for p in root.rglob("*"))):
        return np.zeros((0, feature_dim), dtype=np.float32)
    label_size = 0
    if ctype == CSV:
        raw = env.content_type_params(name).get("label_size", "0")
        try:
            label_size = int(raw)
            if label_size < 0:
                raise ValueError
        except ValueError:
            raise ClientError(f"Channel '{name}': label_size={raw!r} must be a non-negative integer") from None
    parts = []
    for path in env.channel_files(name):
        where = f"channel '{name}' file {path.relative_to(root)}"
        arr = read_recordio_file(path, where) if ctype == RECORDIO else read_csv_file(path, where, label_size)
        if len(arr) and arr.shape[1] != feature_dim:
            extra = f" after dropping label_size={label_size} column(s)" if ctype == CSV else ""
            raise ClientError(
                f"The hyperparameter feature_dim={feature_dim} does not match the data: {where} has "
                f"{arr.shape[1]} features per record{extra}. Set feature_dim to the number of features."
            )
        if len(arr):  # an empty file adds nothing (and has no width to check)
            parts.append(arr)
    data = np.concatenate(parts) if parts else np.zeros((0, feature_dim), dtype=np.float32)
    if not np.isfinite(data).all():
        row = int(np.argwhere(~np.isfinite(data))[0][0])
        raise ClientError(f"Channel '{name}': record {row + 1} has a NaN or infinite feature")
    if not len(data) and not allow_empty:
        raise ClientError(f"Channel '{name}' has no records.")
    return data


# ---- the algorithm --------------------------------------------------------------------------------------
def assign(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest center and the squared Euclidean distance to it, per row."""
    x64 = x.astype(np.float64, copy=False)
    c64 = centers.astype(np.float64, copy=False)
    d2 = (x64 * x64).sum(1)[:, None] - 2.0 * x64 @ c64.T + (c64 * c64).sum(1)[None, :]
    idx = d2.argmin(1)
    best = np.maximum(d2[np.arange(len(x64)), idx], 0.0)
    return idx, best


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


# ---- the model file (MXNet NDArray list, as the real model_algo-1) --------------------------------------
_LIST_MAGIC = 0x112
_V1_MAGIC, _V2_MAGIC, _V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
_DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8, 6: np.int64}


def save_ndarray_list(path: Path, arrays: list[np.ndarray]) -> None:
    """MXNet's ``mx.nd.save(path, [array, ...])`` format (dense, CPU, V2 records, no names)."""
    out = io.BytesIO()
    out.write(struct.pack("<QQQ", _LIST_MAGIC, 0, len(arrays)))
    for arr in arrays:
        a = np.ascontiguousarray(arr, dtype=np.float32)
        out.write(struct.pack("<Ii", _V2_MAGIC, 0))  # magic, storage type default (dense)
        out.write(struct.pack(f"<I{a.ndim}q", a.ndim, *a.shape))
        out.write(struct.pack("<iii", 1, 0, 0))  # context cpu(0), type flag float32
        out.write(a.astype("<f4").tobytes())
    out.write(struct.pack("<Q", 0))  # no names
    path.write_bytes(out.getvalue())


def load_ndarray_list(data: bytes) -> list[np.ndarray]:
    """Read an ``mx.nd.save`` file of dense arrays (V1/V2/V3 records), e.g. a real K-Means model_algo-1."""
    pos = 0

    def take(fmt: str) -> tuple[Any, ...]:
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise ValueError("truncated NDArray file")
        vals = struct.unpack_from(fmt, data, pos)
        pos += size
        return vals

    magic, _reserved, count = take("<QQQ")
    if magic != _LIST_MAGIC:
        raise ValueError(f"not an MXNet NDArray file (magic 0x{magic:x})")
    arrays = []
    for _ in range(count):
        (rec_magic,) = take("<I")
        if rec_magic in (_V2_MAGIC, _V3_MAGIC):
            (stype,) = take("<i")
            if stype != 0:
                raise ValueError("sparse NDArrays are not supported")
        if rec_magic in (_V1_MAGIC, _V2_MAGIC, _V3_MAGIC):
            (ndim,) = take("<i")
            shape = take(f"<{ndim}q") if ndim > 0 else ()
        else:  # legacy: the magic is ndim, dims are uint32
            ndim = rec_magic
            shape = take(f"<{ndim}I")
        if ndim <= 0:
            arrays.append(np.zeros((0,), dtype=np.float32))
            continue
        _dev_type, _dev_id, type_flag = take("<iii")
        dtype = np.dtype(_DTYPES.get(type_flag, np.float32)).newbyteorder("<")
        size = int(np.prod(shape)) * dtype.itemsize
        if pos + size > len(data):
            raise ValueError("truncated NDArray data")
        arrays.append(np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=pos).reshape(shape))
        pos += size
    return arrays


# ---- multi-host: the shards' centers meet on algo-1 -----------------------------------------------------
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


# ---- training -------------------------------------------------------------------------------------------
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


# ---- serving --------------------------------------------------------------------------------------------
@dataclass
class Model:
    centers: np.ndarray  # (k, feature_dim) float32

    @property
    def feature_dim(self) -> int:
        return int(self.centers.shape[1])


def load(model_dir: Path) -> Model:
    """The centers from ``model_algo-1`` (ours or one trained on AWS)."""
    path = model_dir / MODEL_FILE
    if not path.is_file():
        found = sorted(model_dir.glob("model_algo-*"))
        if not found:
            raise FileNotFoundError(f"no {MODEL_FILE} in {model_dir} (the K-Means model.tar.gz holds it)")
        path = found[0]
    arrays = load_ndarray_list(path.read_bytes())
    if not arrays or arrays[0].ndim != 2:
        raise ValueError(f"{path.name}: expected one (k, feature_dim) array of centers")
    return Model(np.asarray(arrays[0], dtype=np.float32))


def predict(model: Model, x: np.ndarray) -> list[dict[str, float]]:
    """closest_cluster (its index, as a float like the real response) and the Euclidean distance to it."""
    idx, d2 = assign(x, model.centers)
    return [{"closest_cluster": float(i), "distance_to_cluster": float(np.float32(math.sqrt(d)))}
            for i, d in zip(idx.tolist(), d2.tolist(), strict=True)]


def invoke(model: Model, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    from localmaker.builtins import serving

    out_type = serving.negotiate(accept, [serving.JSON, serving.JSONLINES, serving.RECORDIO, serving.CSV],
                                 serving.JSON)
    x = serving.decode_dense(body, content_type, expect=model.feature_dim)
    records = predict(model, x)
    if out_type == serving.CSV:
        lines = "".join(f"{r['closest_cluster']},{r['distance_to_cluster']}\n" for r in records)
        return lines.encode(), serving.CSV
    return serving.encode_records(records, out_type)


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load, invoke)


if __name__ == "__main__":
    sys.exit(main(train, serve))
