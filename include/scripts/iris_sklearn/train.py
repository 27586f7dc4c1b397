"""Iris classifier for SageMaker's scikit-learn framework container (script mode).

Training: the container runs ``python train.py --n-estimators 100 ...`` with the job's
hyperparameters as arguments and the data channels in ``SM_CHANNEL_TRAIN`` /
``SM_CHANNEL_VALIDATION`` (label-first CSV without header, as the pipeline's ETL writes it).
Serving: the container imports this file and calls :func:`model_fn`; its default
``input_fn``/``predict_fn``/``output_fn`` turn CSV rows into one class index a line.
"""

from __future__ import annotations

import argparse
import glob
import os

import joblib
import numpy as np

MODEL_FILE = "model.joblib"


def _read(channel_dir: str) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(glob.glob(os.path.join(channel_dir, "*.csv")))
    if not files:
        raise SystemExit(f"no CSV files in {channel_dir}")
    data = np.vstack([np.loadtxt(f, delimiter=",", ndmin=2) for f in files])
    return data[:, 1:], data[:, 0].astype(int)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=None)
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"))
    args = parser.parse_args()

    from sklearn.ensemble import RandomForestClassifier

    x, y = _read(args.train)
    model = RandomForestClassifier(
        n_estimators=args.n_estimators, max_depth=args.max_depth, random_state=args.random_state
    ).fit(x, y)
    print(f"train:accuracy={model.score(x, y):.4f} rows={len(y)} n_estimators={args.n_estimators}")
    if args.validation and os.path.isdir(args.validation):
        xv, yv = _read(args.validation)
        print(f"validation:accuracy={model.score(xv, yv):.4f} rows={len(yv)}")
    os.makedirs(args.model_dir, exist_ok=True)
    joblib.dump(model, os.path.join(args.model_dir, MODEL_FILE))


def model_fn(model_dir: str):  # noqa: ANN201 - the container's hook signature
    """Load the fitted classifier for serving."""
    return joblib.load(os.path.join(model_dir, MODEL_FILE))


def input_fn(request_body, content_type: str):  # noqa: ANN001, ANN201 - the container's hook signature
    """CSV rows or ``{"instances": [[...], ...]}`` as a 2-D array.

    The container's default decodes a one-row CSV to a 1-D array, which scikit-learn's
    ``predict`` refuses ("Expected 2D array"): one-row requests are the common case online.
    """
    import io
    import json

    if isinstance(request_body, bytes):
        request_body = request_body.decode("utf-8")
    if content_type.startswith("text/csv"):
        rows = np.loadtxt(io.StringIO(request_body), delimiter=",", ndmin=2)
    elif content_type.startswith("application/json"):
        doc = json.loads(request_body)
        rows = np.asarray(doc["instances"] if isinstance(doc, dict) else doc, dtype=float)
    else:
        raise ValueError(f"content type {content_type} is not supported: send text/csv or application/json")
    rows = np.atleast_2d(rows)
    if rows.shape[1] != 4:
        raise ValueError(f"expected 4 features per row (sepal/petal length/width), got {rows.shape[1]}")
    return rows


if __name__ == "__main__":
    main()
