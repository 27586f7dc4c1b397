"""Children that outlived their localmaker: recorded under the home, killed at the next start.

Every process localmaker starts runs under a guard (:mod:`localmaker.guard`) that kills the whole
process tree when localmaker dies, however it dies. This module is the second line, for what the
guard cannot cover (the guard itself SIGKILLed, a machine without ``/proc``):

* each child is recorded as ``<home>/children/<pid>.json`` (its pid is also its process group and
  session, and the record holds its start time and command line) while it runs;
* each child and everything it starts carries ``LOCALMAKER_CHILD_OF=<home>`` in its environment;
* :func:`reap`, called once the home lock is held (so no live localmaker owns these), SIGKILLs every
  recorded group whose leader is still the recorded process (same start time: a recycled pid is left
  alone), every member of a recorded group or session that carries the home's marker, the
  descendants of those, and any other process carrying the marker.

Linux only: without ``/proc`` a recorded pid cannot be told from a recycled one, so nothing is killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger("localmaker")

#: environment variable every child (and its descendants) carries: the home of the localmaker that started it
MARKER_ENV = "LOCALMAKER_CHILD_OF"
RECORDS_DIR = "children"
PROC = Path("/proc")

_lock = threading.Lock()
_homes: set[Path] = set()


# ---- homes whose children are recorded (registered by the home lock) -----------------------------------
def register_home(home: Path) -> None:
    with _lock:
        _homes.add(Path(home).resolve())
    (Path(home) / RECORDS_DIR).mkdir(parents=True, exist_ok=True)


def unregister_home(home: Path) -> None:
    with _lock:
        _homes.discard(Path(home).resolve())


def home_for(env: Mapping[str, str], cwd: Path) -> Path | None:
    """The registered home a child belongs to: the one holding its base dir (or cwd), else the only one."""
    with _lock:
        homes = sorted(_homes, key=lambda h: -len(str(h)))
    if not homes:
        return None
    explicit = env.get(MARKER_ENV)
    if explicit and Path(explicit) in homes:
        return Path(explicit)
    for candidate in (env.get("SAGEMAKER_BASE_DIR"), str(cwd)):
        if not candidate:
            continue
        path = Path(candidate).resolve()
        for home in homes:
            if path == home or home in path.parents:
                return home
    return homes[0] if len(homes) == 1 else None


# ---- /proc ---------------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes().decode("utf-8", "replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _pids() -> list[int]:
    try:
        return [int(n) for n in os.listdir(PROC) if n.isdigit()]
    except OSError:
        return []


def _table() -> dict[int, tuple[int, int, int, str]]:
    """pid -> (ppid, pgid, sid, state) for every live (non-zombie) process."""
    out = {}
    for pid in _pids():
        f = _stat(pid)
        if f and len(f) > 3 and f[0] not in ("Z", "X"):
            out[pid] = (int(f[1]), int(f[2]), int(f[3]), f[0])
    return out


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            env[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
    return env


def descendants(pid: int, table: Mapping[int, tuple[int, int, int, str]] | None = None) -> list[int]:
    """Every live descendant of ``pid`` (children first), from /proc's parent links."""
    table = _table() if table is None else table
    kids: dict[int, list[int]] = {}
    for p, (ppid, *_rest) in table.items():
        kids.setdefault(ppid, []).append(p)
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _kill(pid: int, sig: int = signal.SIGKILL) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_tree(pid: int, include_self: bool = True) -> list[int]:
    """SIGKILL ``pid``'s descendants (in any group or session) and then ``pid``; returns who got it."""
    killed: list[int] = []
    if not PROC.is_dir():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        return [pid]
    for _ in range(20):  # a tree still forking while we kill it: go round until nothing is left
        found = [p for p in descendants(pid) if p not in killed]
        if not found:
            break
        for p in found:
            # stop first, so nothing forks or reparents between our reading /proc and our killing
            _kill(p, signal.SIGSTOP)
        for p in found:
            if _kill(p):
                killed.append(p)
    if include_self and _kill(pid):
        killed.append(pid)
    return killed


# ---- records -------------------------------------------------------------------------------------------
def write_record(home: Path, pid: int, cmd: Iterable[str]) -> Path:
    """Record a child whose pid is its own process group and session (``start_new_session``)."""
    path = Path(home) / RECORDS_DIR / f"{pid}.json"
    doc = {"pid": pid, "pgid": pid, "start_time": start_time(pid), "cmd": list(cmd)[:20], "recorded": time.time()}
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)
    return path


def forget(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def reap(home: Path) -> list[int]:
    """Kill what a dead localmaker on ``home`` left running (call with the home lock held); returns the pids."""
    home = Path(home).resolve()
    marker = str(home)
    records_dir = home / RECORDS_DIR
    records = []
    for path in sorted(records_dir.glob("*.json")) if records_dir.is_dir() else []:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
        forget(path)
    for tmp in records_dir.glob("*.tmp") if records_dir.is_dir() else []:
        forget(tmp)
    killed: list[int] = []
    if not PROC.is_dir():
        # no way to tell a recorded group from a recycled pid: leave them (the guards killed what they could)
        if records:
            log.warning("%d process group(s) were recorded by a previous localmaker on %s; not checked "
                        "(no /proc): %s", len(records), home, [r.get("pgid") for r in records])
        return killed
    table = _table()
    # never this process or its ancestors (whatever they carry)
    spare, p = set(), os.getpid()
    while p > 1 and p not in spare:
        spare.add(p)
        p = table.get(p, (0,))[0]
    targets: set[int] = set()
    groups = {}
    for rec in records:
        try:
            pid, pgid, started = int(rec["pid"]), int(rec["pgid"]), rec.get("start_time")
        except (KeyError, TypeError, ValueError):
            continue
        leader_is_ours = pid in table and started is not None and start_time(pid) == started
        groups[pgid] = leader_is_ours
        if leader_is_ours:
            targets.add(pid)
    for pid, (_ppid, pgid, sid, _state) in table.items():
        key = pgid if pgid in groups else sid if sid in groups else None
        if key is None:
            continue
        # a member of a recorded group or session: ours if its leader is, or if it carries our marker
        # (a pid recycled as another group's leader leaves that group's members without it)
        if groups[key] or environ_of(pid).get(MARKER_ENV) == marker:
            targets.add(pid)
    # anything else that carries this home's marker (a descendant that left its group and session)
    for pid in table:
        if pid not in targets and environ_of(pid).get(MARKER_ENV) == marker:
            targets.add(pid)
    targets -= spare
    for pid in sorted(targets):
        for p in kill_tree(pid):
            if p not in spare:
                killed.append(p)
    for pgid, ours in groups.items():
        if ours:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
    if killed:
        log.warning("killed %d process(es) left running by a previous localmaker on %s: %s",
                    len(set(killed)), home, sorted(set(killed)))
    return sorted(set(killed))
