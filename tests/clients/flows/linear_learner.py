"""LinearLearner (binary classifier) from a record_set, deployed and queried with RecordIO."""

from __future__ import annotations

import json

import numpy as np
from lmsession import ROLE, session
from sagemaker import LinearLearner

sess = session()
bucket = sess.default_bucket()
prefix = "sdk-linear"

rng = np.random.default_rng(11)
X = rng.normal(size=(500, 6)).astype("float32")
y = (X @ np.array([1.5, -2.0, 0.5, 0, 0, 0], dtype="float32") > 0).astype("float32")

ll = LinearLearner(
    role=ROLE,
    instance_count=1,
    instance_type="ml.m5.large",
    predictor_type="binary_classifier",
    output_path=f"s3://{bucket}/{prefix}/output",
    data_location=f"s3://{bucket}/{prefix}/data",
    epochs=5,
    mini_batch_size=50,
    sagemaker_session=sess,
)
ll.fit(ll.record_set(X[:400], labels=y[:400]), logs=False)
job = ll.latest_training_job.describe()
assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")

predictor = ll.deploy(initial_instance_count=1, instance_type="ml.m5.large")
try:
    records = predictor.predict(X[400:420])
    labels = [r.label["predicted_label"].float32_tensor.values[0] for r in records]
    scores = [r.label["score"].float32_tensor.values[0] for r in records]
    assert len(labels) == 20, records
    assert all(0.0 <= s <= 1.0 for s in scores), scores
    accuracy = float(np.mean(np.array(labels) == y[400:420]))
    assert accuracy >= 0.85, (accuracy, labels)
finally:
    predictor.delete_model()
    predictor.delete_endpoint()

print("RESULT " + json.dumps({"job": job["TrainingJobName"], "accuracy": accuracy, "scores": scores[:5]}))
