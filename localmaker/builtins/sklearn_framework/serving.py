"""sklearn_framework: loading the model and answering ``/invocations``."""

from __future__ import annotations

import csv
import importlib
import importlib.util
import io
import json
import os
import sys
import textwrap
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from localmaker import safepath
from localmaker.builtins import runtime, serving
from localmaker.builtins.runtime import ClientError
from localmaker.builtins.serving import HttpError

from .toolkit import (
    CSV,
    JSON,
    NPY,
    UTF8_TYPES,
    _check_program,
    _configure_logging,
    _log_level,
    check_requirements,
    fetch_code,
    log,
    module_name_of,
)


class UnsupportedFormatError(Exception):
    """errors.UnsupportedFormatError: the request's or the Accept's type has no default codec."""

    def __init__(self, content_type: str) -> None:
        self.message = (
            f"Content type {content_type} is not supported by this framework.\n\n"
            "Please implement input_fn to to deserialize the request data or an output_fn to "
            "serialize the response. For more information, see the SageMaker Python SDK README."
        )
        super().__init__(self.message)


def _bad_request(what: str, exc: Exception) -> HttpError:
    return HttpError(400, f"{what}: {type(exc).__name__}: {exc}")


def _or_400(what: str, convert: Callable[[], Any], errors: tuple[type[Exception], ...] = (ValueError,)) -> Any:
    """``convert()``, with ``errors`` answered as a 400 saying ``what`` went wrong."""
    try:
        return convert()
    except errors as exc:
        raise _bad_request(what, exc) from None


def json_to_numpy(text: str | bytes) -> Any:
    import numpy as np

    data = _or_400("the application/json body is not valid JSON", lambda: json.loads(text))
    return _or_400("the application/json body is not an array", lambda: np.array(data))


def csv_to_numpy(text: str | bytes) -> Any:
    """Rows of the CSV as strings, squeezed, then as numbers (encoders.csv_to_numpy): a single row becomes
    a 1-D array, which sklearn's predict rejects - as on AWS, send 2+ rows or write an input_fn."""
    import numpy as np

    if isinstance(text, bytes):
        text = text.decode("utf-8")
    reader = csv.reader(io.StringIO(text), delimiter=",", quotechar='"', doublequote=True, strict=True)
    array = _or_400("error while decoding csv", lambda: np.array(list(reader)).squeeze(), (csv.Error, ValueError))
    return _or_400("the text/csv body has a value that is not a number", lambda: array.astype(None))


def npy_to_numpy(data: bytes | str) -> Any:
    import numpy as np

    if isinstance(data, str):
        data = data.encode("latin1")
    if not data.startswith(b"\x93NUMPY"):
        raise HttpError(400, "the application/x-npy body is not an NPY array (no \\x93NUMPY header); "
                             "send the bytes numpy.save writes")
    try:
        return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise _bad_request("the application/x-npy body could not be loaded (object arrays are refused: "
                           "localmaker loads NPY with allow_pickle=False)", exc) from None
    except (OSError, EOFError) as exc:
        raise _bad_request("the application/x-npy body is not an NPY array", exc) from None


def array_to_json(array_like: Any) -> str:
    def default(obj: Any) -> Any:
        if hasattr(obj, "tolist"):
            return obj.tolist()
        return json.JSONEncoder().default(obj)

    return json.dumps(array_like, default=default)


def array_to_csv(array_like: Any) -> str:
    import numpy as np

    array = np.array(array_like)
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array.reshape(array.shape[0], 1)
    stream = io.StringIO()
    csv.writer(stream, lineterminator="\n", delimiter=",", quotechar='"', doublequote=True, strict=True).writerows(array)
    return stream.getvalue()


def array_to_npy(array_like: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array_like)
    return buffer.getvalue()


DECODERS: dict[str, Callable[[Any], Any]] = {JSON: json_to_numpy, CSV: csv_to_numpy, NPY: npy_to_numpy}
ENCODERS: dict[str, Callable[[Any], Any]] = {NPY: array_to_npy, CSV: array_to_csv, JSON: array_to_json}


def default_input_fn(input_data: Any, content_type: str) -> Any:
    """JSON / CSV / NPY -> numpy array; float32 for the text types, as the sklearn container."""
    import numpy as np

    ctype = serving.media_type(content_type)
    decoder = DECODERS.get(ctype)
    if decoder is None:
        raise UnsupportedFormatError(content_type)
    array = decoder(input_data)
    if ctype in UTF8_TYPES:
        try:
            return array.astype(np.float32)
        except (TypeError, ValueError) as exc:
            raise _bad_request(f"the {ctype} body is not an array of numbers", exc) from None
    return array


