"""The edge: one port that answers SageMaker, SageMaker Runtime, CloudWatch Logs and (via moto) the rest.

Routing follows how botocore addresses each service when ``AWS_ENDPOINT_URL`` points here:

* ``X-Amz-Target: SageMaker.<Op>`` (JSON 1.1)            -> the services' operations (:class:`JsonApi`)
* ``POST /endpoints/<name>/invocations`` (rest-json)     -> the hosting runtime
* ``POST /endpoints/<name>/async-invocations``            -> :class:`AsyncInference` (InvokeEndpointAsync)
* ``POST /endpoints/<name>/invocations-response-stream``  -> the hosting runtime, as an event stream
* ``X-Amz-Target: Logs_20140328.<Op>`` (JSON 1.1)         -> :class:`LogsService`
* anything else (S3, SNS, STS, IAM, ...)                  -> moto's server app, except that a request
  signed for SageMaker (any ``sagemaker*`` signing name) never reaches moto's SageMaker backends: an
  operation localmaker does not implement gets ``UnknownOperationException`` naming it

Every request first passes :class:`localmaker.edge.EdgeGuard` (Host, Origin/CORS, SigV4-shaped
authentication, Content-Length and size limits, the socket read timeout).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import re
import socket
import struct
import threading
import time
import urllib.parse
import uuid
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from . import edge, homelock, reaper, s3durable
from .async_inference import AsyncInference
from .aws import DEFAULT_REGION
from .builtins import MANIFEST as BUILTINS_MANIFEST
from .context import Ctx, Settings
from .controlplane import TagService
from .endpoints import HostingService
from .errors import AwsError
from .faults import Faults
from .hosting import HostingManager, StreamFailure
from .images import ImageRegistry
from .logs import LogsService, LogStore
from .metrics import MetricsService
from .processing import ProcessingService
from .registry import RegistryService
from .sagemaker_api import JsonApi
from .service import Service
from .store import Store
from .training import TrainingService
from .transform import TransformService
from .tuning import TuningService

log = logging.getLogger("localmaker")

JSON_TYPE = "application/x-amz-json-1.1"
# a clean stop waits at most this long for runners (their children get Settings.stop_grace each)
STOP_DEADLINE = 30.0

StartResponse = Callable[..., Any]


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


class LocalMaker:
    """A running localmaker: construct, :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        home: Path,
        host: str = "127.0.0.1",
        port: int = 4566,
        images: Iterable[Path] = (),
        region: str = DEFAULT_REGION,
        settings: Settings | None = None,
        allow_remote: bool = False,
    ) -> None:
        if not allow_remote and not is_loopback(host):
            raise ValueError(
                f"refusing to listen on non-loopback address {host!r}: localmaker runs code on request; "
                "pass --allow-remote if you really mean to expose it"
            )
        self._faults = Faults.parse((settings or Settings()).faults)  # ValueError: a bad --fault
        self.home = Path(home).resolve()
        _prepare_home(self.home)
        # one server per home (a second one gets HomeInUse naming this one); then kill what a
        # killed predecessor on this home left running
        self._home_lock = homelock.HomeLock(self.home)
        reaper.reap(self.home)
        self.host, self.port = host, port
        self._policy = edge.EdgePolicy.build(settings or Settings(), host)  # ValueError: a bad --cors-origin
        store = Store(self.home / "state.db")
        self.ctx = Ctx(
            home=self.home,
            region=region,
            store=store,
            logs=LogStore(self.home / "logs", region),
            images=ImageRegistry([BUILTINS_MANIFEST, *(Path(p) for p in images)]),
            settings=settings or Settings(),
        )
        self.hosting = HostingManager(self.ctx)
        self.training = TrainingService(self.ctx)
        self.processing = ProcessingService(self.ctx)
        self.transform = TransformService(self.ctx)
        self.tuning = TuningService(self.ctx, self.training)
        self.async_inference = AsyncInference(self.ctx, self.hosting)
        # Every resource kind, each asked the same questions (service.Service). The order is the order
        # they hear of a shutdown: tuning before training (a tuner must not read its trials' shutdown
        # failures as results and launch more), hosting last.
        self.services: list[Service] = [
            self.tuning,
            self.transform,
            self.processing,
            self.training,
            self.async_inference,
            HostingService(self.ctx, self.hosting),
            RegistryService(self.ctx),
            TagService(self.ctx),
            LogsService(self.ctx.logs),
            MetricsService(self.home / "metrics", region),
        ]
        self.sagemaker = JsonApi("sagemaker", self.services, self.ctx.settings)
        self.logs_api = JsonApi("logs", self.services, self.ctx.settings,
                            unsupported="Operation {} is not supported by localmaker.")
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self._moto = DomainDispatcherApplication(create_backend_app)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    @property
    def internal_url(self) -> str:
        """The URL localmaker's own clients and jobs use: loopback when bound to every address."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://{host if ':' not in host else f'[{host}]'}:{self.port}"

    # ---- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._server = make_server(
            self.host, self.port, edge.EdgeGuard(self.wsgi, self._policy), threaded=True,
            request_handler=edge.request_handler(self.ctx.settings.read_timeout),
        )
        self.port = self._server.server_port
        self.ctx.endpoint_url = self.internal_url
        self._home_lock.announce(self.url)
        # every acknowledged S3 write is on disk before its response (s3durable); load them back
        self._moto, n = s3durable.attach(self.home / "s3", self._moto)
        if n:
            log.info("restored %d S3 objects from %s", n, self.home / "s3")
        for svc in self.services:  # e.g. jobs that were running when the last server died become Failed
            svc.recover()
        self._thread = threading.Thread(target=self._server.serve_forever, name="edge", daemon=True)
        self._thread.start()
        for svc in self.services:  # e.g. endpoints' processes come back (they read S3 through the edge)
            svc.resume()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        # Every runner stops at once (each SIGTERMs its children and waits out their grace), so a
        # clean stop takes the longest shutdown, not their sum. Hosting flushes data capture into
        # S3 while the edge still serves, so the edge closes only after all of them.
        # First every service learns it is a shutdown (in the order of self.services), then all wait in parallel.
        for svc in self.services:
            svc.begin_shutdown()
        threads = [threading.Thread(target=_logged(svc.shutdown), daemon=True, name="localmaker-stop")
                   for svc in self.services]
        for t in threads:
            t.start()
        deadline = time.monotonic() + STOP_DEADLINE
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            log.warning("some runners did not stop within %.0f s; closing anyway", STOP_DEADLINE)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.ctx.store.close()
        self._home_lock.release()

    # ---- WSGI -------------------------------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        path = environ.get("PATH_INFO", "")
        if target.startswith("SageMaker."):
            return self._json_api(environ, start_response, target.split(".", 1)[1], self.sagemaker.handle)
        if target.startswith("Logs_20140328."):
            return self._json_api(environ, start_response, target.split(".", 1)[1], self.logs_api.handle)
        endpoint = edge.invocation_endpoint(environ)
        if endpoint is not None:
            return self._invoke(environ, start_response, endpoint)
        route = _runtime_route(environ)
        if route is not None:
            op, endpoint = route
            if op == "async-invocations":
                return self._invoke_async(environ, start_response, endpoint)
            return self._invoke_stream(environ, start_response, endpoint)
        if path == "/_localmaker/health":
            return _respond(start_response, 200, {"Content-Type": "application/json"}, b'{"status": "ok"}')
        if _signing_service(environ).startswith("sagemaker") or _MOTO_SELF_PATH.match(path):
            return self._unknown_sagemaker_operation(environ, start_response)
        return self._moto_shaped(environ, start_response)

    def _unknown_sagemaker_operation(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """A request signed for SageMaker that localmaker does not implement: never moto's canned answer."""
        method = environ.get("REQUEST_METHOD", "")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        kind = "json" if target else "runtime"
        named = _sagemaker_operation(method, edge.raw_path(environ), target)
        if named is not None and named[0] not in _SERVED_RUNTIME_OPERATIONS:
            op, service = named
            return edge.error_response(environ, start_response, 400, "UnknownOperationException",
                                       f"The operation {op} ({service}) is not supported by localmaker.", kind)
        return edge.error_response(
            environ, start_response, 404, "UnknownOperationException",
            f"Unknown operation: localmaker serves no SageMaker operation at {method} {edge.raw_path(environ)}"
            + (f" (X-Amz-Target {target})" if target else "") + ".", kind)

    def _moto_shaped(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """moto's answer, except that its Flask HTML error pages become AWS-shaped errors."""
        captured: list[tuple[str, list[tuple[str, str]], Any]] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured.append((status, headers, exc_info))

            def write(data: bytes) -> None:  # Flask never uses write(); WSGI requires that it exists
                raise RuntimeError("write() is not supported behind localmaker's edge")

            return write

        try:
            body = self._moto(environ, capture)
        except Exception:  # noqa: BLE001 - moto lets some exceptions escape Flask: answer, keep serving
            log.warning("moto failed on %s %s (target %r)", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
                        environ.get("HTTP_X_AMZ_TARGET"), exc_info=True)
            body, captured[:] = [b""], [("500 INTERNAL SERVER ERROR", [("Content-Type", "text/html")], None)]
        status, headers, exc_info = captured[-1]
        code = int(status.split(None, 1)[0])
        ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
        if code < 400 or "text/html" not in ctype:
            start_response(status, headers, exc_info)
            return body
        if hasattr(body, "close"):
            body.close()
        kind = edge.request_kind(environ)
        if code >= 500:
            log.warning("moto answered %s to %s %s (target %r); see moto's log above", status,
                      environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), environ.get("HTTP_X_AMZ_TARGET"))
            err = "InternalFailure" if kind in ("json", "runtime") else "InternalError"
            message = "localmaker could not handle this request (moto failed: unsupported operation or malformed request)."
        else:
            err = {"json": "UnknownOperationException", "runtime": "UnknownOperationException",
                   "query": "InvalidAction"}.get(kind) or {404: "NotFound", 405: "MethodNotAllowed"}.get(code, "InvalidRequest")
            message = f"localmaker does not serve {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')} ({status})."
        return edge.error_response(environ, start_response, code, err, message, kind)

    def _json_api(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        action: str,
        handler: Callable[[str, dict[str, Any]], dict[str, Any]],
    ) -> Iterable[bytes]:
        try:
            body = _read_body(environ, self.ctx.settings.max_api_body, "RequestEntityTooLargeException")
            params = _parse_json(body)
            self._faults.check(action)
            result = handler(action, params)
            payload = json.dumps(result).encode()
            return _respond(start_response, 200, {"Content-Type": JSON_TYPE}, payload)
        except AwsError as err:
            doc = {"__type": err.code, "message": err.message, **err.extra}
            return _respond(
                start_response, err.status, {"Content-Type": JSON_TYPE, "x-amzn-ErrorType": err.code}, json.dumps(doc).encode()
            )
        except RecursionError:  # a structure nested deeper than the checks below can walk
            doc = {"__type": "SerializationException", "message": "Request body is nested too deeply."}
            return _respond(start_response, 400, {"Content-Type": JSON_TYPE, "x-amzn-ErrorType": doc["__type"]},
                            json.dumps(doc).encode())
        except Exception as exc:  # noqa: BLE001 - answer like AWS's InternalFailure, and keep serving
            log.exception("%s failed", action)
            doc = {"__type": "InternalFailure", "message": f"localmaker internal error: {type(exc).__name__}: {exc}"}
            return _respond(start_response, 500, {"Content-Type": JSON_TYPE}, json.dumps(doc).encode())

    def _runtime(self, start_response: StartResponse, endpoint: str,
                 call: Callable[[], tuple[int, dict[str, str], bytes]]) -> Iterable[bytes]:
        """A runtime operation's answer: ``call()``'s, or its error in the runtime's error shape."""
        try:
            _check_endpoint_name(endpoint)
            return _respond(start_response, *call())
        except AwsError as err:
            return _runtime_error(start_response, err)

    def _invoke(self, environ: dict[str, Any], start_response: StartResponse, endpoint: str) -> Iterable[bytes]:
        headers = _container_headers(environ, "HTTP_ACCEPT")
        return self._runtime(start_response, endpoint, lambda: self.hosting.invoke(
            endpoint, _read_body(environ, self.ctx.settings.max_payload, "ValidationError"), headers))

    def _invoke_async(self, environ: dict[str, Any], start_response: StartResponse, endpoint: str) -> Iterable[bytes]:
        """InvokeEndpointAsync: validated and queued; 202 with the InferenceId and the output locations."""

        def submit() -> tuple[int, dict[str, str], bytes]:
            params: dict[str, Any] = {
                "ContentType": environ.get("HTTP_X_AMZN_SAGEMAKER_CONTENT_TYPE"),
                "Accept": environ.get("HTTP_X_AMZN_SAGEMAKER_ACCEPT"),
                "CustomAttributes": environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"),
                "InferenceId": environ.get("HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID"),
                "InputLocation": environ.get("HTTP_X_AMZN_SAGEMAKER_INPUTLOCATION"),
                "S3OutputPathExtension": environ.get("HTTP_X_AMZN_SAGEMAKER_S3OUTPUTPATHEXTENSION"),
                "Filename": environ.get("HTTP_X_AMZN_SAGEMAKER_FILENAME"),
                "RequestTTLSeconds": _int_header(environ, "HTTP_X_AMZN_SAGEMAKER_REQUESTTTLSECONDS", "RequestTTLSeconds"),
                "InvocationTimeoutSeconds": _int_header(environ, "HTTP_X_AMZN_SAGEMAKER_INVOCATIONTIMEOUTSECONDS",
                                                        "InvocationTimeoutSeconds"),
            }
            body = _read_body(environ, self.ctx.settings.max_payload, "ValidationError")
            return self.async_inference.submit(endpoint, params, body)

        return self._runtime(start_response, endpoint, submit)

    def _invoke_stream(self, environ: dict[str, Any], start_response: StartResponse, endpoint: str) -> Iterable[bytes]:
        """InvokeEndpointWithResponseStream: the container's chunks as ``PayloadPart`` events."""
        headers = _container_headers(environ, "HTTP_X_AMZN_SAGEMAKER_ACCEPT")  # its Accept is X-Amzn-SageMaker-Accept
        try:
            _check_endpoint_name(endpoint)
            body = _read_body(environ, self.ctx.settings.max_payload, "ValidationError")
            out_headers, chunks = self.hosting.invoke_stream(endpoint, body, headers)
        except AwsError as err:
            return _runtime_error(start_response, err)
        hdrs = [("Content-Type", "application/vnd.amazon.eventstream"), *out_headers.items(),
                ("x-amzn-RequestId", _request_id())]
        start_response("200 OK", hdrs)

        def events() -> Iterable[bytes]:
            try:
                for chunk in chunks:
                    yield event_message([(":event-type", "PayloadPart"), (":content-type", "application/octet-stream"),
                                         (":message-type", "event")], chunk)
            except StreamFailure as exc:
                yield _exception_event("ModelStreamError", {"Message": exc.message, "ErrorCode": exc.code})
            except Exception as exc:  # noqa: BLE001 - the stream has started: report it in the stream
                log.exception("streaming from endpoint %s failed", endpoint)
                yield _exception_event("InternalStreamFailure", {"Message": f"{type(exc).__name__}: {exc}"})
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()

        return events()


