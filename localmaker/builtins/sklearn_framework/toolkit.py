"""sklearn_framework: the sagemaker-training toolkit's side both ``train`` and ``serve`` share: its constants, hyperparameters, logging and the user's code (fetching it, its requirements, its module)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localmaker import safepath
from localmaker.builtins.runtime import ClientError

SAGEMAKER_PREFIX = "sagemaker_"
#: framework hyperparameters the toolkit consumes itself; other ``sagemaker_*`` ones become
#: ``additional_framework_parameters`` (``SM_FRAMEWORK_PARAMS``); none reach the script's arguments
SAGEMAKER_HYPERPARAMETERS = (
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "default_user_module_name",
    "_tuning_objective_metric",
    "sagemaker_s3_output",
)


#: what the real image sets as SAGEMAKER_TRAINING_MODULE (docker/1.2-1/final/Dockerfile.cpu)
FRAMEWORK_MODULE = "sagemaker_sklearn_container.training:main"
JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
UTF8_TYPES = (JSON, CSV)
#: builtin error names the toolkit looks for in a failed script's stderr (sagemaker_training._PYTHON_ERRORS_)
_PYTHON_ERRORS = (
    "BaseException", "Exception", "ArithmeticError", "AssertionError", "AttributeError", "BlockingIOError",
    "BrokenPipeError", "BufferError", "ChildProcessError", "ConnectionAbortedError", "ConnectionError",
    "ConnectionRefusedError", "ConnectionResetError", "EOFError", "EnvironmentError", "FileExistsError",
    "FileNotFoundError", "FloatingPointError", "IOError", "ImportError", "IndentationError", "IndexError",
    "InterruptedError", "IsADirectoryError", "KeyError", "LookupError", "MemoryError", "ModuleNotFoundError",
    "NameError", "NotADirectoryError", "NotImplementedError", "OSError", "OverflowError", "PermissionError",
    "ProcessLookupError", "RecursionError", "ReferenceError", "RuntimeError", "SyntaxError", "SystemError",
    "TabError", "TimeoutError", "TypeError", "UnboundLocalError", "UnicodeDecodeError", "UnicodeEncodeError",
    "UnicodeError", "UnicodeTranslateError", "ValueError", "ZeroDivisionError",
)


#: the failure file becomes FailureReason's first 1024 chars; keep the script's own error inside them
_ERROR_MESSAGE_CHARS = 700


log = logging.getLogger("sagemaker-training-toolkit")


def _configure_logging(level: int = logging.INFO) -> None:
    """The toolkit's log line shape, so CloudWatch streams read like the real image's."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)-12s %(levelname)-8s %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(level)


def _log_level(value: Any) -> int:
    """``sagemaker_container_log_level`` / ``SAGEMAKER_CONTAINER_LOG_LEVEL``: a logging level number (20 = INFO)."""
    if value in (None, ""):
        return logging.INFO
    try:
        return int(value)
    except (TypeError, ValueError):
        level = logging.getLevelName(str(value).upper())
        return level if isinstance(level, int) else logging.INFO


def decode_hyperparameters(raw: Mapping[str, str]) -> dict[str, Any]:
    """JSON-decode each value, keeping the raw string when it is not JSON (environment.read_hyperparameters).

    The SDK sends ``"\\"train.py\\""`` for a string and ``"50"`` for an int; a hand-written request
    may send ``train.py``, which stays a string."""
    out: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


