"""KMeans with record_set on two instances (ShardedByS3Key manifest of RecordIO-protobuf shards),
deployed and queried with the SDK's default RecordIO serializer and deserializer."""

from __future__ import annotations

import json

import numpy as np
from lmsession import ROLE, session
from sagemaker import KMeans

sess = session()
bucket = sess.default_bucket()
prefix = "sdk-kmeans"

# three well separated blobs in 5 dimensions
rng = np.random.default_rng(3)
centers = np.array([[0, 0, 0, 0, 0], [10, 10, 0, 0, 0], [0, 10, 10, 10, 0]], dtype="float32")
X = np.concatenate([c + rng.normal(scale=0.5, size=(150, 5)) for c in centers]).astype("float32")
rng.shuffle(X)

kmeans = KMeans(
    role=ROLE,
    instance_count=2,
    instance_type="ml.c5.xlarge",
    output_path=f"s3://{bucket}/{prefix}/output",
    data_location=f"s3://{bucket}/{prefix}/data",
    k=3,
    epochs=5,
    sagemaker_session=sess,
)
train = kmeans.record_set(X)
assert train.s3_data_type == "ManifestFile" and train.distribution == "ShardedByS3Key", train
kmeans.fit(train, logs=False)
job = kmeans.latest_training_job.describe()
assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
assert job["ResourceConfig"]["InstanceCount"] == 2

predictor = kmeans.deploy(initial_instance_count=1, instance_type="ml.m5.large")
try:
    probe = np.array([[0, 0, 0, 0, 0], [10, 10, 0, 0, 0], [0, 10, 10, 10, 0], [0.2, 0.1, 0, 0, 0]], dtype="float32")
    records = predictor.predict(probe)
    clusters = [int(r.label["closest_cluster"].float32_tensor.values[0]) for r in records]
    distances = [r.label["distance_to_cluster"].float32_tensor.values[0] for r in records]
    assert len(clusters) == 4, records
    assert len(set(clusters[:3])) == 3, clusters  # the three blob centres fall in three clusters
    assert clusters[3] == clusters[0], clusters  # a point next to the first centre shares its cluster
    assert all(d < 2.0 for d in distances), distances
finally:
    predictor.delete_model()
    predictor.delete_endpoint()

print("RESULT " + json.dumps({"job": job["TrainingJobName"], "clusters": clusters, "distances": distances}))
