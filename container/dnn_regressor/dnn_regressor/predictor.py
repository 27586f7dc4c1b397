"""The inference HTTP app SageMaker talks to: ``/ping``, ``/invocations``, ``/execution-parameters``.

One model per worker process, loaded once in a background thread as the worker starts, so
``/ping`` can answer within SageMaker's health-check window even while a slow load (a model from
before the numpy export, which imports TensorFlow) is in flight: 503 with
the reason until the model is ready (or when it cannot be loaded: missing or corrupt model
directory), 200 after. A failed load is retried at most every few seconds, so a model directory
that appears late (or a fixed one) is picked up without restarting the server.

``/invocations`` is answered by :class:`Invocations`, plain WSGI in front of the Flask app (the
hot path needs none of Flask's routing or request objects); Flask serves the rest. Requests are
validated in the order a client can act on: size (413), Content-Type (415), Accept (406), then
the rows themselves (400 naming row and column). All rows of a request go through the network in
one forward pass.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask, Response
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.utils import get_content_type

from .environment import model_dir as default_model_dir
from .inference import Regressor, load_regressor
from .model import ModelLoadError
from .payloads import MAX_PAYLOAD_BYTES, PayloadError, check_content_type, decode, encode, negotiate_accept

PING_WAIT_SECONDS = 1.0  # SageMaker expects /ping to answer within 2 s
RETRY_SECONDS = 5.0
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


class ModelUnavailable(Exception):
    """The model is not (yet) servable; the message is the reason /ping reports."""


class ModelHolder:
    """Loads the model once per process, off the request thread, and remembers failures.

    Attributes:
        model_dir: the directory ``train`` wrote (``metadata.json``, ``inference.json`` and
            ``inference.npz``, ``model.keras``).
        retry_seconds: how long a load failure is reported before the next attempt.
    """

    def __init__(
        self,
        model_dir: Path,
        loader: Callable[[Path], Regressor] = load_regressor,
        retry_seconds: float = RETRY_SECONDS,
    ):
        self.model_dir = model_dir
        self.retry_seconds = retry_seconds
        self._loader = loader
        self._lock = threading.Lock()
        self._model: Regressor | None = None
        self._error: str | None = None
        self._error_at = 0.0
        self._done: threading.Event | None = None

    @classmethod
    def ready(cls, regressor: Regressor) -> ModelHolder:
        """A holder around an already loaded model (tests, benchmarks)."""
        holder = cls(Path("."))
        holder._model = regressor
        return holder

    def _load(self, done: threading.Event) -> None:
        try:
            model = self._loader(self.model_dir)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
            print(f"model not loaded: {reason}", file=sys.stderr, flush=True)
            with self._lock:
                self._error, self._error_at = reason, time.monotonic()
        else:
            with self._lock:
                self._model, self._error = model, None
        finally:
            done.set()

    def start(self) -> threading.Event | None:
        """Begin a load unless loaded, loading, or a recent failure still stands."""
        with self._lock:
            if self._model is not None:
                return None
            if self._done is not None and not self._done.is_set():
                return self._done
            if self._error is not None and time.monotonic() - self._error_at < self.retry_seconds:
                return None
            done = self._done = threading.Event()
        threading.Thread(target=self._load, args=(done,), name="model-loader", daemon=True).start()
        return done

    def get(self, wait: float | None) -> Regressor:
        """The model, waiting up to ``wait`` seconds (``None``: until loaded) for a load in flight."""
        if self._model is not None:
            return self._model
        done = self.start()
        if done is not None:
            done.wait(wait)
        with self._lock:
            if self._model is not None:
                return self._model
            if self._done is not None and not self._done.is_set():
                raise ModelUnavailable(f"the model in {self.model_dir} is still loading")
            raise ModelUnavailable(self._error or "the model is not loaded")


def _text(body: str, status: int) -> Response:
    return Response(body if body.endswith("\n") else body + "\n", status=status, mimetype="text/plain")


def _drain(stream: Any, length: int) -> None:
    """Read and drop an oversized body so the client, still sending, gets our 413 and not a reset.

    Bodies beyond ``DRAIN_LIMIT_BYTES`` are not read; the connection then just closes.
    """
    if length > DRAIN_LIMIT_BYTES:
        return
    remaining = length
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 16))
        if not chunk:
            break
        remaining -= len(chunk)


def _workers() -> int:
    """Worker count ``serve`` started (it exports it), else one per CPU like ``serve``'s default."""
    raw = os.environ.get("MODEL_SERVER_WORKERS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else (os.cpu_count() or 1)


def create_app(
    model_dir: Path | None = None,
    *,
    holder: ModelHolder | None = None,
    preload: bool = False,
    invocation_wait: float | None = 60.0,
) -> Flask:
    """Build the app; ``preload`` starts loading the model right away (what ``wsgi.py`` does)."""
    holder = holder or ModelHolder(model_dir or default_model_dir())
    app = Flask("dnn_regressor")
    app.extensions["model_holder"] = holder
    if preload:
        holder.start()

    @app.get("/ping")
    def ping() -> Response:
        try:
            holder.get(wait=PING_WAIT_SECONDS)
        except ModelUnavailable as exc:
            return _text(str(exc), 503)
        return _text("ok", 200)

    @app.get("/execution-parameters")
    def execution_parameters() -> ResponseReturnValue:  # app.json.response is typed as werkzeug's base
        # Batch transform reads this to size its requests and parallelism.
        return app.json.response(
            {"MaxConcurrentTransforms": _workers(), "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _text(f"{exc.name}: {exc.description}", exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        traceback.print_exc()
        return _text(f"internal error: {type(exc).__name__}: {exc}", 500)

    # The hot path bypasses Flask's routing and request objects (a third of the non-model time
    # of a 1,000-row request, measured in bench/serving.py); everything else stays in Flask.
    app.wsgi_app = Invocations(app.wsgi_app, holder, invocation_wait)  # type: ignore[method-assign]
    return app


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Invocations:
    """WSGI middleware answering ``/invocations``; any other path goes to the wrapped app.

    Validation order is what a client can act on: size (413), Content-Type (415), Accept (406),
    then the rows (400 naming row and column). A bug answers 500 with its type and message.
    """

    def __init__(self, inner: WsgiApp, holder: ModelHolder, wait: float | None):
        self.inner = inner
        self.holder = holder
        self.wait = wait

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/invocations":
            return self.inner(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            return _respond(start_response, 405, "405 Method Not Allowed: send POST /invocations", [("Allow", "POST")])
        try:
            mimetype, body = self._invoke(environ)
        except PayloadError as exc:
            return _respond(start_response, exc.status, exc.message)
        except ModelUnavailable as exc:
            return _respond(start_response, 503, f"model unavailable: {exc}")
        except Exception as exc:
            traceback.print_exc()
            return _respond(start_response, 500, f"internal error: {type(exc).__name__}: {exc}")
        start_response(_STATUS[200], [("Content-Type", get_content_type(mimetype, "utf-8")),
                                         ("Content-Length", str(len(body)))])
        return [body]

    def _invoke(self, environ: dict[str, Any]) -> tuple[str, bytes]:
        body = _read_body(environ)
        content_type = check_content_type(environ.get("CONTENT_TYPE", ""))
        accept = negotiate_accept(environ.get("HTTP_ACCEPT"))
        model = self.holder.get(wait=self.wait)
        rows = decode(body, content_type, model.feature_names)
        return accept, encode(model.predict(rows), accept)


_STATUS = {code: f"{code} {HTTP_STATUS_CODES.get(code, 'Unknown')}" for code in (200, 400, 405, 406, 413, 415, 500, 503)}


def _respond(start_response: Callable[..., Any], status: int, text: str,
             headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = (text if text.endswith("\n") else text + "\n").encode()
    start_response(_STATUS[status], [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


def _too_large(length: int) -> PayloadError:
    return PayloadError(
        413,
        f"the payload is {length} bytes, over the {MAX_PAYLOAD_BYTES}-byte (6 MB) limit; "
        f"send fewer rows per request (batch transform: MaxPayloadInMB <= 6, SplitType Line)",
    )


def _read_exactly(stream: Any, length: int) -> bytes:
    """``length`` bytes of a Content-Length body.

    gunicorn's ``wsgi.input`` (``Body``) reads through 1 KB pieces, copying the rest of each 8 KB
    socket chunk back and forth: about 0.25 ms for a 1,000-row (80 KB) body, most of what the
    server adds to such a request beyond the model. The ``LengthReader`` under it reads whole
    socket chunks and leaves any pipelined bytes for the next request, so when the ``Body`` holds
    nothing yet and the reader still owes exactly this body, read from it (1/8 of the time).
    Any other server's stream is read the WSGI way.
    """
    reader, buffered = getattr(stream, "reader", None), getattr(stream, "buf", None)
    if (
        reader is not None
        and type(reader).__name__ == "LengthReader"
        and getattr(reader, "length", None) == length
        and isinstance(buffered, io.BytesIO)
        and buffered.tell() == 0
    ):
        return reader.read(length)
    return stream.read(length)


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, at most 6 MB: a larger one is drained (so the client reads our 413)."""
    stream = environ["wsgi.input"]
    raw = (environ.get("CONTENT_LENGTH") or "").strip()
    if raw:
        try:
            length = int(raw)
        except ValueError:
            raise PayloadError(400, f"Content-Length {raw!r} is not a number") from None
        if length > MAX_PAYLOAD_BYTES:
            _drain(stream, length)
            raise _too_large(length)
        return _read_exactly(stream, length) if length > 0 else b""
    if not environ.get("wsgi.input_terminated"):
        return b""  # no length and no chunked framing: WSGI says there is no body to read
    body = stream.read(MAX_PAYLOAD_BYTES + 1)  # chunked: the server ends the stream
    if len(body) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            413, f"the payload is over the {MAX_PAYLOAD_BYTES}-byte (6 MB) limit; send fewer rows per request"
        )
    return body
