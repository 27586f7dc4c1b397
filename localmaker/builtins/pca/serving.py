"""pca: loading the model and answering ``/invocations``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from localmaker.builtins import runtime as rt
from localmaker.builtins.serving import dense_invoker

from .model import MODEL_FILE, PCAModel


def load(model_dir: Path) -> PCAModel:
    return PCAModel.load(rt.model_file(model_dir, MODEL_FILE))


def records(model: PCAModel, x: np.ndarray) -> list[dict[str, Any]]:
    return [{"projection": [float(np.float32(v)) for v in row]} for row in model.project(x)]


invoke = dense_invoker(records, key="projections")


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load, invoke)
