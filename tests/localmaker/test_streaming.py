"""InvokeEndpointWithResponseStream: a streaming container's chunks arrive as PayloadPart events, read with
boto3's own event-stream parser (botocore.eventstream); errors as AWS reports them."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError, EventStreamError

from .conftest import ROLE, unique, wait_endpoint

STREAM = "123456789012.dkr.ecr.us-east-1.amazonaws.com/stream-algo:1"


@pytest.fixture(scope="module")
def endpoint(sm):
    model = unique("smodel")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": STREAM})
    cfg = unique("scfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    name = unique("sep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    ep = wait_endpoint(sm, name)
    assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    return name


def test_chunks_arrive_as_payload_parts_while_the_container_streams(runtime, endpoint):
    t0 = time.monotonic()
    r = runtime.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, Body=b"stream:5:0.3", ContentType="text/plain", Accept="text/plain",
        CustomAttributes="trace=42")
    assert r["ContentType"] == "text/plain"
    assert r["InvokedProductionVariant"] == "AllTraffic"
    assert r["CustomAttributes"] == "echo:trace=42"
    parts, arrivals = [], []
    for event in r["Body"]:
        assert set(event) == {"PayloadPart"}
        parts.append(event["PayloadPart"]["Bytes"])
        arrivals.append(time.monotonic() - t0)
    assert b"".join(parts) == b"".join(f"part-{i}\n".encode() for i in range(5))
    assert len(parts) == 5  # one event per chunk the container flushed
    # streamed, not buffered: the first part arrived well before the container finished (4 x 0.3 s later)
    assert arrivals[-1] - arrivals[0] > 0.9, arrivals


def test_a_container_that_does_not_stream_gets_a_validation_error(runtime, endpoint):
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint_with_response_stream(EndpointName=endpoint, Body=b"plain", ContentType="text/plain")
    err = e.value.response
    assert err["Error"]["Code"] == "ValidationError"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "did not stream its response" in err["Error"]["Message"]


def test_a_container_error_is_a_model_error(runtime, endpoint):
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint_with_response_stream(EndpointName=endpoint, Body=b"fail", ContentType="text/plain")
    err = e.value.response
    assert err["Error"]["Code"] == "ModelError"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err["OriginalStatusCode"] == 500
    assert "the model failed on this input" in err["OriginalMessage"]


def test_a_stream_cut_short_ends_with_model_stream_error(runtime, endpoint):
    r = runtime.invoke_endpoint_with_response_stream(EndpointName=endpoint, Body=b"break:2", ContentType="text/plain")
    parts = []
    with pytest.raises(EventStreamError) as e:
        for event in r["Body"]:
            parts.append(event["PayloadPart"]["Bytes"])
    assert b"".join(parts) == b"part-0\npart-1\n"
    assert e.value.response["Error"]["Code"] == "ModelStreamError"
    assert "closed before the response ended" in e.value.response["Error"]["Message"]


def test_missing_endpoint_and_bad_name(runtime):
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint_with_response_stream(EndpointName="no-such-endpoint", Body=b"stream:1:0")
    assert e.value.response["Error"]["Code"] == "ValidationError"
    assert e.value.response["Error"]["Message"] == "Endpoint no-such-endpoint of account 123456789012 not found."
    with pytest.raises(ClientError) as e:
        runtime.invoke_endpoint_with_response_stream(EndpointName="bad_name", Body=b"stream:1:0")
    assert e.value.response["Error"]["Code"] == "ValidationError"
    assert "failed to satisfy constraint" in e.value.response["Error"]["Message"]
