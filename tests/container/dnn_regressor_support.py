"""Helpers for the dnn-regressor container tests: synthetic data, job dirs, subprocess runs.

Training always goes through the real ``train`` program in a subprocess with its own
``SAGEMAKER_BASE_DIR``, exactly as SageMaker and localmaker run it; in-process imports of
``dnn_regressor`` are for the app (Flask test client) and unit tests. Importing this module puts
the container folder on ``sys.path`` so ``import dnn_regressor`` works.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CONTAINER_DIR = Path(__file__).resolve().parents[2] / "container" / "dnn_regressor"
TRAIN = CONTAINER_DIR / "train"
SERVE = CONTAINER_DIR / "serve"

if str(CONTAINER_DIR) not in sys.path:
    sys.path.insert(0, str(CONTAINER_DIR))

#: Small and fast, but enough to learn y = 3*x1 - 2*x2 well.
FAST_HYPERPARAMETERS = {
    "hidden_units": "32,16",
    "learning_rate": "0.01",
    "epochs": "25",
    "batch_size": "64",
    "early_stopping_patience": "6",
    "seed": "7",
}
FEATURES = ["x1", "x2", "x3"]


def make_rows(n: int, seed: int, *, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """Columns ``y, x1, x2, x3`` with ``y = 3*x1 - 2*x2 + noise``; x3 is irrelevant.

    Features live on very different scales (x2 around -100) so normalisation matters.
    ``scale``/``shift`` move the features away from the training distribution.
    """
    rng = np.random.default_rng(seed)
    x1 = rng.normal(5.0, 2.0, n) * scale + shift
    x2 = rng.normal(-100.0, 30.0, n) * scale + shift
    x3 = rng.normal(0.0, 1.0, n) * scale + shift
    y = 3.0 * x1 - 2.0 * x2 + rng.normal(0.0, 0.5, n)
    return np.column_stack([y, x1, x2, x3])


def write_csv(path: Path, rows: np.ndarray, header: Sequence[str] | None = ("y", *FEATURES)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] if header is not None else []
    lines += [",".join(f"{v:.6f}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_job(
    base: Path,
    *,
    hyperparameters: Mapping[str, Any] | None = None,
    hosts: Sequence[str] = ("algo-1",),
    current_host: str = "algo-1",
    channels: Sequence[str] = ("train", "validation"),
    content_type: str = "text/csv",
) -> Path:
    """An ``/opt/ml``-shaped directory with config files; callers add the channel files."""
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    hps = dict(FAST_HYPERPARAMETERS if hyperparameters is None else hyperparameters)
    (config / "hyperparameters.json").write_text(json.dumps(hps), encoding="utf-8")
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": current_host, "hosts": list(hosts), "network_interface_name": "lo"}),
        encoding="utf-8",
    )
    (config / "inputdataconfig.json").write_text(
        json.dumps({c: {"ContentType": content_type, "TrainingInputMode": "File"} for c in channels}),
        encoding="utf-8",
    )
    return base


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's env minus anything that would leak SageMaker/TF settings in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SM_", "SAGEMAKER_", "MODEL_SERVER_"))
        and k not in ("TF_CONFIG", "TRAINING_HOST_ADDRESSES", "SERVE_WITH_NGINX")
    }
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def run_train(base: Path, timeout: float = 120, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TRAIN)],
        env=clean_env(SAGEMAKER_BASE_DIR=str(base), **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def failure_text(base: Path) -> str | None:
    path = base / "output" / "failure"
    return path.read_text(encoding="utf-8") if path.exists() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def r_squared(y: np.ndarray, prediction: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    return 1.0 - float(np.sum((y - prediction) ** 2) / np.sum((y - y.mean()) ** 2))


@dataclass(frozen=True)
class TrainedModel:
    """One real training run shared by the tests that only read its outputs."""

    base: Path
    model_dir: Path
    stdout: str
    train_rows: np.ndarray
    test_rows: np.ndarray

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads((self.model_dir / "metadata.json").read_text(encoding="utf-8"))
