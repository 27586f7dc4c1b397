"""Start a localmaker server as a subprocess and wait until it answers: for scripts and tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Running:
    url: str
    home: Path
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def client(self, service: str, region: str = "us-east-1") -> Any:
        import boto3

        return boto3.client(
            service, endpoint_url=self.url, region_name=region,
            aws_access_key_id="localmaker", aws_secret_access_key="localmaker",
        )

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start(
    home: Path,
    images: list[Path] | None = None,
    port: int = 0,
    echo: bool = False,
    timeout: float = 60,
    extra_args: list[str] | None = None,
) -> Running:
    """Start ``python -m localmaker`` (port 0: a free one) and return once it prints its ready line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    cmd = [sys.executable, "-m", "localmaker", "--port", str(port), "--home", str(home)]
    for m in images if images is not None else [ROOT / "container" / "images.yaml"]:
        cmd += ["--images", str(m)]
    cmd += extra_args or []
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output: list[str] = []
    ready: list[str] = []
    done = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line.rstrip())
            if echo:
                print(f"  localmaker: {line.rstrip()}", flush=True)
            if not ready and line.startswith("localmaker ready on "):
                ready.append(line.split()[3])
                done.set()
        done.set()

    threading.Thread(target=pump, daemon=True).start()
    done.wait(timeout)
    if not ready:
        proc.kill()
        raise RuntimeError("localmaker did not start:\n" + "\n".join(output))
    return Running(ready[0], Path(home), proc, output)
