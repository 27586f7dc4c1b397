"""Batch transform: every record scored once, in order, joined and filtered as asked."""

from __future__ import annotations

import struct

import pytest
from botocore.exceptions import ClientError

from .conftest import ROLE, training_request, unique, wait_for, wait_training

TINY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny-algo:1"


@pytest.fixture(scope="module")
def model(sm, s3, bucket):
    s3.put_object(Bucket=bucket, Key="tx/train/a.csv", Body=b"1\n")
    job = unique("txjob")
    sm.create_training_job(**training_request(job, bucket, prefix="tx/train/"))
    art = wait_training(sm, job)["ModelArtifacts"]["S3ModelArtifacts"]
    name = unique("txmodel")
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": TINY, "ModelDataUrl": art})
    return name


def run(sm, model, bucket, prefix, **kw):
    name = unique("tx")
    req = {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{prefix}"}},
                           "ContentType": kw.pop("content_type", "text/csv"), "SplitType": kw.pop("split", "Line")},
        "TransformOutput": {"S3OutputPath": f"s3://{bucket}/out/{name}", "AssembleWith": kw.pop("assemble", "Line"),
                            "Accept": kw.pop("accept", "text/csv")},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": kw.pop("instances", 1)},
    }
    req.update(kw)
    sm.create_transform_job(**req)
    job = wait_for(lambda: sm.describe_transform_job(TransformJobName=name),
                   lambda d: d["TransformJobStatus"] not in ("InProgress", "Stopping"), timeout=60)
    return name, job


def read(s3, bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


ROWS_A = [f"{i},{i * 10}" for i in range(1, 8)]
ROWS_B = [f"{i},1" for i in range(100, 103)]


@pytest.fixture(scope="module")
def csv_data(s3, bucket):
    s3.put_object(Bucket=bucket, Key="txin/csv/a.csv", Body=("\n".join(ROWS_A) + "\n").encode())
    s3.put_object(Bucket=bucket, Key="txin/csv/sub/b.csv", Body=("\n".join(ROWS_B) + "\n").encode())
    return "txin/csv/"


@pytest.mark.parametrize("strategy", ["MultiRecord", "SingleRecord"])
def test_line_split_one_prediction_per_record_in_order(sm, s3, bucket, model, csv_data, strategy):
    name, job = run(sm, model, bucket, csv_data, BatchStrategy=strategy, MaxConcurrentTransforms=2, instances=2)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    a = read(s3, bucket, f"out/{name}/a.csv.out").decode().splitlines()
    b = read(s3, bucket, f"out/{name}/sub/b.csv.out").decode().splitlines()
    assert a == [str(float(i + i * 10)) for i in range(1, 8)]
    assert b == [str(float(i + 1)) for i in range(100, 103)]


def test_execution_parameters_fill_in_defaults(sm, bucket, model, csv_data):
    _, job = run(sm, model, bucket, csv_data)
    assert job["BatchStrategy"] == "MultiRecord" and job["MaxPayloadInMB"] == 6 and job["MaxConcurrentTransforms"] == 1


def test_join_and_filters_keep_the_record_id(sm, s3, bucket, model, csv_data):
    name, job = run(sm, model, bucket, csv_data, DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"})
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    lines = read(s3, bucket, f"out/{name}/a.csv.out").decode().splitlines()
    assert lines == [f"{i},{float(i * 10)}" for i in range(1, 8)]  # id joined to the prediction made without it


def test_split_none_sends_whole_object(sm, s3, bucket, model, csv_data):
    name, job = run(sm, model, bucket, csv_data, split="None", assemble="None")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert read(s3, bucket, f"out/{name}/a.csv.out").decode().splitlines() == [str(float(i + i * 10)) for i in range(1, 8)]


def test_recordio_split_and_batches(sm, s3, bucket, model):
    def rec(payload: bytes) -> bytes:
        pad = (4 - len(payload) % 4) % 4
        return struct.pack("<II", 0xCED7230A, len(payload)) + payload + b"\0" * pad

    blob = b"".join(rec(b"x" * n) for n in (1, 5, 8, 13))
    s3.put_object(Bucket=bucket, Key="txin/rio/data.rec", Body=blob)
    for strategy in ("MultiRecord", "SingleRecord"):
        name, job = run(sm, model, bucket, "txin/rio/", split="RecordIO", content_type="application/x-recordio-protobuf", BatchStrategy=strategy)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        assert read(s3, bucket, f"out/{name}/data.rec.out").decode().splitlines() == ["1", "5", "8", "13"]


def test_malformed_record_fails_naming_object_and_record(sm, s3, bucket, model):
    s3.put_object(Bucket=bucket, Key="txin/bad/x.csv", Body=b"1,2\n3,4\n5,oops\n7,8\n")
    _, job = run(sm, model, bucket, "txin/bad/")
    assert job["TransformJobStatus"] == "Failed"
    assert f"object s3://{bucket}/txin/bad/x.csv, record 3: the container answered 400" in job["FailureReason"]


def test_record_over_max_payload_fails(sm, s3, bucket, model):
    s3.put_object(Bucket=bucket, Key="txin/big/x.csv", Body=b"1\n" + b"1" * (1024 * 1024 + 10) + b"\n")
    _, job = run(sm, model, bucket, "txin/big/", MaxPayloadInMB=1)
    assert job["TransformJobStatus"] == "Failed"
    assert "record 2 is" in job["FailureReason"] and "MaxPayloadInMB" in job["FailureReason"]


def test_api_errors(sm, bucket, model, csv_data):
    with pytest.raises(ClientError) as e:
        sm.describe_transform_job(TransformJobName="nope")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        run(sm, "missing-model", bucket, csv_data)
    assert "Could not find model" in e.value.response["Error"]["Message"]
    name, _ = run(sm, model, bucket, csv_data)
    with pytest.raises(ClientError) as e:
        sm.create_transform_job(TransformJobName=name, ModelName=model,
                                TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/x"}}},
                                TransformOutput={"S3OutputPath": f"s3://{bucket}/o"},
                                TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    assert e.value.response["Error"]["Code"] == "ResourceInUse"
    assert any(j["TransformJobName"] == name for j in sm.list_transform_jobs(NameContains=name)["TransformJobSummaries"])


def test_filters_that_do_not_fit_a_record_fail_naming_it(sm, s3, bucket, model):
    s3.put_object(Bucket=bucket, Key="txin/ragged/x.csv", Body=b"1,2,3\n4,5,6\n7\n8,9,10\n")
    _, job = run(sm, model, bucket, "txin/ragged/", DataProcessing={"InputFilter": "$[2]"})
    assert job["TransformJobStatus"] == "Failed"
    assert job["FailureReason"] == (f"ClientError: InputFilter failed on object s3://{bucket}/txin/ragged/x.csv, "
                                    "record 3: IndexError: list index out of range")
    s3.put_object(Bucket=bucket, Key="txin/even/x.csv", Body=b"1,2\n3,4\n")
    _, job = run(sm, model, bucket, "txin/even/", DataProcessing={"JoinSource": "Input", "OutputFilter": "$[7]"})
    assert job["TransformJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(f"ClientError: OutputFilter/JoinSource failed on object s3://{bucket}/txin/even/x.csv, record 1:")


def test_join_with_assemble_none_concatenates_the_records(sm, s3, bucket, model, csv_data):
    dp = {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}
    name, job = run(sm, model, bucket, csv_data, DataProcessing=dp, assemble="None")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert read(s3, bucket, f"out/{name}/a.csv.out").decode() == "".join(f"{i},{float(i * 10)}" for i in range(1, 8))
