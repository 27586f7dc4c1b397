"""The guard between localmaker and each process it starts: the process tree dies with localmaker.

Run as ``python -I -S guard.py <lifeline-fd> <status-fd> <command...>`` by :class:`localmaker.procs.Child`
(standard library only: it runs isolated, before anything is importable). It

* becomes a child subreaper (Linux), so whatever the command starts stays in its tree even when the
  command's own children exit or daemonize;
* starts the command in its own process group and session (the guard's), with a parent-death signal
  (SIGKILL) on the command in case the guard itself is killed;
* reports to localmaker on ``status-fd`` whether the command could be started (errno and message, or
  nothing), so a missing program is still an ``OSError`` in localmaker;
* waits. When the command exits, it kills what the command left behind (a container ends with its
  PID 1) and exits with the command's status (re-raising a signal that killed it). When
  ``lifeline-fd`` reaches end of file -- localmaker holds the only write end, so that happens exactly
  when localmaker's process is gone, whichever of its threads started us and however it died -- it
  SIGKILLs the whole tree at once and exits.

SIGTERM, SIGINT and SIGHUP reach the whole process group from localmaker; the guard leaves them to the
command and waits for it to exit.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PROC = "/proc"


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        pass


GUARD_PID = os.getpid()


def _die_with_guard() -> None:  # runs in the command's process between fork and exec
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != GUARD_PID:  # the guard died before the signal was armed
        os._exit(137)


def _descendants() -> list[int]:
    kids: dict[int, list[int]] = {}
    try:
        names = os.listdir(PROC)
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{PROC}/{name}/stat", "rb") as fh:
                raw = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[0] not in ("Z", "X"):
            kids.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [os.getpid()]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _reap_all(block: bool) -> list[tuple[int, int]]:
    done = []
    while True:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return done
        except InterruptedError:
            continue
        if pid == 0:
            return done
        done.append((pid, status))


def _kill_everything(dying: bool) -> None:
    """SIGKILL every descendant until none is left (orphans come back to us: we are their subreaper)."""
    if not os.path.isdir(PROC):  # no /proc (not Linux): only the process group can be reached
        if dying:
            try:
                os.killpg(os.getpgrp(), signal.SIGKILL)  # ourselves included
            except OSError:
                pass
        return
    for _ in range(50):
        found = _descendants()
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _reap_all(block=False)
    _reap_all(block=False)


def _exit_like(status: int) -> None:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


def main(argv: list[str]) -> None:
    lifeline, status_fd, cmd = int(argv[1]), int(argv[2]), argv[3:]
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)  # handlers, not SIG_IGN: exec resets them for the command
    try:
        job = subprocess.Popen(cmd, preexec_fn=_die_with_guard, close_fds=True)
    except OSError as exc:
        os.write(status_fd, f"{exc.errno or errno.ENOENT}\0{exc.strerror or exc}\0{exc.filename or cmd[0]}".encode())
        os._exit(127)
    os.close(status_fd)
    job_status: int | None = None
    while True:
        for pid, status in _reap_all(block=False):
            if pid == job.pid:
                job_status = status
        if job_status is not None:
            _kill_everything(dying=False)  # what the command left behind
            _exit_like(job_status)
        try:
            ready, _, _ = select.select([lifeline, wake_r], [], [], 1.0)
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        if lifeline in ready:
            # localmaker is gone: no one will read the output or the result
            _kill_everything(dying=True)
            os._exit(137)


if __name__ == "__main__":
    main(sys.argv)
