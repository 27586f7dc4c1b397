"""Serving benchmark for the dnn-regressor container: the real ``serve`` vs the model in-process.

Measures, in one run on one machine:

* single-row request latency through gunicorn (p50/p99),
* 1,000-row request throughput through gunicorn (rows/s), each request followed at once by
* the same rows through the loaded model in-process (CSV decode + numpy forward + CSV encode),
  so both sides of the ratio see the same machine state;
* the numpy forward pass alone and Keras ``model.predict`` (the per-call overhead the server
  avoids), and aggregate throughput with one client per worker;
* the CSV codec per 1,000 rows x 8 features, old (np.loadtxt after splitlines, per-value
  ``str.format``) and new (whole-body numpy parser, one ``%`` format) side by side, interleaved,
  with the spread over blocks;
* ``serve`` start-up, process start -> first ``/ping`` 200, from the exported numpy form (no
  TensorFlow) and from a model directory without it (Keras loads it, as before the export),
  alternated over several starts.

Requests go out with two keep-alive clients, interleaved: ``http.client`` and a minimal raw-socket
HTTP/1.1 client (``RawClient``). The second shows the server's own cost; the first adds the
Python client's (about 0.5 ms per 1,000-row request on this machine).

Ratios are what to compare across machines; absolute numbers depend on the CPU.

    .venv/bin/python bench/serving.py [--workers 2] [--requests 500] [--retrain]

Writes ``bench/results/serving.json``. The trained model is cached in the temp dir and reused.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONTAINER = ROOT / "container" / "dnn_regressor"
RESULTS = ROOT / "bench" / "results" / "serving.json"
CACHE = Path(tempfile.gettempdir()) / "dnn-regressor-bench"
N_FEATURES = 8
BATCH_ROWS = 1000

sys.path.insert(0, str(CONTAINER))


def _rows(n: int, seed: int) -> np.ndarray:
    """``y`` then 8 features; y depends non-linearly on a few of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)) * np.arange(1, N_FEATURES + 1)
    y = 3 * x[:, 0] - 2 * x[:, 1] + np.sin(x[:, 2]) + 0.1 * x[:, 3] ** 2 + rng.normal(0, 0.1, n)
    return np.column_stack([y, x])


def _write_csv(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ",".join(["y", *[f"x{i}" for i in range(N_FEATURES)]])
    np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt="%.6f")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_", "MODEL_SERVER_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", **extra)
    return env


