"""PCA from a record_set, deployed and queried with RecordIO: projections onto the top components."""

from __future__ import annotations

import json

import numpy as np
from lmsession import ROLE, session
from sagemaker import PCA

sess = session()
bucket = sess.default_bucket()
prefix = "sdk-pca"

# 8-dimensional data that really lives on a 2-dimensional plane (plus a little noise)
rng = np.random.default_rng(5)
basis = np.linalg.qr(rng.normal(size=(8, 2)))[0].T
coords = rng.normal(scale=[5.0, 2.0], size=(300, 2))
X = (coords @ basis + rng.normal(scale=0.01, size=(300, 8))).astype("float32")

pca = PCA(
    role=ROLE,
    instance_count=1,
    instance_type="ml.m5.large",
    num_components=2,
    output_path=f"s3://{bucket}/{prefix}/output",
    data_location=f"s3://{bucket}/{prefix}/data",
    sagemaker_session=sess,
)
pca.fit(pca.record_set(X), mini_batch_size=100, logs=False)
job = pca.latest_training_job.describe()
assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")

predictor = pca.deploy(initial_instance_count=1, instance_type="ml.m5.large")
try:
    records = predictor.predict(X[:10])
    proj = np.array([r.label["projection"].float32_tensor.values for r in records])
    assert proj.shape == (10, 2), proj.shape
    # two components of a rank-2 data set keep (almost) all of each centred point's length
    centred = X[:10] - X.mean(axis=0)
    kept = np.linalg.norm(proj, axis=1) / np.linalg.norm(centred, axis=1)
    assert np.all(np.abs(kept - 1) < 0.05), kept
finally:
    predictor.delete_model()
    predictor.delete_endpoint()

print("RESULT " + json.dumps({"job": job["TrainingJobName"], "projection": proj[:3].tolist()}))
