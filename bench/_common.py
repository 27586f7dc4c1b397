"""What the benchmarks share: where they write their figures (``bench/results/<name>.json``, which the
README quotes), starting a localmaker, waiting for a job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_DIR = HERE / "results"


def save(name: str, results: dict[str, Any]) -> Path:
    """Write ``results`` as ``bench/results/<name>.json``, say where, and return the path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{name}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return out


def start_localmaker(home: Path, manifest: Path) -> tuple[subprocess.Popen[str], str]:
    """A localmaker on a free port with ``manifest``, without the caller's AWS settings; (process, url)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "localmaker", "--port", "0", "--home", str(home), "--images", str(manifest)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("localmaker ready on "):
            return proc, line.split()[3]
    raise RuntimeError("localmaker did not start")


def wait_done(describe: Callable[[], dict[str, Any]], status_key: str, poll: float) -> dict[str, Any]:
    """Describe a job every ``poll`` seconds until it leaves InProgress/Stopping; the last answer."""
    while True:
        d = describe()
        if d[status_key] not in ("InProgress", "Stopping"):
            return d
        time.sleep(poll)
