"""pca: loading the model and answering ``/invocations``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from localmaker.builtins import runtime as rt
from localmaker.builtins.serving import JSON, JSONLINES, RECORDIO, decode_dense, encode_records, negotiate

from .model import MODEL_FILE, PCAModel


def load(model_dir: Path) -> PCAModel:
    return PCAModel.load(rt.model_file(model_dir, MODEL_FILE))


def records(model: PCAModel, x: np.ndarray) -> list[dict[str, Any]]:
    return [{"projection": [float(np.float32(v)) for v in row]} for row in model.project(x)]


def invoke(model: PCAModel, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    out_type = negotiate(accept, [JSON, JSONLINES, RECORDIO], JSON)
    x = decode_dense(body, content_type, expect=model.feature_dim)
    return encode_records(records(model, x), out_type, key="projections")


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load, invoke)
