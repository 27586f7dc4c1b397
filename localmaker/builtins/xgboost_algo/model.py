"""xgboost_algo: the model and its file, shared by training and serving."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_NAME = "xgboost-model"
PKL_FORMAT, XGB_FORMAT = "pkl_format", "xgb_format"


@dataclass
class Model:
    boosters: list[Any]
    formats: list[str]
    objective: str = "reg:squarederror"
    num_class: int = 0
    num_features: int = 0
    files: list[str] = field(default_factory=list)


def _load_one(path: Path) -> tuple[Any, str]:
    """A pickled Booster / XGBModel first, then ``Booster.load_model`` (JSON, UBJSON, legacy binary)."""
    import xgboost as xgb

    try:
        with path.open("rb") as fh:
            obj = pickle.load(fh)  # noqa: S301 - the user's own model artifact, as the real image loads it
        if isinstance(obj, xgb.XGBModel):
            obj = obj.get_booster()
        if not isinstance(obj, xgb.Booster):
            raise TypeError(f"unpickled a {type(obj).__name__}, not an xgboost Booster")
        return obj, PKL_FORMAT
    except Exception as exc_pkl:  # noqa: BLE001 - fall back to the native formats, as the real image
        try:
            booster = xgb.Booster()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                booster.load_model(bytearray(path.read_bytes()))
            return booster, XGB_FORMAT
        except Exception as exc_xgb:  # noqa: BLE001
            raise RuntimeError(f"Model {path} cannot be loaded:\nPickle load error={exc_pkl}\n"
                               f"XGB load model error={exc_xgb}") from None


def load_model(model_dir: Path) -> Model:
    """Every regular, non-hidden file of the model dir (several -> an ensemble, unless
    ``SAGEMAKER_INFERENCE_ENSEMBLE=false``), as serve_utils.get_loaded_booster."""
    paths = sorted(p for p in Path(model_dir).iterdir() if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise RuntimeError(f"No model file found in {model_dir}; the model.tar.gz must contain {MODEL_NAME}.")
    if os.environ.get("SAGEMAKER_INFERENCE_ENSEMBLE", "true") != "true":
        paths = paths[:1]
    boosters, formats = [], []
    for p in paths:
        print(f"Loading the model from {p}", flush=True)
        b, fmt = _load_one(p)
        b.set_param("nthread", 1)
        boosters.append(b)
        formats.append(fmt)
    cfg = json.loads(boosters[0].save_config())
    learner = cfg.get("learner", {})
    objective = learner.get("objective", {}).get("name", "reg:squarederror")
    num_class = int(learner.get("learner_model_param", {}).get("num_class", "0") or 0)
    return Model(boosters, formats, objective, num_class, boosters[0].num_features(), [p.name for p in paths])
