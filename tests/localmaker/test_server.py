"""The server as a whole: routing to moto, loopback-only binding, clean shutdown, restart survival."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError

from .conftest import (
    ROLE,
    ROOT,
    TEST_IMAGES,
    start_server,
    training_request,
    wait_endpoint,
    wait_for,
    wait_training,
)


def test_other_services_go_to_moto(server):
    sns = server.client("sns")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    assert topic == "arn:aws:sns:us-east-1:123456789012:alerts"
    assert server.client("sts").get_caller_identity()["Account"] == "123456789012"
    with pytest.raises(ClientError) as e:
        server.client("sagemaker").list_clusters()  # a real SageMaker operation localmaker does not serve
    assert "not supported by localmaker" in e.value.response["Error"]["Message"]


def test_refuses_non_loopback_without_allow_remote(tmp_path):
    r = subprocess.run([sys.executable, "-m", "localmaker", "--host", "0.0.0.0", "--port", "0", "--home", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "refusing to listen on non-loopback address '0.0.0.0'" in r.stderr


def pids_alive(pids):
    alive = []
    for p in pids:
        try:
            os.kill(p, 0)
            alive.append(p)
        except ProcessLookupError:
            pass
    return alive


def children_of(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


def test_restart_keeps_state_s3_and_endpoints_and_fails_interrupted_jobs(tmp_path):
    home = tmp_path / "home"
    srv = start_server(home)
    sm, s3, rt = srv.client("sagemaker"), srv.client("s3"), srv.client("sagemaker-runtime")
    s3.create_bucket(Bucket="persist")
    s3.put_object(Bucket="persist", Key="data/train/a.csv", Body=b"1\n2\n")
    sm.create_training_job(**training_request("done-job", "persist"))
    job = wait_training(sm, "done-job")
    sm.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "tiny-algo", "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
    assert wait_endpoint(sm, "e")["EndpointStatus"] == "InService"
    sm.create_training_job(**training_request("running-job", "persist", hps={"mode": "sleep", "seconds": "120"}))
    wait_for(lambda: sm.describe_training_job(TrainingJobName="running-job"), lambda d: d["SecondaryStatus"] == "Training")
    kids = children_of(srv.proc.pid)
    assert len(kids) >= 2  # the serve process and the training process
    assert srv.stop(signal.SIGTERM) == 0
    assert "localmaker stopped" in srv.output
    assert wait_for(lambda: pids_alive(kids), lambda a: a == [], timeout=15) == []

    srv2 = start_server(home)
    try:
        sm, s3, rt = srv2.client("sagemaker"), srv2.client("s3"), srv2.client("sagemaker-runtime")
        assert s3.get_object(Bucket="persist", Key="data/train/a.csv")["Body"].read() == b"1\n2\n"
        assert sm.describe_training_job(TrainingJobName="done-job")["TrainingJobStatus"] == "Completed"
        interrupted = sm.describe_training_job(TrainingJobName="running-job")
        assert interrupted["TrainingJobStatus"] == "Failed"
        assert "localmaker" in interrupted["FailureReason"] and "running" in interrupted["FailureReason"]
        assert sm.describe_endpoint(EndpointName="e")["EndpointStatus"] == "InService"
        body = json.loads(rt.invoke_endpoint(EndpointName="e", Body=b"{}", ContentType="application/json")["Body"].read())
        assert body["lines"] == 2
        logs = srv2.client("logs")
        streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="done-job/")["logStreams"]
        assert len(streams) == 1
    finally:
        srv2.stop()


def test_sigint_also_stops_cleanly(tmp_path):
    srv = start_server(tmp_path / "h2")
    time.sleep(0.2)
    assert srv.stop(signal.SIGINT) == 0
    assert "localmaker stopped" in srv.output


def test_unknown_manifest_is_a_clear_startup_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "localmaker", "--port", "0", "--home", str(tmp_path), "--images", str(tmp_path / "none.yaml")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert TEST_IMAGES.exists()
