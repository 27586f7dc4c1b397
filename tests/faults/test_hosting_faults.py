"""Endpoints under faults: idle keep-alive connections, killed serve processes, processes that never get
healthy again, and a data-capture destination that cannot be written.

Two real localmaker servers: one runs the project's shipped serve programs (the DNN regressor image from
container/images.yaml and the built-in algorithms' shared server, through xgboost) for the idle-gap
test; the other runs ``hosting_images/flaky_serve.py``, whose health is scripted per start, with a 4 s
health-check window so the backoff is visible in seconds.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import signal
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.faults.conftest import ROLE, Server, start_server
from tests.faults.report import record

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FLAKY_IMAGES = HERE / "hosting_images.yaml"
FLAKY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/flaky-algo:1"
DNN = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dnn-regressor:latest"
XGB = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
HEALTH_CHECK = 4.0
CAPTURE_BUFFER = 4_000_000


# ---- helpers ---------------------------------------------------------------------------------------------
def drain(srv: Server) -> threading.Thread:
    """Keep reading the server's output (a full pipe would block its logging) into ``srv.output``."""

    def run() -> None:
        assert srv.proc.stdout is not None
        for line in srv.proc.stdout:
            srv.output.append(line.rstrip())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def stop(srv: Server, reader: threading.Thread) -> None:
    if srv.proc.poll() is None:
        srv.proc.send_signal(signal.SIGTERM)
        try:
            srv.proc.wait(60)
        except Exception:  # noqa: BLE001
            srv.proc.kill()
            srv.proc.wait()
    reader.join(10)


