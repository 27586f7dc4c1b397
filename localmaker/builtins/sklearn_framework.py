"""SageMaker's scikit-learn framework image (``sagemaker-scikit-learn:1.2-1-cpu-py3``) in script mode.

Unlike the first-party algorithms, this image runs the *user's* code. It is the
sagemaker-scikit-learn-container on top of the sagemaker-training-toolkit (training) and the
sagemaker-containers / sagemaker-inference-toolkit transformer (serving); this module follows them:

Training (``train``)
    The SageMaker Python SDK sends the entry point as framework hyperparameters, each JSON-encoded:
    ``sagemaker_program`` (``"\\"train.py\\""``), ``sagemaker_submit_directory`` (an S3 URI of a
    ``sourcedir.tar.gz``, or a local ``file://`` path in local mode), ``sagemaker_container_log_level``,
    ``sagemaker_job_name``, ``sagemaker_region``. The code is fetched into ``<base>/code``
    (``/opt/ml/code``) and run as the toolkit runs it: ``python <program> --hp1 v1 --hp2 v2`` with the
    *user* hyperparameters only (``sagemaker_*`` removed, values JSON-decoded, keys sorted), cwd = the
    code dir, and the toolkit's ``SM_*`` environment (``SM_USER_ARGS``, ``SM_MODULE_DIR``,
    ``SM_USER_ENTRY_POINT``, ``SM_FRAMEWORK_PARAMS``, ``SM_HPS``, ``SM_HP_<NAME>``, ``SM_TRAINING_ENV``...).
    A non-zero exit fails the job with the toolkit's reason, ``ExecuteUserScriptError:`` + ``ExitCode``,
    ``ErrorMessage`` (the script's stderr from its first error line) and ``Command``.

    ``requirements.txt``: the real toolkit pip-installs it before running the script. localmaker runs
    scripts with the Python environment it runs under and never installs per-job packages (no network
    assumptions, no cross-job pollution), so: if every listed requirement is already installed at a
    matching version the job logs that and continues; otherwise it fails at once with a ClientError
    naming what is missing and what is installed.

Serving (``serve``)
    The Model's ``Environment`` names the code: ``SAGEMAKER_PROGRAM`` and ``SAGEMAKER_SUBMIT_DIRECTORY``
    (an S3 ``sourcedir.tar.gz``, or ``/opt/ml/model/code`` when the SDK repacked the code into
    ``model.tar.gz`` under ``code/``). The module is imported and its ``model_fn`` (required: the
    container's default raises "Please provide a model_fn implementation."), ``input_fn``, ``predict_fn``,
    ``output_fn`` or ``transform_fn`` are used, else the container's defaults: ``input_fn`` decodes
    ``application/json``, ``text/csv``, ``application/x-npy`` to a numpy array (float32 for JSON/CSV);
    ``predict_fn`` calls ``model.predict``; ``output_fn`` encodes to the Accept type (JSON/CSV/NPY;
    ``*/*`` or none -> ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` or JSON). An unsupported request type is
    415 and an unsupported Accept 406, with the toolkit's ``UnsupportedFormatError`` text.

Kept as on AWS, surprising as it is: a one-row ``text/csv`` body squeezes to a 1-D array, which
sklearn's ``predict`` rejects (500, "Expected 2D array"); send two or more rows or write an input_fn.

Where localmaker differs on purpose:
    * a body the default ``input_fn`` cannot decode, or a user ``input_fn`` raising ValueError /
      TypeError / KeyError / IndexError / a decode error, answers 400 naming the cause (the real
      container answers 500 with Flask's generic page); ``predict_fn`` / ``output_fn`` failures answer
      500, AWS's status code, with the exception text;
    * the model is loaded before the server forks, so a missing ``model_fn`` (or an import error) makes
      the container exit at once and the endpoint fail, the reason in its CloudWatch log stream;
    * ``application/x-npy`` bodies load with ``allow_pickle=False`` (the real container allows pickled
      object arrays, i.e. code execution from a request body);
    * media-type parameters (``text/csv; charset=utf-8``) are ignored and a multi-valued Accept picks
      the first type the default ``output_fn`` can write;
    * a ``setup.py`` code dir runs as ``python -m <module>`` with the code dir on ``PYTHONPATH``
      (the toolkit pip-installs the package first).
"""

from __future__ import annotations

import collections
import csv
import importlib
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from localmaker import safepath
from localmaker.builtins import runtime, serving
from localmaker.builtins.runtime import ClientError, TrainingEnv
from localmaker.builtins.serving import HttpError

