"""The edge as a hostile web page, a DNS-rebinding attacker, a sloppy client and a stalled upload see it.

Every attack goes out as raw ``http.client`` bytes, the way a browser or a script would send them; the
server is a real ``python -m localmaker`` process. The checks (localmaker/edge.py): foreign Host and
Origin are refused before any handler runs, unsigned calls get AWS's missing-token answer, presigned
URLs keep working (also opened as a browser tab), bodies are limited from Content-Length before they
are read, stalled uploads time out, malformed input is a 4xx in AWS's shape, quotas hold.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localmaker.__main__ import parse_args
from tests.faults.conftest import ROLE, Server, start_server
from tests.localmaker.conftest import ROOT, unique

SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
TINY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny-algo:1"
EVIL = "http://evil.example"
ALLOWED = "http://notebook.example:8888"
ALLOWED_HOST = "lm.internal"
READ_TIMEOUT = 2.0
# What a SigV4 client sends (localmaker checks the shape, not the signature: any keys work)
AUTH = ("AWS4-HMAC-SHA256 Credential=test/20261206/us-east-1/sagemaker/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64)
JSON = "application/x-amz-json-1.1"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("edge"),
        "--cors-origin", ALLOWED, "--allow-host", ALLOWED_HOST, "--read-timeout", str(READ_TIMEOUT),
        "--max-instances-per-variant", "3",
    )
    yield s
    s.stop()
    log = "\n".join(s.output)
    assert "Error on request" not in log, log[-3000:]  # werkzeug's word for an exception that escaped the edge


@pytest.fixture(scope="module")
def bucket(srv: Server) -> str:
    srv.client("s3").create_bucket(Bucket="edge-tests")
    return "edge-tests"


def addr(srv: Server) -> tuple[str, int]:
    u = urllib.parse.urlsplit(srv.url)
    assert u.hostname and u.port
    return u.hostname, u.port


def raw(srv: Server, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None,
        timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    host, port = addr(srv)
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def call(srv: Server, target: str, params: Any, extra: dict[str, str] | None = None,
         auth: bool = True) -> tuple[int, dict[str, str], bytes]:
    headers = {"X-Amz-Target": target, "Content-Type": JSON, **({"Authorization": AUTH} if auth else {}), **(extra or {})}
    body = params if isinstance(params, bytes) else json.dumps(params).encode()
    return raw(srv, "POST", "/", headers, body)


def aws_json_error(status: int, headers: dict[str, str], body: bytes) -> str:
    """The error code of a 4xx JSON answer (asserting it is one: no HTML, no 500)."""
    assert 400 <= status < 500, (status, body[:300])
    assert "json" in headers.get("content-type", ""), (headers, body[:300])
    doc = json.loads(body)
    code = doc.get("__type") or doc.get("ErrorCode")
    assert code and doc.get("message"), doc
    assert headers.get("x-amzn-errortype") == code
    return code


def processing_request(name: str, marker: Path) -> dict[str, Any]:
    return {
        "ProcessingJobName": name,
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        "AppSpecification": {"ImageUri": SKLEARN, "ContainerEntrypoint": ["touch", str(marker)]},
        "RoleArn": ROLE,
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }


# ---- a web page on another site -----------------------------------------------------------------------------
def test_cross_origin_preflight_is_refused(srv: Server) -> None:
    status, headers, _ = raw(srv, "OPTIONS", "/", {
        "Origin": EVIL, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-amz-target,content-type",
    })
    assert status == 403
    assert not any(k.startswith("access-control-") for k in headers), headers


def test_cross_origin_call_creates_nothing_and_runs_nothing(srv: Server, tmp_path: Path) -> None:
    sm = srv.client("sagemaker")
    for i, auth in enumerate((False, True)):  # a page cannot sign, but the Origin alone must be enough
        marker = tmp_path / f"pwned-{i}"
        name = unique("edge-evil")
        status, headers, body = call(srv, "SageMaker.CreateProcessingJob", processing_request(name, marker),
                                     {"Origin": EVIL}, auth=auth)
        assert status == 403 and aws_json_error(status, headers, body) == "AccessDeniedException"
        assert "access-control-allow-origin" not in headers
    # the same request from a signed client does run the command: the attack was real
    control = tmp_path / "control"
    sm.create_processing_job(**processing_request(unique("edge-ok"), control))
    deadline = time.monotonic() + 30
    while not control.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert control.exists(), "the signed control job did not run its entrypoint"
    names = [j["ProcessingJobName"] for j in sm.list_processing_jobs(MaxResults=100)["ProcessingJobSummaries"]]
    assert not [n for n in names if n.startswith("edge-evil")], names
    assert not (tmp_path / "pwned-0").exists() and not (tmp_path / "pwned-1").exists()


def test_form_post_and_subresource_loads_from_a_page_are_refused(srv: Server) -> None:
    # a cross-site <form method=post enctype=text/plain> at the runtime (browsers send Origin with it)
    status, _, body = raw(srv, "POST", "/endpoints/x/invocations", {"Origin": EVIL, "Content-Type": "text/plain"}, b"a=b")
    assert status == 403 and b"AccessDenied" in body
    # an <img src> / <script src> carries no Origin, but the browser marks it cross-site and not a navigation
    status, _, body = raw(srv, "GET", "/edge-tests/k?AWSAccessKeyId=x&Signature=x&Expires=9999999999",
                          {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"})
    assert status == 403 and b"<Code>AccessDenied</Code>" in body
    # an "Origin: null" (sandboxed iframe, data: URL) is a foreign origin too
    status, _, _ = call(srv, "SageMaker.ListTrainingJobs", {}, {"Origin": "null"})
    assert status == 403


def test_dns_rebinding_host_is_refused(srv: Server) -> None:
    port = addr(srv)[1]
    for host in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}", f"127.0.0.1.nip.io:{port}"):
        status, headers, body = call(srv, "SageMaker.ListTrainingJobs", {}, {"Host": host})
        assert status == 403 and aws_json_error(status, headers, body) == "AccessDeniedException", host
    status, _, body = raw(srv, "GET", "/_localmaker/health", {"Host": f"evil.example:{port}"})
    assert status == 403 and b"<Code>AccessDenied</Code>" in body


def test_loopback_and_allowed_hosts_are_served(srv: Server) -> None:
    port = addr(srv)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"{ALLOWED_HOST}:{port}", ALLOWED_HOST.upper(),
                 f"bucket.localhost:{port}"):
        status, _, body = call(srv, "SageMaker.ListTrainingJobs", {}, {"Host": host})
        assert status == 200 and "TrainingJobSummaries" in json.loads(body), (host, body)


def test_health_needs_no_signature_but_passes_the_checks(srv: Server) -> None:
    status, _, body = raw(srv, "GET", "/_localmaker/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, _ = raw(srv, "GET", "/_localmaker/health", {"Origin": EVIL})
    assert status == 403


def test_an_allowed_origin_gets_a_proper_preflight_and_answers(srv: Server) -> None:
    status, headers, _ = raw(srv, "OPTIONS", "/", {
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-amz-target,content-type,authorization,x-amz-date",
    })
    assert status == 200
    assert headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in headers["access-control-allow-methods"]
    assert set(headers["access-control-allow-headers"].split(", ")) >= {"x-amz-target", "authorization"}
    status, headers, body = call(srv, "SageMaker.ListTrainingJobs", {}, {"Origin": ALLOWED})
    assert status == 200 and headers["access-control-allow-origin"] == ALLOWED, headers
    # and it still has to sign
    status, headers, body = call(srv, "SageMaker.ListTrainingJobs", {}, {"Origin": ALLOWED}, auth=False)
    assert status == 403 and headers["access-control-allow-origin"] == ALLOWED
    assert json.loads(body) == {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"}


# ---- unsigned clients ---------------------------------------------------------------------------------------
def test_unsigned_calls_get_missing_authentication_token(srv: Server, bucket: str) -> None:
    for target in ("SageMaker.ListTrainingJobs", "Logs_20140328.DescribeLogGroups"):
        status, headers, body = call(srv, target, {}, auth=False)
        assert status == 403 and json.loads(body) == {
            "__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"}
    status, headers, body = raw(srv, "POST", "/endpoints/x/invocations", {"Content-Type": "text/csv"}, b"1,2")
    assert status == 403 and aws_json_error(status, headers, body) == "MissingAuthenticationTokenException"
    status, headers, body = raw(srv, "GET", f"/{bucket}")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body and "xml" in headers["content-type"]
    status, _, body = raw(srv, "POST", "/", {"Content-Type": "application/x-www-form-urlencoded"},
                          b"Action=GetCallerIdentity&Version=2011-06-15")
    assert status == 403 and b"<Code>MissingAuthenticationToken</Code>" in body
    # query-protocol actions cannot ride on a presigned-looking query string (a GET from a link)
    status, _, body = raw(srv, "GET", "/?Action=CreateTopic&Name=t&X-Amz-Algorithm=AWS4-HMAC-SHA256"
                                      "&X-Amz-Credential=a%2F20261206%2Fus-east-1%2Fsns%2Faws4_request&X-Amz-Signature=00")
    assert status == 403 and b"MissingAuthenticationToken" in body
    # nor can SageMaker calls or moto's control plane (its recorder answers GET)
    presigned = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2F20261206%2Fus-east-1%2Fs3%2Faws4_request"
                 "&X-Amz-Signature=00")
    status, _, _ = raw(srv, "POST", f"/?{presigned}", {"X-Amz-Target": "SageMaker.ListTrainingJobs",
                                                        "Content-Type": JSON}, b"{}")
    assert status == 403
    status, _, body = raw(srv, "GET", f"/moto-api/recorder/start-recording?{presigned}")
    assert status == 403 and b"AccessDenied" in body
    # a header that is not an AWS signature
    status, headers, body = call(srv, "SageMaker.ListTrainingJobs", {}, {"Authorization": "Bearer abc"}, auth=False)
    assert status == 403 and aws_json_error(status, headers, body) == "IncompleteSignatureException"
    # moto's any-origin CORS header does not leak out to signed callers either
    resp = srv.client("sns").list_topics()
    assert "access-control-allow-origin" not in resp["ResponseMetadata"]["HTTPHeaders"]


def test_presigned_urls_work_in_a_browser_tab(srv: Server, bucket: str) -> None:
    s3 = srv.client("s3")
    s3.put_object(Bucket=bucket, Key="report.txt", Body=b"the report")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "report.txt"})
    with urllib.request.urlopen(url, timeout=10) as r:  # no Authorization, no Origin
        assert r.read() == b"the report"
    # a person clicking the link on another site: a top-level navigation, cross-site, no Origin
    nav = urllib.request.Request(url, headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                               "Sec-Fetch-Dest": "document"})
    with urllib.request.urlopen(nav, timeout=10) as r:
        assert r.read() == b"the report"
    # a SigV4 presigned URL too (botocore's default for S3 presigning is SigV2, as above)
    s3v4 = boto3.client("s3", endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="a",
                        aws_secret_access_key="b", config=Config(signature_version="s3v4"))
    url4 = s3v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "report.txt"})
    assert "X-Amz-Signature=" in url4
    with urllib.request.urlopen(url4, timeout=10) as r:
        assert r.read() == b"the report"
    # expired ones are refused as S3 refuses them
    old = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "report.txt"}, ExpiresIn=-60)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(old, timeout=10)
    assert e.value.code == 403 and b"Request has expired" in e.value.read()


def test_presigned_post_uploads(srv: Server, bucket: str) -> None:
    requests = pytest.importorskip("requests")
    s3 = srv.client("s3")
    post = s3.generate_presigned_post(bucket, "upload.csv")
    r = requests.post(post["url"], data=post["fields"], files={"file": ("upload.csv", b"a,b\n1,2\n")}, timeout=10)
    assert r.status_code in (200, 204), r.text
    assert s3.get_object(Bucket=bucket, Key="upload.csv")["Body"].read() == b"a,b\n1,2\n"
    # the same form without policy and signature is anonymous: refused
    r = requests.post(post["url"], data={"key": "anon.csv"}, files={"file": ("anon.csv", b"x")}, timeout=10)
    assert r.status_code == 403


def test_what_moto_cannot_handle_is_still_an_aws_error(srv: Server) -> None:
    # signed for a service moto serves (STS): moto's failures come back AWS-shaped, never as HTML
    auth = {"Authorization": AUTH.replace("/sagemaker/", "/sts/")}
    status, headers, body = raw(srv, "POST", "/", {**auth, "Content-Type": JSON, "X-Amz-Target": "Foo.Bar"}, b"{}")
    assert status == 500  # moto fails on an unknown target; the answer is still AWS-shaped JSON
    assert json.loads(body)["__type"] == "InternalFailure" and "html" not in headers["content-type"]
    status, headers, body = raw(srv, "POST", "/", {**auth, "Content-Type": "application/x-www-form-urlencoded"},
                                b"Action=NoSuchAction&Version=2011-06-15")
    assert status == 500 and b"<Code>InternalError</Code>" in body and "html" not in headers["content-type"]
    status, headers, body = raw(srv, "GET", "/endpoints/x/invocations", auth)
    assert status == 404 and b"<Code>NotFound</Code>" in body and "html" not in headers["content-type"]
    # signed for SageMaker: never moto's SageMaker, an UnknownOperationException naming what was asked
    for sent in (call(srv, "Foo.Bar", {}), raw(srv, "GET", "/endpoints/x/invocations", {"Authorization": AUTH})):
        status, headers, body = sent
        assert status in (400, 404) and json.loads(body)["__type"] == "UnknownOperationException", sent


# ---- malformed input ----------------------------------------------------------------------------------------
def test_malformed_inputs_are_4xx_json(srv: Server) -> None:
    host, port = addr(srv)
    for length in ("abc", "-5", "1e3"):
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Amz-Target: SageMaker.ListTrainingJobs\r\n"
                      f"Content-Type: {JSON}\r\nAuthorization: {AUTH}\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
            head, _, body = _read_all(s).partition(b"\r\n\r\n")
        status = int(head.split()[1])
        assert status == 400 and json.loads(body)["__type"] == "SerializationException", (length, head, body)

    # chunked bodies: several chunks are one body; a broken chunk header is a 400, not a 500
    for chunks, want in ((b"2\r\n{\"\r\n10\r\nNameContains\": \"\r\n3\r\nx\"}\r\n0\r\n\r\n", 200),
                         (b"zz\r\n{}\r\n0\r\n\r\n", 400)):
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Amz-Target: SageMaker.ListTrainingJobs\r\n"
                      f"Content-Type: {JSON}\r\nAuthorization: {AUTH}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                      + chunks)
            head, _, body = _read_all(s).partition(b"\r\n\r\n")
        assert int(head.split()[1]) == want, (chunks, head, body)
        if want == 400:
            assert json.loads(body)["__type"] == "SerializationException"

    deep = b"[" * 5000 + b"]" * 5000
    assert aws_json_error(*call(srv, "SageMaker.ListTrainingJobs", deep)) == "SerializationException"
    nested = {"NameContains": "x"}
    for _ in range(300):
        nested = {"a": nested}
    assert aws_json_error(*call(srv, "SageMaker.ListTrainingJobs", nested)) == "SerializationException"
    assert aws_json_error(*call(srv, "SageMaker.ListTrainingJobs", b"{not json")) == "SerializationException"

    for op in ("DescribeLogGroups", "DescribeLogStreams", "FilterLogEvents"):
        status, headers, body = call(srv, f"Logs_20140328.{op}", {"logGroupName": "g", "nextToken": "zz"})
        assert aws_json_error(status, headers, body) in ("InvalidParameterException", "ResourceNotFoundException"), op

    for when in ("yesterday", True, {"a": 1}, ""):
        status, headers, body = call(srv, "SageMaker.ListTrainingJobs", {"CreationTimeAfter": when})
        assert aws_json_error(status, headers, body) == "ValidationException", when
        assert "creationTimeAfter" in json.loads(body)["message"]
    status, _, body = call(srv, "SageMaker.ListTrainingJobs", {"CreationTimeAfter": 1_700_000_000})
    assert status == 200, body  # what botocore sends: epoch seconds
    status, _, body = call(srv, "SageMaker.ListTrainingJobs", {"CreationTimeAfter": "2024-01-01T00:00:00Z"})
    assert status == 200, body

    for path in ("/endpoints/..%2F..%2Fx/invocations", "/endpoints/../../x/invocations", "/endpoints/a%00b/invocations",
                 "/endpoints/bad_name!/invocations", "/endpoints/" + "a" * 64 + "/invocations"):
        status, headers, body = raw(srv, "POST", path, {"Authorization": AUTH, "Content-Type": "text/csv"}, b"1")
        assert aws_json_error(status, headers, body) == "ValidationError", path
        assert "endpointName" in json.loads(body)["message"]
    status, headers, body = raw(srv, "POST", "/endpoints/no-such-endpoint/invocations",
                                {"Authorization": AUTH, "Content-Type": "text/csv"}, b"1")
    assert aws_json_error(status, headers, body) == "ValidationError"
    assert "Endpoint no-such-endpoint of account" in json.loads(body)["message"]


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _response_head(s: socket.socket, timeout: float) -> tuple[int, bytes]:
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split()[1]), data


def test_oversized_bodies_are_refused_from_content_length_unread(srv: Server) -> None:
    host, port = addr(srv)
    cases = [
        ("POST /endpoints/any/invocations", "Content-Type: text/csv", 100 * 1024**3, 413, b"ValidationError"),
        ("POST /endpoints/any/invocations", "Content-Type: text/csv", 6 * 1024 * 1024 + 1, 413, b"ValidationError"),
        ("POST /", f"X-Amz-Target: SageMaker.ListTrainingJobs\r\nContent-Type: {JSON}", 64 * 1024**2, 413,
         b"RequestEntityTooLargeException"),
    ]
    for line, extra, length, want, code in cases:
        with socket.create_connection((host, port)) as s:
            t0 = time.monotonic()
            s.sendall(f"{line} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {AUTH}\r\n{extra}\r\n"
                      f"Content-Length: {length}\r\n\r\nonly a few bytes".encode())
            status, data = _response_head(s, timeout=5)
            elapsed = time.monotonic() - t0
        assert status == want and code in data + _tail(data), (line, data)
        assert elapsed < 1.5, f"{line}: the refusal took {elapsed:.2f} s"
    # the server is still fine
    assert srv.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] is not None


def _tail(head: bytes) -> bytes:
    return head.partition(b"\r\n\r\n")[2]


def test_a_stalled_upload_is_cut_off(srv: Server, bucket: str) -> None:
    host, port = addr(srv)
    for request, want, code in (
        (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: SageMaker.ListTrainingJobs\r\nContent-Type: {JSON}\r\n"
         f"Authorization: {AUTH}\r\nContent-Length: 100\r\n\r\n{{\"NameCo", 408, b"RequestTimeoutException"),
        (f"POST /endpoints/x/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
         f"Authorization: {AUTH}\r\nContent-Length: 1000\r\n\r\n1,2,3\n", 408, b"RequestTimeoutException"),
        (f"PUT /{bucket}/stalled.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH.replace('sagemaker', 's3')}\r\n"
         "Content-Length: 1000000\r\n\r\nhalf a body", 400, b"<Code>RequestTimeout</Code>"),
    ):
        with socket.create_connection((host, port)) as s:
            t0 = time.monotonic()
            s.sendall(request.encode())
            s.settimeout(READ_TIMEOUT + 10)
            data = _read_all(s)  # the server answers and closes
            elapsed = time.monotonic() - t0
        assert data, "no answer to a stalled upload"
        assert int(data.split()[1]) == want and code in data, data[:400]
        assert READ_TIMEOUT - 0.5 <= elapsed < READ_TIMEOUT + 3, elapsed
    # the stalled key was never written, and the server still answers
    with pytest.raises(ClientError):
        srv.client("s3").head_object(Bucket=bucket, Key="stalled.bin")
    assert raw(srv, "GET", "/_localmaker/health")[0] == 200


# ---- quotas -------------------------------------------------------------------------------------------------
def test_instance_counts_over_the_quota_are_resource_limit_exceeded(srv: Server, bucket: str) -> None:
    sm = srv.client("sagemaker")

    def limit_error(fn: Any, **kw: Any) -> str:
        with pytest.raises(ClientError) as e:
            fn(**kw)
        assert e.value.response["Error"]["Code"] == "ResourceLimitExceeded"
        return e.value.response["Error"]["Message"]

    from tests.localmaker.conftest import training_request

    req = training_request(unique("edge-quota"), bucket, count=9)
    assert limit_error(sm.create_training_job, **req) == (
        "The account-level service limit 'ml.m5.large for training job usage' is 8 Instances, with current "
        "utilization of 0 Instances and a request delta of 9 Instances. Please use AWS Service Quotas to request "
        "an increase for this quota.")
    with pytest.raises(ClientError) as e:
        sm.describe_training_job(TrainingJobName=req["TrainingJobName"])
    assert e.value.response["Error"]["Code"] == "ValidationException"  # nothing was created

    proc = processing_request(unique("edge-quota"), Path("/nonexistent/never"))
    proc["ProcessingResources"]["ClusterConfig"].update(InstanceCount=12, InstanceType="ml.c5.xlarge")
    assert "'ml.c5.xlarge for processing job usage' is 8 Instances" in limit_error(sm.create_processing_job, **proc)

    msg = limit_error(
        sm.create_transform_job, TransformJobName=unique("edge-quota"), ModelName="m",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/x"}}},
        TransformOutput={"S3OutputPath": f"s3://{bucket}/out"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 9},
    )
    assert "'ml.m5.large for transform job usage'" in msg and "request delta of 9 Instances" in msg

    tuning_def = {
        "AlgorithmSpecification": {"TrainingImage": TINY, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/tuning"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 9, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    msg = limit_error(
        sm.create_hyper_parameter_tuning_job, HyperParameterTuningJobName=unique("eq"),
        HyperParameterTuningJobConfig={"Strategy": "Random",
                                       "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1}},
        TrainingJobDefinition=tuning_def,
    )
    assert "for training job usage' is 8 Instances" in msg

    # --max-instances-per-variant 3 on this server
    sm.create_model(ModelName="edge-model", PrimaryContainer={"Image": TINY}, ExecutionRoleArn=ROLE)
    msg = limit_error(
        sm.create_endpoint_config, EndpointConfigName=unique("edge-quota"),
        ProductionVariants=[{"VariantName": "a", "ModelName": "edge-model", "InitialInstanceCount": 4,
                             "InstanceType": "ml.m5.large"}],
    )
    assert msg.startswith("The account-level service limit 'ml.m5.large for endpoint usage' is 3 Instances")
    sm.create_endpoint_config(EndpointConfigName=unique("edge-ok"), ProductionVariants=[
        {"VariantName": "a", "ModelName": "edge-model", "InitialInstanceCount": 3, "InstanceType": "ml.m5.large"}])


def test_bound_to_every_address_its_jobs_call_it_on_loopback(tmp_path: Path) -> None:
    """compose binds 0.0.0.0; the jobs' AWS_ENDPOINT_URL must still be a Host the edge serves."""
    srv = start_server(tmp_path / "home", "--host", "0.0.0.0", "--allow-remote")
    try:
        marker = tmp_path / "endpoint-url"
        req = processing_request(unique("edge-env"), marker)
        req["AppSpecification"]["ContainerEntrypoint"] = ["sh", "-c", f'echo "$AWS_ENDPOINT_URL" > {marker}']
        port = urllib.parse.urlsplit(srv.url).port
        sm = boto3.client("sagemaker", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="a", aws_secret_access_key="b")
        sm.create_processing_job(**req)
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.read_text().strip() == f"http://127.0.0.1:{port}"
    finally:
        srv.stop()


