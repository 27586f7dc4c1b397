"""The distributed deployment, run: `make up EXECUTOR=celery` (docker-compose.yaml's topology, no Docker).

One environment for the module (``scripts/up.py`` with ``UP_EXECUTOR=celery`` on free ports in a home
under /tmp): localmaker, PostgreSQL, Redis, the api-server, scheduler, dag-processor, triggerer and two
Celery workers (127.0.0.2 and 127.0.0.3: their hostnames in the task instances). Through the REST API:

1. ``diabetes_dnn_training`` with ``auto_approve`` succeeds; every task that executes ran on a Celery
   worker (both are used), Celery's result backend in PostgreSQL recorded them, and the SageMaker waits
   were deferred to the triggerer (seen in ``deferred`` with a SageMaker trigger on the triggerer's host);
2. a second run waits for SageMaker in the task (``airflow.deferrable: false``), and the worker running
   ``train`` is killed (SIGKILL to all its processes) mid-wait: the scheduler finds the task's heartbeat
   gone, the retry runs on the other worker, adopting the training job (no second job is started), and
   the run succeeds. It stops before deployment (``deploy: false``; run 1 covered it) to keep the test
   within CI's budget;
3. `make down` stops everything it started, PostgreSQL and Redis included.

The environment's ``airflow.cfg`` (kept by `make up`) lowers ``[scheduler] task_instance_heartbeat_timeout``
to 15 s (Airflow's default, 300 s, is for real machines), so the lost task is noticed in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import down as down_mod  # noqa: E402
import up_celery  # noqa: E402

from include.mlpipeline.pipelines.training import TRAIN  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAG_ID = "diabetes_dnn_training"
USER, PASSWORD = "admin", "admin"
WORKERS = {up_celery.worker_address(1): "celery-worker-1", up_celery.worker_address(2): "celery-worker-2"}
TRIGGERER_HOST = "127.0.0.1"  # UP_HOST's address (scripts/up_hostname.py)
RUN_TIMEOUT = 420  # seconds for one run (160-185 s on a busy 2-core machine; the second about 150 s)
HEARTBEAT_TIMEOUT = 15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing() -> str | None:
    try:
        up_celery.postgres_bindir()
        up_celery.redis_server()
        up_celery.server_account()
    except up_celery.ComposeError as exc:
        return str(exc)
    return None


class CeleryUp:
    """`make up EXECUTOR=celery` / `make down` on free ports in a private home under /tmp (PostgreSQL's
    account must be able to enter it: pytest's own tmp directory is mode 700)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port, self.pg_port, self.redis_port = free_port(), free_port(), free_port()
        self.home, self.lm_home = base / "airflow", base / "localmaker"
        self.api = f"http://127.0.0.1:{self.port}"
        self.lm_port = free_port()
        self.env_lm_url = f"http://127.0.0.1:{self.lm_port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "UP_", "LOCALMAKER_"))}
        self.env.update(
            AIRFLOW_PORT=str(self.port), LOCALMAKER_PORT=str(self.lm_port), UP_HOME=str(self.home),
            LOCALMAKER_HOME=str(self.lm_home), UP_USER=USER, UP_PASSWORD=PASSWORD, UP_TIMEOUT="400",
            UP_WORKER_LOG_PORT=str(free_port()), UP_TRIGGERER_LOG_PORT=str(free_port()), UP_EXECUTOR="celery",
            UP_POSTGRES_PORT=str(self.pg_port), UP_REDIS_PORT=str(self.redis_port),
        )
        self.paths = down_mod.Paths(self.home.resolve(), self.lm_home.resolve())
        self.records: dict[str, dict] = {}
        self._token: str | None = None

    def up(self) -> str:
        self.home.mkdir(parents=True)
        (self.home / "airflow.cfg").write_text(
            f"[scheduler]\ntask_instance_heartbeat_timeout = {HEARTBEAT_TIMEOUT}\n"
            "task_instance_heartbeat_timeout_detection_interval = 5\n")
        result = subprocess.run([sys.executable, "scripts/up.py"], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=480)
        self.records.update(down_mod.read_pidfiles(self.paths))
        assert result.returncode == 0, f"make up failed:\n{result.stdout}\n{result.stderr}\n{self.logs()}"
        return result.stdout

    def down(self) -> str:
        self.records.update(down_mod.read_pidfiles(self.paths))
        result = subprocess.run([sys.executable, "scripts/down.py"], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"make down failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def strays(self) -> list[str]:
        return [f"{p} {down_mod.cmdline(p)[:100]}" for p in down_mod.strays(self.paths, self.records)]

    def logs(self, lines: int = 30) -> str:
        out = []
        for f in sorted((self.home / "logs" / "up").glob("*.log")):
            text = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"---- {f.name}\n" + "\n".join(text))
        return "\n".join(out)

    # ---- REST API ----

    def call(self, path: str, data: dict | None = None, method: str | None = None):
        if self._token is None and path != "/auth/token":
            self._token = self.call("/auth/token", {"username": USER, "password": PASSWORD})["access_token"]
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body = json.dumps(data).encode() if data is not None else None
        req = urllib.request.Request(self.api + path, data=body, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def trigger(self, conf: dict) -> str:
        return self.call(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]

    def run_state(self, run_id: str) -> str:
        return self.call(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"]

    def task_instances(self, run_id: str) -> list[dict]:
        return self.call(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]

    def tries(self, run_id: str, task_id: str) -> list[dict]:
        return self.call(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/tries")["task_instances"]

    def follow(self, run_id: str, on_poll=None, interval: float = 1.0) -> tuple[str, list[dict]]:
        """Poll the run until it ends; every task instance state seen on the way (``on_poll`` is called
        with each poll's task instances). Returns the final run state and the observations."""
        seen: list[dict] = []
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            tis = self.task_instances(run_id)
            seen.extend(tis)
            if on_poll:
                on_poll(tis)
            state = self.run_state(run_id)
            if state in ("success", "failed"):
                return state, seen
            assert time.monotonic() < deadline, f"run {run_id} still {state} after {RUN_TIMEOUT} s:\n{self.logs()}"
            time.sleep(interval)

    def kill_worker(self, name: str) -> list[int]:
        """SIGKILL every process of the worker (its main process, pool and task processes): a lost machine."""
        rec = self.records[name]
        pids = sorted(p for p, leader in down_mod.belonging(self.paths, {name: rec}).items() if leader == rec["pid"])
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids


@pytest.fixture(scope="module")
def celery_up() -> Iterator[CeleryUp]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="mlpipeline-celery-", dir="/tmp"))
    base.chmod(0o755)
    env = CeleryUp(base)
    t0 = time.monotonic()
    try:
        out = env.up()
        print(f"\n  make up EXECUTOR=celery: {time.monotonic() - t0:.0f} s\n" + out[-600:], flush=True)
        yield env
    finally:
        try:
            env.down()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _short(ti: dict) -> str:
    """A task's id without its TaskGroup (``train.train`` -> ``train``)."""
    return ti["task_id"].rsplit(".", 1)[-1]


def _executed(tis: list[dict]) -> list[dict]:
    """Task instances that ran code on a worker (EmptyOperator ones never leave the scheduler)."""
    return [ti for ti in tis if ti["state"] == "success" and ti.get("operator") != "EmptyOperator"]


def test_a_run_executes_on_the_celery_workers_and_defers_its_sagemaker_waits(celery_up: CeleryUp) -> None:
    t0 = time.monotonic()
    run_id = celery_up.trigger({"auto_approve": True})
    state, seen = celery_up.follow(run_id)
    print(f"  run 1: {state} in {time.monotonic() - t0:.0f} s", flush=True)
    assert state == "success", celery_up.logs()

    final = celery_up.task_instances(run_id)
    executed = _executed(final)
    assert {"extract", "train", "evaluate", "deploy_prod", "promote"} <= {_short(ti) for ti in executed}
    hosts = {ti["task_id"]: ti["hostname"] for ti in executed}
    assert set(hosts.values()) <= set(WORKERS), f"tasks not run by a Celery worker: {hosts}"
    assert set(hosts.values()) == set(WORKERS), f"one worker ran everything: {hosts}"

    # Celery's own record (the result backend, in PostgreSQL): one successful Celery task per execution
    import psycopg2

    _, pg = up_celery.compose_settings()
    conn = psycopg2.connect(host="127.0.0.1", port=celery_up.pg_port, user=pg["POSTGRES_USER"],
                            password=pg["POSTGRES_PASSWORD"], dbname=pg["POSTGRES_DB"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
            (done,) = cur.fetchone()
    finally:
        conn.close()
    assert done >= len(executed), (done, len(executed))

    # the SageMaker waits: handed to the triggerer (a SageMaker trigger, the triggerer's host), then resumed
    deferred = [ti for ti in seen if ti["state"] == "deferred"]
    assert TRAIN in {ti["task_id"] for ti in deferred}, "train was never seen deferred"
    triggers = {(ti.get("trigger") or {}).get("classpath") for ti in deferred} - {None}
    assert triggers and all(".amazon.aws.triggers.sagemaker." in t for t in triggers), triggers
    assert {(ti.get("triggerer_job") or {}).get("hostname") for ti in deferred} - {None} == {TRIGGERER_HOST}
    print(f"  deferred: {sorted({ti['task_id'] for ti in deferred})}; hosts: {sorted(hosts.items())}", flush=True)


def test_a_run_survives_a_worker_killed_mid_task(celery_up: CeleryUp) -> None:
    t0 = time.monotonic()
    # waits in the task (not deferred), so that `train` holds a worker slot while SageMaker trains
    started = time.time() - 1
    run_id = celery_up.trigger({"auto_approve": True, "deploy": False, "airflow.deferrable": False})
    killed: dict = {}
    killed_at: dict = {}

    def kill_during_train(tis: list[dict]) -> None:
        if killed:
            return
        ti = next((t for t in tis if t["task_id"] == TRAIN), None)
        if ti and ti["state"] == "running" and ti.get("hostname") in WORKERS and ti.get("start_date"):
            if "running_since" not in killed_at:
                killed_at["running_since"] = time.monotonic()
            elif time.monotonic() - killed_at["running_since"] >= 5:  # well into its wait for the job
                name = WORKERS[ti["hostname"]]
                # a running task's log: the API server fetches it from that worker's own log server
                killed["log"] = celery_up.call(
                    f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TRAIN}/logs/1?full_content=true")
                killed.update(host=ti["hostname"], name=name, pids=celery_up.kill_worker(name),
                              at=time.monotonic() - t0)

    state, _ = celery_up.follow(run_id, on_poll=kill_during_train, interval=0.5)
    log = killed.pop("log", None)
    print(f"  run 2: {state} in {time.monotonic() - t0:.0f} s; killed {killed}", flush=True)
    assert killed, "train was never seen running on a worker"
    served = f"http://{killed['host']}:{celery_up.env['UP_WORKER_LOG_PORT']}/log/"
    assert served in json.dumps(log), f"the running task's log was not served by its worker ({served}): {log}"[:3000]
    assert state == "success", celery_up.logs()

    survivor = next(h for h in WORKERS if h != killed["host"])
    tries = sorted(celery_up.tries(run_id, TRAIN), key=lambda t: t["try_number"])
    assert [t["hostname"] for t in tries[:1]] == [killed["host"]], tries
    assert tries[0]["state"] in ("failed", "up_for_retry"), tries
    assert tries[-1]["try_number"] >= 2 and tries[-1]["state"] == "success", tries
    assert tries[-1]["hostname"] == survivor, tries
    print("  train tries: " + "; ".join(f"{t['try_number']} {t['state']} on {t['hostname']} "
                                         f"{t['start_date']} -> {t['end_date']}" for t in tries), flush=True)
    # the retry adopted the job the killed worker was waiting for: one training job for this run
    import boto3

    sm = boto3.client("sagemaker", endpoint_url=celery_up.env_lm_url, region_name="us-east-1",
                      aws_access_key_id="celery-test", aws_secret_access_key="celery-test")
    jobs = sm.list_training_jobs(CreationTimeAfter=datetime.fromtimestamp(started, UTC))["TrainingJobSummaries"]
    assert len(jobs) == 1, [j["TrainingJobName"] for j in jobs]
    # after the kill everything ran on the survivor; the killed worker's processes are all gone
    later = [ti for ti in _executed(celery_up.task_instances(run_id))
             if _short(ti) not in ("extract", "validate_and_prepare", "training_requests", "train_or_tune", "train")]
    assert later and {ti["hostname"] for ti in later} == {survivor}, later
    assert not any(down_mod.alive(p) for p in killed["pids"])


def test_make_down_stops_everything_it_started(celery_up: CeleryUp) -> None:
    assert {"postgres", "redis", "celery-worker-1", "celery-worker-2"} <= set(celery_up.records)
    out = celery_up.down()
    assert "stopping postgres" in out and "stopping redis" in out, out
    assert celery_up.strays() == []
    for port in (celery_up.pg_port, celery_up.redis_port, celery_up.port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"
    assert "nothing running" in celery_up.down()  # idempotent