def split_hyperparameters(hps: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(framework ones, user ones): ``sagemaker_*`` and the toolkit's own names never reach the script."""
    framework = {k: v for k, v in hps.items() if k in SAGEMAKER_HYPERPARAMETERS or k.startswith(SAGEMAKER_PREFIX)}
    user = {k: v for k, v in hps.items() if k not in framework}
    return framework, user


def _decode(obj: Any) -> str:
    if obj is None:
        return ""
    if isinstance(obj, bytes):
        return obj.decode("latin1")
    return str(obj)


def to_cmd_args(hps: Mapping[str, Any]) -> list[str]:
    """``--name value`` pairs in sorted key order, as mapping.to_cmd_args: one-letter names get a single
    dash, dict values become ``k=v,k2=v2`` and the rest ``str()`` of the decoded JSON value (so
    ``true`` arrives as ``True``, ``[1, 2]`` as ``[1, 2]``)."""
    args: list[str] = []
    for key in sorted(hps):
        name = _decode(key)
        args.append(("--" + name if len(name) > 1 else "-" + name) if name else "")
        value = hps[key]
        if hasattr(value, "items"):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append(_decode(value))
    return args


def to_env_vars(mapping: Mapping[str, Any]) -> dict[str, str]:
    """``SM_<KEY>`` variables as mapping.to_env_vars: strings as they are, anything else compact sorted JSON."""

    def value(v: Any) -> str:
        if isinstance(v, bytes):
            return v.decode("latin1")
        if v is None:
            return ""
        if isinstance(v, str):
            return v
        return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    return {f"SM_{str(k).upper()}": value(v) for k, v in mapping.items() if k}


def module_name_of(program: str) -> str:
    return program[:-3] if program.endswith(".py") else program


def _safe_extract(archive: Path, dest: Path, what: str) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                target = (dest / member.name).resolve()
                if dest.resolve() not in (target, *target.parents):
                    raise ClientError(f"{what}: the archive member {member.name!r} points outside the code directory")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tar.extractall(dest)  # noqa: S202 - members checked above
    except tarfile.TarError as exc:
        raise ClientError(f"{what} is not a tar.gz archive of your source directory: {exc}") from exc


def _s3_download(uri: str, dst: Path, what: str) -> None:
    """Download with the credentials/endpoint localmaker gives the process (AWS_ENDPOINT_URL, ...)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError as BotoClientError

    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise ClientError(f"{what} {uri!r} is not an s3://bucket/key URI")
    endpoint = os.environ.get("S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("SAGEMAKER_REGION") or None
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}) if endpoint else None
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)
    try:
        s3.download_file(bucket, key, str(dst))
    except BotoClientError as exc:
        err = exc.response.get("Error", {})
        raise ClientError(
            f"could not download {what} {uri}: {err.get('Code', '?')} {err.get('Message', '')}".rstrip()
        ) from exc
    except BotoCoreError as exc:
        raise ClientError(f"could not download {what} {uri}: {exc}") from exc


def fetch_code(uri: str, dest: Path, what: str = "sagemaker_submit_directory") -> None:
    """files.download_and_extract: an S3 tar.gz, a local dir (copied), a local tar.gz (extracted) or a
    single local file (copied) into ``dest``; nothing happens when ``dest`` already holds files."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        return
    if uri.startswith("s3://"):
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "sourcedir.tar.gz"
            _s3_download(uri, archive, what)
            _safe_extract(archive, dest, f"{what} {uri}")
        return
    path = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
    if "://" in uri and not uri.startswith("file://"):
        raise ClientError(f"{what} {uri!r}: only s3:// URIs and local paths are supported")
    if path.is_dir():
        if path.resolve() != dest.resolve():
            shutil.copytree(path, dest, dirs_exist_ok=True)
    elif path.is_file():
        if tarfile.is_tarfile(path):
            _safe_extract(path, dest, f"{what} {uri}")
        else:
            shutil.copy2(path, dest / path.name)
    else:
        raise ClientError(f"{what} {uri!r} does not exist")


def check_requirements(code_dir: Path) -> None:
    """Continue only when every requirement is already installed; localmaker never pip-installs per job."""
    req_file = code_dir / "requirements.txt"
    if not req_file.is_file():
        return
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement  # gunicorn's own dependency

    have: list[str] = []
    problems: list[str] = []
    for raw in req_file.read_text(errors="replace").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            problems.append(f"{line!r} (pip options are not supported)")
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            problems.append(f"{line!r} (not a valid requirement)")
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{line} (not installed)")
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            problems.append(f"{line} (installed: {req.name}=={version})")
        else:
            have.append(f"{req.name}=={version}")
    if problems:
        raise ClientError(
            "requirements.txt lists packages this localmaker environment does not provide: "
            + "; ".join(problems)
            + (f" (already installed: {', '.join(have)})" if have else "")
            + f". The real container pip-installs requirements.txt at start-up; localmaker runs your code with "
            f"the Python environment it runs under ({sys.prefix}) and does not install per-job packages: "
            "install them into that environment or remove them from requirements.txt."
        )
    log.info("requirements.txt: all %d requirement(s) already installed (%s); localmaker does not pip-install "
             "per-job requirements", len(have), ", ".join(have))


def _check_program(program: str, code_dir: Path, what: str) -> None:
    """The entry point is a file of the code directory: one naming a path outside it is refused (it
    would be made executable, or imported, wherever it points on this machine)."""
    try:
        safepath.inside(code_dir, program)
    except safepath.PathEscape as exc:
        raise ClientError(f"The entry point {program!r} ({what}) is not a file of the code directory: "
                          f"it {exc.reason}") from exc