def default_predict_fn(input_data: Any, model: Any) -> Any:
    return model.predict(input_data)


def choose_accept(accept: str) -> str:
    """The first type of a (possibly multi-valued) Accept that the default output_fn can write."""
    for part in accept.split(","):
        mt = serving.media_type(part)
        if mt in ENCODERS:
            return mt
    raise UnsupportedFormatError(accept)


def default_output_fn(prediction: Any, accept: str) -> tuple[Any, str]:
    mt = choose_accept(accept)
    return ENCODERS[mt](prediction), mt


def default_model_fn(model_dir: str) -> Any:
    """The sklearn container provides no model loading: the user's script must define model_fn."""
    raise NotImplementedError(textwrap.dedent(
        """
        Please provide a model_fn implementation.
        See documentation for model_fn at https://github.com/aws/sagemaker-python-sdk
        """
    ))


@dataclass
class Handler:
    """The loaded model with the inference functions in effect (user's or defaults)."""

    module: ModuleType
    model: Any
    input_fn: Callable[[Any, str], Any]
    predict_fn: Callable[[Any, Any], Any]
    output_fn: Callable[[Any, str], Any]
    transform_fn: Callable[[Any, Any, str, str], Any] | None
    default_accept: str = JSON


def resolve_code_dir(submit_dir: str | None, base: Path, model_dir: Path) -> Path:
    """Where the serving code is: ``SAGEMAKER_SUBMIT_DIRECTORY`` (S3 tar.gz fetched into ``<base>/code``;
    ``/opt/ml/...`` paths map into localmaker's per-instance ``/opt/ml``), or ``model.tar.gz``'s ``code/``."""
    if submit_dir and submit_dir.startswith("/opt/ml/"):
        rel = submit_dir[len("/opt/ml/"):]
        try:
            local = (safepath.inside(model_dir, rel[len("model/"):], allow_base=True)
                     if rel == "model" or rel.startswith("model/") else safepath.inside(base, rel))
        except safepath.PathEscape as exc:
            raise ClientError(f"SAGEMAKER_SUBMIT_DIRECTORY {submit_dir} leads outside /opt/ml ({exc.reason})") from exc
        if not local.is_dir():
            raise ClientError(f"SAGEMAKER_SUBMIT_DIRECTORY {submit_dir} does not exist in this container "
                              f"(model.tar.gz holds: {', '.join(sorted(p.name for p in model_dir.iterdir()))})")
        return local
    if submit_dir:
        code_dir = base / "code"
        fetch_code(submit_dir, code_dir, what="SAGEMAKER_SUBMIT_DIRECTORY")
        return code_dir
    if (model_dir / "code").is_dir():
        return model_dir / "code"
    code_dir = base / "code"
    if code_dir.is_dir() and any(code_dir.iterdir()):
        return code_dir
    raise ClientError("SAGEMAKER_SUBMIT_DIRECTORY is not set and model.tar.gz has no code/ directory: set the "
                      "Model's Environment SAGEMAKER_SUBMIT_DIRECTORY to the S3 URI of your sourcedir.tar.gz")


def import_user_module(code_dir: Path, program: str) -> ModuleType:
    """Import the entry point from the code dir (on sys.path first, so its sibling modules import too)."""
    name = module_name_of(program)
    _check_program(program, code_dir, "SAGEMAKER_PROGRAM")
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    candidates = [code_dir / f"{name}.py", code_dir / name / "__init__.py"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            present = ", ".join(sorted(p.name for p in code_dir.iterdir())) or "(nothing)"
            raise ClientError(f"SAGEMAKER_PROGRAM '{program}' is not in {code_dir} (it holds: {present})") from exc
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=(
        [str(path.parent)] if path.name == "__init__.py" else None))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_handler(model_dir: Path, program: str | None, submit_dir: str | None, base: Path,
                 default_accept: str | None = None) -> Handler:
    """Fetch and import the user's module, then call its model_fn (the container's import_module)."""
    if not program:
        raise ClientError("SAGEMAKER_PROGRAM is not set: the scikit-learn container serves with your inference "
                          "script; set the Model's Environment SAGEMAKER_PROGRAM (e.g. inference.py) and "
                          "SAGEMAKER_SUBMIT_DIRECTORY")
    code_dir = resolve_code_dir(submit_dir, base, model_dir)
    check_requirements(code_dir)
    module = import_user_module(code_dir, program)
    model_fn = getattr(module, "model_fn", None) or default_model_fn
    input_fn = getattr(module, "input_fn", None)
    predict_fn = getattr(module, "predict_fn", None)
    output_fn = getattr(module, "output_fn", None)
    transform_fn = getattr(module, "transform_fn", None)
    if transform_fn and (input_fn or predict_fn or output_fn):
        raise ClientError("Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn")
    model = model_fn(str(model_dir))
    return Handler(
        module=module,
        model=model,
        input_fn=input_fn or default_input_fn,
        predict_fn=predict_fn or default_predict_fn,
        output_fn=output_fn or default_output_fn,
        transform_fn=transform_fn,
        default_accept=default_accept or JSON,
    )


