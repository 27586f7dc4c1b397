"""The request guard in front of the edge port: who may talk to localmaker, and how much.

localmaker runs commands on request (``ContainerEntrypoint``), so a web page must never be able to
drive it, neither directly (a cross-origin ``fetch``/form post to 127.0.0.1) nor through DNS
rebinding (a hostile name that resolves to 127.0.0.1). Before any handler runs, every request
passes these checks, in this order:

1. **Host.** The ``Host`` header names a loopback address, ``localhost`` (or ``*.localhost``), the address the server is
   bound to (an IP literal cannot be rebound) or a name given with ``--allow-host``. Anything else
   is 403: that is what a rebinding page sends.
2. **Origin.** A request with an ``Origin`` header comes from a browser. Unless the origin was
   given with ``--cors-origin`` it is 403 before its body is read, and no CORS preflight is
   approved for it. Preflights from allowed origins are answered here (the responses carry
   ``Access-Control-Allow-Origin`` for them only; moto's own any-origin CORS answer is dropped).
   Subresource loads a browser marks ``Sec-Fetch-Site: cross-site|same-site`` without an Origin
   (``<img src>``, ``<script src>``) are refused too; top-level navigations (someone opening a
   presigned URL in a tab) are not.
3. **Framing.** ``Content-Length`` must be a non-negative integer.
4. **Authentication.** API calls carry an AWS-signature-shaped ``Authorization`` header (SigV4,
   or S3's SigV2 ``AWS key:signature``) or a presigned query (SigV4 ``X-Amz-Algorithm``/
   ``X-Amz-Credential``/``X-Amz-Signature``, or the SigV2 ``AWSAccessKeyId``/``Signature``/
   ``Expires`` that botocore's ``generate_presigned_url`` produces for S3), or are an S3
   presigned POST (a multipart form with ``policy`` and a signature field). Presigned queries and
   POSTs count for S3 requests only (not for API actions, not for moto's ``/moto-api/``). Signatures are not
   verified (any keys work, as with moto); expired presigned URLs are refused as S3 refuses them.
   Anything else gets AWS's "missing authentication token" answer. ``/_localmaker/health`` needs
   no signature.
5. **Size.** Bodies over the limit are refused from ``Content-Length`` before a byte is read:
   InvokeEndpoint over ``Settings.max_payload`` (6 MB, the runtime's 413), JSON APIs over
   ``Settings.max_api_body``, S3 single PUTs over 5 GiB (``EntityTooLarge``).

Request sockets get a read timeout (``Settings.read_timeout``), so a client that stalls mid-body
releases its server thread; the body stream raises :class:`StalledUpload` (a ``BaseException``, so
moto's Flask app cannot turn it into an HTML 500) and the guard answers AWS's ``RequestTimeout``.

Refusals use the error shape of the protocol the request speaks: JSON 1.1 / rest-json
(``X-Amz-Target``, ``/endpoints/{name}/invocations``), the query protocol (SNS, STS, IAM) or S3's XML.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

HEALTH_PATH = "/_localmaker/health"
S3_MAX_PUT = 5 * 1024**3  # S3's single-PUT limit (EntityTooLarge above it)
PRESIGNED_POST_SCAN = 64 * 1024  # S3 requires the file field last: the form fields come before it
DRAIN_TIMEOUT = 1.0  # after a refusal, how long werkzeug's drain of an unread body may wait for bytes

# "EndpointName" in sagemaker-runtime's InvokeEndpoint
ENDPOINT_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ENDPOINT_NAME_PATTERN = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
_INVOKE_RAW = re.compile(r"^/endpoints/(.+)/invocations$", re.DOTALL)

_SIGV4_HEADER = re.compile(
    r"^AWS4-(?:HMAC-SHA256|ECDSA-P256-SHA256)\s+Credential=[^/\s,]+/\d{8}(?:/[^/\s,]+){1,2}/aws4_request\s*,"
    r"\s*SignedHeaders=[A-Za-z0-9;_\-]+\s*,\s*Signature=[0-9a-fA-F]+$"
)
_SIGV2_HEADER = re.compile(r"^AWS [^\s:]+:[A-Za-z0-9+/=]+$")
_SIGV4_CREDENTIAL = re.compile(r"^[^/\s]+/\d{8}(?:/[^/\s]+){1,2}/aws4_request$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_POLICY_FIELD = re.compile(rb'name="policy"', re.IGNORECASE)
_SIGNATURE_FIELD = re.compile(rb'name="(?:x-amz-signature|signature)"', re.IGNORECASE)

_REASONS = {
    200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 413: "Payload Too Large", 500: "Internal Server Error", 507: "Insufficient Storage",
}
_EXPOSE = ", ".join((
    "ETag", "Content-Length", "Content-Type", "x-amz-request-id", "x-amz-id-2", "x-amz-version-id",
    "x-amzn-RequestId", "x-amzn-ErrorType", "X-Amzn-Invoked-Production-Variant",
    "X-Amzn-SageMaker-Custom-Attributes",
))


class StalledUpload(BaseException):
    """The client stopped sending its body for longer than the read timeout.

    A ``BaseException`` on purpose: moto's Flask app turns any ``Exception`` into an HTML 500, and
    this must reach the guard instead, which answers AWS's ``RequestTimeout``.
    """


# ---- configuration --------------------------------------------------------------------------------------
def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` as browsers send it in ``Origin`` (default ports dropped, lower case).

    Raises ValueError for anything that is not such an origin (paths, wildcards, ``null``).
    """
    text = origin.strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}") from exc
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def normalize_host(name: str) -> str:
    """A ``--allow-host`` name: lower case, no port, no trailing dot. ValueError for empties and URLs."""
    text = name.strip().lower().rstrip(".")
    if not text or "/" in text or any(c.isspace() for c in text):
        raise ValueError(f"not a host name: {name!r}")
    parsed = host_of(text)
    if parsed is None:
        raise ValueError(f"not a host name: {name!r}")
    return parsed


