"""linear_learner: loading the model and answering ``/invocations``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from localmaker.builtins import runtime as rt
from localmaker.builtins.serving import dense_invoker

from .model import BINARY, MODEL_FILE, REGRESSOR, LinearModel


def load(model_dir: Path) -> LinearModel:
    return LinearModel.load(rt.model_file(model_dir, MODEL_FILE))


def records(model: LinearModel, x: np.ndarray) -> list[dict[str, Any]]:
    """The response records of the real algorithm: regression ``{"score"}``, binary
    ``{"score": P(1), "predicted_label": 0|1}``, multiclass ``{"score": [P(c)...], "predicted_label": c}``."""
    scores = model.scores(x)
    f32 = np.float32
    if model.predictor_type == REGRESSOR:
        return [{"score": float(f32(s))} for s in scores]
    labels = model.predict_labels(scores)
    if model.predictor_type == BINARY:
        return [{"score": float(f32(s)), "predicted_label": int(lab)} for s, lab in zip(scores, labels, strict=True)]
    return [{"score": [float(f32(p)) for p in row], "predicted_label": int(lab)}
            for row, lab in zip(scores, labels, strict=True)]


invoke = dense_invoker(records, key="predictions")


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load, invoke)
