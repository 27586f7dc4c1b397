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


if __name__ == "__main__":
    main()