def train_model(retrain: bool) -> tuple[Path, float | None]:
    """Train with the real ``train`` program once; later runs reuse the cached model."""
    base = CACHE / "ml"
    model_dir = base / "model"
    if (model_dir / "metadata.json").exists() and (model_dir / "inference.json").exists() and not retrain:
        return model_dir, None
    shutil.rmtree(base, ignore_errors=True)  # a cached model from before the numpy export: retrain
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    hyperparameters = {"hidden_units": "64,32", "epochs": "8", "learning_rate": "0.005", "batch_size": "128"}
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    _write_csv(base / "input/data/train/train.csv", _rows(5000, 1))
    _write_csv(base / "input/data/validation/validation.csv", _rows(1000, 2))
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(CONTAINER / "train")],
        env=_env(SAGEMAKER_BASE_DIR=str(base)),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"training failed:\n{result.stdout}\n{result.stderr}")
    return model_dir, time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """One keep-alive connection, reopened if the server closes it."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
        except (ConnectionError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
        return response.status, response.read()


class RawClient:
    """A minimal HTTP/1.1 keep-alive client: one ``sendall`` per request, Content-Length framing.

    The server's own cost, the way a load generator (wrk, SageMaker's front end) sees it:
    ``http.client`` spends about half a millisecond per 1,000-row request in Python on its side
    (header objects, response parsing), which is the client's time, not the server's.
    """

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def call(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n"
        self.sock.sendall(request.encode() + body)
        data = self.pending
        while b"\r\n\r\n" not in data:
            data += self._recv()
        header, _, rest = data.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if "content-length" not in fields:
            raise RuntimeError(f"response without Content-Length: {lines}")
        length = int(fields["content-length"])
        while len(rest) < length:
            rest += self._recv()
        self.pending = rest[length:]
        return status, rest[:length]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 18)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


def start_server(model_dir: Path, workers: int) -> tuple[subprocess.Popen[bytes], int, float]:
    port = _free_port()
    env = _env(
        SAGEMAKER_BIND_TO_PORT=str(port),
        SM_MODEL_DIR=str(model_dir),
        SERVE_WITH_NGINX="false",
        MODEL_SERVER_WORKERS=str(workers),
    )
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(CONTAINER / "serve")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    ready = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            # Each worker loads its own model; wait until a run of pings has been answered 200.
            status, _ = Client(port).call("GET", "/ping")
            ready = ready + 1 if status == 200 else 0
            if ready >= 4 * workers:
                return proc, port, time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not become healthy within 120 s")


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _csv_body(rows: np.ndarray) -> bytes:
    return ("\n".join(",".join(f"{v:.6f}" for v in row) for row in rows) + "\n").encode()


def bench_single_row(port: int, rows: np.ndarray, requests: int) -> dict[str, Any]:
    """Single-row request latency, each request sent once with each client (interleaved)."""
    raw = RawClient(port)
    clients: dict[str, Client | RawClient] = {"http_client": Client(port), "raw": raw}
    headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
    single = _csv_body(rows[:1])
    for _ in range(50):
        for client in clients.values():
            client.call("POST", "/invocations", single, headers)
    latencies: dict[str, list[float]] = {name: [] for name in clients}
    for i in range(requests):
        body = _csv_body(rows[i % len(rows) : i % len(rows) + 1])
        for name, client in clients.items():
            started = time.perf_counter()
            status, _ = client.call("POST", "/invocations", body, headers)
            latencies[name].append(time.perf_counter() - started)
            assert status == 200, status
    raw.close()
    return {
        name: {
            "p50_ms": _percentile(values, 50) * 1e3,
            "p99_ms": _percentile(values, 99) * 1e3,
            "mean_ms": float(np.mean(values)) * 1e3,
            "requests": requests,
        }
        for name, values in latencies.items()
    }


def bench_concurrent(port: int, rows: np.ndarray, clients: int, requests_each: int) -> dict[str, Any]:
    """Aggregate rows/s of 1,000-row requests from ``clients`` keep-alive clients at once (one per
    worker): the server's capacity, as batch transform with MaxConcurrentTransforms = workers uses it.
    The clients run in this process (threads; http.client waits outside the GIL)."""
    import threading

    body = _csv_body(rows[:BATCH_ROWS])
    headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def run() -> None:
        client = Client(port)
        client.call("POST", "/invocations", body, headers)
        barrier.wait()
        for _ in range(requests_each):
            status, out = client.call("POST", "/invocations", body, headers)
            if status != 200 or out.count(b"\n") != BATCH_ROWS:
                errors.append(f"status {status}")

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    assert not errors, errors[:3]
    return {"clients": clients, "rows_per_s": clients * requests_each * BATCH_ROWS / elapsed}


def bench_batch_pairs(port: int, model_dir: Path, rows: np.ndarray, pairs: int, blocks: int) -> dict[str, Any]:
    """1,000-row requests through the server vs the same decode + forward + encode in-process.

    Each step sends the body through the server twice, once with ``http.client`` and once with
    :class:`RawClient`, then runs the in-process call on the same body, so all three see the same
    machine state (this VM's speed drifts by 2x within seconds). Rates come from median times;
    ratios are given for the whole run and for each of ``blocks`` consecutive blocks (their
    spread shows how steady the machine was).
    """
    from dnn_regressor.inference import load_regressor
    from dnn_regressor.payloads import decode_csv, encode

    regressor = load_regressor(model_dir)
    names = regressor.feature_names
    raw = RawClient(port)
    clients: dict[str, Client | RawClient] = {"http_client": Client(port), "raw": raw}
    headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
    body = _csv_body(rows[:BATCH_ROWS])
    expected = regressor.predict(decode_csv(body, names)).reshape(-1)
    for _ in range(20):
        for client in clients.values():
            client.call("POST", "/invocations", body, headers)
        encode(regressor.predict(decode_csv(body, names)), "text/csv")
    times = {name: np.empty(pairs) for name in [*clients, "local", "local_old_codec"]}
    for i in range(pairs):
        for name, client in clients.items():
            started = time.perf_counter()
            status, out = client.call("POST", "/invocations", body, headers)
            times[name][i] = time.perf_counter() - started
            assert status == 200 and out.count(b"\n") == BATCH_ROWS, (status, out[:200])
            if i == 0:  # the server's model is this model (float32 sums may differ in the last bits)
                np.testing.assert_allclose(np.array(out.split(), dtype=np.float64), expected, rtol=1e-5, atol=1e-5)
        # new and old codec in-process, which one comes first alternating (the first after the
        # requests shares the CPUs with the server's wind-down)
        for kind in ("local", "local_old_codec")[:: 1 if i % 2 == 0 else -1]:
            decode_fn, encode_fn = (decode_csv, encode) if kind == "local" else (old_decode_csv, old_encode)
            started = time.perf_counter()
            encode_fn(regressor.predict(decode_fn(body, names)), "text/csv")
            times[kind][i] = time.perf_counter() - started
    raw.close()
    local, local_old = times["local"], times["local_old_codec"]
    result: dict[str, Any] = {
        "in_process_rows_per_s": BATCH_ROWS / float(np.median(local)),
        "in_process_ms": float(np.median(local)) * 1e3,
        "in_process_old_codec_ms": float(np.median(local_old)) * 1e3,
        "pairs": pairs,
        "blocks": blocks,
    }
    for name in clients:
        server = times[name]
        block_ratios = [
            float(np.median(ls) / np.median(ss))
            for ss, ls in zip(np.array_split(server, blocks), np.array_split(local, blocks), strict=True)
        ]
        result[name] = {
            "batch_rows_per_s": BATCH_ROWS / float(np.median(server)),
            "batch_request_ms": float(np.median(server)) * 1e3,
            "batch_request_p90_ms": _percentile(list(server), 90) * 1e3,
            "ratio_median": float(np.median(local) / np.median(server)),
            "ratio_total_time": float(local.sum() / server.sum()),
            "ratio_block_min": min(block_ratios),
            "ratio_block_max": max(block_ratios),
        }
        old_ratios = [
            float(np.median(ls) / np.median(ss))
            for ss, ls in zip(np.array_split(server, blocks), np.array_split(local_old, blocks), strict=True)
        ]
        result[name].update(
            ratio_median_old_codec=float(np.median(local_old) / np.median(server)),
            ratio_block_min_old_codec=min(old_ratios),
            ratio_block_max_old_codec=max(old_ratios),
        )
    return result


def old_decode_csv(body: bytes, names: list[str]) -> np.ndarray:
    """``decode_csv`` before the whole-body parser: text decode + splitlines + np.loadtxt."""
    import io

    from dnn_regressor.payloads import _csv_lines, _decode_csv_cells

    text, lines = _csv_lines(body, names)
    if '"' not in text:
        try:
            values = np.loadtxt(
                io.StringIO(text, newline=None), delimiter=",", dtype=np.float64, ndmin=2, comments=None
            )
        except ValueError:
            values = None
        if values is not None and values.shape == (len(lines), len(names)) and np.isfinite(values).all():
            return values
    return _decode_csv_cells(text, lines, names)


def old_encode(predictions: np.ndarray, accept: str) -> bytes:
    """``encode`` before the one-call formatting (per-value ``str.format``)."""
    formatted = list(map("{:.9g}".format, np.asarray(predictions, dtype=np.float64).reshape(-1).tolist()))
    if accept == "text/csv":
        return ("\n".join(formatted) + "\n").encode()
    return ('{"predictions": [' + ", ".join(formatted) + "]}").encode()


def bench_codec(rows: np.ndarray, reps: int, blocks: int) -> dict[str, Any]:
    """Old vs new CSV decode/encode of one 1,000-row body, interleaved call by call.

    Each of ``reps`` steps times old decode, new decode, old encode, new encode, and the full
    old/new codec (decode + encode); medians per block show how much the machine drifted.
    """
    from dnn_regressor.payloads import decode_csv, encode

    names = [f"x{i}" for i in range(N_FEATURES)]
    body = _csv_body(rows[:BATCH_ROWS])
    predictions = (rows[:BATCH_ROWS, 0] * 3.0).astype(np.float32)
    assert np.array_equal(old_decode_csv(body, names), decode_csv(body, names))
    assert old_encode(predictions, "text/csv") == encode(predictions, "text/csv")
    steps = {
        "old_decode": lambda: old_decode_csv(body, names),
        "new_decode": lambda: decode_csv(body, names),
        "old_encode": lambda: old_encode(predictions, "text/csv"),
        "new_encode": lambda: encode(predictions, "text/csv"),
        "old_codec": lambda: old_encode(old_decode_csv(body, names)[:, 0], "text/csv"),
        "new_codec": lambda: encode(decode_csv(body, names)[:, 0], "text/csv"),
    }
    for fn in steps.values():
        for _ in range(20):
            fn()
    times = {name: np.empty(reps) for name in steps}
    for i in range(reps):
        for name, fn in steps.items():
            started = time.perf_counter()
            fn()
            times[name][i] = time.perf_counter() - started
    result: dict[str, Any] = {"rows": BATCH_ROWS, "features": N_FEATURES, "reps": reps, "blocks": blocks}
    for name, values in times.items():
        block_medians = [float(np.median(b)) * 1e3 for b in np.array_split(values, blocks)]
        result[name] = {
            "median_ms": float(np.median(values)) * 1e3,
            "min_ms": float(values.min()) * 1e3,
            "block_median_min_ms": min(block_medians),
            "block_median_max_ms": max(block_medians),
        }
    ratios = [
        float(np.median(o) / np.median(n))
        for o, n in zip(np.array_split(times["old_codec"], blocks), np.array_split(times["new_codec"], blocks), strict=True)
    ]
    result["speedup_median"] = result["old_codec"]["median_ms"] / result["new_codec"]["median_ms"]
    result["speedup_block_min"], result["speedup_block_max"] = min(ratios), max(ratios)
    return result


def _first_ping(model_dir: Path, workers: int, timeout: float = 120.0) -> float:
    """Seconds from starting ``serve`` to its first ``/ping`` 200 (polled every 10 ms)."""
    port = _free_port()
    env = _env(
        SAGEMAKER_BIND_TO_PORT=str(port),
        SAGEMAKER_BIND_TO_HOST="127.0.0.1",
        SM_MODEL_DIR=str(model_dir),
        SERVE_WITH_NGINX="false",
        MODEL_SERVER_WORKERS=str(workers),
    )
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(CONTAINER / "serve")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while time.perf_counter() - started < timeout and proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.01)
        raise SystemExit(f"serve from {model_dir} did not answer /ping 200 within {timeout:g} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_startup(model_dir: Path, workers: int, starts: int) -> dict[str, Any]:
    """``serve`` start -> first /ping 200, exported numpy form vs Keras (old-style directory)."""
    old_style = CACHE / "model-before-export"
    shutil.rmtree(old_style, ignore_errors=True)
    shutil.copytree(model_dir, old_style, ignore=shutil.ignore_patterns("inference.*"))
    times: dict[str, list[float]] = {"exported_numpy": [], "keras_old_style": []}
    for _ in range(starts):  # alternated, so both see the same machine
        times["exported_numpy"].append(_first_ping(model_dir, workers))
        times["keras_old_style"].append(_first_ping(old_style, workers))
    return {
        "workers": workers,
        "starts": starts,
        **{
            name: {
                "median_s": float(np.median(values)),
                "min_s": min(values),
                "max_s": max(values),
                "all_s": [round(v, 3) for v in values],
            }
            for name, values in times.items()
        },
    }


def bench_in_process(model_dir: Path, rows: np.ndarray, batches: int) -> dict[str, Any]:
    from dnn_regressor.inference import load_regressor
    from dnn_regressor.payloads import decode_csv, encode

    regressor = load_regressor(model_dir)
    batch = rows[:BATCH_ROWS]
    body = _csv_body(batch)
    names = regressor.feature_names

    def rate(fn: Any, reps: int) -> float:
        fn()
        started = time.perf_counter()
        for _ in range(reps):
            fn()
        return reps * BATCH_ROWS / (time.perf_counter() - started)

    single = rows[:1]
    regressor.predict(single)
    started = time.perf_counter()
    for _ in range(2000):
        regressor.predict(single)
    numpy_single_us = (time.perf_counter() - started) / 2000 * 1e6

    import keras

    keras_model = keras.saving.load_model(model_dir / "model.keras", safe_mode=True, compile=False)
    keras_single = []
    for _ in range(20):
        t = time.perf_counter()
        keras_model.predict(single.astype(np.float32), verbose=0)
        keras_single.append(time.perf_counter() - t)
    return {
        "engine": regressor.engine,
        "source": regressor.source,
        "numpy_forward_rows_per_s": rate(lambda: regressor.predict(batch), batches * 4),
        "numpy_forward_plus_csv_rows_per_s": rate(
            lambda: encode(regressor.predict(decode_csv(body, names)), "text/csv"), batches
        ),
        "keras_predict_rows_per_s": rate(
            lambda: keras_model.predict(batch.astype(np.float32), verbose=0), 10
        ),
        "numpy_single_row_us": numpy_single_us,
        "keras_predict_single_row_ms": float(np.median(keras_single)) * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--batches", type=int, default=100, help="1,000-row requests per concurrent client")
    parser.add_argument("--pairs", type=int, default=1500, help="server request + in-process call pairs")
    parser.add_argument("--blocks", type=int, default=10, help="blocks the pairs are also reported in")
    parser.add_argument("--codec-reps", type=int, default=2000, help="interleaved old/new codec steps")
    parser.add_argument("--starts", type=int, default=3, help="serve starts per model form")
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args()

    model_dir, train_seconds = train_model(args.retrain)
    rows = _rows(2000, 3)[:, 1:]
    proc, port, startup = start_server(model_dir, args.workers)
    try:
        single = bench_single_row(port, rows, args.requests)
        batch = bench_batch_pairs(port, model_dir, rows, args.pairs, args.blocks)
        concurrent = bench_concurrent(port, rows, args.workers, args.batches * 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        stop_code = proc.wait(timeout=60)
    local = bench_in_process(model_dir, rows, args.batches)
    codec = bench_codec(rows, args.codec_reps, args.blocks)
    startup_forms = bench_startup(model_dir, args.workers, args.starts)

    import tensorflow as tf

    http_batch, raw_batch = batch["http_client"], batch["raw"]
    result: dict[str, Any] = {
        "benchmark": "dnn_regressor_serving",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
        },
        "config": {
            "workers": args.workers,
            "server": "gunicorn (gthread), no nginx",
            "features": N_FEATURES,
            "hidden_units": [64, 32],
            "batch_rows": BATCH_ROWS,
        },
        "train_seconds": train_seconds,
        "server_startup_seconds": startup,
        "server_exit_code_on_sigterm": stop_code,
        "single_row": single,
        "batch": batch,
        "concurrent": concurrent,
        "in_process": local,
        "codec_per_1000_rows": codec,
        "serve_start_to_first_ping": startup_forms,
        "ratios": {
            # medians over interleaved request / in-process steps (bench_batch_pairs)
            "server_batch_vs_numpy_plus_csv_raw_client": raw_batch["ratio_median"],
            "server_batch_vs_numpy_plus_csv_http_client": http_batch["ratio_median"],
            "server_batch_vs_numpy_forward": raw_batch["batch_rows_per_s"] / local["numpy_forward_rows_per_s"],
            "server_concurrent_vs_numpy_plus_csv": concurrent["rows_per_s"] / batch["in_process_rows_per_s"],
            "numpy_vs_keras_predict_batch": local["numpy_forward_rows_per_s"] / local["keras_predict_rows_per_s"],
            "keras_predict_single_vs_server_p50": local["keras_predict_single_row_ms"]
            / single["http_client"]["p50_ms"],
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    def ratio(b: dict[str, Any], suffix: str = "") -> str:
        return (f"{b['ratio_median' + suffix]:.3f} (blocks of {args.pairs // args.blocks}: "
                f"{b['ratio_block_min' + suffix]:.3f}-{b['ratio_block_max' + suffix]:.3f})")

    def codec_pair() -> str:
        old, new = codec["old_codec"], codec["new_codec"]
        return (f"{old['median_ms']:.3f} / {new['median_ms']:.3f} ms (block medians "
                f"{old['block_median_min_ms']:.3f}-{old['block_median_max_ms']:.3f} / "
                f"{new['block_median_min_ms']:.3f}-{new['block_median_max_ms']:.3f})")

    def start(form: str) -> str:
        t = startup_forms[form]
        return f"{t['median_s']:.2f} s (min {t['min_s']:.2f}, max {t['max_s']:.2f}, {startup_forms['starts']} starts)"

    table = [
        ("server: single-row latency p50 / p99, http.client",
         f"{single['http_client']['p50_ms']:.3f} / {single['http_client']['p99_ms']:.3f} ms"),
        ("server: single-row latency p50 / p99, raw client",
         f"{single['raw']['p50_ms']:.3f} / {single['raw']['p99_ms']:.3f} ms"),
        (f"server: {BATCH_ROWS}-row requests, raw client",
         f"{raw_batch['batch_rows_per_s']:,.0f} rows/s ({raw_batch['batch_request_ms']:.2f} ms each)"),
        (f"server: {BATCH_ROWS}-row requests, http.client",
         f"{http_batch['batch_rows_per_s']:,.0f} rows/s ({http_batch['batch_request_ms']:.2f} ms each)"),
        ("in-process: numpy forward + CSV decode/encode",
         f"{batch['in_process_rows_per_s']:,.0f} rows/s ({batch['in_process_ms']:.2f} ms per 1,000 rows; "
         f"{batch['in_process_old_codec_ms']:.2f} ms with the old codec)"),
        ("in-process: numpy forward", f"{local['numpy_forward_rows_per_s']:,.0f} rows/s"),
        ("in-process: keras model.predict", f"{local['keras_predict_rows_per_s']:,.0f} rows/s"),
        ("in-process: numpy single row", f"{local['numpy_single_row_us']:.1f} us"),
        ("in-process: keras predict single row", f"{local['keras_predict_single_row_ms']:.2f} ms"),
        ("server (raw client) / in-process numpy+CSV", ratio(raw_batch)),
        ("server (http.client) / in-process numpy+CSV", ratio(http_batch)),
        ("server (raw client) / in-process numpy forward only",
         f"{result['ratios']['server_batch_vs_numpy_forward']:.3f}"),
        (f"server: {BATCH_ROWS}-row requests, {args.workers} http.client clients at once",
         f"{concurrent['rows_per_s']:,.0f} rows/s"),
        (f"server ({args.workers} clients) / in-process numpy+CSV",
         f"{result['ratios']['server_concurrent_vs_numpy_plus_csv']:.3f}"),
        ("numpy / keras predict (batch)", f"{result['ratios']['numpy_vs_keras_predict_batch']:.1f}x"),
        ("server (raw client) / in-process numpy + OLD codec", ratio(raw_batch, "_old_codec")),
        (f"codec per {BATCH_ROWS} rows x {N_FEATURES}: decode old / new",
         f"{codec['old_decode']['median_ms']:.3f} / {codec['new_decode']['median_ms']:.3f} ms"),
        (f"codec per {BATCH_ROWS} rows x {N_FEATURES}: encode old / new",
         f"{codec['old_encode']['median_ms']:.3f} / {codec['new_encode']['median_ms']:.3f} ms"),
        (f"codec per {BATCH_ROWS} rows x {N_FEATURES}: decode+encode old / new", codec_pair()),
        ("codec: old / new (median; per-block range)",
         f"{codec['speedup_median']:.2f}x ({codec['speedup_block_min']:.2f}-{codec['speedup_block_max']:.2f})"),
        (f"serve start -> first /ping 200, exported numpy form ({args.workers} workers)", start("exported_numpy")),
        (f"serve start -> first /ping 200, old-style dir via Keras ({args.workers} workers)",
         start("keras_old_style")),
    ]
    width = max(len(name) for name, _ in table)
    print(
        f"dnn-regressor serving, {args.workers} gunicorn worker(s), {os.cpu_count()} CPUs, engine {local['engine']}"
    )
    print("-" * (width + 40))
    for name, value in table:
        print(f"{name:<{width}}  {value}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
