"""Processing jobs run for real: inputs downloaded, /opt/ml rewritten, outputs uploaded, errors like AWS's."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from botocore.exceptions import ClientError

from .conftest import HERE, ROLE, start_server, unique, wait_for

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/proc-algo:1"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def processing_request(name, bucket, mode="ok", prefix="proc/data/", count=1, distribution="FullyReplicated",
                       max_runtime=600, upload_mode="EndOfJob", image=IMAGE, extra_args=()):
    return {
        "ProcessingJobName": name,
        "ProcessingInputs": [
            {
                "InputName": "data",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/{prefix}",
                    "LocalPath": "/opt/ml/processing/input/data",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": distribution,
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "report",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/proc-out/{name}",
                        "LocalPath": "/opt/ml/processing/output/report",
                        "S3UploadMode": upload_mode,
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": count, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "AppSpecification": {
            "ImageUri": image,
            "ContainerArguments": ["--mode", mode, "--input", "/opt/ml/processing/input/data",
                                   "--output=/opt/ml/processing/output/report", *extra_args],
        },
        "Environment": {"MY_DATA_PATH": "/opt/ml/processing/input/data", "MY_PLAIN": "s3://bucket/opt/ml/x"},
        "RoleArn": ROLE,
    }


def wait_processing(sm, name, timeout=60):
    return wait_for(
        lambda: sm.describe_processing_job(ProcessingJobName=name),
        lambda d: d["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"),
        timeout,
    )


def get_json(s3, bucket, key):
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys_under(s3, bucket, prefix):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


@pytest.fixture(scope="module")
def data(s3, bucket):
    s3.put_object(Bucket=bucket, Key="proc/data/a.csv", Body=b"1\n2\n")
    s3.put_object(Bucket=bucket, Key="proc/data/b.csv", Body=b"3\n")
    s3.put_object(Bucket=bucket, Key="proc/data/sub/c.csv", Body=b"4\n5\n6\n")
    for i in range(4):
        s3.put_object(Bucket=bucket, Key=f"proc/gz/part-{i}.csv.gz", Body=gzip.compress(b"x\n" * (i + 1)))
    return bucket


def test_inputs_outputs_configs_and_opt_ml_rewriting(sm, s3, logs, server, data):
    name = unique("proc-ok")
    arn = sm.create_processing_job(**processing_request(name, data))["ProcessingJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{name}"
    job = wait_processing(sm, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ProcessingJobArn"] == arn
    assert job["ExitMessage"] == "processed 6 lines"
    assert "FailureReason" not in job
    assert job["CreationTime"] <= job["ProcessingStartTime"] <= job["ProcessingEndTime"] <= job["LastModifiedTime"]
    assert job["AppSpecification"]["ContainerArguments"][3] == "/opt/ml/processing/input/data"  # as requested
    assert job["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert job["Environment"]["MY_DATA_PATH"] == "/opt/ml/processing/input/data"
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 600} and job["RoleArn"] == ROLE

    # outputs: every file under LocalPath, relative keys under S3Uri
    assert keys_under(s3, data, f"proc-out/{name}/") == [
        f"proc-out/{name}/nested/lines.txt", f"proc-out/{name}/report-algo-1.json"]
    assert s3.get_object(Bucket=data, Key=f"proc-out/{name}/nested/lines.txt")["Body"].read() == b"6\n"
    report = get_json(s3, data, f"proc-out/{name}/report-algo-1.json")
    base = report["base"]
    assert base == str(server.home / "jobs" / "processing" / name / "algo-1")
    assert report["files"] == ["a.csv", "b.csv", "sub/c.csv"] and report["lines"] == 6
    # /opt/ml rewritten in arguments (also after '=') and in environment values; other text untouched
    assert report["argv"] == ["--mode", "ok", "--input", f"{base}/processing/input/data",
                              f"--output={base}/processing/output/report"]
    assert report["env_path"] == f"{base}/processing/input/data"
    assert report["env_plain"] == "s3://bucket/opt/ml/x"
    assert report["proc_algo_env"] == "1" and report["cwd"] == str(HERE / "images")
    assert report["job_name"] == name and report["config_name"] == name
    assert report["config_args"][3] == "/opt/ml/processing/input/data"  # the config file shows the request
    assert report["env_has_real_creds"] is False

    cfg_dir = server.home / "jobs" / "processing" / name / "algo-1" / "config"
    cfg = json.loads((cfg_dir / "processingjobconfig.json").read_text())
    assert cfg["ProcessingJobName"] == name and cfg["ProcessingJobArn"] == arn
    assert cfg["ProcessingInputs"][0]["S3Input"]["LocalPath"] == "/opt/ml/processing/input/data"
    assert json.loads((cfg_dir / "resourceconfig.json").read_text()) == {"current_host": "algo-1", "hosts": ["algo-1"]}

    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamNamePrefix=name + "/")["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith(f"{name}/algo-1-")
    events = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs",
                                 logStreamName=streams[0]["logStreamName"], startFromHead=True)["events"]
    assert "lines=6 files=3" in [e["message"] for e in events]


def test_two_hosts_sharded_gzip_inputs(sm, s3, data):
    name = unique("proc-shard")
    req = processing_request(name, data, prefix="proc/gz/", count=2, distribution="ShardedByS3Key")
    req["ProcessingInputs"][0]["S3Input"]["S3CompressionType"] = "Gzip"
    sm.create_processing_job(**req)
    job = wait_processing(sm, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    r1 = get_json(s3, data, f"proc-out/{name}/report-algo-1.json")
    r2 = get_json(s3, data, f"proc-out/{name}/report-algo-2.json")
    assert r1["hosts"] == ["algo-1", "algo-2"] and r2["host"] == "algo-2"
    assert r1["files"] == ["part-0.csv", "part-2.csv"] and r1["lines"] == 1 + 3
    assert r2["files"] == ["part-1.csv", "part-3.csv"] and r2["lines"] == 2 + 4
    assert r1["base"] != r2["base"]


def test_failure_message_becomes_failure_reason_and_exit_message(sm, data):
    name = unique("proc-fail")
    sm.create_processing_job(**processing_request(name, data, mode="fail"))
    job = wait_processing(sm, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"] == "AlgorithmError: validation failed: 3 rows have a negative price"
    assert job["ExitMessage"] == "validation failed: 3 rows have a negative price"
    name = unique("proc-crash")
    sm.create_processing_job(**processing_request(name, data, mode="crash"))
    job = wait_processing(sm, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert "exited with code 4" in job["FailureReason"] and "ExitMessage" not in job


def test_container_entrypoint_runs_a_script_from_an_s3_input(sm, s3, data):
    script = (
        "import argparse, json, os, sys\n"
        "ap = argparse.ArgumentParser(); ap.add_argument('--n', type=int); ap.add_argument('--out')\n"
        "a = ap.parse_args()\n"
        "os.makedirs(a.out, exist_ok=True)\n"
        "json.dump({'n': a.n, 'python': sys.executable, 'script': __file__,\n"
        "           'data': sorted(os.listdir(os.path.join(os.environ['SAGEMAKER_BASE_DIR'], 'processing/input/data')))},\n"
        "          open(os.path.join(a.out, 'result.json'), 'w'))\n"
        "print('script done', a.n)\n"
    )
    s3.put_object(Bucket=data, Key="proc/code/script.py", Body=script.encode())
    name = unique("proc-script")
    req = processing_request(name, data, image=SKLEARN)
    req["ProcessingInputs"].append({
        "InputName": "code",
        "S3Input": {"S3Uri": f"s3://{data}/proc/code/script.py", "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix", "S3InputMode": "File"},
    })
    req["AppSpecification"] = {
        "ImageUri": SKLEARN,
        "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/script.py"],
        "ContainerArguments": ["--n", "5", "--out", "/opt/ml/processing/output/report"],
    }
    sm.create_processing_job(**req)
    job = wait_processing(sm, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    result = get_json(s3, data, f"proc-out/{name}/result.json")
    import sys

    assert result["n"] == 5 and result["python"] == sys.executable
    assert result["script"].endswith(f"/jobs/processing/{name}/algo-1/processing/input/code/script.py")
    assert result["data"] == ["a.csv", "b.csv", "sub"]


def test_max_runtime_stops_the_job(sm, s3, data):
    name = unique("proc-slow")
    sm.create_processing_job(**processing_request(name, data, mode="sleep", max_runtime=1, upload_mode="Continuous"))
    t0 = time.monotonic()
    job = wait_processing(sm, name, timeout=30)
    assert time.monotonic() - t0 < 15
    assert job["ProcessingJobStatus"] == "Stopped"
    assert "MaxRuntimeInSeconds" in job["FailureReason"]
    # Continuous outputs are in S3 even though the job did not complete
    assert get_json(s3, data, f"proc-out/{name}/report-algo-1.json")["interrupted"] is True


def test_stop_processing_job(sm, s3, data):
    name = unique("proc-stop")
    sm.create_processing_job(**processing_request(name, data, mode="sleep"))
    wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), lambda d: "ProcessingStartTime" in d)
    sm.stop_processing_job(ProcessingJobName=name)
    assert sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] in ("Stopping", "Stopped")
    job = wait_processing(sm, name)
    assert job["ProcessingJobStatus"] == "Stopped" and "FailureReason" not in job
    assert keys_under(s3, data, f"proc-out/{name}/") == []  # EndOfJob outputs only upload on completion
    with pytest.raises(ClientError) as e:
        sm.stop_processing_job(ProcessingJobName=name)
    assert e.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "The request was rejected because the processing job is in status Stopped.",
    }


def test_unmapped_image_missing_data_and_dataset_definition_fail_with_reasons(sm, data):
    name = unique("proc-noimage")
    sm.create_processing_job(**processing_request(name, data, image="acct.dkr.ecr.us-east-1.amazonaws.com/mystery:3"))
    job = wait_processing(sm, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: Image 'acct.dkr.ecr.us-east-1.amazonaws.com/mystery:3'")
    assert "images.yaml" in job["FailureReason"]

    name = unique("proc-nodata")
    sm.create_processing_job(**processing_request(name, data, prefix="proc/nothing/"))
    job = wait_processing(sm, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert f'No S3 objects found under S3 URL "s3://{data}/proc/nothing/"' in job["FailureReason"]

    name = unique("proc-athena")
    req = processing_request(name, data)
    req["ProcessingInputs"] = [{
        "InputName": "athena",
        "DatasetDefinition": {
            "AthenaDatasetDefinition": {"Catalog": "AwsDataCatalog", "Database": "db", "QueryString": "SELECT 1",
                                        "OutputS3Uri": f"s3://{data}/athena/", "OutputFormat": "PARQUET"},
            "LocalPath": "/opt/ml/processing/input/athena",
        },
    }]
    sm.create_processing_job(**req)
    job = wait_processing(sm, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert "DatasetDefinition" in job["FailureReason"] and "not supported by localmaker" in job["FailureReason"]


def test_api_errors(sm, data):
    with pytest.raises(ClientError) as e:
        sm.describe_processing_job(ProcessingJobName="never-created")
    assert e.value.response["Error"] == {"Code": "ValidationException",
                                         "Message": "Could not find requested job with name never-created"}
    with pytest.raises(ClientError) as e:
        sm.stop_processing_job(ProcessingJobName="never-created")
    assert e.value.response["Error"]["Code"] == "ValidationException"

    name = unique("proc-dup")
    arn = sm.create_processing_job(**processing_request(name, data))["ProcessingJobArn"]
    with pytest.raises(ClientError) as e:
        sm.create_processing_job(**processing_request(name, data))
    assert e.value.response["Error"]["Code"] == "ResourceInUse"
    assert arn in e.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as e:
        sm.create_processing_job(**processing_request("bad_name", data))
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "at 'processingJobName'" in e.value.response["Error"]["Message"]

    req = processing_request(unique("proc-path"), data)
    req["ProcessingInputs"][0]["S3Input"]["LocalPath"] = "/tmp/steal"
    with pytest.raises(ClientError) as e:
        sm.create_processing_job(**req)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "/opt/ml/processing" in e.value.response["Error"]["Message"]
    req["ProcessingInputs"][0]["S3Input"]["LocalPath"] = "/opt/ml/processing/../../../etc"
    with pytest.raises(ClientError):
        sm.create_processing_job(**req)
    wait_processing(sm, name)


def test_list_processing_jobs_filters_sorts_and_pages(sm, data):
    tag = unique("plist")
    for i in range(3):
        sm.create_processing_job(**processing_request(f"{tag}-{i}", data, mode="crash" if i == 1 else "ok"))
    for i in range(3):
        wait_processing(sm, f"{tag}-{i}")
    out = sm.list_processing_jobs(NameContains=tag, SortBy="Name", SortOrder="Ascending")["ProcessingJobSummaries"]
    assert [j["ProcessingJobName"] for j in out] == [f"{tag}-0", f"{tag}-1", f"{tag}-2"]
    assert out[1]["ProcessingJobStatus"] == "Failed" and "FailureReason" in out[1]
    assert set(out[0]) >= {"ProcessingJobName", "ProcessingJobArn", "CreationTime", "ProcessingEndTime",
                           "LastModifiedTime", "ProcessingJobStatus"}
    page = sm.list_processing_jobs(NameContains=tag, MaxResults=2)
    assert [j["ProcessingJobName"] for j in page["ProcessingJobSummaries"]] == [f"{tag}-2", f"{tag}-1"]
    rest = sm.list_processing_jobs(NameContains=tag, MaxResults=2, NextToken=page["NextToken"])
    assert [j["ProcessingJobName"] for j in rest["ProcessingJobSummaries"]] == [f"{tag}-0"] and "NextToken" not in rest
    failed = sm.list_processing_jobs(NameContains=tag, StatusEquals="Failed")["ProcessingJobSummaries"]
    assert [j["ProcessingJobName"] for j in failed] == [f"{tag}-1"]
    after = out[1]["CreationTime"]
    newer = sm.list_processing_jobs(NameContains=tag, CreationTimeAfter=after)["ProcessingJobSummaries"]
    assert [j["ProcessingJobName"] for j in newer] == [f"{tag}-2"]


def test_server_stop_fails_a_running_processing_job_and_the_state_survives(tmp_path):
    srv = start_server(tmp_path / "home")
    try:
        sm, s3 = srv.client("sagemaker"), srv.client("s3")
        s3.create_bucket(Bucket="restart")
        s3.put_object(Bucket="restart", Key="proc/data/a.csv", Body=b"1\n")
        name = unique("proc-restart")
        sm.create_processing_job(**processing_request(name, "restart", mode="sleep"))
        wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name), lambda d: "ProcessingStartTime" in d)
    finally:
        assert srv.stop() == 0
    srv = start_server(tmp_path / "home")
    try:
        job = srv.client("sagemaker").describe_processing_job(ProcessingJobName=name)
        assert job["ProcessingJobStatus"] == "Failed" and "localmaker shut down" in job["FailureReason"]
        assert "ProcessingEndTime" in job
    finally:
        srv.stop()
