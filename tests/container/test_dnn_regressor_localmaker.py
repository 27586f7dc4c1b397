"""The image's code under localmaker, driven only by SageMaker API requests: a 2-host training
job from CreateTrainingJob, then an endpoint whose predictions recover the known relationship."""

from __future__ import annotations

import io
import tarfile
import time

import numpy as np
import pytest

from localmaker.images import ImageRegistry
from localmaker.launcher import ROOT, start

from .dnn_regressor_support import FAST_HYPERPARAMETERS, make_rows

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dnn-regressor:latest"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def csv(rows: np.ndarray) -> bytes:
    return ("\n".join(",".join(f"{v:.6f}" for v in r) for r in rows) + "\n").encode()


def wait(fn, done, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


@pytest.mark.slow
def test_two_host_training_job_and_endpoint_from_sagemaker_requests(tmp_path):
    server = start(tmp_path / "lm")
    try:
        s3, sm, rt = server.client("s3"), server.client("sagemaker"), server.client("sagemaker-runtime")
        s3.create_bucket(Bucket="dnn-test")
        train = make_rows(800, seed=1)
        s3.put_object(Bucket="dnn-test", Key="train/part-0.csv", Body=csv(train[:400]))  # label first, no header
        s3.put_object(Bucket="dnn-test", Key="train/part-1.csv", Body=csv(train[400:]))
        s3.put_object(Bucket="dnn-test", Key="validation/v.csv", Body=csv(make_rows(200, seed=2)))
        channel = {"S3DataType": "S3Prefix", "S3DataDistributionType": "ShardedByS3Key"}
        sm.create_training_job(
            TrainingJobName="dnn-two-hosts",
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File", "MetricDefinitions": [
                {"Name": "validation:rmse", "Regex": "validation:rmse=([0-9.eE+-]+)"}]},
            RoleArn=ROLE,
            HyperParameters={**FAST_HYPERPARAMETERS, "header": "false"},
            InputDataConfig=[
                {"ChannelName": "train", "DataSource": {"S3DataSource": {**channel, "S3Uri": "s3://dnn-test/train/"}}},
                {"ChannelName": "validation", "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri": "s3://dnn-test/validation/"}}},
            ],
            OutputDataConfig={"S3OutputPath": "s3://dnn-test/output"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 600},
        )
        job = wait(lambda: sm.describe_training_job(TrainingJobName="dnn-two-hosts"),
                   lambda d: d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"))
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        rmse = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}["validation:rmse"]
        assert rmse < 10  # y spans hundreds; the metric regex read the image's own log line
        art = s3.get_object(Bucket="dnn-test", Key="output/dnn-two-hosts/output/model.tar.gz")["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(art), mode="r:gz") as tar:
            names = tar.getnames()
        assert "metadata.json" in names and any(n.endswith(".keras") for n in names)
        assert not any("worker" in n or "tmp" in n for n in names)  # only the chief's model

        sm.create_model(ModelName="dnn", ExecutionRoleArn=ROLE,
                        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
        sm.create_endpoint_config(EndpointConfigName="dnn", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "dnn", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        sm.create_endpoint(EndpointName="dnn", EndpointConfigName="dnn")
        ep = wait(lambda: sm.describe_endpoint(EndpointName="dnn"), lambda d: d["EndpointStatus"] != "Creating")
        assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
        held_out = make_rows(200, seed=3)
        body = "\n".join(",".join(f"{v:.6f}" for v in r[1:]) for r in held_out).encode()
        out = rt.invoke_endpoint(EndpointName="dnn", Body=body, ContentType="text/csv", Accept="text/csv")
        pred = np.array([float(x) for x in out["Body"].read().decode().split()])
        y = held_out[:, 0]
        r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
        assert r2 > 0.9
        # runtime: auto: sandboxed where bubblewrap runs, the image's own nginx fronts gunicorn on 8080
        logs = server.client("logs").filter_log_events(logGroupName="/aws/sagemaker/Endpoints/dnn")["events"]
        started = [e["message"] for e in logs if e["message"].startswith("serve: starting ")]
        sandboxed = ImageRegistry([ROOT / "container" / "images.yaml"]).resolve(IMAGE).runtime == "sandbox"
        assert any("starting nginx" in m and "nginx.conf" in m for m in started) == sandboxed, started
    finally:
        server.stop()
