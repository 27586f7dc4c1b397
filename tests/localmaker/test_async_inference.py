"""InvokeEndpointAsync against real endpoints: S3 in and out, SNS notifications (observed through SQS
subscriptions), MaxConcurrentInvocationsPerInstance, InvocationTimeoutSeconds; and operations localmaker
does not implement answered honestly instead of by moto's canned SageMaker backends."""

from __future__ import annotations

import collections
import json
import time
import urllib.error
import urllib.request
import uuid

import boto3
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from .conftest import ROLE, unique, wait_endpoint, wait_for

STREAM = "123456789012.dkr.ecr.us-east-1.amazonaws.com/stream-algo:1"


@pytest.fixture(scope="module")
def sns(server):
    return server.client("sns")


@pytest.fixture(scope="module")
def sqs(server):
    return server.client("sqs")


@pytest.fixture(scope="module")
def topics(sns, sqs):
    """Success and error topics, each with an SQS queue subscribed: {"success": (arn, url), "error": ...}."""
    out = {}
    for kind in ("success", "error"):
        arn = sns.create_topic(Name=unique(f"async-{kind}"))["TopicArn"]
        url = sqs.create_queue(QueueName=unique(f"async-{kind}"))["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)
        out[kind] = (arn, url)
    return out


def make_endpoint(sm, async_config=None, instances=1):
    model = unique("amodel")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": STREAM})
    cfg = unique("acfg")
    kwargs = {"EndpointConfigName": cfg, "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": instances,
         "InstanceType": "ml.m5.large"}]}
    if async_config is not None:
        kwargs["AsyncInferenceConfig"] = async_config
    sm.create_endpoint_config(**kwargs)
    name = unique("aep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    return name


def async_config(bucket, topics, per_instance):
    return {
        "OutputConfig": {
            "S3OutputPath": f"s3://{bucket}/async/out",
            "S3FailurePath": f"s3://{bucket}/async/fail",
            "NotificationConfig": {"SuccessTopic": topics["success"][0], "ErrorTopic": topics["error"][0]},
        },
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": per_instance},
    }


@pytest.fixture(scope="module")
def endpoints(sm, bucket, topics):
    """serial: 1 instance x 1 concurrent invocation; wide: 1 instance x 3; other: for failures (its container
    keeps sleeping after a timed-out request); plain: no AsyncInferenceConfig."""
    names = {
        "serial": make_endpoint(sm, async_config(bucket, topics, 1)),
        "wide": make_endpoint(sm, async_config(bucket, topics, 3)),
        "other": make_endpoint(sm, async_config(bucket, topics, 2)),
        "plain": make_endpoint(sm),
    }
    for name in names.values():
        ep = wait_endpoint(sm, name)
        assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    return names


def notification(sqs, url, inference_id, timeout=30):
    """The InferenceResult notification for ``inference_id`` delivered to the queue at ``url``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in list(_stray):
            if event["inferenceId"] == inference_id:
                _stray.remove(event)
                return event
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            envelope = json.loads(m["Body"])
            assert envelope["Type"] == "Notification"
            _stray.append(json.loads(envelope["Message"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        time.sleep(0.1)
    raise AssertionError(f"no notification for {inference_id}")


_stray: list[dict] = []


def s3_object(s3, uri, timeout=30):
    bucket, key = uri[5:].split("/", 1)

    def get():
        try:
            return s3.get_object(Bucket=bucket, Key=key)
        except ClientError:
            return None

    return wait_for(get, lambda o: o is not None, timeout)


def test_request_from_s3_runs_and_writes_output_and_success_notification(runtime, s3, sqs, bucket, topics, endpoints):
    s3.put_object(Bucket=bucket, Key="async/in/req.txt", Body=b"sleep:0.1")
    iid = f"req-{uuid.uuid4().hex[:8]}"
    r = runtime.invoke_endpoint_async(
        EndpointName=endpoints["serial"], InputLocation=f"s3://{bucket}/async/in/req.txt", ContentType="text/plain",
        Accept="application/json", CustomAttributes="c=1", InferenceId=iid)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert r["InferenceId"] == iid
    assert r["OutputLocation"] == f"s3://{bucket}/async/out/{iid}.out"
    assert r["FailureLocation"] == f"s3://{bucket}/async/fail/{iid}-error.out"
    event = notification(sqs, topics["success"][1], iid)
    assert event["invocationStatus"] == "Completed"
    assert event["eventName"] == "InferenceResult" and event["eventSource"] == "aws:sagemaker"
    assert event["eventVersion"] == "1.0" and event["awsRegion"] == "us-east-1"
    assert event["requestParameters"]["endpointName"] == endpoints["serial"]
    assert event["requestParameters"]["inputLocation"] == f"s3://{bucket}/async/in/req.txt"
    assert event["requestParameters"]["contentType"] == "text/plain"
    assert event["responseParameters"] == {"contentType": "application/json", "outputLocation": r["OutputLocation"]}
    assert event["receivedTime"] <= event["eventTime"]
    obj = s3_object(s3, r["OutputLocation"])
    assert obj["ContentType"] == "application/json"
    out = json.loads(obj["Body"].read())
    # invoked like InvokeEndpoint: the request's content type, accept and inference id reach the container
    assert (out["content_type"], out["accept"], out["inference_id"]) == ("text/plain", "application/json", iid)


def test_container_failure_writes_failure_body_and_error_notification(runtime, s3, sqs, topics, endpoints):
    r = runtime.invoke_endpoint_async(EndpointName=endpoints["serial"], Body=b"fail", ContentType="text/plain")
    iid = r["InferenceId"]
    uuid.UUID(iid)  # generated when the client gives none
    assert r["OutputLocation"].endswith(f"/{iid}.out")
    event = notification(sqs, topics["error"][1], iid)
    assert event["invocationStatus"] == "Failed"
    assert event["failureReason"].startswith("ClientError: Received server error (500) from model.")
    assert event["responseParameters"]["failureLocation"] == r["FailureLocation"]
    body = s3_object(s3, r["FailureLocation"])["Body"].read()
    assert json.loads(body) == {"message": "the model failed on this input"}
    bucket, key = r["OutputLocation"][5:].split("/", 1)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=key)


def test_missing_input_and_invocation_timeout_fail_the_request(runtime, sqs, bucket, topics, endpoints):
    r = runtime.invoke_endpoint_async(EndpointName=endpoints["other"], InputLocation=f"s3://{bucket}/async/in/none")
    event = notification(sqs, topics["error"][1], r["InferenceId"])
    assert event["invocationStatus"] == "Failed"
    assert f"Could not download the input from s3://{bucket}/async/in/none" in event["failureReason"]
    t0 = time.monotonic()
    r = runtime.invoke_endpoint_async(EndpointName=endpoints["other"], Body=b"sleep:4", InvocationTimeoutSeconds=1)
    event = notification(sqs, topics["error"][1], r["InferenceId"])
    assert time.monotonic() - t0 < 3.5  # failed at the 1 s timeout, not when the container answered
    assert event["invocationStatus"] == "Failed"
    assert "InvocationTimeoutSeconds (1 s)" in event["failureReason"]


def test_output_path_extension_and_filename(runtime, s3, bucket, endpoints):
    r = runtime.invoke_endpoint_async(EndpointName=endpoints["wide"], Body=b"sleep:0", S3OutputPathExtension="day/1",
                                      Filename="result.json")
    assert r["OutputLocation"] == f"s3://{bucket}/async/out/day/1/result.json"
    assert r["FailureLocation"] == f"s3://{bucket}/async/fail/day/1/{r['InferenceId']}-error.out"
    assert json.loads(s3_object(s3, r["OutputLocation"])["Body"].read())["content_type"] == "application/octet-stream"


def test_max_concurrent_invocations_per_instance_is_honoured(runtime, s3, sqs, topics, endpoints):
    def run(endpoint):
        t0 = time.monotonic()
        ids = [runtime.invoke_endpoint_async(EndpointName=endpoint, Body=b"sleep:0.8")["InferenceId"]
               for _ in range(3)]
        events = [notification(sqs, topics["success"][1], i) for i in ids]
        outs = [json.loads(s3_object(s3, e["responseParameters"]["outputLocation"])["Body"].read()) for e in events]
        return time.monotonic() - t0, max(o["max_inflight"] for o in outs)

    elapsed, peak = run(endpoints["serial"])
    assert peak == 1 and elapsed >= 2.4, (elapsed, peak)  # one at a time: 3 x 0.8 s
    elapsed, peak = run(endpoints["wide"])
    assert peak == 3 and elapsed < 2.4, (elapsed, peak)  # all three at once


def test_requests_the_runtime_refuses(server, bucket, endpoints):
    # botocore checks ranges itself; the server must too (other clients do not)
    runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test",
                           config=Config(parameter_validation=False, retries={"max_attempts": 1}))

    def err(**kw):
        with pytest.raises(ClientError) as e:
            runtime.invoke_endpoint_async(**kw)
        return e.value.response["Error"]

    e = err(EndpointName=endpoints["plain"], InputLocation=f"s3://{bucket}/x")
    assert e["Code"] == "ValidationError" and "is not an asynchronous inference endpoint" in e["Message"]
    e = err(EndpointName="no-such-endpoint", InputLocation=f"s3://{bucket}/x")
    assert (e["Code"], e["Message"]) == ("ValidationError", "Endpoint no-such-endpoint of account 123456789012 not found.")
    e = err(EndpointName=endpoints["serial"], InputLocation=f"s3://{bucket}/x", RequestTTLSeconds=59)
    assert e["Code"] == "ValidationError"
    assert "'requestTTLSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60" \
        in e["Message"]
    e = err(EndpointName=endpoints["serial"], InputLocation=f"s3://{bucket}/x", Body=b"sleep:0")
    assert e["Code"] == "ValidationError" and "mutually exclusive" in e["Message"]
    e = err(EndpointName=endpoints["serial"])
    assert e["Code"] == "ValidationError" and "InputLocation or Body is required" in e["Message"]
    e = err(EndpointName=endpoints["serial"], Body=b"x" * 128001)
    assert e["Code"] == "ValidationError" and "less than or equal to 128000" in e["Message"]
    e = err(EndpointName=endpoints["serial"], Body=b"sleep:0", Filename="a.b.out")
    assert e["Code"] == "ValidationError" and "'filename' failed to satisfy constraint" in e["Message"]


def test_async_config_needs_an_output_path(sm):
    model = unique("amodel")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": STREAM})
    with pytest.raises(ClientError) as e:
        sm.create_endpoint_config(
            EndpointConfigName=unique("acfg"),
            ProductionVariants=[{"VariantName": "v", "ModelName": model, "InitialInstanceCount": 1,
                                 "InstanceType": "ml.m5.large"}],
            AsyncInferenceConfig={"OutputConfig": {"S3FailurePath": "s3://b/f"}})
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "S3OutputPath is required" in e.value.response["Error"]["Message"]


# ---- operations localmaker does not implement -----------------------------------------------------------------
def _signed(server, method, path, service="sagemaker", body=b"{}", presigned=False):
    req = AWSRequest(method=method, url=server.url + path, data=body, headers={"Content-Type": "application/json"})
    auth = SigV4QueryAuth if presigned else SigV4Auth
    auth(Credentials("test", "test"), service, "us-east-1").add_auth(req)
    p = req.prepare()
    try:
        with urllib.request.urlopen(urllib.request.Request(p.url, data=p.body, headers=dict(p.headers),
                                                           method=method), timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_unimplemented_sagemaker_operations_never_get_motos_answers(server, sm):
    cases = [
        # moto's sagemaker-metrics answered this one with a canned {"Errors": [...]} before
        (lambda: server.client("sagemaker-metrics").batch_put_metrics(
            TrialComponentName="t", MetricData=[{"MetricName": "m", "Timestamp": 1, "Value": 1.0}]), "BatchPutMetrics"),
        (lambda: server.client("sagemaker-featurestore-runtime").get_record(
            FeatureGroupName="f", RecordIdentifierValueAsString="1"), "GetRecord"),
        (lambda: server.client("sagemaker-a2i-runtime").list_human_loops(
            FlowDefinitionArn="arn:aws:sagemaker:us-east-1:123456789012:flow-definition/x"), "ListHumanLoops"),
        (lambda: sm.list_notebook_instances(), "ListNotebookInstances"),
    ]
    for call, op in cases:
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "UnknownOperationException", op
        assert op in e.value.response["Error"]["Message"]
    # a runtime path that is no operation at all
    status, headers, body = _signed(server, "POST", "/endpoints/x/made-up")
    assert status == 404 and headers.get("x-amzn-ErrorType") == "UnknownOperationException"
    assert "POST /endpoints/x/made-up" in json.loads(body)["message"]
    # presigned (no Authorization header): moto picks a backend from a /<service>_<region>/ path, or the scope
    for path, service in (("/sagemaker_us-east-1/", "s3"), ("/", "sagemaker")):
        status, headers, body = _signed(server, "GET", path, service=service, body=None, presigned=True)
        assert (status, headers.get("x-amzn-ErrorType")) == (404, "UnknownOperationException"), (path, body)
    # InvokeEndpointAsync on a missing endpoint: moto used to accept it with a made-up output location
    status, headers, body = _signed(server, "POST", "/endpoints/nope/async-invocations", body=b"")
    assert status == 400 and headers.get("x-amzn-ErrorType") == "ValidationError"


# ---- RequestTTLSeconds ------------------------------------------------------------------------------------------
def test_a_request_queued_past_its_ttl_expires():
    """AWS's smallest RequestTTLSeconds is 60 s, too long for this suite: the queue is driven directly, with a
    request whose endpoint never gets a serving fleet, a TTL of 0.3 s and S3/SNS clients that record calls."""
    from types import SimpleNamespace

    from localmaker.async_inference import AsyncInference, Job

    calls = []

    class Recorder:
        def __init__(self, service):
            self.service = service

        def put_object(self, **kw):
            calls.append(("s3", kw))

        def publish(self, **kw):
            calls.append(("sns", kw))

    docs = {("Endpoint", "ep"): {"EndpointName": "ep", "EndpointConfigName": "cfg", "EndpointStatus": "Updating"}}
    ctx = SimpleNamespace(region="us-east-1", store=SimpleNamespace(get=lambda kind, name: docs.get((kind, name))))
    hosting = SimpleNamespace(current_fleet=lambda name: None)  # never serving: the request just waits
    queue = AsyncInference(ctx, hosting)  # type: ignore[arg-type]
    queue._client = Recorder  # type: ignore[method-assign]
    try:
        job = Job("iid-1", "ep", "s3://b/in", None, {"Content-Type": "text/csv"}, "s3://b/out/iid-1.out",
                  "s3://b/fail/iid-1-error.out", 900.0, 0.3, {"ErrorTopic": "arn:aws:sns:us-east-1:123456789012:err"})
        with queue._cond:
            queue._queues.setdefault("ep", collections.deque()).append(job)
            queue._cond.notify_all()
        time.sleep(0.15)
        assert queue.queued("ep") == 1 and not calls  # still within its TTL
        wait_for(lambda: len(calls), lambda n: n >= 2, timeout=5)
        assert queue.queued("ep") == 0
        s3_call = next(kw for svc, kw in calls if svc == "s3")
        assert (s3_call["Bucket"], s3_call["Key"]) == ("b", "fail/iid-1-error.out")
        event = json.loads(next(kw for svc, kw in calls if svc == "sns")["Message"])
        assert event["invocationStatus"] == "Expired" and event["inferenceId"] == "iid-1"
        assert "RequestTTLSeconds (0.3 s)" in event["failureReason"]
        assert event["requestParameters"] == {"endpointName": "ep", "contentType": "text/csv", "inputLocation": "s3://b/in"}
    finally:
        queue.shutdown()
