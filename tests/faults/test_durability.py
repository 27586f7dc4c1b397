"""Durability: an acknowledged write survives ``kill -9``; a full disk fails one write, loses nothing.

Real localmaker processes are killed with SIGKILL while a writer keeps writing, then restarted on the
same home, and every write the client saw acknowledged must be there (every acknowledged delete gone).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
import types
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError, FlexibleChecksumError

from tests.faults import report
from tests.faults.conftest import start_server
from tests.localmaker.conftest import ROOT, training_request, wait_training

CYCLES = 20
KEYS_PER_WRITER = 30
MULTIPART = TransferConfig(multipart_threshold=1024 * 1024, multipart_chunksize=5 * 1024 * 1024)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class Writer(threading.Thread):
    """Random acknowledged writes on its own keys; ``expected`` only changes once a write is acked.

    ``expected[key]`` is the md5 of the acknowledged content, or None for an acknowledged delete.
    The write in flight when the server dies is ``uncertain``: either outcome is fine for its keys.
    """

    def __init__(self, s3: Any, bucket: str, prefix: str, expected: dict[str, str | None], multipart: set[str],
                 rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.s3, self.bucket, self.prefix, self.expected, self.rng = s3, bucket, prefix, expected, rng
        self.multipart = multipart  # md5s of multipart uploads' content (kept across cycles)
        self.acks = 0
        self.counts: dict[str, int] = {}
        self.uncertain: dict[str, str | None] = {}
        self.first_ack = threading.Event()
        self.error: Exception | None = None  # an S3 error answer (a bug)
        self.died: Exception | None = None  # the connection failed (the kill)
        self.stop = threading.Event()

    def key(self) -> str:
        return f"{self.prefix}/k{self.rng.randrange(KEYS_PER_WRITER)}"

    def copyable(self) -> list[str]:
        # not a multipart upload's object: moto gives its copy the source's composite checksum
        # ("crc-N") as a whole-object one, so botocore rejects reading the copy (a moto bug, with or
        # without persistence)
        return [k for k, v in self.expected.items() if v is not None and v not in self.multipart]

    def run(self) -> None:
        while not self.stop.is_set():
            op = self.rng.choices(["put", "multipart", "copy", "delete", "delete_objects"], [50, 6, 14, 15, 15])[0]
            changes: dict[str, str | None] = {}
            try:
                if op == "put":
                    k = self.key()
                    body = os.urandom(self.rng.choice([0, 1, 100, 4096, 70_000]))
                    changes[k] = md5(body)
                    self.uncertain = changes
                    self.s3.put_object(Bucket=self.bucket, Key=k, Body=body, ContentType="application/x-test")
                elif op == "multipart":
                    k = self.key()
                    body = os.urandom(5 * 1024 * 1024 + self.rng.randrange(1, 300_000))
                    changes[k] = md5(body)
                    self.multipart.add(changes[k])
                    self.uncertain = changes
                    self.s3.upload_fileobj(io.BytesIO(body), self.bucket, k, Config=MULTIPART)
                elif op == "copy":
                    present = self.copyable()
                    if not present:
                        continue
                    src, dst = self.rng.choice(present), self.key()
                    if src == dst:
                        continue
                    changes[dst] = self.expected[src]
                    self.uncertain = changes
                    self.s3.copy_object(Bucket=self.bucket, Key=dst, CopySource={"Bucket": self.bucket, "Key": src})
                elif op == "delete":
                    k = self.key()
                    changes[k] = None
                    self.uncertain = changes
                    self.s3.delete_object(Bucket=self.bucket, Key=k)
                else:
                    keys = {self.key() for _ in range(3)}
                    changes.update(dict.fromkeys(keys))
                    self.uncertain = changes
                    out = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys]})
                    assert not out.get("Errors"), out
            except ClientError as exc:  # an answer, so the server was alive: a real error
                self.error = exc
                self.uncertain = {}
                return
            except Exception as exc:  # noqa: BLE001 - the server died under this write: its outcome is open
                self.died = exc
                return
            self.expected.update(changes)
            self.uncertain = {}
            self.acks += 1
            self.counts[op] = self.counts.get(op, 0) + 1
            self.first_ack.set()


def read(s3: Any, bucket: str, key: str) -> str | None:
    """md5 of the object (its stored checksum verified by botocore), None if there is no such key."""
    try:
        return md5(s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")["Body"].read())
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchKey":
            raise
        return None


def check(s3: Any, bucket: str, expected: dict[str, str | None], uncertain: dict[str, str | None]) -> tuple[int, list[str]]:
    """(keys checked, what is lost or wrong) for one writer's keys after a restart."""
    lost = []
    for k, want in expected.items():
        try:
            got = read(s3, bucket, k)
        except FlexibleChecksumError as exc:
            lost.append(f"{k}: {exc} {s3.head_object(Bucket=bucket, Key=k, ChecksumMode='ENABLED')['ResponseMetadata']['HTTPHeaders']}")
            continue
        if got == want:
            continue
        if k in uncertain and got == uncertain[k]:
            expected[k] = got  # the write in flight at the kill landed: that is allowed
            continue
        lost.append(f"{k}: expected {want}, found {got}")
    for k, alt in uncertain.items():
        if k not in expected:  # first write of a key, in flight at the kill
            got = read(s3, bucket, k)
            if got not in (None, alt):
                lost.append(f"{k}: found {got}, neither absent nor the in-flight write")
            expected[k] = got
    return len(expected), lost


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("DURABILITY_SEED", "12")))
    home = tmp_path / "home"
    bucket = "durable"
    expected: list[dict[str, str | None]] = [{}, {}]
    multipart: set[str] = set()
    made_buckets: list[str] = []
    gone_buckets: list[str] = []
    acks = lost_total = 0
    counts: dict[str, int] = {}
    t0 = time.monotonic()
    srv = start_server(home)
    srv.client("s3").create_bucket(Bucket=bucket)
    for cycle in range(CYCLES):
        s3 = srv.client("s3")
        # bucket writes: one bucket made per cycle, the one from two cycles back deleted
        s3.create_bucket(Bucket=f"cycle-{cycle}")
        made_buckets.append(f"cycle-{cycle}")
        if cycle >= 2:
            s3.delete_bucket(Bucket=f"cycle-{cycle - 2}")
            gone_buckets.append(f"cycle-{cycle - 2}")
        writers = [Writer(srv.client("s3"), bucket, f"w{i}", expected[i], multipart, random.Random(rng.random()))
                   for i in range(2)]
        for w in writers:
            w.start()
        assert writers[0].first_ack.wait(30), f"cycle {cycle}: no write was acknowledged: {writers[0].error or writers[0].died!r}"
        time.sleep(rng.uniform(0, 0.3))
        srv.stop(sig=signal.SIGKILL)
        for w in writers:
            w.stop.set()
            w.join(30)
            assert w.error is None, f"cycle {cycle}: a write was refused: {w.error!r}"
            acks += w.acks
            for op, n in w.counts.items():
                counts[op] = counts.get(op, 0) + n
        srv = start_server(home)
        s3 = srv.client("s3")
        for i, w in enumerate(writers):
            _, lost = check(s3, bucket, expected[i], w.uncertain)
            assert not lost, f"cycle {cycle}: acknowledged writes lost: {lost}"
            lost_total += len(lost)
        names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert set(made_buckets) - set(gone_buckets) <= names, names
        assert not set(gone_buckets) & names, names
    srv.stop()
    elapsed = time.monotonic() - t0
    keys = sum(len(e) for e in expected)
    print(f"\n{CYCLES} kill -9 cycles in {elapsed:.1f} s: {acks} acknowledged object writes {counts}, "
          f"{len(made_buckets) + len(gone_buckets)} bucket writes, {keys} keys checked per restart, lost {lost_total}")
    report.record("s3-kill-9-cycles", cycles=CYCLES, acknowledged=acks, bucket_writes=len(made_buckets) + len(gone_buckets),
                  lost=lost_total, seconds=round(elapsed, 1), **counts)
    assert lost_total == 0


