"""A script-mode scikit-learn entry point as the SageMaker examples write one: it lists its channel
directory and reads every file in it, so a channel laid out one folder too deep fails here."""

import argparse
import os

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--regularization", type=float, default=1.0)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    args = parser.parse_args()

    files = sorted(os.listdir(args.train))
    print(f"train channel files: {files}")
    data = np.concatenate([np.loadtxt(os.path.join(args.train, f), delimiter=",", ndmin=2) for f in files])
    model = LogisticRegression(C=args.regularization).fit(data[:, 1:], data[:, 0])
    print(f"train accuracy: {model.score(data[:, 1:], data[:, 0]):.4f}")
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