def host_of(header: str) -> str | None:
    """The host name of a ``Host`` header (``[::1]:4566`` -> ``::1``, ``Example.COM.:80`` -> ``example.com``)."""
    h = header.strip().lower()
    if not h:
        return None
    if h.startswith("["):
        end = h.find("]")
        if end < 0 or (h[end + 1 :] and not re.fullmatch(r":\d{1,5}", h[end + 1 :])):
            return None
        return h[1:end]
    if h.count(":") == 1:
        h, port = h.split(":")
        if not re.fullmatch(r"\d{1,5}", port):
            return None
    elif ":" in h:  # a bare IPv6 literal is not a valid Host header, but it is unambiguous
        try:
            ipaddress.IPv6Address(h)
        except ValueError:
            return None
    return h.rstrip(".") or None


def _is_loopback_name(name: str) -> bool:
    # *.localhost (S3 virtual-host addressing, bucket.localhost) always means loopback to browsers (RFC 6761)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass
class EdgePolicy:
    """What the guard lets through (built from :class:`~localmaker.context.Settings` and the bind address)."""

    allow_hosts: frozenset[str] = frozenset()
    cors_origins: frozenset[str] = frozenset()
    max_api_body: int = 16 * 1024 * 1024
    max_payload: int = 6 * 1024 * 1024
    read_timeout: float = 60.0

    @classmethod
    def build(cls, settings: Any, bind_host: str) -> EdgePolicy:
        hosts = {normalize_host(h) for h in settings.allow_hosts}
        try:  # the bound address itself, if it is a specific one: an IP literal cannot be rebound
            ip = ipaddress.ip_address(bind_host)
            if not ip.is_unspecified:
                hosts.add(str(ip))
        except ValueError:
            pass
        return cls(
            allow_hosts=frozenset(hosts),
            cors_origins=frozenset(normalize_origin(o) for o in settings.cors_origins),
            max_api_body=settings.max_api_body,
            max_payload=settings.max_payload,
            read_timeout=settings.read_timeout,
        )

    def host_allowed(self, header: str) -> bool:
        name = host_of(header)
        if name is None:
            return False
        if name in self.allow_hosts or _is_loopback_name(name):
            return True
        try:
            return str(ipaddress.ip_address(name)) in self.allow_hosts
        except ValueError:
            return False

    def origin_allowed(self, origin: str) -> bool:
        try:
            return normalize_origin(origin) in self.cors_origins
        except ValueError:
            return False


