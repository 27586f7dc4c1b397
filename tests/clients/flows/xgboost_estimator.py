"""Generic Estimator with the built-in XGBoost image: fit, deploy, predict, batch transform with
filters and a join, delete; as the SageMaker examples write it."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from lmsession import ROLE, session
from sagemaker import image_uris
from sagemaker.deserializers import CSVDeserializer
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.serializers import CSVSerializer

sess = session()
bucket = sess.default_bucket()
prefix = "sdk-xgboost"
region = sess.boto_region_name

# a separable binary problem: label = x0 + x1 > 0
rng = np.random.default_rng(7)
X = rng.normal(size=(400, 4))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
work = tempfile.mkdtemp()
for name, rows in (("train", slice(0, 300)), ("validation", slice(300, 400))):
    os.makedirs(f"{work}/{name}")
    np.savetxt(f"{work}/{name}/{name}.csv", np.column_stack([y[rows], X[rows]]), delimiter=",", fmt="%.6g")
# batch input: an id column the model must not see, then the features
os.makedirs(f"{work}/batch")
ids = np.arange(1000, 1040)
Xb = rng.normal(size=(40, 4))
np.savetxt(f"{work}/batch/batch.csv", np.column_stack([ids, Xb]), delimiter=",", fmt="%.6g")

train_uri = sess.upload_data(f"{work}/train", key_prefix=f"{prefix}/train")
validation_uri = sess.upload_data(f"{work}/validation", key_prefix=f"{prefix}/validation")
batch_uri = sess.upload_data(f"{work}/batch", key_prefix=f"{prefix}/batch")
assert not train_uri.endswith("/"), train_uri  # the SDK's prefix URI has no trailing slash

image = image_uris.retrieve("xgboost", region, "1.7-1")
xgb = Estimator(
    image,
    role=ROLE,
    instance_count=1,
    instance_type="ml.m5.large",
    output_path=f"s3://{bucket}/{prefix}/output",
    sagemaker_session=sess,
)
xgb.set_hyperparameters(objective="binary:logistic", num_round=20, max_depth=3, eta=0.3, eval_metric="error")
xgb.fit(
    {
        "train": TrainingInput(train_uri, content_type="text/csv"),
        "validation": TrainingInput(validation_uri, content_type="text/csv"),
    },
    logs=False,
)
job = xgb.latest_training_job.describe()
assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
final = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
assert final["validation:error"] < 0.15, final

predictor = xgb.deploy(1, "ml.m5.large", serializer=CSVSerializer(), deserializer=CSVDeserializer())
try:
    Xt = rng.normal(size=(8, 4))
    rows = predictor.predict(Xt)
    probs = [float(v) for row in rows for v in row if v != ""]
    assert len(probs) == 8, rows
    assert all(0.0 <= p <= 1.0 for p in probs), probs
    truth = (Xt[:, 0] + Xt[:, 1] > 0).astype(int)
    agree = sum(int(p > 0.5) == t for p, t in zip(probs, truth, strict=True))
    assert agree >= 6, (probs, truth)

    transformer = xgb.transformer(
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"s3://{bucket}/{prefix}/transform",
        accept="text/csv",
        assemble_with="Line",
        strategy="MultiRecord",
    )
    transformer.transform(
        batch_uri,
        content_type="text/csv",
        split_type="Line",
        input_filter="$[1:]",
        join_source="Input",
        output_filter="$[0,-1]",
        wait=True,
        logs=False,
    )
    out_uri = f"{transformer.output_path}/batch.csv.out"
    body = sess.read_s3_file(bucket, f"{prefix}/transform/batch.csv.out")
    lines = [ln.split(",") for ln in body.strip().splitlines()]
    assert len(lines) == 40, len(lines)
    assert [int(float(r[0])) for r in lines] == list(ids), lines[:3]
    tp = np.array([float(r[1]) for r in lines])
    assert ((tp > 0.5) == (Xb[:, 0] + Xb[:, 1] > 0)).mean() >= 0.8, tp
finally:
    predictor.delete_model()
    predictor.delete_endpoint()

print("RESULT " + json.dumps({
    "job": job["TrainingJobName"], "validation_error": final["validation:error"], "predictions": probs,
    "transform_rows": len(lines), "transform_output": out_uri, "first_row": lines[0],
    "endpoint": predictor.endpoint_name,
}))
