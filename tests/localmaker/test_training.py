"""Training jobs run for real: channels downloaded, processes started, artifacts uploaded."""

from __future__ import annotations

import io
import json
import tarfile
import time

import pytest
from botocore.exceptions import ClientError

from .conftest import training_request, unique, wait_for, wait_training


def model_json(s3, uri: str) -> dict:
    bucket, key = uri[5:].split("/", 1)
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return json.load(tar.extractfile("model.json"))


@pytest.fixture(scope="module")
def data(s3, bucket):
    for i in range(4):
        s3.put_object(Bucket=bucket, Key=f"data/train/part-{i}.csv", Body=b"".join(b"%d,1\n" % j for j in range(i + 1)))
    return bucket


def test_job_reads_channel_writes_model_and_reports_metrics(sm, s3, logs, data):
    name = unique("ok")
    arn = sm.create_training_job(**training_request(name, data, hps={"mode": "ok"}))["TrainingJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}"
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert all("EndTime" in t for t in job["SecondaryStatusTransitions"])
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{data}/output/{name}/output/model.tar.gz"
    model = model_json(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    assert model["lines"] == 1 + 2 + 3 + 4
    assert model["files"] == [f"part-{i}.csv" for i in range(4)]
    assert model["env_has_real_creds"] is False
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics == {"validation:rmse": pytest.approx(0.1667), "train:loss": pytest.approx(0.3333)}
    assert job["BillableTimeInSeconds"] >= 1 and job["TrainingTimeInSeconds"] >= 1
    assert job["TrainingStartTime"] <= job["TrainingEndTime"]
    out = s3.get_object(Bucket=data, Key=f"output/{name}/output/output.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(out), mode="r:gz") as tar:
        assert tar.extractfile("report.txt").read() == b"lines=10\n"
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=name + "/")["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith(f"{name}/algo-1-")
    events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=streams[0]["logStreamName"], startFromHead=True)["events"]
    assert "epoch=3 train:loss=0.3333 validation:rmse=0.1667" in [e["message"] for e in events]


def test_failure_file_becomes_failure_reason(sm, data):
    name = unique("fail")
    sm.create_training_job(**training_request(name, data, hps={"mode": "fail"}))
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["SecondaryStatus"] == "Failed"
    assert job["FailureReason"] == "AlgorithmError: bad input: column 'x' is not numeric in train/data.csv row 7"


def test_nonzero_exit_without_failure_file(sm, data):
    name = unique("crash")
    sm.create_training_job(**training_request(name, data, hps={"mode": "crash"}))
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert "exited with code 5" in job["FailureReason"]


def test_max_runtime_stops_the_job_and_keeps_what_it_saved(sm, s3, data):
    name = unique("slow")
    sm.create_training_job(**training_request(name, data, hps={"mode": "sleep", "seconds": "60"}, max_runtime=2))
    t0 = time.monotonic()
    job = wait_training(sm, name, timeout=60)
    assert time.monotonic() - t0 < 30
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert model_json(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["interrupted"] is True


def test_stop_training_job(sm, data):
    name = unique("stop")
    sm.create_training_job(**training_request(name, data, hps={"mode": "sleep", "seconds": "60"}))
    wait_for(lambda: sm.describe_training_job(TrainingJobName=name), lambda d: d["SecondaryStatus"] == "Training")
    sm.stop_training_job(TrainingJobName=name)
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in ("Stopping", "Stopped")
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Stopped" and job["SecondaryStatus"] == "Stopped"
    with pytest.raises(ClientError) as e:
        sm.stop_training_job(TrainingJobName=name)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "status Stopped" in e.value.response["Error"]["Message"]


def test_two_hosts_each_get_their_own_shard(sm, s3, data):
    name = unique("shard")
    sm.create_training_job(**training_request(name, data, hps={"mode": "ok"}, count=2, distribution="ShardedByS3Key"))
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = model_json(s3, job["ModelArtifacts"]["S3ModelArtifacts"])  # algo-1's model dir is the artifact
    assert model["host"] == "algo-1" and model["hosts"] == ["algo-1", "algo-2"]
    assert model["files"] == ["part-0.csv", "part-2.csv"]
    addresses = json.loads(model["addresses"])
    assert set(addresses) == {"algo-1", "algo-2"} and len(set(addresses.values())) == 2
    assert job["BillableTimeInSeconds"] == 2 * job["TrainingTimeInSeconds"]


def test_manifest_file_and_gzip_channels(sm, s3, data):
    import gzip

    s3.put_object(Bucket=data, Key="gz/a.csv.gz", Body=gzip.compress(b"1\n2\n3\n"))
    s3.put_object(Bucket=data, Key="gz/b.csv.gz", Body=gzip.compress(b"4\n"))
    s3.put_object(Bucket=data, Key="manifests/m.json", Body=json.dumps([{"prefix": f"s3://{data}/gz/"}, "a.csv.gz"]).encode())
    name = unique("gz")
    req = training_request(name, data, hps={"mode": "ok"}, prefix="gz/")
    req["InputDataConfig"][0]["CompressionType"] = "Gzip"
    sm.create_training_job(**req)
    job = wait_training(sm, name)
    assert model_json(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["lines"] == 4
    name = unique("manifest")
    req = training_request(name, data, hps={"mode": "ok"})
    req["InputDataConfig"][0]["DataSource"]["S3DataSource"].update(S3DataType="ManifestFile", S3Uri=f"s3://{data}/manifests/m.json")
    req["InputDataConfig"][0]["CompressionType"] = "Gzip"
    sm.create_training_job(**req)
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert model_json(s3, job["ModelArtifacts"]["S3ModelArtifacts"]) ["files"] == ["a.csv"]


def test_missing_data_and_unmapped_image_fail_with_reasons(sm, data):
    name = unique("nodata")
    sm.create_training_job(**training_request(name, data, prefix="does/not/exist/"))
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert f"No S3 objects found under S3 URL \"s3://{data}/does/not/exist/\"" in job["FailureReason"]
    name = unique("noimage")
    sm.create_training_job(**training_request(name, data, image="acct.dkr.ecr.us-east-1.amazonaws.com/mystery:3"))
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert "Image 'acct.dkr.ecr.us-east-1.amazonaws.com/mystery:3'" in job["FailureReason"]
    assert "images.yaml" in job["FailureReason"]


def test_api_errors(sm, data):
    name = unique("dup")
    sm.create_training_job(**training_request(name, data))
    with pytest.raises(ClientError) as e:
        sm.create_training_job(**training_request(name, data))
    assert e.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError) as e:
        sm.describe_training_job(TrainingJobName="never-created")
    assert e.value.response["Error"] == {"Code": "ValidationException", "Message": "Requested resource not found."}
    with pytest.raises(ClientError) as e:
        sm.create_training_job(**training_request("bad_name", data))
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "at 'trainingJobName'" in e.value.response["Error"]["Message"]
    wait_training(sm, name)


def test_list_training_jobs_filters_sorts_and_pages(sm, data):
    tag = unique("lst")
    for i in range(3):
        sm.create_training_job(**training_request(f"{tag}-{i}", data))
    for i in range(3):
        wait_training(sm, f"{tag}-{i}")
    names = [j["TrainingJobName"] for j in sm.list_training_jobs(NameContains=tag, SortBy="Name", SortOrder="Ascending")["TrainingJobSummaries"]]
    assert names == [f"{tag}-0", f"{tag}-1", f"{tag}-2"]
    page = sm.list_training_jobs(NameContains=tag, MaxResults=2)
    assert len(page["TrainingJobSummaries"]) == 2 and "NextToken" in page
    rest = sm.list_training_jobs(NameContains=tag, MaxResults=2, NextToken=page["NextToken"])
    assert len(rest["TrainingJobSummaries"]) == 1
    assert sm.list_training_jobs(NameContains=tag, StatusEquals="Failed")["TrainingJobSummaries"] == []


def test_zero_instances_is_refused(sm, data):
    req = training_request(unique("zero"), data)
    req["ResourceConfig"]["InstanceCount"] = 0
    with pytest.raises(ClientError) as e:
        sm.create_training_job(**req)
    assert "InstanceCount must be at least 1" in e.value.response["Error"]["Message"]