# ---- request classification -------------------------------------------------------------------------------
def raw_path(environ: dict[str, Any]) -> str:
    """The request path as the client sent it (still percent-encoded)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        parts = urllib.parse.urlsplit(raw)
        return parts.path or "/"
    return urllib.parse.quote(environ.get("PATH_INFO", ""), safe="/")


def invocation_endpoint(environ: dict[str, Any]) -> str | None:
    """For ``POST /endpoints/{name}/invocations`` (InvokeEndpoint), the decoded endpoint name, else None.

    The name comes from the raw path, so ``..%2F..%2Fx`` is one (invalid) name, not a path to walk.
    """
    if environ.get("REQUEST_METHOD") != "POST" or environ.get("QUERY_STRING"):
        return None
    m = _INVOKE_RAW.match(raw_path(environ))
    return urllib.parse.unquote(m.group(1)) if m else None


def request_kind(environ: dict[str, Any]) -> str:
    """Which protocol's error shape fits: ``json`` (JSON 1.1), ``runtime`` (rest-json), ``query`` or ``s3``."""
    if environ.get("HTTP_X_AMZ_TARGET"):
        return "json"
    if invocation_endpoint(environ) is not None:
        return "runtime"
    if "Action" in _query(environ):
        return "query"
    ctype = environ.get("CONTENT_TYPE", "")
    if environ.get("REQUEST_METHOD") == "POST" and ctype.startswith("application/x-www-form-urlencoded") \
            and environ.get("PATH_INFO", "/") in ("", "/"):
        return "query"
    return "s3"


def _query(environ: dict[str, Any]) -> dict[str, list[str]]:
    cached = environ.get("localmaker.query")
    if cached is None:
        try:
            cached = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        except ValueError:
            cached = {}
        environ["localmaker.query"] = cached
    return cached


# ---- error answers ------------------------------------------------------------------------------------------
def error_response(
    environ: dict[str, Any], start_response: StartResponse, status: int, code: str, message: str,
    kind: str | None = None, extra_headers: dict[str, str] | None = None, runtime_shape: bool = False,
) -> list[bytes]:
    """An AWS-shaped error for the protocol the request speaks."""
    kind = kind or request_kind(environ)
    request_id = str(uuid.uuid4())
    headers: dict[str, str] = {}
    if kind in ("json", "runtime"):
        if runtime_shape:  # sagemaker-runtime's own shape (what the runtime answers for its errors)
            doc: dict[str, Any] = {"message": message, "ErrorCode": code}
        else:
            doc = {"__type": code, "message": message}
        body = json.dumps(doc).encode()
        ctype = "application/x-amz-json-1.1" if kind == "json" else "application/json"
        headers.update({"Content-Type": ctype, "x-amzn-ErrorType": code, "x-amzn-RequestId": request_id})
    elif kind == "query":
        body = _xml_error(code, message, request_id, query=True)
        headers.update({"Content-Type": "text/xml", "x-amzn-RequestId": request_id})
    else:
        body = _xml_error(code, message, request_id, query=False)
        headers.update({"Content-Type": "application/xml", "x-amz-request-id": request_id})
    headers.update(extra_headers or {})
    headers["Content-Length"] = str(len(body))
    start_response(f"{status} {_REASONS.get(status, 'Error')}", list(headers.items()))
    return [body]


def _xml_error(code: str, message: str, request_id: str, query: bool) -> bytes:
    """An XML error body: the Query protocol's (IAM, STS, SNS: wrapped, naming the Sender) or REST-XML's (S3)."""
    inner = f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
    if query:
        xml = f"<ErrorResponse><Error><Type>Sender</Type>{inner}</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    else:
        xml = f"<Error>{inner}<RequestId>{request_id}</RequestId><HostId>localmaker</HostId></Error>"
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + xml).encode()