# ---- constants of the toolkit (sagemaker_training/params.py, content_types.py) --------------------------
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


# ---- hyperparameters as the toolkit reads them ----------------------------------------------------------
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


# ---- fetching the user's code -----------------------------------------------------------------------------
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


# ---- requirements.txt -------------------------------------------------------------------------------------
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


# ---- training ---------------------------------------------------------------------------------------------
def build_command(code_dir: Path, program: str, args: list[str]) -> list[str]:
    """The toolkit's ProcessRunner command for the entry point type (_entry_point_type.get)."""
    if program.endswith(".sh"):
        (code_dir / program).chmod(0o755)
        return ["/bin/sh", "-c", f"./{program} {' '.join(args)}"]
    if (code_dir / "setup.py").exists():
        return [sys.executable, "-m", module_name_of(program), *args]
    if program.endswith(".py"):
        return [sys.executable, program, *args]
    if program.startswith("-m "):
        return [sys.executable, "-m", program[3:].strip(), *args]
    (code_dir / program).chmod(0o755)
    return ["/bin/sh", "-c", f"./{program} {' '.join(args)}"]


def training_environment(env: TrainingEnv, framework_hps: Mapping[str, Any], user_hps: Mapping[str, Any],
                         program: str, module_dir: str, log_level: int) -> dict[str, str]:
    """Environment.to_env_vars(): the ``SM_*`` variables the toolkit gives the user's script."""
    resource_file = env.base / "input" / "config" / "resourceconfig.json"
    resource = json.loads(resource_file.read_text()) if resource_file.is_file() else {}
    group = resource.get("current_group_name", "homogeneousCluster")
    groups = resource.get("instance_groups") or []
    group_hosts = next((g.get("hosts", []) for g in groups if g.get("instance_group_name") == group), [])
    channels = {c: str(env.channel_dir(c)) for c in env.channels}
    additional = {k: v for k, v in framework_hps.items() if k not in SAGEMAKER_HYPERPARAMETERS}
    num_cpus = int(os.environ.get("SM_NUM_CPUS") or os.cpu_count() or 1)
    base = env.base
    props: dict[str, Any] = {
        "additional_framework_parameters": additional,
        "channel_input_dirs": channels,
        "current_host": env.current_host,
        "current_instance_group": group,
        "current_instance_group_hosts": group_hosts,
        "current_instance_type": resource.get("current_instance_type", "local"),
        "distribution_hosts": [],
        "distribution_instance_groups": [],
        "framework_module": FRAMEWORK_MODULE,
        "hosts": env.hosts,
        "hyperparameters": dict(user_hps),
        "input_config_dir": str(base / "input" / "config"),
        "input_data_config": env.channels,
        "input_dir": str(base / "input"),
        "instance_groups": [g.get("instance_group_name") for g in groups],
        "instance_groups_dict": {g.get("instance_group_name"): g for g in groups},
        "is_hetero": len(groups) > 1,
        "is_master": env.current_host == env.hosts[0],
        "is_modelparallel_enabled": None,
        "job_name": os.environ.get("TRAINING_JOB_NAME"),
        "log_level": log_level,
        "master_hostname": env.hosts[0],
        "model_dir": str(env.model_dir),
        "module_dir": module_dir,
        "module_name": module_name_of(program),
        "network_interface_name": resource.get("network_interface_name", "eth0"),
        "num_cpus": num_cpus,
        "num_gpus": 0,
        "output_data_dir": str(env.output_data_dir),
        "output_dir": str(base / "output"),
        "output_intermediate_dir": str(base / "output" / "intermediate"),
        "resource_config": resource,
        "user_entry_point": program,
    }
    mapping: dict[str, Any] = {
        "hosts": env.hosts,
        "network_interface_name": props["network_interface_name"],
        "hps": dict(user_hps),
        "user_entry_point": program,
        "framework_params": additional,
        "resource_config": resource,
        "input_data_config": env.channels,
        "output_data_dir": props["output_data_dir"],
        "channels": sorted(channels),
        "current_host": env.current_host,
        "current_instance_type": props["current_instance_type"],
        "current_instance_group": group,
        "current_instance_group_hosts": group_hosts,
        "instance_groups": props["instance_groups"],
        "instance_groups_dict": props["instance_groups_dict"],
        "distribution_instance_groups": [],
        "is_hetero": props["is_hetero"],
        "module_name": props["module_name"],
        "log_level": log_level,
        "framework_module": FRAMEWORK_MODULE,
        "input_dir": props["input_dir"],
        "input_config_dir": props["input_config_dir"],
        "output_dir": props["output_dir"],
        "num_cpus": num_cpus,
        "num_gpus": 0,
        "model_dir": props["model_dir"],
        "module_dir": module_dir,
        "training_env": props,
        "user_args": to_cmd_args(user_hps),
        "output_intermediate_dir": props["output_intermediate_dir"],
    }
    for name, path in channels.items():
        mapping[f"channel_{name}"] = path
    for key, value in user_hps.items():
        mapping[f"hp_{key}"] = value
    return to_env_vars(mapping)


