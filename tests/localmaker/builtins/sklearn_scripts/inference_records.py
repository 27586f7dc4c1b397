"""Inference handlers for the iris model: named-feature JSON records in, species with probability out."""

import json
import os

import joblib
import numpy as np

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(request_body, content_type):
    if content_type != "application/json":
        raise ValueError(f"content type {content_type} is not supported: send application/json records")
    records = json.loads(request_body)
    if isinstance(records, dict):
        records = [records]
    rows = []
    for i, record in enumerate(records):
        missing = [f for f in FEATURES if f not in record]
        if missing:
            raise ValueError(f"record {i} lacks {', '.join(missing)}")
        rows.append([float(record[f]) for f in FEATURES])
    return np.asarray(rows, dtype=np.float32)


def predict_fn(input_data, model):
    return model.predict_proba(input_data)


def output_fn(prediction, accept):
    best = prediction.argmax(axis=1)
    out = [{"species": SPECIES[k], "probability": round(float(p[k]), 4)} for k, p in zip(best, prediction, strict=True)]
    return json.dumps(out), "application/json"
