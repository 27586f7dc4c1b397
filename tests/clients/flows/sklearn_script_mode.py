"""Script-mode SKLearn: upload_data(dir) channels (an S3 prefix without a trailing slash, data split
over two files), fit, deploy, predict with CSV and NumPy; as the SageMaker examples write it."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from lmsession import ROLE, session
from sagemaker.deserializers import JSONDeserializer
from sagemaker.serializers import CSVSerializer
from sagemaker.sklearn.estimator import SKLearn

sess = session()
bucket = sess.default_bucket()
prefix = "sdk-sklearn"

rng = np.random.default_rng(9)
X = rng.normal(size=(300, 3))
y = (X[:, 0] - X[:, 1] > 0).astype(int)
work = tempfile.mkdtemp()
os.makedirs(f"{work}/train")
np.savetxt(f"{work}/train/part-1.csv", np.column_stack([y[:150], X[:150]]), delimiter=",", fmt="%.6g")
np.savetxt(f"{work}/train/part-2.csv", np.column_stack([y[150:], X[150:]]), delimiter=",", fmt="%.6g")
train_uri = sess.upload_data(f"{work}/train", key_prefix=f"{prefix}/train")

sklearn = SKLearn(
    entry_point="train.py",
    source_dir=os.path.join(os.path.dirname(os.path.abspath(__file__)), "sklearn_code"),
    framework_version="1.2-1",
    py_version="py3",
    instance_type="ml.m5.large",
    instance_count=1,
    role=ROLE,
    hyperparameters={"regularization": 0.5},
    output_path=f"s3://{bucket}/{prefix}/output",
    sagemaker_session=sess,
)
sklearn.fit({"train": train_uri}, logs=False)
job = sklearn.latest_training_job.describe()
assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")

predictor = sklearn.deploy(
    initial_instance_count=1, instance_type="ml.m5.large", serializer=CSVSerializer(), deserializer=JSONDeserializer()
)
try:
    Xt = np.array([[2.0, -2.0, 0.0], [-2.0, 2.0, 0.0], [1.0, -1.0, 5.0]])
    labels = predictor.predict(Xt)
    assert [int(v) for v in labels] == [1, 0, 1], labels
finally:
    predictor.delete_model()
    predictor.delete_endpoint()

print("RESULT " + json.dumps({"job": job["TrainingJobName"], "labels": labels, "train": train_uri}))
