"""Child processes for jobs and endpoints: clean environment, own process group, logs pumped.

A job process never inherits the host's environment (least of all real AWS credentials): it gets
a minimal base, the image's manifest env, the request's env and the SageMaker variables, with
localmaker's endpoint and dummy credentials so the AWS SDK inside the job talks to localmaker.
It is told to bind loopback (``SAGEMAKER_BIND_TO_HOST``), whatever the request says.

No process outlives localmaker: each child runs under :mod:`localmaker.guard`, which holds the read
end of a pipe whose only write end is this process's, and kills the child's whole tree when that pipe
closes (localmaker exited, crashed or was SIGKILLed, from whichever thread the child was started).
Each child is also recorded under its home, for :func:`localmaker.reaper.reap` at the next start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from . import reaper

if TYPE_CHECKING:
    from .sandbox import Sandbox

GUARD = Path(__file__).with_name("guard.py")
#: the address every process localmaker starts must bind (the images contract, container/images.yaml)
BIND_HOST = "127.0.0.1"
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def clean_env(endpoint_url: str, region: str, *layers: Mapping[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSTHROUGH if k in os.environ}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": "localmaker",
            "AWS_SECRET_ACCESS_KEY": "localmaker",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    for layer in layers:
        env.update({str(k): str(v) for k, v in layer.items()})
    env["SAGEMAKER_BIND_TO_HOST"] = BIND_HOST  # last: no request or manifest can widen it
    return env


_lifeline_lock = threading.Lock()
_lifeline: tuple[int, int] | None = None


def lifeline() -> int:
    """The read end of this process's lifeline pipe (the write end is never closed, never inherited)."""
    global _lifeline
    with _lifeline_lock:
        if _lifeline is None:
            _lifeline = os.pipe()  # both ends close-on-exec; the guard gets the read end via pass_fds
        return _lifeline[0]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Child:
    """One process whose output lines go to a callback (the log stream)."""

    def __init__(
        self,
        cmd: list[str],
        cwd: Path,
        env: dict[str, str],
        on_line: Callable[[str], None],
        sandbox: Sandbox | None = None,
    ) -> None:
        self.cmd = cmd
        home = reaper.home_for(env, Path(cwd))
        if home is not None:
            env = {**env, reaper.MARKER_ENV: str(home)}
        #: the unix socket a sandboxed server is reached through (runtime: sandbox, serving), else None
        self.socket: Path | None = None
        self._launch = None
        if sandbox is not None:  # runtime: sandbox: the same process, inside its container's layout
            from . import sandbox as sandboxing

            self._launch = sandboxing.prepare(sandbox, cmd, cwd, env, [home] if home is not None else [])
            cmd, cwd, env, self.socket = self._launch.cmd, self._launch.cwd, self._launch.env, self._launch.socket
        try:
            self._start(cmd, cwd, env, on_line, home)
        except BaseException:
            if self._launch is not None:
                self._launch.cleanup()
            raise

    def _start(
        self, cmd: list[str], cwd: Path, env: dict[str, str], on_line: Callable[[str], None], home: Path | None
    ) -> None:
        life = lifeline()
        status_r, status_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(GUARD), str(life), str(status_w), *cmd],
                cwd=str(cwd),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(life, status_w),
            )
        finally:
            os.close(status_w)
        try:
            failure = _read_all(status_r)  # empty once the guard has started the command
        finally:
            os.close(status_r)
        if failure:
            self.proc.wait()
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            code, message, filename = (failure.decode("utf-8", "replace").split("\0") + ["", ""])[:3]
            raise OSError(int(code) if code.isdigit() else 0, message, filename or cmd[0])
        self._record = reaper.write_record(home, self.proc.pid, cmd) if home is not None else None
        self._pump = threading.Thread(target=self._read, args=(on_line,), daemon=True)
        self._pump.start()

    def _read(self, on_line: Callable[[str], None]) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            on_line(line)
        self.proc.stdout.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None:
            self._forget()
        return code

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)
        self._forget()
        self._pump.join(5)
        return code

    def _forget(self) -> None:
        if self._record is not None:
            reaper.forget(self._record)
            self._record = None
        if self._launch is not None:
            self._launch.cleanup()

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL and self.proc.returncode is None:
            # not reaped yet, so the pid is still ours: kill the whole tree, including whatever left
            # the process group (daemonized, setsid), before killing the guard orphans it
            reaper.kill_tree(self.proc.pid)
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM the process group, then SIGKILL after ``grace`` seconds."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        else:
            # the leader is gone; make sure no grandchild lingers in its group
            self.signal(signal.SIGKILL)
        self._forget()
        self._pump.join(2)
        return self.proc.returncode


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def stop_all(children: Iterable[Child], grace: float) -> None:
    """Stop many children at once, so N hosts stop in one grace period rather than N."""
    threads = [threading.Thread(target=c.stop, args=(grace,), daemon=True) for c in children]
    for t in threads:
        t.start()
    for t in threads:
        t.join(grace + 10)