def _shorten_drain(environ: dict[str, Any]) -> None:
    """After a refusal whose body is unread, let werkzeug's post-response drain wait only briefly."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.settimeout(DRAIN_TIMEOUT)
        except OSError:
            pass


# ---- body stream ----------------------------------------------------------------------------------------------
class GuardedInput:
    """``wsgi.input`` with a read timeout that surfaces as :class:`StalledUpload`, optionally after a prefix."""

    def __init__(self, stream: Any, prefix: bytes = b"") -> None:
        self._stream = stream
        self._prefix = prefix

    def _take_prefix(self, size: int) -> bytes:
        if size < 0:
            out, self._prefix = self._prefix, b""
        else:
            out, self._prefix = self._prefix[:size], self._prefix[size:]
        return out

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        head = self._take_prefix(size) if self._prefix else b""
        if size >= 0:
            size -= len(head)
            if size == 0:
                return head
        try:
            return head + self._stream.read(size) if size >= 0 else head + self._stream.read()
        except TimeoutError as exc:
            raise StalledUpload(str(exc)) from None

    def readinto(self, b: Any) -> int:
        if self._prefix:
            data = self._take_prefix(len(b))
            b[: len(data)] = data
            return len(data)
        try:
            if hasattr(self._stream, "readinto"):
                return self._stream.readinto(b)
            data = self._stream.read(len(b))
        except TimeoutError as exc:
            raise StalledUpload(str(exc)) from None
        b[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        if self._prefix:
            i = self._prefix.find(b"\n")
            if i >= 0 and (size < 0 or i < size):
                return self._take_prefix(i + 1)
            if 0 <= size <= len(self._prefix):
                return self._take_prefix(size)
            head = self._take_prefix(-1)
            return head + self.readline(size - len(head) if size >= 0 else -1)
        try:
            return self._stream.readline(size)
        except TimeoutError as exc:
            raise StalledUpload(str(exc)) from None

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def close(self) -> None:
        pass


# ---- the guard ------------------------------------------------------------------------------------------------
class EdgeGuard:
    """WSGI middleware that applies :class:`EdgePolicy` in front of ``app``."""

    def __init__(self, app: WsgiApp, policy: EdgePolicy) -> None:
        self.app = app
        self.policy = policy

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            return self._guarded(environ, start_response)
        except StalledUpload:
            return self._stalled(environ, start_response)

    def _stalled(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        # The socket's reader is now unusable ("cannot read from timed out object"): werkzeug's drain of
        # the unread body after the response must not touch it.
        handler = environ.get("localmaker.handler")
        if handler is not None:
            handler.rfile = io.BytesIO()
        kind = request_kind(environ)
        secs = f"{self.policy.read_timeout:g}"
        if kind == "s3":
            return error_response(
                environ, start_response, 400, "RequestTimeout",
                "Your socket connection to the server was not read from or written to within the timeout "
                f"period ({secs} s). Idle connections will be closed.", kind,
            )
        return error_response(
            environ, start_response, 408, "RequestTimeoutException",
            f"The request body was not received within the read timeout ({secs} s).", kind,
        )

    def _guarded(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        policy = self.policy
        method = environ.get("REQUEST_METHOD", "GET")
        host = environ.get("HTTP_HOST", "")
        if not policy.host_allowed(host):
            _shorten_drain(environ)
            return error_response(
                environ, start_response, 403, _denied_code(environ),
                f"localmaker does not serve Host {host!r}: only loopback addresses, localhost and names "
                "given with --allow-host (LOCALMAKER_ALLOW_HOSTS) are served, so a web page cannot reach it "
                "through DNS rebinding.",
            )
        origin = environ.get("HTTP_ORIGIN")
        cors: dict[str, str] = {}
        if origin is not None:
            if not policy.origin_allowed(origin):
                _shorten_drain(environ)
                return error_response(
                    environ, start_response, 403, _denied_code(environ),
                    f"localmaker refuses cross-origin requests from {origin!r}: web pages must not drive it "
                    "(allow an origin with --cors-origin or LOCALMAKER_CORS_ORIGINS).",
                )
            cors = {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": _EXPOSE, "Vary": "Origin"}
            if method == "OPTIONS" and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
                return self._preflight(environ, start_response, origin)
        else:
            site = environ.get("HTTP_SEC_FETCH_SITE", "").lower()
            if site in ("cross-site", "same-site") and environ.get("HTTP_SEC_FETCH_MODE", "").lower() != "navigate":
                _shorten_drain(environ)
                return error_response(
                    environ, start_response, 403, _denied_code(environ),
                    "localmaker refuses requests a web page makes on its own (Sec-Fetch-Site: "
                    f"{site}); open presigned URLs in a tab instead.",
                )

        length, err = _content_length(environ)
        if err is not None:
            _shorten_drain(environ)
            kind = request_kind(environ)
            code = "SerializationException" if kind in ("json", "runtime") else "InvalidArgument"
            return error_response(environ, start_response, 400, code, err, kind)

        if environ.get("PATH_INFO") == HEALTH_PATH:
            return self.app(environ, start_response)

        environ["wsgi.input"] = GuardedInput(environ["wsgi.input"])
        auth = self._authenticate(environ, method, length)
        if auth is not None:
            _shorten_drain(environ)
            return error_response(environ, start_response, 403, auth[0], auth[1], extra_headers=cors)

        refusal = self._size_refusal(environ, method, length)
        if refusal is not None:
            _shorten_drain(environ)
            status, code, message, runtime_shape = refusal
            return error_response(environ, start_response, status, code, message, extra_headers=cors,
                                  runtime_shape=runtime_shape)

        def with_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # moto's Flask app answers any origin (Access-Control-Allow-Origin: *): only ours go out
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")
                    and not (cors and k.lower() == "vary")]
            return start_response(status, kept + list(cors.items()), exc_info)

        return self.app(environ, with_cors)

    # ---- CORS ----------------------------------------------------------------------------------------
    def _preflight(self, environ: dict[str, Any], start_response: StartResponse, origin: str) -> list[bytes]:
        requested = [h.strip() for h in environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "").split(",") if h.strip()]
        allowed_headers = ", ".join(h for h in requested if _TOKEN.match(h))
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "GET, HEAD, PUT, POST, DELETE",
            "Access-Control-Max-Age": "600",
            "Access-Control-Expose-Headers": _EXPOSE,
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            "Content-Length": "0",
        }
        if allowed_headers:
            headers["Access-Control-Allow-Headers"] = allowed_headers
        start_response("200 OK", list(headers.items()))
        return [b""]

    # ---- authentication ------------------------------------------------------------------------------
    def _authenticate(self, environ: dict[str, Any], method: str, length: int | None) -> tuple[str, str] | None:
        """None when the request carries AWS-shaped credentials, else (code, message) for the 403."""
        kind = request_kind(environ)
        header = environ.get("HTTP_AUTHORIZATION", "").strip()
        if header:
            if _SIGV4_HEADER.match(header) or (kind == "s3" and _SIGV2_HEADER.match(header)):
                return None
            return _missing_auth(kind, malformed=True)
        # Presigned URLs and POSTs sign S3 requests only: API actions (query, JSON, runtime) and moto's own
        # control plane (/moto-api/, some of it answers GET) must be signed in a header, so that a page
        # cannot act through a link it makes someone open.
        if kind != "s3" or environ.get("PATH_INFO", "").startswith("/moto-api"):
            return _missing_auth(kind)
        q = _query(environ)
        if q.get("X-Amz-Algorithm") or q.get("X-Amz-Credential") or q.get("X-Amz-Signature"):
            return _check_presigned_v4(q, kind)
        if q.get("AWSAccessKeyId") or q.get("Signature"):
            return _check_presigned_v2(q, kind)
        if method == "POST" and environ.get("CONTENT_TYPE", "").lower().startswith("multipart/form-data"):
            if self._presigned_post(environ, length):
                return None
        return _missing_auth(kind)

    def _presigned_post(self, environ: dict[str, Any], length: int | None) -> bool:
        """An S3 browser-style POST upload: its form fields (before the file) hold policy and signature."""
        if length is None:
            return False
        stream = environ["wsgi.input"]
        head = b""
        want = min(length, PRESIGNED_POST_SCAN)
        while len(head) < want:
            chunk = stream.read(want - len(head))
            if not chunk:
                break
            head += chunk
        environ["wsgi.input"] = GuardedInput(stream, head)
        return bool(_POLICY_FIELD.search(head) and _SIGNATURE_FIELD.search(head))

    # ---- size ----------------------------------------------------------------------------------------
    def _size_refusal(self, environ: dict[str, Any], method: str, length: int | None) -> tuple[int, str, str, bool] | None:
        if length is None:
            return None
        kind = request_kind(environ)
        if kind == "runtime" and length > self.policy.max_payload:
            return (413, "ValidationError",
                    f"Request payload size {length} bytes exceeds the maximum allowed size of "
                    f"{self.policy.max_payload} bytes (6 MB).", True)
        if kind == "json" and length > self.policy.max_api_body:
            return (413, "RequestEntityTooLargeException",
                    f"Request size {length} bytes exceeds the maximum allowed size of {self.policy.max_api_body} bytes.",
                    False)
        if kind == "s3" and method == "PUT" and length > S3_MAX_PUT:
            return (400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", False)
        return None


def _content_length(environ: dict[str, Any]) -> tuple[int | None, str | None]:
    raw = environ.get("CONTENT_LENGTH")
    if raw is None or raw == "":
        return None, None
    text = raw.strip()
    if not re.fullmatch(r"\d{1,19}", text):
        return None, f"Invalid Content-Length header {raw[:40]!r}: it must be a non-negative integer."
    return int(text), None


def _denied_code(environ: dict[str, Any]) -> str:
    return "AccessDeniedException" if request_kind(environ) in ("json", "runtime") else "AccessDenied"


def _missing_auth(kind: str, malformed: bool = False) -> tuple[str, str]:
    if kind in ("json", "runtime"):
        if malformed:
            return ("IncompleteSignatureException",
                    "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters "
                    "in the AWS4-HMAC-SHA256 format.")
        return "MissingAuthenticationTokenException", "Missing Authentication Token"
    if kind == "query":
        if malformed:
            return "IncompleteSignature", "Authorization header requires an AWS4-HMAC-SHA256 signature."
        return "MissingAuthenticationToken", "Request is missing Authentication Token"
    return "AccessDenied", "Access Denied"


def _one(q: dict[str, list[str]], key: str) -> str:
    values = q.get(key) or [""]
    return values[0]


def _check_presigned_v4(q: dict[str, list[str]], kind: str) -> tuple[str, str] | None:
    algorithm, credential, signature = (_one(q, k) for k in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"))
    if algorithm not in ("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256") or not _SIGV4_CREDENTIAL.match(credential) \
            or not re.fullmatch(r"[0-9a-fA-F]+", signature):
        code = "AuthorizationQueryParametersError" if kind == "s3" else "IncompleteSignatureException"
        return (code, "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                      "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
    date, expires = _one(q, "X-Amz-Date"), _one(q, "X-Amz-Expires")
    if date and expires.isdigit():
        try:
            signed = dt.datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp()
        except ValueError:
            return "AuthorizationQueryParametersError", f"Invalid date format of header: X-Amz-Date ({date!r})."
        if signed + int(expires) < time.time():
            return "AccessDenied", "Request has expired"
    return None


def _check_presigned_v2(q: dict[str, list[str]], kind: str) -> tuple[str, str] | None:
    key, signature, expires = (_one(q, k) for k in ("AWSAccessKeyId", "Signature", "Expires"))
    if not key or not signature or not expires.isdigit():
        return "AccessDenied", "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"
    if int(expires) < time.time():
        return "AccessDenied", "Request has expired"
    return None


def request_handler(read_timeout: float) -> type:
    """moto's request handler with a socket read timeout on every request connection."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class EdgeRequestHandler(MotoRequestHandler):
        timeout = read_timeout

        def make_environ(self) -> dict[str, Any]:
            environ = super().make_environ()
            environ["localmaker.handler"] = self
            return environ

    return EdgeRequestHandler


__all__ = [
    "ENDPOINT_NAME_PATTERN", "ENDPOINT_NAME_RE", "EdgeGuard", "EdgePolicy", "GuardedInput", "StalledUpload",
    "error_response", "invocation_endpoint", "normalize_host", "normalize_origin", "request_handler",
]
