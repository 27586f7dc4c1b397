"""knn: loading the model and answering ``/invocations``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from localmaker.builtins import runtime as rt

from .data import decode
from .model import MODEL_FILE, KNNModel


def load(model_dir: Path) -> KNNModel:
    return KNNModel.load(rt.model_file(model_dir, MODEL_FILE))


def accept_type(accept: str | None) -> tuple[str, bool]:
    """The answer's media type and whether ``verbose=true`` was asked for on it."""
    from localmaker.builtins import serving

    supported = [serving.JSON, serving.JSONLINES, serving.RECORDIO]
    out = serving.negotiate(accept, supported, serving.JSON)
    verbose = False
    for part in (accept or "").split(","):
        media, *params = part.split(";")
        if serving.media_type(media) in (out, "*/*"):
            for param in params:
                key, _, value = param.partition("=")
                if key.strip().lower() == "verbose" and value.strip().strip('"').lower() == "true":
                    verbose = True
            break
    return out, verbose


def records(model: KNNModel, x: np.ndarray, verbose: bool) -> list[dict[str, Any]]:
    predicted, dist, neigh = model.predict(x)
    out = []
    for i, label in enumerate(predicted):
        rec: dict[str, Any] = {"predicted_label": float(np.float32(label))}
        if verbose:
            rec["distances"] = [float(np.float32(d)) for d in dist[i]]
            rec["labels"] = [float(np.float32(v)) for v in neigh[i]]
        out.append(rec)
    return out


def invoke(model: KNNModel, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    from localmaker.builtins import serving

    out_type, verbose = accept_type(accept)
    x = decode(body, content_type, model.feature_dim)
    return serving.encode_records(records(model, x, verbose), out_type, key="predictions")


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load, invoke)
