"""kmeans: loading the model and answering ``/invocations``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .model import MODEL_FILE, assign, load_ndarray_list


@dataclass
class Model:
    centers: np.ndarray  # (k, feature_dim) float32

    @property
    def feature_dim(self) -> int:
        return int(self.centers.shape[1])


def load(model_dir: Path) -> Model:
    """The centers from ``model_algo-1`` (ours or one trained on AWS)."""
    path = model_dir / MODEL_FILE
    if not path.is_file():
        found = sorted(model_dir.glob("model_algo-*"))
        if not found:
            raise FileNotFoundError(f"no {MODEL_FILE} in {model_dir} (the K-Means model.tar.gz holds it)")
        path = found[0]
    arrays = load_ndarray_list(path.read_bytes())
    if not arrays or arrays[0].ndim != 2:
        raise ValueError(f"{path.name}: expected one (k, feature_dim) array of centers")
    return Model(np.asarray(arrays[0], dtype=np.float32))


def predict(model: Model, x: np.ndarray) -> list[dict[str, float]]:
    """closest_cluster (its index, as a float like the real response) and the Euclidean distance to it."""
    idx, d2 = assign(x, model.centers)
    return [{"closest_cluster": float(i), "distance_to_cluster": float(np.float32(math.sqrt(d)))}
            for i, d in zip(idx.tolist(), d2.tolist(), strict=True)]


def invoke(model: Model, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    from localmaker.builtins import serving

    out_type = serving.negotiate(accept, [serving.JSON, serving.JSONLINES, serving.RECORDIO, serving.CSV],
                                 serving.JSON)
    x = serving.decode_dense(body, content_type, expect=model.feature_dim)
    records = predict(model, x)
    if out_type == serving.CSV:
        lines = "".join(f"{r['closest_cluster']},{r['distance_to_cluster']}\n" for r in records)
        return lines.encode(), serving.CSV
    return serving.encode_records(records, out_type)


def serve() -> None:
    from localmaker.builtins.serving import serve as run

    run(load, invoke)