def _container_headers(environ: dict[str, Any], accept_key: str) -> dict[str, str]:
    """The request headers a runtime invocation passes on to the container (``accept_key``: where the
    operation carries Accept; InvokeEndpoint uses ``Accept``, the streaming one ``X-Amzn-SageMaker-Accept``)."""
    return {
        "Content-Type": environ.get("CONTENT_TYPE", ""),
        "Accept": environ.get(accept_key, ""),
        "X-Amzn-SageMaker-Custom-Attributes": environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES", ""),
        "X-Amzn-SageMaker-Target-Variant": environ.get("HTTP_X_AMZN_SAGEMAKER_TARGET_VARIANT", ""),
        "X-Amzn-SageMaker-Inference-Id": environ.get("HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID", ""),
    }


def _runtime_error(start_response: StartResponse, err: AwsError) -> list[bytes]:
    doc = {"message": err.message, "ErrorCode": err.code, **err.extra}
    return _respond(
        start_response,
        err.status,
        {"Content-Type": "application/json", "x-amzn-ErrorType": err.code},
        json.dumps(doc).encode(),
    )


def _check_endpoint_name(endpoint: str) -> None:
    if not edge.ENDPOINT_NAME_RE.match(endpoint):
        raise AwsError(
            "ValidationError",
            f"1 validation error detected: Value '{endpoint}' at 'endpointName' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {edge.ENDPOINT_NAME_PATTERN}",
        )


