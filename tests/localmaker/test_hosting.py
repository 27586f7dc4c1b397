"""Endpoints: real serve processes, blue/green updates, runtime errors as AWS returns them, capture."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from .conftest import ROLE, training_request, unique, wait_endpoint, wait_for, wait_training

TINY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny-algo:1"


@pytest.fixture(scope="module")
def artifact(sm, s3, bucket):
    s3.put_object(Bucket=bucket, Key="host/train/a.csv", Body=b"1\n2\n3\n")
    name = unique("hostjob")
    sm.create_training_job(**training_request(name, bucket, prefix="host/train/"))
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return job["ModelArtifacts"]["S3ModelArtifacts"]


def make_model(sm, artifact, image=TINY, env=None):
    name = unique("model")
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": image, "ModelDataUrl": artifact, "Environment": env or {}})
    return name


def make_config(sm, variants, capture=None):
    name = unique("cfg")
    kwargs = {"EndpointConfigName": name, "ProductionVariants": [
        {"VariantName": v, "ModelName": m, "InitialInstanceCount": n, "InstanceType": "ml.m5.large", "InitialVariantWeight": w}
        for v, m, n, w in variants]}
    if capture:
        kwargs["DataCaptureConfig"] = capture
    sm.create_endpoint_config(**kwargs)
    return name


@pytest.fixture(scope="module")
def endpoint(sm, bucket, artifact):
    model = make_model(sm, artifact)
    cfg = make_config(sm, [("AllTraffic", model, 2, 1.0)], capture={
        "EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"s3://{bucket}/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]}})
    name = unique("ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Creating"
    ep = wait_endpoint(sm, name)
    assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    return name


def test_invoke_round_robins_instances_and_passes_headers(runtime, endpoint):
    pids = set()
    for _ in range(4):
        r = runtime.invoke_endpoint(EndpointName=endpoint, Body=b'{"x": 1}', ContentType="application/json",
                                    Accept="application/json", CustomAttributes="trace=7")
        body = json.loads(r["Body"].read())
        assert body["lines"] == 3 and body["accept"] == "application/json"
        assert r["InvokedProductionVariant"] == "AllTraffic"
        assert r["CustomAttributes"] == "echo:trace=7"
        pids.add(body["pid"])
    assert len(pids) == 2
    r = runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1,2\n3,4\n", ContentType="text/csv")
    assert r["Body"].read() == b"3.0\n7.0\n" and r["ContentType"] == "text/csv"


def test_container_errors_come_back_as_model_error(runtime, endpoint):
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"error400", ContentType="text/plain")
    err = e.value.response
    assert err["Error"]["Code"] == "ModelError"
    assert err["OriginalStatusCode"] == 400 and err["OriginalMessage"] == "row 3, column 2: not a number"
    assert "Received client error (400) from primary" in err["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"error500", ContentType="text/plain")
    assert e.value.response["OriginalStatusCode"] == 500
    assert "Received server error (500)" in e.value.response["Error"]["Message"]


def test_oversize_payload_and_unknown_endpoint(runtime, endpoint):
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"x" * (6 * 1024 * 1024 + 1), ContentType="text/csv")
    assert e.value.response["Error"]["Code"] == "ValidationError"
    assert "exceeds the maximum" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"1", ContentType="text/csv")
    assert e.value.response["Error"] == {"Code": "ValidationError", "Message": "Endpoint no-such-endpoint of account 123456789012 not found."} | {
        k: v for k, v in e.value.response["Error"].items() if k not in ("Code", "Message")}


def test_data_capture_writes_model_monitor_jsonl(s3, runtime, bucket, endpoint):
    runtime.invoke_endpoint(EndpointName=endpoint, Body=b"5,6\n", ContentType="text/csv", Accept="text/csv",
                            InferenceId="inf-42")

    def captured():
        objs = s3.list_objects_v2(Bucket=bucket, Prefix=f"capture/{endpoint}/AllTraffic/").get("Contents", [])
        lines = []
        for o in objs:
            lines += s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode().splitlines()
        return objs, [json.loads(x) for x in lines]

    objs, records = wait_for(captured, lambda r: any(x["eventMetadata"].get("inferenceId") == "inf-42" for x in r[1]), timeout=20)
    key = objs[0]["Key"]
    parts = key.split("/")
    assert len(parts) == 8 and parts[3].isdigit() and len(parts[3]) == 4 and key.endswith(".jsonl")
    rec = next(x for x in records if x["eventMetadata"].get("inferenceId") == "inf-42")
    assert rec["eventVersion"] == "0"
    assert rec["captureData"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT", "data": "5,6\n", "encoding": "CSV"}
    assert rec["captureData"]["endpointOutput"] == {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "11.0\n", "encoding": "CSV"}
    assert rec["eventMetadata"]["inferenceTime"].endswith("Z")


def test_update_to_broken_image_rolls_back(sm, runtime, artifact, endpoint):
    before = sm.describe_endpoint(EndpointName=endpoint)
    broken = make_model(sm, artifact, image="acct.dkr.ecr.us-east-1.amazonaws.com/broken-algo:1")
    cfg = make_config(sm, [("AllTraffic", broken, 1, 1.0)])
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=cfg)
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "Updating"
    with pytest.raises(ClientError) as e:
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=cfg)
    assert "Cannot update in-progress endpoint" in e.value.response["Error"]["Message"]
    # traffic keeps flowing to the old fleet during the update
    runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1\n", ContentType="text/csv")
    after = wait_endpoint(sm, endpoint)
    assert after["EndpointStatus"] == "InService"
    assert after["EndpointConfigName"] == before["EndpointConfigName"]
    assert "exited with code 3" in after["FailureReason"]
    assert runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1,1\n", ContentType="text/csv")["Body"].read() == b"2.0\n"


def test_blue_green_update_and_weighted_variants(sm, runtime, artifact):
    model = make_model(sm, artifact)
    cfg1 = make_config(sm, [("A", model, 1, 1.0)])
    name = unique("bg")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg1)
    assert wait_endpoint(sm, name)["EndpointStatus"] == "InService"
    cfg2 = make_config(sm, [("B", model, 1, 3.0), ("C", model, 1, 1.0)])
    sm.update_endpoint(EndpointName=name, EndpointConfigName=cfg2)
    ep = wait_endpoint(sm, name)
    assert ep["EndpointStatus"] == "InService" and ep["EndpointConfigName"] == cfg2 and "FailureReason" not in ep
    seen = [runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="application/json")["InvokedProductionVariant"] for _ in range(80)]
    assert set(seen) == {"B", "C"} and seen.count("B") > seen.count("C")
    r = runtime.invoke_endpoint(EndpointName=name, Body=b"1", ContentType="application/json", TargetVariant="C")
    assert r["InvokedProductionVariant"] == "C"
    sm.delete_endpoint(EndpointName=name)
    with pytest.raises(ClientError) as e:
        sm.describe_endpoint(EndpointName=name)
    assert e.value.response["Error"]["Message"] == f'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}".'


def test_failed_endpoint_reasons(sm, artifact, bucket):
    cases = [
        ("acct.dkr.ecr.us-east-1.amazonaws.com/broken-algo:1", artifact, "exited with code 3"),
        ("acct.dkr.ecr.us-east-1.amazonaws.com/unknown-algo:1", artifact, "is not mapped to a local command"),
        (TINY, f"s3://{bucket}/missing/model.tar.gz", "Failed to download model data"),
    ]
    for image, data, reason in cases:
        model = make_model(sm, data, image=image)
        cfg = make_config(sm, [("AllTraffic", model, 1, 1.0)])
        name = unique("bad")
        sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
        ep = wait_endpoint(sm, name)
        assert ep["EndpointStatus"] == "Failed"
        assert reason in ep["FailureReason"]


def test_no_ping_in_window_fails(tmp_path, artifact, server):
    from .conftest import start_server

    srv = start_server(tmp_path / "h", "--health-check-timeout", "2")
    try:
        sm, s3 = srv.client("sagemaker"), srv.client("s3")
        s3.create_bucket(Bucket="np-bucket")
        s3.put_object(Bucket="np-bucket", Key="m/model.tar.gz", Body=server.client("s3").get_object(
            Bucket=artifact[5:].split("/")[0], Key=artifact[5:].split("/", 1)[1])["Body"].read())
        sm.create_model(ModelName="np", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "noping-algo", "ModelDataUrl": "s3://np-bucket/m/model.tar.gz"})
        sm.create_endpoint_config(EndpointConfigName="np", ProductionVariants=[{"VariantName": "v", "ModelName": "np", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        t0 = time.monotonic()
        sm.create_endpoint(EndpointName="np", EndpointConfigName="np")
        ep = wait_endpoint(sm, "np", timeout=30)
        assert ep["EndpointStatus"] == "Failed"
        assert "did not pass the ping health check within 2 s" in ep["FailureReason"]
        assert time.monotonic() - t0 < 15
    finally:
        srv.stop()


def test_crashed_serve_process_is_restarted(sm, runtime, artifact):
    model = make_model(sm, artifact)
    cfg = make_config(sm, [("AllTraffic", model, 1, 1.0)])
    name = unique("crash")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    assert wait_endpoint(sm, name)["EndpointStatus"] == "InService"
    pid = json.loads(runtime.invoke_endpoint(EndpointName=name, Body=b"{}", ContentType="application/json")["Body"].read())["pid"]
    with pytest.raises(ClientError):
        runtime.invoke_endpoint(EndpointName=name, Body=b"crash", ContentType="application/json")

    def new_pid():
        try:
            return json.loads(runtime.invoke_endpoint(EndpointName=name, Body=b"{}", ContentType="application/json")["Body"].read())["pid"]
        except ClientError:
            return None

    assert wait_for(new_pid, lambda p: p is not None and p != pid, timeout=30)
    sm.delete_endpoint(EndpointName=name)


def test_model_and_config_api_errors(sm, artifact):
    model = make_model(sm, artifact)
    with pytest.raises(ClientError) as e:
        sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": TINY})
    assert e.value.response["Error"]["Message"] == f'Cannot create already existing model "arn:aws:sagemaker:us-east-1:123456789012:model/{model}".'
    with pytest.raises(ClientError) as e:
        sm.describe_model(ModelName="nope")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        make_config(sm, [("v", "missing-model", 1, 1.0)])
    assert "Could not find model" in e.value.response["Error"]["Message"]
    cfg = make_config(sm, [("v", model, 1, 1.0)])
    with pytest.raises(ClientError) as e:
        sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[{"VariantName": "v", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    assert "Cannot create already existing endpoint configuration" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        sm.create_endpoint(EndpointName=unique("e"), EndpointConfigName="missing-config")
    assert "Could not find endpoint configuration" in e.value.response["Error"]["Message"]
    assert any(m["ModelName"] == model for m in sm.list_models(NameContains=model)["Models"])
    assert sm.list_endpoint_configs(NameContains=cfg)["EndpointConfigs"][0]["EndpointConfigName"] == cfg
    sm.delete_endpoint_config(EndpointConfigName=cfg)
    sm.delete_model(ModelName=model)
    with pytest.raises(ClientError):
        sm.delete_model(ModelName=model)
