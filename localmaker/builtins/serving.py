"""The serving side shared by the built-in programs: a WSGI app, gunicorn, and request codecs.

Real built-in images answer ``GET /ping``, ``POST /invocations`` and ``GET /execution-parameters`` on
``SAGEMAKER_BIND_TO_PORT``. An algorithm supplies two functions: ``load(model_dir) -> model`` (run
once per worker, before ``/ping`` turns 200) and ``invoke(model, body, content_type, accept) ->
(body, content_type)``. Bad input raises :class:`HttpError` with a 4xx status and a message naming
the row/column; it never becomes a 500.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from smformats.recordio import CONTENT_TYPE as RECORDIO

MAX_PAYLOAD = 6 * 1024 * 1024

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
LIBSVM = "text/libsvm"

Loader = Callable[[Path], Any]
Invoker = Callable[[Any, bytes, str, str], tuple[bytes, str]]


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def unsupported_content_type(ctype: str, supported: Iterable[str]) -> HttpError:
    return HttpError(415, f"Content type {ctype or '(none)'} is not supported; send one of {sorted(supported)}.")


def media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


def negotiate(accept: str | None, supported: list[str], default: str) -> str:
    """The first type of ``Accept`` this algorithm can write (``*/*`` or none -> ``default``)."""
    if not accept:
        return default
    for part in accept.split(","):
        mt = media_type(part)
        if mt in ("*/*", ""):
            return default
        if mt in supported:
            return mt
    raise HttpError(406, f"Accept {accept} is not supported; ask for one of {supported}.")


# ---- request decoding ---------------------------------------------------------------------------------
def decode_csv(body: bytes, expect: int | None = None) -> np.ndarray:
    """Header-less CSV rows of numbers -> float32 matrix; errors name the row and column."""
    from smformats.csv import CsvRowError, numeric_rows

    rows: list[list[float]] = []
    try:
        for i, row in numeric_rows(body.decode("utf-8", errors="replace").splitlines()):
            nan = next((j for j, v in enumerate(row, start=1) if v != v), None)
            if nan is not None:
                raise HttpError(400, f"row {i}, column {nan}: NaN is not allowed")
            if expect is not None and len(row) != expect:
                raise HttpError(400, f"row {i} has {len(row)} columns; the model expects {expect} features")
            rows.append(row)
    except CsvRowError as exc:
        if exc.column is not None:
            raise HttpError(400, f"row {exc.lineno}, column {exc.column}: {exc.cell!r} is not a number") from None
        if expect is not None:  # a ragged row is first of all not what the model expects
            raise HttpError(400, f"row {exc.lineno} has {exc.got} columns; the model expects {expect} features") from None
        raise HttpError(400, f"row {exc.lineno} has {exc.got} columns, row 1 has {exc.width}") from None
    if not rows:
        raise HttpError(400, "the request has no rows")
    return np.asarray(rows, dtype=np.float32)


def _json_row(item: Any, i: int) -> list[float]:
    """One instance of a 1P algorithm's JSON request, in any of its documented shapes."""
    if isinstance(item, dict):
        if "features" in item:
            item = item["features"]
        elif "data" in item:
            try:
                item = item["data"]["features"]["values"]
            except (KeyError, TypeError):
                raise HttpError(400, f"instance {i}: expected data.features.values") from None
        else:
            raise HttpError(400, f"instance {i}: expected a 'features' list")
    if not isinstance(item, list):
        raise HttpError(400, f"instance {i}: expected a list of numbers")
    try:
        return [float(v) for v in item]
    except (TypeError, ValueError):
        raise HttpError(400, f"instance {i}: features must be numbers") from None


def decode_json(body: bytes, expect: int | None = None) -> np.ndarray:
    """``{"instances": [{"features": [...]}, ...]}``, ``{"instances": [[...]]}``, ``{"features": [...]}``
    or ``{"data": {"features": {"values": [...]}}}`` -> float32 matrix."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}") from None
    if isinstance(doc, dict) and "instances" in doc:
        items = doc["instances"]
    elif isinstance(doc, dict):
        items = [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        raise HttpError(400, "expected a JSON object with 'instances'")
    if not isinstance(items, list) or not items:
        raise HttpError(400, "'instances' must be a non-empty list")
    return _matrix([_json_row(item, i) for i, item in enumerate(items, start=1)], expect)


def json_lines(body: bytes) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON)`` per non-blank line of an ``application/jsonlines`` body."""
    for i, line in enumerate(body.decode("utf-8", errors="replace").splitlines(), start=1):
        if line.strip():
            try:
                yield i, json.loads(line)
            except ValueError as exc:
                raise HttpError(400, f"line {i} is not valid JSON: {exc}") from None


def decode_jsonlines(body: bytes, expect: int | None = None) -> np.ndarray:
    rows = [_json_row(item, i) for i, item in json_lines(body)]
    if not rows:
        raise HttpError(400, "the request has no rows")
    return _matrix(rows, expect)


def decode_recordio(body: bytes, expect: int | None = None) -> np.ndarray:
    from smformats.recordio import RecordIOError, from_recordio_protobuf

    try:
        records = from_recordio_protobuf(body)
    except RecordIOError as exc:
        raise HttpError(400, f"the body is not RecordIO-protobuf: {exc}") from None
    if not records:
        raise HttpError(400, "the request has no records")
    return _matrix([list(r.features) for r in records], expect)


def _matrix(rows: list[list[float]], expect: int | None) -> np.ndarray:
    for i, r in enumerate(rows, start=1):
        if expect is not None and len(r) != expect:
            raise HttpError(400, f"record {i} has {len(r)} features; the model expects {expect}")
        if len(r) != len(rows[0]):
            raise HttpError(400, f"record {i} has {len(r)} features, record 1 has {len(rows[0])}")
    arr = np.asarray(rows, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise HttpError(400, "features must be finite numbers")
    return arr


DENSE_DECODERS = {CSV: decode_csv, JSON: decode_json, JSONLINES: decode_jsonlines, RECORDIO: decode_recordio}


def decode_dense(body: bytes, content_type: str, expect: int | None = None) -> np.ndarray:
    ctype = media_type(content_type)
    decoder = DENSE_DECODERS.get(ctype)
    if decoder is None:
        raise unsupported_content_type(ctype, DENSE_DECODERS)
    return decoder(body, expect)


# ---- response encoding (1P algorithms' record lists) --------------------------------------------------
def dense_invoker(records: Callable[[Any, np.ndarray], list[dict[str, Any]]], key: str) -> Invoker:
    """The ``invoke`` of an algorithm that reads dense rows ``model.feature_dim`` wide (CSV, JSON, JSON
    Lines, RecordIO-protobuf) and answers ``records(model, rows)`` under ``key`` (JSON by default)."""

    def invoke(model: Any, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        out_type = negotiate(accept, [JSON, JSONLINES, RECORDIO], JSON)
        x = decode_dense(body, content_type, expect=model.feature_dim)
        return encode_records(records(model, x), out_type, key=key)

    return invoke


def encode_records(records: list[dict[str, Any]], accept: str, key: str = "predictions") -> tuple[bytes, str]:
    """``{"predictions": [...]}`` as JSON, one object a line as JSON Lines, or RecordIO-protobuf
    records whose label map holds each numeric field (as the real algorithms answer)."""
    if accept == JSON:
        return json.dumps({key: records}).encode(), JSON
    if accept == JSONLINES:
        return "".join(json.dumps(r) + "\n" for r in records).encode(), JSONLINES
    if accept == RECORDIO:
        from smformats.recordio import encode_labelled, frame_record

        return b"".join(frame_record(encode_labelled(r)) for r in records), RECORDIO
    raise HttpError(406, f"Accept {accept} is not supported")


# ---- the app --------------------------------------------------------------------------------------------
class App:
    """WSGI app: the model loads once per worker (in a thread, so ``/ping`` answers 503 meanwhile)."""

    def __init__(self, load: Loader, invoke: Invoker, model_dir: Path | None = None) -> None:
        self._load, self._invoke = load, invoke
        self.model_dir = model_dir or Path(os.environ.get("SM_MODEL_DIR") or Path(
            os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "model")
        self.model: Any = None
        self.error: str | None = None
        self._ready = threading.Event()

    def load_now(self) -> None:
        try:
            self.model = self._load(self.model_dir)
        except Exception as exc:  # noqa: BLE001 - reported on /ping and in the log
            self.error = f"{type(exc).__name__}: {exc}"
            print(f"model failed to load: {self.error}", flush=True)
        self._ready.set()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/ping":
            if self.model is not None:
                return _reply(start_response, 200, b"", "text/plain")
            return _reply(start_response, 503, (self.error or "loading").encode(), "text/plain")
        if path == "/execution-parameters":
            body = json.dumps({"MaxConcurrentTransforms": max(1, os.cpu_count() or 1),
                               "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}).encode()
            return _reply(start_response, 200, body, JSON)
        if path == "/invocations" and method == "POST":
            return self._invocation(environ, start_response)
        return _reply(start_response, 404, b"not found", "text/plain")

    def _invocation(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if self.model is None:
            return _reply(start_response, 503, (self.error or "model is loading").encode(), "text/plain")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_PAYLOAD:
            return _reply(start_response, 413, b"payload larger than 6 MB", "text/plain")
        body = environ["wsgi.input"].read(length) if length else b""
        ctype = environ.get("CONTENT_TYPE", "")
        accept = environ.get("HTTP_ACCEPT", "")
        try:
            out, out_type = self._invoke(self.model, body, ctype, accept)
        except HttpError as exc:
            return _reply(start_response, exc.status, exc.message.encode(), "text/plain")
        return _reply(start_response, 200, out, out_type)


def _reply(start_response: Callable[..., Any], status: int, body: bytes, ctype: str) -> list[bytes]:
    reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 406: "Not Acceptable", 413: "Payload Too Large",
               415: "Unsupported Media Type", 503: "Service Unavailable"}
    start_response(f"{status} {reasons.get(status, 'Error')}", [("Content-Type", ctype),
                                                                  ("Content-Length", str(len(body)))])
    return [body]


def serve(load: Loader, invoke: Invoker) -> None:
    """Run the app under gunicorn on ``SAGEMAKER_BIND_TO_HOST:SAGEMAKER_BIND_TO_PORT`` (the real images'
    model server). These programs only ever run on the host, so without an address they bind loopback."""
    from gunicorn.app.base import BaseApplication

    app = App(load, invoke)
    port = os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080")
    host = os.environ.get("SAGEMAKER_BIND_TO_HOST") or "127.0.0.1"
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", bind)
            self.cfg.set("workers", int(os.environ.get("MODEL_SERVER_WORKERS", "1")))
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 4)
            self.cfg.set("timeout", int(os.environ.get("MODEL_SERVER_TIMEOUT", "60")))
            self.cfg.set("post_fork", lambda server, worker: threading.Thread(target=app.load_now, daemon=True).start())
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", "warning")

        def load(self) -> App:
            return app

    _Gunicorn().run()