def error_message(stderr_lines: list[str]) -> str:
    """The toolkit's ErrorMessage: stderr from the first line naming a Python error on (else its tail)."""
    start = next((i for i, line in enumerate(stderr_lines) if any(e in line for e in _PYTHON_ERRORS)), None)
    lines = stderr_lines[start:] if start is not None else stderr_lines[-10:]
    text = "\n".join(line.rstrip() for line in lines).strip()
    if len(text) > _ERROR_MESSAGE_CHARS:
        text = "..." + text[-_ERROR_MESSAGE_CHARS:]
    return text


def execute_user_script_error(code: int, stderr_lines: list[str], cmd: list[str]) -> str:
    """errors.ExecuteUserScriptError's text; SageMaker prefixes it with ``AlgorithmError: ``."""
    return f'ExecuteUserScriptError:\nExitCode {code}\nErrorMessage "{error_message(stderr_lines)}"\nCommand "{" ".join(cmd)}"'


def run_user_script(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    """Run the script; stdout and stderr stream to the job log, stderr's tail is kept for the reason."""
    proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=None,
                            stderr=subprocess.PIPE)
    tail: collections.deque[str] = collections.deque(maxlen=200)
    assert proc.stderr is not None
    for raw in iter(proc.stderr.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        sys.stderr.write(line)
        sys.stderr.flush()
        tail.append(line.rstrip("\n"))
    proc.stderr.close()
    return proc.wait(), list(tail)


def train(env: TrainingEnv) -> None:
    """Fetch the user's code, check requirements, run the entry point as the toolkit does."""
    hps = decode_hyperparameters(env.hyperparameters)
    framework, user = split_hyperparameters(hps)
    log_level = _log_level(framework.get("sagemaker_container_log_level"))
    _configure_logging(log_level)
    log.info("Imported framework sagemaker_sklearn_container.training (localmaker)")

    program = os.environ.get("SAGEMAKER_PROGRAM") or framework.get("sagemaker_program")
    if not program or not isinstance(program, str):
        raise ClientError(
            "The SageMaker scikit-learn container runs your training script (script mode): the hyperparameter "
            "'sagemaker_program' naming the entry point (e.g. \"train.py\", JSON-encoded as the SageMaker "
            "Python SDK sends it) is missing. Set it together with 'sagemaker_submit_directory' "
            "(s3://.../sourcedir.tar.gz holding the script), or use SKLearn(entry_point=...) in the SDK."
        )
    submit = os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or framework.get("sagemaker_submit_directory")
    if not submit or not isinstance(submit, str):
        raise ClientError(
            f"The hyperparameter 'sagemaker_submit_directory' is missing: localmaker cannot find the code for "
            f"'{program}'. Set it to the S3 URI of a sourcedir.tar.gz with your script at its root "
            "(the SageMaker Python SDK uploads one for SKLearn(entry_point=..., source_dir=...))."
        )
    if framework.get("sagemaker_job_name"):
        os.environ["SAGEMAKER_JOB_NAME"] = str(framework["sagemaker_job_name"])
    if framework.get("sagemaker_region"):
        os.environ["SAGEMAKER_REGION"] = str(framework["sagemaker_region"])

    code_dir = env.base / "code"
    fetch_code(submit, code_dir)
    entry = program[3:].strip() if program.startswith("-m ") else program
    _check_program(entry, code_dir, "sagemaker_program")
    if not program.startswith("-m ") and not (code_dir / entry).exists() and not (code_dir / "setup.py").exists():
        present = sorted(p.name for p in code_dir.iterdir())[:20]
        raise ClientError(
            f"The entry point '{program}' (sagemaker_program) is not at the root of sagemaker_submit_directory "
            f"{submit}; it holds: {', '.join(present) or '(nothing)'}"
        )
    if (code_dir / "setup.py").exists():
        log.info("setup.py found: running '%s' as a module with %s on PYTHONPATH (localmaker does not "
                 "pip-install the package)", module_name_of(program), code_dir)
    check_requirements(code_dir)

    args = to_cmd_args(user)
    cmd = build_command(code_dir, program, args)
    sm_vars = training_environment(env, framework, user, program, submit, log_level)
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith("SM_HP_")}
    proc_env.update(sm_vars)
    proc_env["CURRENT_HOST"] = env.current_host
    proc_env.setdefault("SAGEMAKER_JOB_NAME", "")
    proc_env.setdefault("SAGEMAKER_REGION", os.environ.get("AWS_REGION", ""))
    proc_env["PYTHONPATH"] = os.pathsep.join([str(code_dir), *[p for p in sys.path if p]])
    proc_env.setdefault("PYTHONUNBUFFERED", "1")

    log.info("Invoking user script")
    log.info("Training Env:\n\n%s\n", json.dumps(json.loads(sm_vars["SM_TRAINING_ENV"]), indent=4, sort_keys=True))
    log.info("Invoking script with the following command:\n\n%s\n", " ".join(cmd))
    code, stderr_lines = run_user_script(cmd, code_dir, proc_env)
    if code != 0:
        log.error("Reporting training FAILURE")
        raise SystemExit(runtime.fail(execute_user_script_error(code, stderr_lines, cmd), env.base))
    (env.base / "output").mkdir(parents=True, exist_ok=True)
    (env.base / "output" / "success").write_text("")
    log.info("Reporting training SUCCESS")


