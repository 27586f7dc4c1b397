"""The SageMaker Python SDK 2.x in its own virtual environment, and a real localmaker for it.

The SDK cannot share the project's venv (that one has sagemaker 3.x), so ``sdk_python`` makes
``.venv-sdk/`` at the repository root from ``requirements-sdk.txt`` (every package pinned) the first
time and reuses it while its stamp (the requirements' and the interpreter's hash) matches. pip
reaches PyPI through the machine's configured index. Each flow in ``flows/`` is a script run with that
venv's python against one localmaker (``--images container/images.yaml``) started for the session; the
flows run concurrently (the SDK sleeps 30 s before its first look at a new endpoint, so in series
they would mostly wait).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.localmaker.conftest import Server, start_server

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
FLOWS = HERE / "flows"
REQUIREMENTS = HERE / "requirements-sdk.txt"
VENV = Path(os.environ.get("LOCALMAKER_SDK_VENV", ROOT / ".venv-sdk"))
BUCKET = "sdk-flows"
FLOW_TIMEOUT = 420


def _stamp() -> str:
    h = hashlib.sha256(REQUIREMENTS.read_bytes())
    h.update(f"{sys.version_info[:3]} {sys.base_prefix}".encode())
    return h.hexdigest()


def _python() -> Path:
    return VENV / "bin" / "python"


def ensure_sdk_venv() -> tuple[Path, float | None]:
    """The SDK venv's python, and the seconds it took to make it (None when it was reused)."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    stamp_file = VENV / ".requirements.sha256"
    with open(VENV.parent / f"{VENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest runs at once make it once
        if stamp_file.is_file() and stamp_file.read_text() == _stamp() and _python().exists():
            return _python(), None
        started = time.monotonic()
        shutil.rmtree(VENV, ignore_errors=True)
        steps = [
            [sys.executable, "-m", "venv", str(VENV)],
            [str(_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        ]
        for cmd in steps:
            # the base interpreter, not the project's venv, so the SDK venv sees none of its packages
            env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
            r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                shutil.rmtree(VENV, ignore_errors=True)
                pytest.fail(f"cannot make the SDK venv ({' '.join(cmd[:4])} ...):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        stamp_file.write_text(_stamp())
        return _python(), time.monotonic() - started


@dataclass
class FlowResult:
    name: str
    returncode: int
    output: str
    seconds: float

    @property
    def result(self) -> dict:
        # the SDK's wait prints progress marks ('!') without a newline, so RESULT may follow them
        lines = [ln.split("RESULT ", 1)[1] for ln in self.output.splitlines() if "RESULT {" in ln]
        assert self.returncode == 0 and lines, f"flow {self.name} failed (exit {self.returncode}):\n{self.output[-6000:]}"
        return json.loads(lines[-1])


@dataclass
class Flows:
    python: Path
    server: Server
    futures: dict[str, Future[FlowResult]]

    def result(self, name: str) -> FlowResult:
        return self.futures[name].result()


def _run_flow(python: Path, server: Server, name: str) -> FlowResult:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(
        AWS_ENDPOINT_URL=server.url,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        LM_BUCKET=BUCKET,
        SAGEMAKER_USER_CONFIG_OVERRIDE=str(HERE / "sagemaker-config.yaml"),
        SAGEMAKER_SUPPRESS_V2_WARNING="1",
        COLUMNS="160",
        PYTHONUNBUFFERED="1",
    )
    started = time.monotonic()
    try:
        r = subprocess.run([str(python), str(FLOWS / f"{name}.py")], cwd=FLOWS, env=env, capture_output=True,
                           text=True, timeout=FLOW_TIMEOUT)
        code, out = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as exc:
        code = -1
        out = f"timed out after {FLOW_TIMEOUT} s\n{exc.stdout or ''}{exc.stderr or ''}"
    return FlowResult(name, code, out, time.monotonic() - started)


FLOW_NAMES = ("xgboost_estimator", "tuner", "kmeans_record_set", "sklearn_script_mode", "linear_learner", "pca",
              "training_job_analytics", "model_monitor_baseline")


@pytest.fixture(scope="session")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flows]:
    python, made_in = ensure_sdk_venv()
    if made_in is not None:
        print(f"\nSDK venv {VENV} made in {made_in:.1f} s")
    server = start_server(tmp_path_factory.mktemp("sdkhome"), images=ROOT / "container" / "images.yaml")
    server.client("s3").create_bucket(Bucket=BUCKET)
    pool = ThreadPoolExecutor(max_workers=len(FLOW_NAMES))
    futures = {name: pool.submit(_run_flow, python, server, name) for name in FLOW_NAMES}
    try:
        yield Flows(python, server, futures)
    finally:
        pool.shutdown(wait=True)
        server.stop()