# ---- a full disk ------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (the full disk) needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> Path:
    """Fill the file system holding ``path`` to the last byte; returns the filler file."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler


def test_full_disk_fails_the_write_and_loses_nothing(small_disk: Path) -> None:
    home = small_disk / "home"
    srv = start_server(home)
    try:
        s3 = srv.client("s3")
        s3.create_bucket(Bucket="full")
        before = {f"old/{i}": os.urandom(3000) for i in range(5)}
        for k, v in before.items():
            s3.put_object(Bucket="full", Key=k, Body=v)
        filler = fill(small_disk)

        with pytest.raises(ClientError) as err:
            s3.put_object(Bucket="full", Key="new", Body=os.urandom(50_000))
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 507
        assert err.value.response["Error"]["Code"] == "InsufficientStorage"
        assert err.value.response["Error"]["Message"] == "localmaker could not store the object: No space left on device"
        with pytest.raises(ClientError) as err:  # memory does not claim what the disk does not hold
            s3.head_object(Bucket="full", Key="new")
        assert err.value.response["Error"]["Code"] == "404"
        # overwriting fails the same way and keeps the old content
        with pytest.raises(ClientError) as err:
            s3.put_object(Bucket="full", Key="old/0", Body=os.urandom(50_000))
        assert err.value.response["Error"]["Code"] == "InsufficientStorage"
        with pytest.raises(ClientError) as err:
            s3.copy_object(Bucket="full", Key="copied", CopySource={"Bucket": "full", "Key": "old/1"})
        assert err.value.response["Error"]["Code"] == "InsufficientStorage"
        with pytest.raises(ClientError) as err:
            s3.create_bucket(Bucket="full-other")
        assert err.value.response["Error"]["Code"] == "InsufficientStorage"
        assert "full-other" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
        for k, v in before.items():
            assert s3.get_object(Bucket="full", Key=k)["Body"].read() == v
        assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="full")["Contents"]) == sorted(before)
        # a delete needs no space and still works
        s3.delete_object(Bucket="full", Key="old/4")
        del before["old/4"]

        filler.unlink()
        s3.put_object(Bucket="full", Key="new", Body=b"after")
        s3.copy_object(Bucket="full", Key="copied", CopySource={"Bucket": "full", "Key": "old/1"})
        before.update({"new": b"after", "copied": before["old/1"]})
        srv.stop(sig=signal.SIGKILL)
        srv = start_server(home)
        s3 = srv.client("s3")
        assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="full")["Contents"]) == sorted(before)
        for k, v in before.items():
            assert s3.get_object(Bucket="full", Key=k)["Body"].read() == v
        report.record("s3-full-disk", refused_writes=4, objects_kept=len(before), lost=0)
    finally:
        srv.stop(sig=signal.SIGKILL)


# ---- a job's outcome ----------------------------------------------------------------------------------
def test_completed_training_job_survives_kill_9(tmp_path: Path) -> None:
    home = tmp_path / "home"
    srv = start_server(home)
    try:
        s3, sm = srv.client("s3"), srv.client("sagemaker")
        s3.create_bucket(Bucket="jobs")
        s3.put_object(Bucket="jobs", Key="data/train/a.csv", Body=b"1,2\n3,4\n")
        sm.create_training_job(**training_request("survivor", "jobs", hps={"mode": "ok"}))
        job = wait_training(sm, "survivor")
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        srv.stop(sig=signal.SIGKILL)  # at once: no clean stop, no snapshot

        srv = start_server(home)
        s3, sm = srv.client("s3"), srv.client("sagemaker")
        job = sm.describe_training_job(TrainingJobName="survivor")
        assert job["TrainingJobStatus"] == "Completed"
        bucket, key = job["ModelArtifacts"]["S3ModelArtifacts"][5:].split("/", 1)
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            assert json.load(tar.extractfile("model.json"))["lines"] == 2  # type: ignore[arg-type]
    finally:
        srv.stop(sig=signal.SIGKILL)


def start_padded_job(srv: Any, name: str, seconds: int) -> Any:
    """A tiny-algo job sleeping ``seconds`` in its Training phase; returns the SageMaker client.

    Big hyperparameters make every status write ~100 KB, more than the few pages localmaker's own
    clean-up (the process records it deletes when the job's process ends) gives back on a full disk.
    """
    s3, sm = srv.client("s3"), srv.client("sagemaker")
    s3.create_bucket(Bucket="jobs")
    s3.put_object(Bucket="jobs", Key="data/train/a.csv", Body=b"1,2\n")
    pad = {f"pad{i}": "x" * 2500 for i in range(40)}
    sm.create_training_job(**training_request(name, "jobs", hps={"mode": "sleep", "seconds": str(seconds), **pad}))
    deadline = time.monotonic() + 60
    while sm.describe_training_job(TrainingJobName=name)["SecondaryStatus"] != "Training":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return sm


def test_job_ending_on_a_full_disk_is_marked_failed_once_space_returns(small_disk: Path) -> None:
    home = small_disk / "home"
    srv = start_server(home)
    try:
        sm = start_padded_job(srv, "on-full-disk", seconds=2)
        filler = fill(small_disk)
        time.sleep(6)  # the job ends (it cannot even write its model) and its final status cannot be written
        job = sm.describe_training_job(TrainingJobName="on-full-disk")
        assert job["TrainingJobStatus"] == "InProgress", (job.get("FailureReason"), job["SecondaryStatusTransitions"])
        filler.unlink()
        deadline = time.monotonic() + 15
        while job["TrainingJobStatus"] == "InProgress":
            assert time.monotonic() < deadline, "the job stayed InProgress after space returned"
            time.sleep(0.2)
            job = sm.describe_training_job(TrainingJobName="on-full-disk")
        assert job["TrainingJobStatus"] == "Failed"
        assert "could not record its outcome (database or disk is full)" in job["FailureReason"], job["FailureReason"]
        assert job["SecondaryStatus"] == "Failed"
        srv.stop(sig=signal.SIGKILL)
        srv = start_server(home)
        job = srv.client("sagemaker").describe_training_job(TrainingJobName="on-full-disk")
        assert job["TrainingJobStatus"] == "Failed" and "could not record its outcome" in job["FailureReason"]
    finally:
        srv.stop(sig=signal.SIGKILL)


class FlakyDb:
    """A sqlite3 connection whose writes fail with "database or disk is full" while ``full`` is set."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db, self.full = db, threading.Event()

    def execute(self, sql: str, *args: Any) -> Any:
        if self.full.is_set() and sql.lstrip().upper().startswith(("INSERT", "DELETE", "UPDATE")):
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def close(self) -> None:
        self.db.close()


def test_job_whose_outcome_cannot_be_recorded_ends_failed_once_space_returns(tmp_path: Path) -> None:
    from localmaker.store import Store
    from localmaker.training import TrainingRunner, new_job_doc

    store = Store(tmp_path / "state.db")
    flaky = FlakyDb(store._db)
    store._db = flaky  # type: ignore[assignment]
    doc = new_job_doc(training_request("stuck", "jobs"), "us-east-1")
    store.put("TrainingJob", "stuck", doc)

    runner = TrainingRunner(types.SimpleNamespace(store=store))  # type: ignore[arg-type]
    runner.retry_interval = 0.05
    seen: list[Any] = []
    runner.add_finish_listener(lambda name, d: seen.append(d["TrainingJobStatus"]))
    flaky.full.set()
    with pytest.raises(sqlite3.OperationalError):  # the run's own final update fails...
        store.update("TrainingJob", "stuck", lambda d: d.__setitem__("TrainingJobStatus", "Failed"))
    runner.finished("stuck")  # ...and it ends (its finally)
    assert store.get("TrainingJob", "stuck")["TrainingJobStatus"] == "InProgress"  # type: ignore[index]
    time.sleep(0.3)
    assert store.get("TrainingJob", "stuck")["TrainingJobStatus"] == "InProgress"  # type: ignore[index]

    flaky.full.clear()  # space returns
    deadline = time.monotonic() + 5
    while store.get("TrainingJob", "stuck")["TrainingJobStatus"] == "InProgress":  # type: ignore[index]
        assert time.monotonic() < deadline, "the job stayed InProgress after space returned"
        time.sleep(0.02)
    job = store.get("TrainingJob", "stuck")
    assert job is not None and job["TrainingJobStatus"] == "Failed"
    assert "could not record its outcome (database or disk is full)" in job["FailureReason"]
    assert job["SecondaryStatus"] == "Failed" and "TrainingEndTime" in job
    assert seen == ["InProgress"]
    store.close()
    # and it is on disk
    again = Store(tmp_path / "state.db")
    assert again.get("TrainingJob", "stuck")["TrainingJobStatus"] == "Failed"  # type: ignore[index]
    again.close()


# ---- the previous version's snapshot ------------------------------------------------------------------
def test_old_clean_stop_snapshot_still_loads_and_is_migrated(tmp_path: Path) -> None:
    from moto.s3.models import s3_backends

    from localmaker.aws import ACCOUNT
    from localmaker.s3durable import DurableS3

    root = tmp_path / "s3"
    name = f"legacy-{os.getpid()}-{random.randrange(1 << 30)}"
    bdir = root / urllib.parse.quote(name, safe="")
    bdir.mkdir(parents=True)
    (bdir / "00000000").write_bytes(b"model bytes")
    (bdir / "00000001").write_bytes(b"a,b\n")
    (bdir / "index.json").write_text(json.dumps([
        {"key": "out/model.tar.gz", "file": "00000000", "metadata": {"x-amz-meta-owner": "me"}, "content_type": None},
        {"key": "data/x.csv", "file": "00000001", "metadata": {"Content-Type": "text/csv"}, "content_type": "text/csv"},
    ]))
    (root / "buckets.json").write_text(json.dumps([{"name": name, "region": "us-east-1"}]))

    backend = s3_backends[ACCOUNT]["global"]
    try:
        assert DurableS3(root).load() == 2
        assert backend.get_object(name, "out/model.tar.gz").value == b"model bytes"
        assert backend.get_object(name, "out/model.tar.gz").metadata["x-amz-meta-owner"] == "me"
        assert backend.get_object(name, "data/x.csv").metadata["Content-Type"] == "text/csv"
        assert not (root / "buckets.json").exists() and not bdir.exists()  # migrated, then removed

        # forget it in memory; the migrated store brings it back
        for k in list(backend.buckets[name].keys):
            backend.buckets[name].keys.pop(k)
        backend.delete_bucket(name)
        assert DurableS3(root).load() == 2
        assert backend.get_object(name, "data/x.csv").value == b"a,b\n"
    finally:
        if name in backend.buckets:
            for k in list(backend.buckets[name].keys):
                backend.buckets[name].keys.pop(k)
            backend.delete_bucket(name)


def test_restart_on_a_full_disk_is_a_one_line_error_then_recovers(small_disk: Path) -> None:
    """Failing the jobs a crash interrupted needs the disk: a full one is a clear error, not a traceback."""
    home = small_disk / "home"
    srv = start_server(home)
    try:
        start_padded_job(srv, "interrupted", seconds=60)
    finally:
        srv.stop(sig=signal.SIGKILL)
    filler = fill(small_disk)
    proc = subprocess.run(
        [sys.executable, "-m", "localmaker", "--port", "0", "--home", str(home)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("localmaker: error: cannot restore the state in home"), lines
    assert "full" in lines[0], lines
    filler.unlink()
    srv = start_server(home)
    try:
        job = srv.client("sagemaker").describe_training_job(TrainingJobName="interrupted")
        assert job["TrainingJobStatus"] == "Failed" and "localmaker stopped" in job["FailureReason"], job
    finally:
        srv.stop(sig=signal.SIGKILL)
