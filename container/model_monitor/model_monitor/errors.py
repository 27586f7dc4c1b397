"""Errors a user can act on, and the file SageMaker reads a failed job's reason from.

A Processing job's ``FailureReason`` is the first 1024 characters of ``/opt/ml/output/message``
(under ``SAGEMAKER_BASE_DIR`` when localmaker relocates ``/opt/ml``). Like the built-in
containers we prefix it with ``ClientError:`` when the caller can fix it (configuration, missing
baseline, no data) and ``AlgorithmError:`` for our own bugs, so a pipeline can tell the two apart.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


class MonitorError(Exception):
    """Unusable input or configuration: the message says what is wrong and what to do."""


def one_line(text: str, limit: int = 1024) -> str:
    """Collapse whitespace: ``FailureReason`` is shown as one line and truncated at 1024."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def message_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$SAGEMAKER_BASE_DIR/output/message``; ``/opt/ml`` when not relocated."""
    env = os.environ if environ is None else environ
    return Path(env.get("SAGEMAKER_BASE_DIR") or "/opt/ml") / "output" / "message"


def failure_reason(exc: BaseException) -> str:
    """The message-file line: who can fix it, then the one-line reason."""
    if isinstance(exc, MonitorError):
        return one_line(f"ClientError: {exc}")
    detail = str(exc) or type(exc).__name__
    return one_line(f"AlgorithmError: {type(exc).__name__}: {detail} (the job log has the traceback)")


def write_message(reason: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Write the reason where SageMaker looks; never raise, the job is failing already."""
    path = message_path(environ)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(one_line(reason) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"could not write the failure message to {path}: {exc}", file=sys.stderr)
        return None
    return path