def wait_for(fn: Callable[[], Any], pred: Callable[[Any], bool], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    value = fn()
    while not pred(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value: {value}")
        time.sleep(interval)
        value = fn()
    return value


def deploy(sm: Any, name: str, image: str, count: int = 1, env: dict[str, str] | None = None,
           data: str | None = None, capture: dict[str, Any] | None = None) -> None:
    container: dict[str, Any] = {"Image": image, "Environment": env or {}}
    if data:
        container["ModelDataUrl"] = data
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
    cfg: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": count, "InstanceType": "ml.m5.large"}]}
    if capture:
        cfg["DataCaptureConfig"] = capture
    sm.create_endpoint_config(**cfg)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def in_service(sm: Any, name: str, timeout: float = 120) -> None:
    ep = wait_for(lambda: sm.describe_endpoint(EndpointName=name),
                  lambda d: d["EndpointStatus"] not in ("Creating", "Updating"), timeout, 0.25)
    assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Load:
    """``threads`` clients invoking an endpoint back to back; outcome, pid and time of every request."""

    def __init__(self, rt: Any, endpoint: str, threads: int) -> None:
        self.rt, self.endpoint = rt, endpoint
        self.lock = threading.Lock()
        self.outstanding = 0
        self.ok: list[tuple[float, int]] = []
        self.failed: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                self.outstanding += 1
            try:
                r = self.rt.invoke_endpoint(EndpointName=self.endpoint, Body=b"{}", ContentType="application/json")
                pid = json.loads(r["Body"].read())["pid"]
                with self.lock:
                    self.ok.append((time.monotonic(), pid))
            except ClientError as exc:
                with self.lock:
                    self.failed.append((time.monotonic(), f"{exc.response['Error']['Code']}: {exc}"))
            finally:
                with self.lock:
                    self.outstanding -= 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def pids_since(self, t: float) -> set[int]:
        with self.lock:
            return {pid for when, pid in self.ok if when >= t}


# ---- (a) idle gaps, on the project's own serve programs ---------------------------------------------------
def xgboost_artifact() -> bytes:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    booster = xgb.train({"objective": "reg:squarederror", "nthread": 1}, xgb.DMatrix(x, label=x @ [3.0, -2.0, 0.5]), 5)
    raw = bytes(booster.save_raw("ubj"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def csv_rows(rows: np.ndarray) -> bytes:
    return ("\n".join(",".join(f"{v:.5f}" for v in r) for r in rows) + "\n").encode()


def bursts(rt: Any, endpoint: str, body: bytes, total: int, gaps: list[float], threads: int = 4) -> dict[str, Any]:
    """``total`` invocations in len(gaps)+1 bursts, each burst ``threads`` wide, separated by ``gaps``."""
    n = len(gaps) + 1
    sizes = [total // n + (1 if i < total % n else 0) for i in range(n)]
    failures: list[str] = []
    t0 = time.monotonic()

    def one(_: int) -> None:
        try:
            r = rt.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="text/csv", Accept="text/csv")
            r["Body"].read()
        except ClientError as exc:
            failures.append(str(exc))

    with ThreadPoolExecutor(threads) as pool:
        for i, size in enumerate(sizes):
            list(pool.map(one, range(size)))
            if i < len(gaps):
                time.sleep(gaps[i])
    return {"sent": total, "failed": len(failures), "errors": failures[:3], "seconds": round(time.monotonic() - t0, 1)}


def test_idle_gaps_never_fail_an_invocation(tmp_path: Path) -> None:
    """1,000 invocations per serve program in bursts with idle gaps of 1..10 s: none may fail because a
    pooled keep-alive connection outlived the server's keep-alive (gunicorn closes idle ones after 2 s
    in the built-ins' server, 5 s in the DNN regressor's)."""
    from tests.container.dnn_regressor_support import make_rows

    srv = start_server(tmp_path / "home", "--images", str(ROOT / "container" / "images.yaml"), timeout=90)
    reader = drain(srv)
    try:
        sm, s3, rt = srv.client("sagemaker"), srv.client("s3"), srv.client("sagemaker-runtime")
        s3.create_bucket(Bucket="gaps")
        s3.put_object(Bucket="gaps", Key="xgb/model.tar.gz", Body=xgboost_artifact())
        s3.put_object(Bucket="gaps", Key="dnn/train/a.csv", Body=csv_rows(make_rows(300, seed=1)))
        s3.put_object(Bucket="gaps", Key="dnn/validation/v.csv", Body=csv_rows(make_rows(100, seed=2)))
        deploy(sm, "gaps-xgb", XGB, data="s3://gaps/xgb/model.tar.gz")
        prefix = {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated"}
        sm.create_training_job(
            TrainingJobName="gaps-dnn", RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": DNN, "TrainingInputMode": "File"},
            HyperParameters={"hidden_units": "8", "epochs": "2", "batch_size": "64", "header": "false", "seed": "7"},
            InputDataConfig=[
                {"ChannelName": "train", "DataSource": {"S3DataSource": {**prefix, "S3Uri": "s3://gaps/dnn/train/"}}},
                {"ChannelName": "validation", "DataSource": {"S3DataSource": {**prefix, "S3Uri": "s3://gaps/dnn/validation/"}}},
            ],
            OutputDataConfig={"S3OutputPath": "s3://gaps/out"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 300},
        )
        job = wait_for(lambda: sm.describe_training_job(TrainingJobName="gaps-dnn"),
                       lambda d: d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"), 240, 0.5)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        deploy(sm, "gaps-dnn", DNN, data=job["ModelArtifacts"]["S3ModelArtifacts"])
        in_service(sm, "gaps-xgb")
        in_service(sm, "gaps-dnn", timeout=180)

        rng = random.Random(1234)
        rows = csv_rows(make_rows(2, seed=3)[:, 1:])
        plans = {}
        for name in ("gaps-xgb", "gaps-dnn"):
            gaps = [k + rng.uniform(0, 0.5) for k in range(1, 11)]  # every gap from 1 to 10 s, in random order
            rng.shuffle(gaps)
            plans[name] = gaps
        with ThreadPoolExecutor(2) as pool:
            futures = {name: pool.submit(bursts, rt, name, rows, 1000, gaps) for name, gaps in plans.items()}
            results = {name: f.result() for name, f in futures.items()}
        print("\nidle-gap results:", json.dumps(results), "gaps:", {k: [round(g, 1) for g in v] for k, v in plans.items()})
        for name, res in results.items():
            record(f"idle gaps 1-10 s, {name}", sent=res["sent"], failed=res["failed"])
        for name, res in results.items():
            assert res["failed"] == 0, (name, res)
    finally:
        stop(srv, reader)


# ---- the flaky server: (b) kill under load, (c) never healthy again, (d) parallel restarts, (e) capture ------
@pytest.fixture(scope="module")
def flaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    home = tmp_path_factory.mktemp("flaky")
    state = home / "state"
    state.mkdir()
    before = os.environ.get("LOCALMAKER_CAPTURE_BUFFER_BYTES")
    os.environ["LOCALMAKER_CAPTURE_BUFFER_BYTES"] = str(CAPTURE_BUFFER)
    try:
        srv = start_server(home / "lm", "--health-check-timeout", str(HEALTH_CHECK), images=FLAKY_IMAGES)
    finally:
        if before is None:
            os.environ.pop("LOCALMAKER_CAPTURE_BUFFER_BYTES", None)
        else:
            os.environ["LOCALMAKER_CAPTURE_BUFFER_BYTES"] = before
    reader = drain(srv)
    yield srv, state
    stop(srv, reader)


def flaky_env(state: Path, name: str, **extra: str) -> dict[str, str]:
    (state / name).mkdir()
    return {"FLAKY_STATE": str(state / name), **extra}


def instance_starts(state: Path, name: str) -> dict[str, list[dict[str, Any]]]:
    root = state / name
    return {d.name: [json.loads(p.read_text()) for p in sorted(d.glob("start-*.json"), key=lambda p: int(p.stem[6:]))]
            for d in sorted(root.iterdir())}


def test_killing_one_of_two_instances_fails_only_requests_in_flight(flaky: tuple[Server, Path]) -> None:
    srv, state = flaky
    sm, rt = srv.client("sagemaker"), srv.client("sagemaker-runtime")
    deploy(sm, "kill2", FLAKY, count=2, env=flaky_env(state, "kill2", FLAKY_INVOKE_SECONDS="0.05"))
    in_service(sm, "kill2")
    load = Load(rt, "kill2", threads=6)
    try:
        wait_for(lambda: load.pids_since(0), lambda p: len(p) == 2, 20)
        time.sleep(1.0)
        victim = sorted(load.pids_since(0))[0]
        with load.lock:
            in_flight = load.outstanding
            os.kill(victim, signal.SIGKILL)
            t_kill = time.monotonic()
        # the other instance carries the traffic; the killed one is restarted and serves again
        new = wait_for(lambda: load.pids_since(t_kill) - {victim}, lambda p: len(p) == 2, 30)
        time.sleep(1.0)
    finally:
        load.stop()
    survivor = {pid for when, pid in load.ok if when < t_kill} - {victim}
    restarted = new - survivor
    first_back = min(when for when, pid in load.ok if pid in restarted)
    failed_after = [(round(w - t_kill, 2), e) for w, e in load.failed]
    print(f"\nkill under load: {len(load.ok)} ok, {len(load.failed)} failed, {in_flight} in flight at the kill, "
          f"restarted instance served again {first_back - t_kill:.2f} s after the kill; failures: {failed_after}")
    record("kill -9 one of two serve instances under load", sent=len(load.ok) + len(load.failed),
           failed=len(load.failed), in_flight=in_flight)
    assert len(restarted) == 1
    assert len(load.failed) <= in_flight <= 6, failed_after
    assert all(w - t_kill < 2 for w, _ in load.failed), failed_after
    assert sm.describe_endpoint(EndpointName="kill2")["EndpointStatus"] == "InService"
    sm.delete_endpoint(EndpointName="kill2")


def test_instance_that_never_passes_ping_is_killed_and_retried_with_backoff(flaky: tuple[Server, Path]) -> None:
    srv, state = flaky
    sm, rt = srv.client("sagemaker"), srv.client("sagemaker-runtime")
    # every instance: start 1 healthy, starts 2 and 3 never pass /ping, start 4 healthy
    deploy(sm, "noping", FLAKY, count=2, env=flaky_env(state, "noping", FLAKY_HEALTHY_STARTS="1,4"))
    in_service(sm, "noping")
    first = instance_starts(state, "noping")
    (victim_dir, victim_starts), (_, other_starts) = sorted(first.items())
    victim, other = victim_starts[0]["pid"], other_starts[0]["pid"]
    load = Load(rt, "noping", threads=2)
    statuses = []
    try:
        time.sleep(0.5)
        os.kill(victim, signal.SIGKILL)
        t_kill = time.monotonic()

        def fourth() -> dict[str, Any] | None:
            statuses.append(sm.describe_endpoint(EndpointName="noping")["EndpointStatus"])
            recs = instance_starts(state, "noping")[victim_dir]
            return recs[3] if len(recs) >= 4 and "listening" in recs[3] else None

        rec4 = wait_for(fourth, lambda r: r is not None, 4 * HEALTH_CHECK + 20, 0.5)
        back = wait_for(lambda: load.pids_since(t_kill) - {other}, lambda p: rec4["pid"] in p, 15)
        t_back = time.monotonic()
        time.sleep(0.5)
    finally:
        load.stop()
    recs = instance_starts(state, "noping")[victim_dir]
    assert [r["healthy"] for r in recs] == [True, False, False, True], recs
    gap1 = recs[2]["started"] - recs[1]["started"]  # ping window + kill + 1 s
    gap2 = recs[3]["started"] - recs[2]["started"]  # ping window + kill + 2 s
    during = [pid for when, pid in load.ok if t_kill + 1.5 < when < t_back - 1]
    print(f"\nnever-healthy restarts: starts at +{recs[1]['started'] - recs[0]['started']:.1f} s ... gaps between "
          f"unhealthy starts {gap1:.2f} s then {gap2:.2f} s (health-check window {HEALTH_CHECK:g} s); back in "
          f"service {t_back - t_kill:.1f} s after the kill; {len(load.ok)} ok / {len(load.failed)} failed; "
          f"{len(during)} requests while the victim was out, all to pid {set(during)}; statuses {set(statuses)}")
    # each gap: the ping window, the kill, the backoff wait (1 s, then 2 s) and the program's start-up
    assert HEALTH_CHECK + 1 <= gap1 < HEALTH_CHECK + 4, (gap1, gap2)
    assert 0.5 < gap2 - gap1 < 2.5, (gap1, gap2)
    assert not alive(recs[1]["pid"]) and not alive(recs[2]["pid"])  # killed, not left running
    assert back and set(during) == {other}
    assert len(load.failed) <= 2 and all(w - t_kill < 1 for w, _ in load.failed), load.failed
    assert set(statuses) == {"InService"}
    log_lines = [line for line in srv.output if "noping" in line and "next attempt in" in line]
    assert any("next attempt in 1 s" in x for x in log_lines) and any("next attempt in 2 s" in x for x in log_lines), log_lines
    sm.delete_endpoint(EndpointName="noping")


def test_restarts_of_two_endpoints_run_in_parallel(flaky: tuple[Server, Path]) -> None:
    srv, state = flaky
    sm, rt = srv.client("sagemaker"), srv.client("sagemaker-runtime")
    delay = 2.5  # each start takes this long before it listens
    names = ("par-a", "par-b")
    for name in names:
        deploy(sm, name, FLAKY, env=flaky_env(state, name, FLAKY_START_DELAY=str(delay)))
    for name in names:
        in_service(sm, name)
    pids = {name: next(iter(instance_starts(state, name).values()))[0]["pid"] for name in names}
    t_kill = time.monotonic()
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)

    codes: list[str] = []

    def serving(name: str) -> bool:
        try:
            r = rt.invoke_endpoint(EndpointName=name, Body=b"{}", ContentType="application/json")
            return json.loads(r["Body"].read())["pid"] != pids[name]
        except ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
            return False

    back: dict[str, float] = {}
    deadline = time.monotonic() + 30
    while len(back) < 2 and time.monotonic() < deadline:
        for name in names:
            if name not in back and serving(name):
                back[name] = time.monotonic() - t_kill
        time.sleep(0.05)
    second = {name: next(iter(instance_starts(state, name).values()))[1] for name in names}
    a, b = (second[n] for n in names)
    print(f"\nparallel restarts: back after {', '.join(f'{n} {t:.2f} s' for n, t in back.items())} "
          f"(each start takes {delay} s); restarts began {abs(a['started'] - b['started']):.2f} s apart; {len(codes)} requests meanwhile failed: {set(codes)}")
    assert len(back) == 2, back
    # no instance of the variant in rotation: AWS's ServiceUnavailable, not a connection error
    assert codes and set(codes) == {"ServiceUnavailable"}, codes
    # both restarts were under way at once: each began before the other one was listening
    assert a["started"] < b["listening"] and b["started"] < a["listening"], second
    assert max(back.values()) < 2 * delay + 1.5, back
    for name in names:
        sm.delete_endpoint(EndpointName=name)


def test_request_in_flight_when_its_serve_process_is_killed_is_service_unavailable(flaky: tuple[Server, Path]) -> None:
    """The serve process dies holding the request: the answer is AWS's retryable 503 (not a ModelError
    blaming the model), even though localmaker only sees the process gone a moment after the socket."""
    srv, state = flaky
    sm, rt = srv.client("sagemaker"), srv.client("sagemaker-runtime")
    # one attempt: botocore's own retry of the 503 would otherwise reach the restarted process
    rt = boto3.client("sagemaker-runtime", endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test", config=Config(retries={"total_max_attempts": 1}, read_timeout=90))
    deploy(sm, "inflight", FLAKY, env=flaky_env(state, "inflight", FLAKY_INVOKE_SECONDS="3"))
    in_service(sm, "inflight")
    pid = next(iter(instance_starts(state, "inflight").values()))[0]["pid"]
    out: dict[str, Any] = {}

    def invoke() -> None:
        try:
            r = rt.invoke_endpoint(EndpointName="inflight", Body=b"{}", ContentType="application/json")
            out["ok"] = (json.loads(r["Body"].read()), time.monotonic() - t0)
        except ClientError as exc:
            out["error"] = exc.response

    t = threading.Thread(target=invoke)
    t0 = time.monotonic()
    t.start()
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    t.join(30)
    assert "error" in out, out
    err = out["error"]
    assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == ("ServiceUnavailable", 503), err
    assert "exited while handling the request" in err["Error"]["Message"], err
    sm.delete_endpoint(EndpointName="inflight")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_capture_buffer_is_bounded_when_destination_is_unwritable(flaky: tuple[Server, Path]) -> None:
    srv, state = flaky
    sm, rt = srv.client("sagemaker"), srv.client("sagemaker-runtime")
    deploy(sm, "cap", FLAKY, env=flaky_env(state, "cap"), capture={
        "EnableCapture": True, "InitialSamplingPercentage": 100,
        "DestinationS3Uri": "s3://no-such-capture-bucket/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
    in_service(sm, "cap")
    body = (b"1.25,2.5,3.75\n" * 15_000)[: 200 * 1024]  # 200 KB of CSV per request

    def one(_: int) -> None:
        rt.invoke_endpoint(EndpointName="cap", Body=body, ContentType="text/csv")["Body"].read()

    rss = [rss_mb(srv.proc.pid)]
    with ThreadPoolExecutor(4) as pool:
        for n in (300, 300, 300):  # the first round fills the buffer and the allocator's arenas
            list(pool.map(one, range(n)))
            time.sleep(1.5)  # another failing flush
            rss.append(rss_mb(srv.proc.pid))
    drops = [line for line in srv.output if "data capture buffer full" in line]
    print(f"\ncapture: 900 x {len(body) // 1024} KB captured ({900 * len(body) / 1e6:.0f} MB) to a missing bucket; "
          f"server RSS after 0/300/600/900 requests: {[round(r) for r in rss]} MB (buffer bound "
          f"{CAPTURE_BUFFER / 1e6:.0f} MB); {drops[-1:]}")
    assert drops, srv.output[-20:]
    # "data capture buffer full (R records, X MB waiting; limit ...): dropped the N oldest records (T dropped since start)"
    waiting_mb = float(drops[-1].split(" records, ")[1].split()[0])
    total = int(drops[-1].split("(")[-1].split()[0])
    assert waiting_mb <= CAPTURE_BUFFER / 1e6 and total > 0, drops[-1]
    # unbounded, the buffer alone would grow by > 120 MB over the last 600 requests
    assert rss[3] - rss[1] < 50, rss
    sm.delete_endpoint(EndpointName="cap")


def test_capture_writer_drops_oldest_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    """The bound itself, in-process: a destination that always fails keeps only the newest records."""
    from localmaker.context import Settings
    from localmaker.hosting import CaptureWriter

    class FailingS3:
        def put_object(self, **kwargs: Any) -> None:
            raise OSError("NoSuchBucket")

    class Ctx:
        settings = Settings(capture_flush_interval=3600)

        def s3(self) -> FailingS3:
            return FailingS3()

    cfg = {"DestinationS3Uri": "s3://nowhere/c", "InitialSamplingPercentage": 100}
    w = CaptureWriter(Ctx(), max_records=10)  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.WARNING, logger="localmaker.hosting"):
            for i in range(25):
                w.record("ep", "v", cfg, f"{i}".encode(), {"Content-Type": "text/csv"}, b"1", "text/csv", {})
            w.flush()
            for i in range(25, 30):
                w.record("ep", "v", cfg, f"{i}".encode(), {"Content-Type": "text/csv"}, b"1", "text/csv", {})
        assert w.buffered[0] == 10 and w.dropped == 20
        kept = [json.loads(line)["captureData"]["endpointInput"]["data"] for _, line in w._buf]
        assert kept == [str(i) for i in range(20, 30)]  # the newest ten, oldest first
        assert any("data capture buffer full" in r.getMessage() and "dropped since start" in r.getMessage()
                   for r in caplog.records)
        assert any("upload to s3://nowhere/c/ep/v/" in r.getMessage() for r in caplog.records)
    finally:
        w._closing.set()


# ---- the retry rule, in-process against scripted HTTP servers ----------------------------------------------
class Scripted:
    """A loopback HTTP/1.1 server whose answer to the n-th request (over all connections) is scripted:
    "ok" answers 200, "close" closes the connection without answering, "partial" sends the status line,
    headers and part of the body, then closes. Counts requests and connections."""

    def __init__(self, script: list[str]) -> None:
        import socket

        self.script = list(script)
        self.requests = 0
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Any) -> None:
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                length = 0
                while (h := f.readline()) not in (b"\r\n", b""):
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":")[1])
                f.read(length)
                self.requests += 1
                action = self.script.pop(0) if self.script else "ok"
                if action == "close":
                    return
                if action == "partial":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        finally:
            f.close()
            conn.close()

    def close(self) -> None:
        self.sock.close()


def scripted_instance(port: int) -> Any:
    from localmaker.hosting import Instance

    return Instance("v", 0, port, Path("."), [], Path("."), {}, "v/i-test")


def test_reused_connection_closed_before_the_status_line_is_resent_on_a_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from localmaker import hosting

    srv = Scripted(["ok", "close"])  # the 2nd request meets a connection the server closes unanswered
    try:
        inst = scripted_instance(srv.port)
        assert hosting.call(inst, "POST", "/invocations", b"1", {}, 5)[0] == 200
        # the close raced past the idle check: the request goes out on the old connection and fails
        monkeypatch.setattr(hosting, "_peer_closed", lambda c: False)
        assert hosting.call(inst, "POST", "/invocations", b"2", {}, 5) == (200, {"content-length": "2"}, b"ok")
        assert (srv.requests, srv.connections) == (3, 2)  # resent once, on a new connection
    finally:
        srv.close()


def test_no_resend_once_a_response_began_or_on_a_new_connection() -> None:
    from localmaker import hosting

    srv = Scripted(["ok", "partial", "close"])
    try:
        inst = scripted_instance(srv.port)
        hosting.call(inst, "POST", "/invocations", b"1", {}, 5)
        with pytest.raises(hosting.ExchangeError) as e:  # reused, but the response had begun: processed
            hosting.call(inst, "POST", "/invocations", b"2", {}, 5)
        assert e.value.sent and (srv.requests, srv.connections) == (2, 1)
        with pytest.raises(hosting.ExchangeError) as e:  # a new connection the server closed unanswered
            hosting.call(inst, "POST", "/invocations", b"3", {}, 5)
        assert e.value.sent and (srv.requests, srv.connections) == (3, 2)
    finally:
        srv.close()


def test_idle_pooled_connection_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    from localmaker import hosting

    srv = Scripted([])
    try:
        inst = scripted_instance(srv.port)
        hosting.call(inst, "POST", "/invocations", b"1", {}, 5)
        hosting.call(inst, "POST", "/invocations", b"2", {}, 5)
        assert srv.connections == 1  # reused while fresh
        monkeypatch.setattr(hosting, "IDLE_REUSE_SECONDS", 0.05)
        time.sleep(0.1)
        hosting.call(inst, "POST", "/invocations", b"3", {}, 5)
        assert (srv.requests, srv.connections) == (3, 2)
        with pytest.raises(hosting.ExchangeError) as e:  # nothing listens: refused, nothing was sent
            hosting.call(scripted_instance(hosting.free_port()), "POST", "/invocations", b"4", {}, 5)
        assert not e.value.sent
    finally:
        srv.close()