#: exceptions from a user's input_fn that mean "this request is wrong" (-> 400, not 500)
_CLIENT_ERRORS = (ValueError, TypeError, KeyError, IndexError, UnicodeError)


def _as_response(result: Any, accept: str) -> tuple[bytes, str]:
    """A handler's result as (body, content type): ``(data, type)`` tuples, bytes, str, JSON-able values."""
    if isinstance(result, tuple) and len(result) == 2:
        data, ctype = result
        ctype = ctype or serving.media_type(accept) or accept
    else:
        data, ctype = result, serving.media_type(accept) or accept
        if isinstance(data, (dict, list)):
            data, ctype = json.dumps(data), JSON
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif hasattr(data, "getvalue"):
        data = data.getvalue()
    if not isinstance(data, bytes):
        raise HttpError(500, f"output_fn returned {type(data).__name__}; return bytes, str or (body, content_type)")
    return data, str(ctype)


def _format_error(exc: UnsupportedFormatError) -> str:
    return json.dumps({"error": type(exc).__name__, "error-message": exc.message})


def _call_hook(name: str, hook: Callable[..., Any], *args: Any, unsupported: int | None = None,
               client_errors: tuple[type[Exception], ...] = ()) -> Any:
    """One inference function (the user's or a default): an HttpError passes through; with ``unsupported``
    an UnsupportedFormatError is answered with that status (415 for the request, 406 for the Accept);
    ``client_errors`` are a 400 (the request could not be read); anything else is a 500 naming ``name`` -
    reported with its traceback, never a crashed worker."""
    try:
        return hook(*args)
    except HttpError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code
        if unsupported is not None and isinstance(exc, UnsupportedFormatError):
            raise HttpError(unsupported, _format_error(exc)) from None
        traceback.print_exc()
        if isinstance(exc, client_errors):
            raise _bad_request(f"{name} could not deserialize the request", exc) from None
        raise HttpError(500, f"{name}: {type(exc).__name__}: {exc}") from None


def invoke(handler: Handler, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    """One /invocations request through input_fn -> predict_fn -> output_fn (or transform_fn)."""
    ctype = content_type or JSON
    if not accept or accept.strip() == "*/*":
        accept = handler.default_accept
    content: Any = body
    if serving.media_type(ctype) in UTF8_TYPES:
        try:
            content = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad_request(f"the {serving.media_type(ctype)} body is not UTF-8", exc) from None
    if handler.transform_fn is not None:
        result = _call_hook("transform_fn", handler.transform_fn, handler.model, content, ctype, accept)
        return _as_response(result, accept)
    data = _call_hook("input_fn", handler.input_fn, content, ctype, unsupported=415, client_errors=_CLIENT_ERRORS)
    prediction = _call_hook("predict_fn", handler.predict_fn, data, handler.model)
    result = _call_hook("output_fn", handler.output_fn, prediction, accept, unsupported=406)
    return _as_response(result, accept)


def serve() -> None:
    """Load the user's module and model once (before forking), then answer /ping and /invocations."""
    _configure_logging(_log_level(os.environ.get("SAGEMAKER_CONTAINER_LOG_LEVEL")))
    base = runtime.base_dir()
    model_dir = Path(os.environ.get("SM_MODEL_DIR") or base / "model")
    for ours, theirs in (("MODEL_SERVER_WORKERS", "SAGEMAKER_MODEL_SERVER_WORKERS"),
                         ("MODEL_SERVER_TIMEOUT", "SAGEMAKER_MODEL_SERVER_TIMEOUT")):
        if os.environ.get(theirs) and not os.environ.get(ours):
            os.environ[ours] = os.environ[theirs]
    try:
        handler = load_handler(
            model_dir,
            os.environ.get("SAGEMAKER_PROGRAM"),
            os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY"),
            base,
            os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"),
        )
    except BaseException as exc:  # noqa: BLE001 - any failure to load means the container cannot serve
        traceback.print_exc()
        print(f"The model failed to load, so this container cannot serve: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    log.info("Loaded model with %s from module '%s'", type(handler.model).__name__, handler.module.__name__)

    def load(_model_dir: Path) -> Handler:
        return handler  # loaded before gunicorn forks: every worker inherits it

    serving.serve(load, invoke)