def _int_header(environ: dict[str, Any], key: str, member: str) -> int | None:
    raw = environ.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise AwsError("ValidationError", f"1 validation error detected: Value '{raw}' at "
                                          f"'{member[:1].lower() + member[1:]}' failed to satisfy constraint: "
                                          "Member must be an integer") from None


# ---- runtime routes and SageMaker-signed requests ----------------------------------------------------------
_SERVED_RUNTIME_OPERATIONS = ("InvokeEndpoint", "InvokeEndpointAsync", "InvokeEndpointWithResponseStream")
_RUNTIME_RAW = re.compile(r"^/endpoints/(.+)/(async-invocations|invocations-response-stream)$", re.DOTALL)


def _runtime_route(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(operation path suffix, decoded endpoint name) for InvokeEndpointAsync and
    InvokeEndpointWithResponseStream, else None (InvokeEndpoint is :func:`edge.invocation_endpoint`)."""
    if environ.get("REQUEST_METHOD") != "POST" or environ.get("QUERY_STRING"):
        return None
    m = _RUNTIME_RAW.match(edge.raw_path(environ))
    return (m.group(2), urllib.parse.unquote(m.group(1))) if m else None


#: moto routes an unsigned request for ``/<service>_<region>/...`` to that service's backend (its requests to
#: itself); such a path naming a SageMaker service must not reach moto's SageMaker backends either
_MOTO_SELF_PATH = re.compile(r"^/sagemaker[A-Za-z0-9-]*_[^/]*(/|$)", re.IGNORECASE)
_CREDENTIAL = re.compile(r"Credential=([^,\s]+)")


def _signing_service(environ: dict[str, Any]) -> str:
    """The service in the SigV4 credential scope (header or presigned query), lower case; "" if none."""
    m = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    scope = m.group(1) if m else ""
    if not scope:
        try:
            q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        except ValueError:
            q = {}
        scope = (q.get("X-Amz-Credential") or [""])[0]
    parts = scope.split("/")
    return parts[3].lower() if len(parts) == 5 else ""


@functools.lru_cache(maxsize=1)
def _sagemaker_operations() -> tuple[list[tuple[str, re.Pattern[str], str, str]], dict[str, str]]:
    """Every operation of the botocore services signed as SageMaker: rest-json ones by method and path,
    JSON ones by target prefix."""
    import botocore.session

    session = botocore.session.get_session()
    routes: list[tuple[str, re.Pattern[str], str, str]] = []
    prefixes: dict[str, str] = {}
    for name in session.get_available_services():
        if "sagemaker" not in name:
            continue
        model = session.get_service_model(name)
        if not (model.signing_name or "").startswith("sagemaker"):
            continue
        if model.metadata.get("targetPrefix"):
            prefixes[model.metadata["targetPrefix"]] = model.service_id
            continue
        for op_name in model.operation_names:
            http = model.operation_model(op_name).http
            uri = http.get("requestUri", "/").split("?", 1)[0]
            rx = re.sub(r"\\\{[^}]+\\\+\\\}", ".+", re.escape(uri))
            rx = re.sub(r"\\\{[^}]+\\\}", "[^/]+", rx)
            routes.append((http.get("method", "POST"), re.compile(f"^{rx}/?$"), op_name, model.service_id))
    # literal paths before templated ones, so /human-loops/{name} does not shadow a fixed path
    routes.sort(key=lambda r: r[1].pattern.count("[^/]+") + r[1].pattern.count(".+"))
    return routes, prefixes


def _sagemaker_operation(method: str, path: str, target: str) -> tuple[str, str] | None:
    routes, prefixes = _sagemaker_operations()
    if target:
        prefix, _, op = target.partition(".")
        return (op, prefixes[prefix]) if prefix in prefixes and op else None
    for m, rx, op, service in routes:
        if m == method and rx.match(path):
            return op, service
    return None


def event_message(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One message of the ``application/vnd.amazon.eventstream`` encoding (string headers only)."""
    hb = b"".join(
        len(k.encode()).to_bytes(1, "big") + k.encode() + b"\x07" + len(v.encode()).to_bytes(2, "big") + v.encode()
        for k, v in headers
    )
    prelude = struct.pack(">II", 12 + len(hb) + len(payload) + 4, len(hb))
    msg = prelude + struct.pack(">I", zlib.crc32(prelude)) + hb + payload
    return msg + struct.pack(">I", zlib.crc32(msg))


def _exception_event(code: str, doc: dict[str, Any]) -> bytes:
    return event_message([(":exception-type", code), (":content-type", "application/json"),
                          (":message-type", "exception")], json.dumps(doc).encode())


def _prepare_home(home: Path) -> None:
    """Create ``home`` and prove it writable; a ValueError with one clear line otherwise."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"cannot use {str(home)!r} as localmaker's home: {exc.strerror or exc}") from exc


def _read_body(environ: dict[str, Any], limit: int, too_large_code: str) -> bytes:
    """The request body, at most ``limit`` bytes (the guard refuses a larger Content-Length unread)."""
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length:
        n = int(length)  # the guard has checked that it is a non-negative integer
        if n > limit:
            raise AwsError(too_large_code, f"Request payload size {n} bytes exceeds the maximum allowed size of "
                                           f"{limit} bytes.", status=413)
        return stream.read(n)
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" or environ.get("wsgi.input_terminated"):
        try:
            buf = bytearray()
            while len(buf) <= limit:  # a raw stream's read(n) may return one chunk: read to the end
                chunk = stream.read(limit + 1 - len(buf))
                if not chunk:
                    break
                buf += chunk
            data = bytes(buf)
        except OSError as exc:  # werkzeug's dechunker: "Invalid chunk header" (a stall is edge.StalledUpload)
            raise AwsError("SerializationException", f"Malformed chunked request body: {exc}") from exc
        if len(data) > limit:
            raise AwsError(too_large_code, f"Request payload exceeds the maximum allowed size of {limit} bytes.",
                           status=413)
        return data
    return b""


MAX_JSON_DEPTH = 100  # SageMaker's deepest request shapes are a few dozen levels; nothing legitimate nests deeper


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except RecursionError as exc:
        raise AwsError("SerializationException", "Request body is nested too deeply.") from exc
    except ValueError as exc:
        raise AwsError("SerializationException", "Request body is not valid JSON.") from exc
    stack: list[tuple[Any, int]] = [(params, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise AwsError("SerializationException", f"Request body is nested deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    if not isinstance(params, dict):
        raise AwsError("SerializationException", "Request body must be a JSON object.")
    return params


_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 413: "Payload Too Large", 424: "Failed Dependency", 500: "Internal Server Error"}


def _respond(start_response: StartResponse, status: int, headers: dict[str, str], body: bytes) -> list[bytes]:
    hdrs = list(headers.items()) + [("Content-Length", str(len(body))), ("x-amzn-RequestId", _request_id())]
    start_response(f"{status} {_REASONS.get(status, 'Error')}", hdrs)
    return [body]


def _request_id() -> str:
    return str(uuid.uuid4())


def _logged(fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:  # one runner's failure to stop must not keep the others from stopping
            log.exception("error while stopping %s", getattr(fn, "__qualname__", fn))

    return run
