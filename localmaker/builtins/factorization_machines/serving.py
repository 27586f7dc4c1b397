"""factorization_machines: loading the model and answering ``/invocations``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from localmaker.builtins import runtime as rt

from .data import decode
from .model import MODEL_FILE, REGRESSOR, FMModel


def load(model_dir: Path) -> FMModel:
    return FMModel.load(rt.model_file(model_dir, MODEL_FILE))


def records(model: FMModel, x: sp.csr_matrix) -> list[dict[str, Any]]:
    scores = model.scores(x)
    if model.predictor_type == REGRESSOR:
        return [{"score": float(np.float32(s))} for s in scores]
    return [{"score": float(np.float32(s)), "predicted_label": 1.0 if s >= 0.5 else 0.0} for s in scores]


def invoke(model: FMModel, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    from localmaker.builtins import serving

    out_type = serving.negotiate(accept, [serving.JSON, serving.JSONLINES, serving.RECORDIO], serving.JSON)
    x = decode(body, content_type, model.feature_dim)
    return serving.encode_records(records(model, x), out_type, key="predictions")


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load, invoke)