# ---- startup ------------------------------------------------------------------------------------------------
def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALMAKER_"))}
    return subprocess.run([sys.executable, "-m", "localmaker", "--port", "0", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_an_unusable_home_is_a_one_line_error(tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    for home in (a_file / "sub", a_file, Path("/proc/localmaker-home")):
        r = _run_cli("--home", str(home))
        assert r.returncode == 2, (home, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("localmaker: error: "), r.stderr
        assert "Traceback" not in r.stderr and str(home) in lines[0]


def test_a_bad_cors_origin_is_a_startup_error(tmp_path: Path) -> None:
    r = _run_cli("--home", str(tmp_path), "--cors-origin", "*")
    assert r.returncode == 2 and r.stderr.startswith("localmaker: error: not an origin"), r.stderr


def test_hosts_and_origins_come_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALMAKER_ALLOW_HOSTS", "localmaker, lm.internal")
    monkeypatch.setenv("LOCALMAKER_CORS_ORIGINS", "http://a.example")
    args = parse_args(["--allow-host", "x.example", "--cors-origin", "https://b.example:8443",
                       "--max-instances-per-job", "2"])
    assert args.allow_host == ["localmaker", "lm.internal", "x.example"]
    assert args.cors_origin == ["http://a.example", "https://b.example:8443"]
    assert args.max_instances_per_job == 2 and args.max_instances_per_variant == 8
