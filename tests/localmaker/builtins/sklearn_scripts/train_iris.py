"""Train an iris classifier in the SageMaker scikit-learn container (script mode).

SageMaker runs this as ``python train_iris.py --criterion entropy --n-estimators 25 ...``: the
estimator's hyperparameters arrive as arguments, the ``train`` channel (CSV, label first, no header)
in SM_CHANNEL_TRAIN, and whatever is written to SM_MODEL_DIR becomes model.tar.gz. ``model_fn`` is
what the scikit-learn serving container calls to load the model; requests and responses use the
container's default JSON / CSV / NPY handling.
"""

import argparse
import glob
import json
import os
import sys

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier


def model_fn(model_dir):
    """Load the model saved by training (required by the scikit-learn serving container)."""
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=None)
    parser.add_argument("--criterion", type=str, default="gini")
    parser.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    return parser.parse_known_args()


def load_csvs(folder):
    files = sorted(glob.glob(os.path.join(folder, "*.csv")))
    if not files:
        raise ValueError(f"no CSV files in the train channel ({folder})")
    data = pd.concat([pd.read_csv(f, header=None) for f in files], ignore_index=True)
    return data.iloc[:, 1:].to_numpy(dtype=np.float32), data.iloc[:, 0].astype(int).to_numpy()


if __name__ == "__main__":
    args, unknown = parse_args()
    print(f"arguments: {sys.argv[1:]}")
    X, y = load_csvs(args.train)
    clf = RandomForestClassifier(n_estimators=args.n_estimators, max_depth=args.max_depth,
                                 criterion=args.criterion, random_state=0, n_jobs=1)
    clf.fit(X, y)
    print(f"train accuracy: {clf.score(X, y):.4f}")
    joblib.dump(clf, os.path.join(args.model_dir, "model.joblib"))
    # a record of how this model was trained, kept next to it
    info = {
        "argv": sys.argv[1:],
        "unknown_args": unknown,
        "cwd": os.getcwd(),
        "rows": int(len(y)),
        "environment": {k: os.environ.get(k) for k in (
            "SM_USER_ENTRY_POINT", "SM_MODULE_DIR", "SM_MODULE_NAME", "SM_USER_ARGS", "SM_HPS",
            "SM_FRAMEWORK_PARAMS", "SM_HP_N-ESTIMATORS", "SM_HP_CRITERION", "SM_CHANNELS", "SM_LOG_LEVEL",
            "SM_HP_SAGEMAKER_PROGRAM", "SAGEMAKER_JOB_NAME", "SAGEMAKER_REGION")},
        "training_env_keys": sorted(json.loads(os.environ["SM_TRAINING_ENV"])),
    }
    with open(os.path.join(args.model_dir, "training_info.json"), "w") as f:
        json.dump(info, f)