# ---- serving: the container's default handlers -----------------------------------------------------------
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


def json_to_numpy(text: str | bytes) -> Any:
    import numpy as np

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _bad_request("the application/json body is not valid JSON", exc) from None
    try:
        return np.array(data)
    except ValueError as exc:
        raise _bad_request("the application/json body is not an array", exc) from None


def csv_to_numpy(text: str | bytes) -> Any:
    """Rows of the CSV as strings, squeezed, then as numbers (encoders.csv_to_numpy): a single row becomes
    a 1-D array, which sklearn's predict rejects - as on AWS, send 2+ rows or write an input_fn."""
    import numpy as np

    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=",", quotechar='"', doublequote=True, strict=True))
        array = np.array(rows).squeeze()
    except (csv.Error, ValueError) as exc:
        raise _bad_request("error while decoding csv", exc) from None
    try:
        return array.astype(None)
    except ValueError as exc:
        raise _bad_request("the text/csv body has a value that is not a number", exc) from None


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


# ---- serving: the user's module ---------------------------------------------------------------------------
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


def _check_program(program: str, code_dir: Path, what: str) -> None:
    """The entry point is a file of the code directory: one naming a path outside it is refused (it
    would be made executable, or imported, wherever it points on this machine)."""
    try:
        safepath.inside(code_dir, program)
    except safepath.PathEscape as exc:
        raise ClientError(f"The entry point {program!r} ({what}) is not a file of the code directory: "
                          f"it {exc.reason}") from exc


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
        try:
            result = handler.transform_fn(handler.model, content, ctype, accept)
        except HttpError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's code; reported, never a crashed worker
            traceback.print_exc()
            raise HttpError(500, f"transform_fn: {type(exc).__name__}: {exc}") from None
        return _as_response(result, accept)
    try:
        data = handler.input_fn(content, ctype)
    except UnsupportedFormatError as exc:
        raise HttpError(415, _format_error(exc)) from None
    except HttpError:
        raise
    except _CLIENT_ERRORS as exc:
        traceback.print_exc()
        raise _bad_request("input_fn could not deserialize the request", exc) from None
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        raise HttpError(500, f"input_fn: {type(exc).__name__}: {exc}") from None
    try:
        prediction = handler.predict_fn(data, handler.model)
    except HttpError:
        raise
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        raise HttpError(500, f"predict_fn: {type(exc).__name__}: {exc}") from None
    try:
        result = handler.output_fn(prediction, accept)
    except UnsupportedFormatError as exc:
        raise HttpError(406, _format_error(exc)) from None
    except HttpError:
        raise
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        raise HttpError(500, f"output_fn: {type(exc).__name__}: {exc}") from None
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


def main(argv: list[str] | None = None) -> int:
    return runtime.main(train, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
