"""Asynchronous inference: ``InvokeEndpointAsync`` for endpoints whose config has ``AsyncInferenceConfig``.

As SageMaker Asynchronous Inference does it:

* the request is accepted with 202 and an ``InferenceId`` before anything runs; the payload is the S3
  object at ``InputLocation`` (read when the request is processed) or the inline ``Body``;
* requests wait in a queue per endpoint; each instance of the endpoint takes at most
  ``ClientConfig.MaxConcurrentInvocationsPerInstance`` of them at a time;
* a request still queued ``RequestTTLSeconds`` after it arrived expires (``invocationStatus: Expired``);
  a container taking longer than ``InvocationTimeoutSeconds`` fails it;
* the container is invoked like ``InvokeEndpoint`` (content type, accept, custom attributes);
* the result goes to ``{S3OutputPath}/{S3OutputPathExtension}/{inference-id}.out`` (or ``Filename``), a
  failure's body to ``{S3FailurePath}/.../{inference-id}-error.out``, and SNS gets AWS's
  ``InferenceResult`` notification on ``SuccessTopic`` / ``ErrorTopic``.

The queue lives in memory: requests still queued or running when localmaker stops are dropped (no
output, no notification), where AWS would keep them.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import re
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import controlplane
from . import hosting as hosting_mod
from .aws import ACCOUNT
from .context import Ctx
from .errors import AwsError
from .hosting import HostingManager, Instance
from .service import BaseService
from .validation import validate

log = logging.getLogger("localmaker.async")

#: AWS: "If no value is provided, SageMaker chooses an optimal value." localmaker's choice:
DEFAULT_MAX_CONCURRENT = 4
DEFAULT_REQUEST_TTL = 21600  # 6 h (botocore's documented default)
DEFAULT_INVOCATION_TIMEOUT = 900  # 15 min (botocore's documented default)
#: an inline Body may be up to 128,000 bytes; an S3 input up to 1 GB (AWS's documented limits)
INLINE_MAX = 128000
MAX_ASYNC_PAYLOAD = 1024**3
_SAFE_KEY = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HTTPS_S3 = (
    re.compile(r"^https://(?P<bucket>[^./]+(?:\.[^./]+)*?)\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?/(?P<key>.+)$"),
    re.compile(r"^https://s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?/(?P<bucket>[^/]+)/(?P<key>.+)$"),
)


def _iso_ms(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of an ``s3://`` URI or an S3 ``https://`` URL; ValueError otherwise."""
    if uri.startswith("s3://"):
        bucket, _, key = uri[5:].partition("/")
        if bucket and key:
            return bucket, key
        raise ValueError(uri)
    for rx in _HTTPS_S3:
        m = rx.match(uri)
        if m:
            return m.group("bucket"), urllib.parse.unquote(m.group("key"))
    raise ValueError(uri)


def _join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for p in parts:
        if p:
            out += "/" + p.strip("/")
    return out


@dataclass
class Job:
    inference_id: str
    endpoint: str
    input_location: str | None
    body: bytes | None
    headers: dict[str, str]
    output_uri: str
    failure_uri: str | None
    timeout: float
    ttl: float
    notification: dict[str, Any]
    received: float = field(default_factory=time.time)
    enqueued: float = field(default_factory=time.monotonic)


