"""`make down`: stop everything `make up` started, and nothing else.

`make up` starts each component (localmaker, the Airflow api-server, scheduler, dag-processor and
triggerer; with the Celery executor also PostgreSQL, Redis and the Celery workers) as the leader of its own process group, tags it with ``MLPIPELINE_UP_HOME=<home>`` in its
environment and writes ``<home>/pids/<name>.json`` (pid, the kernel's start time of that pid, the
command). Stopping:

1. the Airflow components first, then localmaker (so it stops its endpoints and training jobs and
   saves its S3 state while nothing calls it any more): SIGTERM to the whole process group (SIGINT
   to PostgreSQL's: its fast shutdown), SIGKILL to what is left after a grace period;
2. a sweep for anything still carrying the tag, or whose environment points into localmaker's home
   (endpoint and job processes localmaker runs in their own sessions): these were started by this
   environment, so they go too.

A pid file whose pid is gone or now belongs to another program (start time differs) is only
removed: nothing outside the environment is ever signalled. Idempotent: a second `make down` says
there is nothing to stop.

Settings (environment): UP_HOME (default .airflow/up), LOCALMAKER_HOME (default .localmaker/up),
DOWN_GRACE (seconds before SIGKILL, default 30).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localmaker.reaper import environ_of  # noqa: E402  (stdlib only: down works without the venv)

MARKER = "MLPIPELINE_UP_HOME"
# stop order: clients of localmaker first (the scheduler, then the Celery workers, which finish or give up
# their tasks, before the API server the task runners report to), then the log servers, the broker and the
# database the Airflow components used, localmaker at the very end
STOP_ORDER = ["scheduler", "celery-worker-*", "triggerer", "dag-processor", "api-server", "*log-server", "redis",
              "postgres", "localmaker"]


def stop_rank(name: str) -> int:
    """Position of a component in :data:`STOP_ORDER` (patterns with ``*``); unknown ones just before
    the broker."""
    import fnmatch

    if name.endswith("log-server"):  # a Celery worker's too
        return STOP_ORDER.index("*log-server")
    for i, pattern in enumerate(STOP_ORDER):
        if fnmatch.fnmatchcase(name, pattern):
            return i
    return STOP_ORDER.index("redis")


@dataclass(frozen=True)
class Paths:
    home: Path
    lm_home: Path

    @property
    def pids(self) -> Path:
        return self.home / "pids"

    @property
    def logs(self) -> Path:
        return self.home / "logs" / "up"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Paths:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("UP_HOME") or ROOT / ".airflow" / "up")
        lm_home = Path(env.get("LOCALMAKER_HOME") or ROOT / ".localmaker" / "up")
        if not home.is_absolute():
            home = ROOT / home
        if not lm_home.is_absolute():
            lm_home = ROOT / lm_home
        return cls(home.resolve(), lm_home.resolve())


# ---- /proc helpers ---------------------------------------------------------------------------------------


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat): with the
    pid, a fingerprint that a recycled pid does not share."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _processes() -> dict[int, list[str]]:
    """Live processes (zombies count as gone: they hold nothing and their parent reaps them)."""
    out = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            st = _stat(int(p))
            if st and st[0] not in ("Z", "X"):
                out[int(p)] = st
    return out


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _leaders(recs: dict[str, dict]) -> set[int]:
    """Recorded leaders whose session/group ids still stand for this environment: the leader runs
    (same start time), or it is gone while its session lives on (the kernel does not hand out a pid
    that is still some session's or group's id, so the members are its orphans)."""
    out = set()
    for rec in recs.values():
        pid = rec.get("pid")
        if pid and (is_ours(rec) or not alive(pid)):
            out.add(pid)
    return out


def belonging(paths: Paths, recs: dict[str, dict] | None = None) -> dict[int, int | None]:
    """Live processes started by this environment -> the leader they belong to (None: found by tag).

    A process belongs when it is in a recorded leader's session or process group, descends from a
    recorded leader, carries ``MLPIPELINE_UP_HOME=<home>`` (lost by processes that set their title,
    hence the other checks) or is a localmaker job/endpoint process whose SageMaker directories live
    in this environment's localmaker home (localmaker runs those in their own sessions)."""
    recs = read_pidfiles(paths) if recs is None else recs
    leaders = _leaders(recs)
    procs = _processes()
    me = os.getpid()
    lm = str(paths.lm_home) + os.sep
    found: dict[int, int | None] = {}
    for pid, st in procs.items():
        if pid == me:
            continue
        pgrp, sid = int(st[2]), int(st[3])
        if pid in leaders:
            found[pid] = pid
        elif sid in leaders:
            found[pid] = sid
        elif pgrp in leaders:
            found[pid] = pgrp
    # descendants of what was found (a child that moved to a new session keeps its parent)
    changed = True
    while changed:
        changed = False
        for pid, st in procs.items():
            if pid not in found and pid != me and int(st[1]) in found:
                found[pid] = found[int(st[1])]
                changed = True
    for pid in procs:
        if pid in found or pid == me:
            continue
        env = environ_of(pid)
        if env.get(MARKER) == str(paths.home) or any(
            v.startswith(lm) for k, v in env.items() if k in ("SAGEMAKER_BASE_DIR", "SM_MODEL_DIR")
        ):
            found[pid] = None
    return found


