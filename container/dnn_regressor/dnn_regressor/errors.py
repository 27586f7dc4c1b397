"""Error types and the SageMaker failure file.

SageMaker shows the first 1024 characters of ``/opt/ml/output/failure`` as the job's
``FailureReason``. The built-in algorithms prefix it with ``ClientError:`` when the customer
can fix it (data, hyperparameters, channels) and ``AlgorithmError:`` otherwise; we do the same,
so a pipeline (or a person reading the console) can tell "fix your input" from "report a bug".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


class ClientError(Exception):
    """A problem the caller can fix: bad data, a bad hyperparameter, a missing channel.

    The message must be one self-contained sentence naming what is wrong and where
    (file, row, column, hyperparameter) and, when it is not obvious, what to do.
    """


def one_line(text: str, limit: int = 1024) -> str:
    """Collapse whitespace so the reason survives SageMaker's one-line ``FailureReason``."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def failure_reason(exc: BaseException) -> str:
    """The failure-file line for an exception: prefix + one-line message."""
    if isinstance(exc, ClientError):
        return one_line(f"ClientError: {exc}")
    detail = str(exc) or exc.__class__.__name__
    return one_line(f"AlgorithmError: {exc.__class__.__name__}: {detail} (the job log has the traceback)")


def write_failure(failure_file: Path, reason: str) -> None:
    """Write the reason where SageMaker reads it; never raise, the job is already failing."""
    try:
        failure_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = failure_file.with_name(f".{failure_file.name}.{os.getpid()}.tmp")
        tmp.write_text(one_line(reason) + "\n", encoding="utf-8")
        tmp.replace(failure_file)
    except OSError as exc:  # pragma: no cover - only when /opt/ml itself is broken
        print(f"could not write failure file {failure_file}: {exc}", file=sys.stderr, flush=True)
