"""Child processes for jobs and endpoints: clean environment, own process group, logs pumped.

A job process never inherits the host's environment (least of all real AWS credentials): it gets
a minimal base, the image's manifest env, the request's env and the SageMaker variables, with
localmaker's endpoint and dummy credentials so the AWS SDK inside the job talks to localmaker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

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
    return env


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
    ) -> None:
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)
        self._pump.join(5)
        return code

    def signal(self, sig: int) -> None:
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
        self._pump.join(2)
        return self.proc.returncode


def stop_all(children: Iterable[Child], grace: float) -> None:
    """Stop many children at once, so N hosts stop in one grace period rather than N."""
    threads = [threading.Thread(target=c.stop, args=(grace,), daemon=True) for c in children]
    for t in threads:
        t.start()
    for t in threads:
        t.join(grace + 10)
