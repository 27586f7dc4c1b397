"""No process outlives localmaker, no two servers share a home, and every child listens on loopback only.

Real servers, really killed: ``kill -9`` of localmaker must take every serve process (and its gunicorn
workers) and every job process (and what the job started, in its own session or not) with it; what
survives anyway (recorded by a previous run) is killed at the next start, and nothing else is.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from localmaker import reaper
from tests.faults.conftest import ROLE, TEST_IMAGES, start_server
from tests.faults.report import record
from tests.localmaker.conftest import ROOT, wait_endpoint, wait_for

TINY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny-algo:1"
PROC = "123456789012.dkr.ecr.us-east-1.amazonaws.com/proc-algo:1"
PCA = "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1"
DNN = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dnn-regressor:1"
PROJECT_IMAGES = ROOT / "container" / "images.yaml"

# a processing job with a side effect after a delay, and a grandchild that leaves the job's session
# (as a daemon would) with a side effect of its own
JOB = """
import os, subprocess, sys, time
d = sys.argv[1]
subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(8); open(sys.argv[1], 'w').write('x')",
                  os.path.join(d, "grandchild-side-effect")], start_new_session=True)
open(os.path.join(d, "started"), "w").write(str(os.getpid()))
time.sleep(8)
open(os.path.join(d, "side-effect"), "w").write("x")
"""


# ---- /proc ---------------------------------------------------------------------------------------------
def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def tree(pid: int) -> list[int]:
    return [p for p in reaper.descendants(pid) if alive(p)]


def listening(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket the given processes hold, each read in the
    process's own network namespace (a sandboxed serve process, runtime: sandbox, has one of its own)."""
    tables: dict[str, dict[str, tuple[str, int]]] = {}
    out = []
    for pid in pids:
        try:
            netns = os.readlink(f"/proc/{pid}/ns/net")
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        if netns not in tables:
            tables[netns] = _listen_table(pid)
        inodes = tables[netns]
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                out.append((pid, *inodes[target[8:-1]]))
    return out


def _listen_table(pid: int) -> dict[str, tuple[str, int]]:
    """socket inode -> (address, port) of the listening TCP sockets in ``pid``'s network namespace."""
    inodes: dict[str, tuple[str, int]] = {}
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] != "0A":  # LISTEN
                continue
            hexaddr, hexport = f[1].split(":")
            raw = bytes.fromhex(hexaddr)
            # /proc/net prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            inodes[f[9]] = (socket.inet_ntop(family, raw), int(hexport, 16))
    return inodes


def orphans(home: Path, exclude: set[int]) -> list[tuple[int, str]]:
    """Live processes whose command line, environment or working directory points into ``home``.

    A process that rewrites its title (gunicorn) overwrites its environment as /proc shows it; those
    are covered by the tree taken before the kill."""
    needle = str(home.resolve())
    found = []
    for pid in (int(n) for n in os.listdir("/proc") if n.isdigit()):
        if pid in exclude or not alive(pid):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if needle in cmdline or needle in environ or cwd.startswith(needle):
            found.append((pid, cmdline[:120]))
    return found


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) != 0


# ---- resources -----------------------------------------------------------------------------------------
def tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pca_model() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, mean=np.zeros((1, 3), np.float32), v=np.eye(3, 2, dtype=np.float32), s=np.ones(2, np.float32))
    return buf.getvalue()


def endpoint(srv: Any, image: str, files: dict[str, bytes], count: int) -> str:
    sm, s3 = srv.client("sagemaker"), srv.client("s3")
    name = f"ep-{image.rsplit('/', 1)[1].split(':')[0]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="model.tar.gz", Body=tarball(files))
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": image, "ModelDataUrl": f"s3://{name}/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "v", "ModelName": name, "InitialInstanceCount": count, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return name


def tiny_endpoint(srv: Any, count: int) -> str:
    return endpoint(srv, TINY, {"model.json": json.dumps({"lines": 3, "host": "algo-1"}).encode()}, count)


def processing_job(srv: Any, out: Path) -> None:
    script = out.parent / "job.py"
    script.write_text(JOB)
    srv.client("sagemaker").create_processing_job(
        ProcessingJobName="side-effects",
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        AppSpecification={"ImageUri": PROC, "ContainerEntrypoint": ["python3", str(script)],
                          "ContainerArguments": [str(out)]},
        RoleArn=ROLE,
    )