class AsyncInference(BaseService):
    """The queue and its workers (one dispatcher thread; one thread per running request). Its one operation,
    InvokeEndpointAsync, comes in on the runtime route (:meth:`submit`), not as a JSON operation."""

    api = "sagemaker-runtime"

    def __init__(self, ctx: Ctx, hosting: HostingManager) -> None:
        self.ctx = ctx
        self.hosting = hosting
        self._queues: dict[str, collections.deque[Job]] = {}
        self._inflight: dict[int, int] = {}  # id(Instance) -> requests running on it
        self._cond = threading.Condition()
        self._closing = False
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._dispatcher = threading.Thread(target=self._dispatch, name="async-inference", daemon=True)
        self._dispatcher.start()

    # ---- the API ----------------------------------------------------------------------------------------
    def submit(self, endpoint: str, params: dict[str, Any], body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        """Validate and queue one InvokeEndpointAsync request; the 202 answer."""
        op = controlplane.service_model("sagemaker-runtime").operation_model("InvokeEndpointAsync")
        shown = {"EndpointName": endpoint, **{k: v for k, v in params.items() if v is not None}}
        if body:
            shown["Body"] = body
        try:
            validate(op.input_shape, shown)
        except AwsError as err:
            raise AwsError("ValidationError", err.message) from None
        if body and len(body) > INLINE_MAX:  # AsyncBodyBlob's max (the shape validator skips blob lengths)
            raise AwsError("ValidationError", "1 validation error detected: Value at 'body' failed to satisfy "
                                              f"constraint: Member must have length less than or equal to {INLINE_MAX}")
        doc = self.ctx.store.get("Endpoint", endpoint)
        if doc is None:
            raise AwsError("ValidationError", f"Endpoint {endpoint} of account {ACCOUNT} not found.")
        cfg = self.ctx.store.get("EndpointConfig", doc["EndpointConfigName"]) or {}
        acfg = cfg.get("AsyncInferenceConfig")
        if not acfg:
            raise AwsError(
                "ValidationError",
                f"Endpoint {endpoint} of account {ACCOUNT} is not an asynchronous inference endpoint: its endpoint "
                f"configuration {doc['EndpointConfigName']} has no AsyncInferenceConfig. Use InvokeEndpoint.",
            )
        if doc["EndpointStatus"] not in ("InService", "Updating", "SystemUpdating", "RollingBack"):
            raise AwsError(
                "ValidationError",
                f"Endpoint {endpoint} of account {ACCOUNT} is in status {doc['EndpointStatus']}; "
                "it must be InService to be invoked.",
            )
        location = params.get("InputLocation")
        if bool(location) == bool(body):
            raise AwsError(
                "ValidationError",
                "Provide exactly one of InputLocation and Body: they are mutually exclusive."
                if location else "InputLocation or Body is required.",
            )
        if location:
            try:
                split_s3(location)
            except ValueError:
                raise AwsError(
                    "ValidationError",
                    f"InputLocation {location} is not an S3 object URI (s3://bucket/key or an S3 https:// URL).",
                ) from None
        given = params.get("InferenceId")
        inference_id = given or str(uuid.uuid4())
        out_cfg = acfg.get("OutputConfig") or {}
        ext = params.get("S3OutputPathExtension") or ""
        stem = inference_id if _SAFE_KEY.match(inference_id) else str(uuid.uuid5(uuid.NAMESPACE_URL, inference_id))
        output_uri = _join(out_cfg["S3OutputPath"], ext, params.get("Filename") or f"{stem}.out")
        failure_uri = _join(out_cfg["S3FailurePath"], ext, f"{stem}-error.out") if out_cfg.get("S3FailurePath") else None
        headers = {
            "Content-Type": params.get("ContentType") or "application/octet-stream",
            "Accept": params.get("Accept") or "",
            "X-Amzn-SageMaker-Custom-Attributes": params.get("CustomAttributes") or "",
            "X-Amzn-SageMaker-Inference-Id": given or "",
        }
        job = Job(
            inference_id=inference_id,
            endpoint=endpoint,
            input_location=location,
            body=body or None,
            headers=headers,
            output_uri=output_uri,
            failure_uri=failure_uri,
            timeout=float(params.get("InvocationTimeoutSeconds") or DEFAULT_INVOCATION_TIMEOUT),
            ttl=float(params.get("RequestTTLSeconds") or DEFAULT_REQUEST_TTL),
            notification=dict(out_cfg.get("NotificationConfig") or {}),
        )
        with self._cond:
            if self._closing:
                raise AwsError("ServiceUnavailable", "The service is unavailable: localmaker is stopping.", status=503)
            self._queues.setdefault(endpoint, collections.deque()).append(job)
            self._cond.notify_all()
        out = {"Content-Type": "application/json", "X-Amzn-SageMaker-OutputLocation": output_uri}
        if failure_uri:
            out["X-Amzn-SageMaker-FailureLocation"] = failure_uri
        return 202, out, json.dumps({"InferenceId": inference_id}).encode()

    def queued(self, endpoint: str) -> int:
        with self._cond:
            return len(self._queues.get(endpoint, ()))

    # ---- dispatching ------------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        with self._cond:
            while not self._closing:
                for endpoint in list(self._queues):
                    self._dispatch_endpoint(endpoint)
                self._cond.wait(0.2)

    def _dispatch_endpoint(self, endpoint: str) -> None:
        """Start what can start on ``endpoint`` (holds the condition's lock)."""
        q = self._queues.get(endpoint)
        if not q:
            self._queues.pop(endpoint, None)
            return
        now = time.monotonic()
        for job in [j for j in q if now - j.enqueued > j.ttl]:
            q.remove(job)
            self._spawn(self._expire, job)
        if not q:
            return
        doc = self.ctx.store.get("Endpoint", endpoint)
        if doc is None:  # deleted with requests waiting
            while q:
                job = q.popleft()
                self._spawn(self._fail, job, f"ClientError: Endpoint {endpoint} was deleted before the request ran.",
                            None, None)
            return
        fleet = self.hosting.current_fleet(endpoint)
        if fleet is None or fleet.stopping:
            return  # creating, updating or being restored: wait
        per_instance = int(((fleet.config.get("AsyncInferenceConfig") or {}).get("ClientConfig") or {}).get(
            "MaxConcurrentInvocationsPerInstance") or DEFAULT_MAX_CONCURRENT)
        while q:
            free = [(v, i) for v, insts in fleet.variants.items() for i in insts
                    if i.in_rotation() and self._inflight.get(id(i), 0) < per_instance]
            if not free:
                return
            weights = [max(fleet.weights.get(v, 0.0), 1e-9) for v, _ in free]
            variant, inst = random.choices(free, weights)[0]
            job = q.popleft()
            self._inflight[id(inst)] = self._inflight.get(id(inst), 0) + 1
            self._spawn(self._run, job, fleet, variant, inst)

    def _spawn(self, fn: Any, *args: Any) -> None:
        threading.Thread(target=fn, args=args, name="async-inference-job", daemon=True).start()

    # ---- one request ----------------------------------------------------------------------------------------
    def _run(self, job: Job, fleet: hosting_mod.Fleet, variant: str, inst: Instance) -> None:
        try:
            self._process(job, fleet, variant, inst)
        except Exception:  # noqa: BLE001 - a failed notification must not kill the worker accounting
            log.exception("async inference %s on %s failed", job.inference_id, job.endpoint)
        finally:
            with self._cond:
                n = self._inflight.get(id(inst), 1) - 1
                if n <= 0:
                    self._inflight.pop(id(inst), None)
                else:
                    self._inflight[id(inst)] = n
                self._cond.notify_all()

    def _process(self, job: Job, fleet: hosting_mod.Fleet, variant: str, inst: Instance) -> None:
        if self._closing:
            return
        if job.body is not None:
            payload = job.body
        else:
            assert job.input_location is not None
            bucket, key = split_s3(job.input_location)
            try:
                obj = self._client("s3").get_object(Bucket=bucket, Key=key)
                size = int(obj.get("ContentLength") or 0)
                if size > MAX_ASYNC_PAYLOAD:
                    obj["Body"].close()
                    raise ValueError(f"the input is {size} bytes; the limit is {MAX_ASYNC_PAYLOAD} bytes (1 GB)")
                payload = obj["Body"].read()
            except Exception as exc:  # noqa: BLE001 - reported to the client as the request's failure
                code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
                self._fail(job, f"ClientError: Could not download the input from {job.input_location} "
                                f"({code}: {exc}).", None, None)
                return
        try:
            _, out_headers, data = self.hosting.invoke_on(job.endpoint, fleet, variant, inst, payload, job.headers,
                                                          job.timeout)
        except AwsError as err:
            if err.code == "ServiceUnavailable":  # the instance went down before taking it: back to the queue front
                with self._cond:
                    if not self._closing:
                        self._queues.setdefault(job.endpoint, collections.deque()).appendleft(job)
                        self._cond.notify_all()
                return
            if err.code == "ModelError" and isinstance(err.extra.get("OriginalStatusCode"), int) \
                    and err.extra.get("OriginalMessage") != "timeout":
                status = int(err.extra["OriginalStatusCode"])
                kind = "client" if status < 500 else "server"
                reason = (f"ClientError: Received {kind} error ({status}) from model. See the SageMaker Endpoint "
                          "logs in your account for more information.")
                self._fail(job, reason, str(err.extra.get("OriginalMessage", "")).encode(), "text/plain")
            elif err.code == "ModelError" and err.extra.get("OriginalMessage") == "timeout":
                self._fail(job, f"ClientError: The model did not respond within InvocationTimeoutSeconds "
                                f"({job.timeout:g} s).", None, None)
            else:
                self._fail(job, f"{err.code}: {err.message}", None, None)
            return
        if self._closing:  # the container was stopped under the request: dropped, like the queued ones
            return
        ctype = out_headers.get("Content-Type", "application/octet-stream")
        bucket, key = split_s3(job.output_uri)
        try:
            self._client("s3").put_object(Bucket=bucket, Key=key, Body=data, ContentType=ctype)
        except Exception as exc:  # noqa: BLE001
            self._fail(job, f"ClientError: Could not upload the output to {job.output_uri} ({exc}).", None, None)
            return
        topic = job.notification.get("SuccessTopic")
        if topic:
            response = {"contentType": ctype, "outputLocation": job.output_uri}
            self._notify(topic, self._event(job, "Completed", response_parameters=response))

    def _expire(self, job: Job) -> None:
        self._fail(job, f"Request expired: it waited in the queue longer than RequestTTLSeconds ({job.ttl:g} s).",
                   None, None, status="Expired")

    def _fail(self, job: Job, reason: str, body: bytes | None, ctype: str | None, status: str = "Failed") -> None:
        if self._closing:
            log.info("async inference %s on %s dropped at shutdown (%s)", job.inference_id, job.endpoint, reason)
            return
        written = None
        if job.failure_uri:
            bucket, key = split_s3(job.failure_uri)
            try:
                self._client("s3").put_object(Bucket=bucket, Key=key, Body=body if body is not None else reason.encode(),
                                              ContentType=ctype or "text/plain")
                written = job.failure_uri
            except Exception as exc:  # noqa: BLE001
                log.warning("async inference %s: writing %s failed: %s", job.inference_id, job.failure_uri, exc)
        log.info("async inference %s on %s %s: %s", job.inference_id, job.endpoint, status.lower(), reason)
        topic = job.notification.get("ErrorTopic")
        if topic:
            response = {"contentType": ctype or "text/plain", "failureLocation": written} if written else None
            self._notify(topic, self._event(job, status, failure_reason=reason, response_parameters=response))

    def _event(self, job: Job, status: str, failure_reason: str | None = None,
               response_parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"endpointName": job.endpoint}
        if job.headers.get("Content-Type") and job.headers["Content-Type"] != "application/octet-stream":
            request["contentType"] = job.headers["Content-Type"]
        if job.headers.get("Accept"):
            request["accept"] = job.headers["Accept"]
        if job.headers.get("X-Amzn-SageMaker-Custom-Attributes"):
            request["customAttributes"] = job.headers["X-Amzn-SageMaker-Custom-Attributes"]
        if job.input_location:
            request["inputLocation"] = job.input_location
        event: dict[str, Any] = {
            "awsRegion": self.ctx.region,
            "eventTime": _iso_ms(time.time()),
            "receivedTime": _iso_ms(job.received),
            "invocationStatus": status,
        }
        if failure_reason:
            event["failureReason"] = failure_reason
        event["requestParameters"] = request
        if response_parameters:
            event["responseParameters"] = response_parameters
        event.update({"inferenceId": job.inference_id, "eventVersion": "1.0", "eventSource": "aws:sagemaker",
                      "eventName": "InferenceResult"})
        return event

    def _notify(self, topic: str, event: dict[str, Any]) -> None:
        try:
            self._client("sns").publish(TopicArn=topic, Message=json.dumps(event))
        except Exception as exc:  # noqa: BLE001 - AWS drops a notification it cannot publish; so do we, loudly
            log.warning("async inference %s: publishing to %s failed: %s", event.get("inferenceId"), topic, exc)

    def _client(self, service: str) -> Any:
        """One boto3 client per service against localmaker itself (calls on a client are thread-safe;
        creating one is not, hence the lock)."""
        with self._clients_lock:
            client = self._clients.get(service)
            if client is None:
                import boto3
                from botocore.config import Config

                client = boto3.session.Session().client(
                    service, endpoint_url=self.ctx.endpoint_url, region_name=self.ctx.region,
                    aws_access_key_id="localmaker", aws_secret_access_key="localmaker",
                    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3},
                                  max_pool_connections=64),
                )
                self._clients[service] = client
            return client

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def begin_shutdown(self) -> None:
        with self._cond:
            self._closing = True
            dropped = sum(len(q) for q in self._queues.values())
            self._queues.clear()
            self._cond.notify_all()
        if dropped:
            log.warning("localmaker is stopping: dropped %d queued asynchronous inference requests", dropped)

    def shutdown(self) -> None:
        self.begin_shutdown()
        self._dispatcher.join(5)