def strays(paths: Paths, recs: dict[str, dict] | None = None) -> list[int]:
    """Live processes of this environment (after `make down`, the answer must be empty). Pass the
    pid file records read before `make down` removed them, to also check by session."""
    return sorted(belonging(paths, recs))


# ---- pid files ---------------------------------------------------------------------------------------------


def read_pidfiles(paths: Paths) -> dict[str, dict]:
    out = {}
    if paths.pids.is_dir():
        for f in sorted(paths.pids.glob("*.json")):
            try:
                out[f.stem] = json.loads(f.read_text())
            except (OSError, ValueError):
                out[f.stem] = {}
    return out


def is_ours(rec: dict) -> bool:
    """The pid file's process still runs: same pid, same start time."""
    pid = rec.get("pid")
    return isinstance(pid, int) and pid > 0 and alive(pid) and start_ticks(pid) == rec.get("start_ticks")


def running(paths: Paths) -> dict[str, dict]:
    return {name: rec for name, rec in read_pidfiles(paths).items() if is_ours(rec)}


# ---- stopping ----------------------------------------------------------------------------------------------


def _signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(pids_fn, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = pids_fn()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = pids_fn()
    return left


def stop_group(name: str, rec: dict, paths: Paths, grace: float, echo=print) -> None:
    """SIGTERM the component's process group (its leader passes it on to its workers), SIGKILL what
    of its processes is left after ``grace`` seconds."""
    pid = rec["pid"]

    def left() -> list[int]:
        return sorted(p for p, leader in belonging(paths, {name: rec}).items() if leader == pid)

    members = left()
    if not members:
        return
    echo(f"stopping {name} (process group {pid}, {len(members)} processes)")
    sig = getattr(signal, rec.get("stop_signal") or "SIGTERM", signal.SIGTERM)  # PostgreSQL's: SIGINT
    if is_ours(rec):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            _signal_all(members, sig)
    else:  # the leader is gone: its orphans
        _signal_all(members, signal.SIGTERM)
    rest = _wait_gone(left, grace)
    if rest:
        echo(f"  {name}: {len(rest)} processes still running after {grace:.0f} s: SIGKILL {rest}")
        _signal_all(rest, signal.SIGKILL)
        _wait_gone(left, 10)


def down(paths: Paths, grace: float = 30.0, echo=print) -> int:
    """Stop the environment at ``paths``; returns how many components were running."""
    recs = {n: r for n, r in read_pidfiles(paths).items() if r.get("pid")}
    names = sorted(recs, key=stop_rank)
    stopped = 0
    for name in names:
        if any(leader == recs[name]["pid"] for leader in belonging(paths, {name: recs[name]}).values()):
            stop_group(name, recs[name], paths, grace if name == "localmaker" else min(grace, 20.0), echo)
            stopped += 1
    rest = strays(paths, recs)
    if rest:
        echo(f"stopping {len(rest)} leftover processes of this environment: "
             + ", ".join(f"{p} ({cmdline(p)[:60]})" for p in rest))
        _signal_all(rest, signal.SIGTERM)
        rest = _wait_gone(lambda: strays(paths, recs), 10)
        _signal_all(rest, signal.SIGKILL)
        rest = _wait_gone(lambda: strays(paths, recs), 10)
    if rest:
        echo("could not stop: " + ", ".join(f"{p} ({cmdline(p)[:80]})" for p in rest))
        return stopped
    for f in paths.pids.glob("*.json") if paths.pids.is_dir() else []:
        f.unlink(missing_ok=True)
    return stopped


def main() -> int:
    paths = Paths.from_env()
    grace = float(os.environ.get("DOWN_GRACE", "30"))
    recs = read_pidfiles(paths)
    n = down(paths, grace)
    left = strays(paths, recs)
    if left:
        print(f"make down: {len(left)} processes of {paths.home} are still running: {left}")
        return 1
    print("make down: stopped" if n else f"make down: nothing running for {paths.home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