# ---- tests ---------------------------------------------------------------------------------------------
def test_kill_9_takes_every_child_and_its_side_effects_with_it(tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "out"
    out.mkdir()
    srv = start_server(home)
    try:
        # tiny's serve is one process; the built-in's is gunicorn, a master and its worker
        names = [tiny_endpoint(srv, 2), endpoint(srv, PCA, {"model_algo-1": pca_model()}, 1)]
        processing_job(srv, out)
        for name in names:
            assert wait_endpoint(srv.client("sagemaker"), name, 60)["EndpointStatus"] == "InService"
        wait_for(lambda: (out / "started").exists(), bool, 30)
        started = time.monotonic()
        job = int((out / "started").read_text())
        # the job, its grandchild (own session) and the serve processes (each under a guard)
        children = wait_for(lambda: tree(srv.proc.pid), lambda t: job in t and len(t) >= 6, 10)
        ports = {port for pid, _, port in listening(children)}
        assert len(ports) == 3, listening(children)
    finally:
        srv.proc.kill()
        srv.proc.wait()
    killed = time.monotonic()
    left = wait_for(lambda: [p for p in children if alive(p)], lambda s: not s, 5, 0.01)
    took = time.monotonic() - killed
    print(f"\n{len(children)} descendants of the killed server gone {took * 1000:.0f} ms after kill -9")
    time.sleep(max(0.0, started + 9 - time.monotonic()))  # past both side effects' 8 s delay
    left_over = orphans(home, {os.getpid()})
    record("kill -9 of localmaker with 2 endpoints and a processing job running", children=len(children),
           orphans=len(left) + len(left_over), side_effects_after_kill=len(list(out.iterdir())) - 1)
    assert not left
    assert all(port_is_free(p) for p in ports), ports
    assert sorted(p.name for p in out.iterdir()) == ["started"]
    assert left_over == []


def test_next_start_kills_recorded_survivors_and_only_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"]}
    # survivors of a previous run: a recorded group (leader + member) and a marked process in a session
    # of its own; a recorded pid whose start time differs is a recycled pid (someone else's process)
    ours = subprocess.Popen(["sh", "-c", "sleep 60 & exec sleep 61"], env=env, start_new_session=True)
    member = wait_for(lambda: tree(ours.pid), bool, 10)[0]
    stray = subprocess.Popen(["sleep", "62"], env={**env, reaper.MARKER_ENV: str(home.resolve())}, start_new_session=True)
    recycled = subprocess.Popen(["sleep", "63"], env=env, start_new_session=True)
    unrelated = subprocess.Popen(["sleep", "64"], env=env, start_new_session=True)
    reaper.write_record(home, ours.pid, ["serve"])
    rec = reaper.write_record(home, recycled.pid, ["serve"])
    doc = json.loads(rec.read_text())
    doc["start_time"] -= 1000
    rec.write_text(json.dumps(doc))
    try:
        srv = start_server(home)
        try:
            assert ours.wait(10) == -9 and stray.wait(10) == -9
            assert wait_for(lambda: alive(member), lambda a: not a, 10) is False
            assert recycled.poll() is None and unrelated.poll() is None
            assert list((home / reaper.RECORDS_DIR).iterdir()) == []
        finally:
            srv.stop()
    finally:
        for p in (ours, stray, recycled, unrelated):
            p.kill()
            p.wait()


def test_next_start_kills_what_frozen_guards_could_not(tmp_path: Path) -> None:
    home = tmp_path / "home"
    srv = start_server(home)
    try:
        name = tiny_endpoint(srv, 2)
        assert wait_endpoint(srv.client("sagemaker"), name, 60)["EndpointStatus"] == "InService"
        children = tree(srv.proc.pid)
        guards = [p for p in children if "guard.py" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(guards) == 2 and len(children) == 4, children
        for p in guards:  # a guard that cannot act (stopped) when localmaker dies: only the records are left
            os.kill(p, signal.SIGSTOP)
    finally:
        srv.proc.kill()
        srv.proc.wait()
    time.sleep(0.5)
    assert all(alive(p) for p in children)
    assert len(list((home / reaper.RECORDS_DIR).glob("*.json"))) == 2
    again = start_server(home)
    try:
        assert wait_for(lambda: [p for p in children if alive(p)], lambda s: not s, 5, 0.01) == []
    finally:
        again.stop()


def test_one_server_per_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = start_server(home)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        second = subprocess.run(
            [sys.executable, "-m", "localmaker", "--port", "0", "--home", str(home), "--images", str(TEST_IMAGES)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        said = (second.stdout + second.stderr).strip().splitlines()
        assert second.returncode == 2, said
        assert len(said) == 1 and f"pid {first.proc.pid}" in said[0] and first.url in said[0], said
    finally:
        first.proc.kill()
        first.proc.wait()
    again = start_server(home)  # the kernel dropped the dead server's lock
    assert again.stop() == 0


def test_every_child_listens_on_loopback_only(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "home", "--images", str(PROJECT_IMAGES))
    try:
        sm = srv.client("sagemaker")
        names = [tiny_endpoint(srv, 1), endpoint(srv, PCA, {"model_algo-1": pca_model()}, 1)]
        # the project's own serve (sandboxed where bubblewrap runs: nginx on 8080 in its own network
        # namespace; else gunicorn alone): its model is not loadable, so it never turns healthy, but it
        # listens while the endpoint is Creating
        endpoint(srv, DNN, {"empty": b""}, 1)
        for name in names:
            ep = wait_endpoint(sm, name, 90)
            assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")

        def child_sockets() -> list[tuple[int, str, int]]:
            return listening(tree(srv.proc.pid))

        children = wait_for(child_sockets, lambda s: len({port for _, _, port in s}) >= 3, 30)
        sockets = listening([srv.proc.pid]) + child_sockets()
        assert [s for s in sockets if s[1] != "127.0.0.1"] == [], sockets
        assert len(children) >= 3
    finally:
        srv.stop()


def test_dnn_regressor_serve_binds_the_address_it_is_given() -> None:
    container = str(ROOT / "container" / "dnn_regressor")
    if container not in sys.path:
        sys.path.insert(0, container)
    from dnn_regressor.supervisor import NGINX_TEMPLATE, render_nginx_conf, settings_from_env

    assert settings_from_env({}).bind == "0.0.0.0:8080"  # SageMaker: every interface of the container
    given = settings_from_env({"SAGEMAKER_BIND_TO_HOST": "127.0.0.1", "SAGEMAKER_BIND_TO_PORT": "9001"})
    assert given.bind == "127.0.0.1:9001"
    conf = render_nginx_conf(NGINX_TEMPLATE.read_text(), port=9001, socket_path=Path("/s"), scratch=Path("/t"),
                             timeout=60, host=given.host)
    assert "listen 127.0.0.1:9001 deferred;" in conf
