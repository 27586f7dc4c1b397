"""The run context and the deterministic names derived from it.

Every SageMaker resource and S3 prefix a run creates is named from the run alone (model, stage,
``ts_nodash``, ``run_id``), never from the clock or a random suffix: a retried Airflow task then
computes the same name and finds the job its first try started, instead of starting a second one.

Stdlib only: DAG files import this at parse time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .s3 import split_s3_uri

#: SageMaker's name rule for jobs, models, endpoints, endpoint configs and package groups.
SAGEMAKER_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
#: Maximum lengths that differ from the usual 63 characters.
MAX_NAME_LEN = 63
MAX_TUNING_JOB_NAME_LEN = 32

_HASH_LEN = 8


def sagemaker_name(*parts: str, max_len: int = MAX_NAME_LEN) -> str:
    """Join ``parts`` into a name SageMaker accepts, shortening it deterministically when too long.

    Runs of characters other than letters and digits become one ``-`` (so ``diabetes_dnn`` ->
    ``diabetes-dnn``) and the
    result is lower-cased, because SageMaker treats most names case-insensitively and two runs
    differing only in case would collide anyway. When the name is longer than ``max_len`` it is cut
    and an 8-hex-digit hash of the full name is appended: the same inputs always give the same
    name, and two long names sharing a prefix still differ.
    """
    if max_len < _HASH_LEN + 2:
        raise ValueError(f"max_len must be at least {_HASH_LEN + 2} (got {max_len})")
    raw = "-".join(str(p) for p in parts if str(p))
    name = re.sub(r"[^a-zA-Z0-9]+", "-", raw).strip("-").lower()
    if not name:
        raise ValueError(f"cannot build a SageMaker name from {parts!r}: no letters or digits")
    if len(name) > max_len:
        digest = hashlib.sha256(name.encode()).hexdigest()[:_HASH_LEN]
        name = f"{name[: max_len - _HASH_LEN - 1].rstrip('-')}-{digest}"
    assert SAGEMAKER_NAME_PATTERN.match(name), name
    return name


def run_key(run_id: str) -> str:
    """An S3-key-safe form of an Airflow run id (``manual__2024-01-01T00:00:00+00:00``).

    ``:`` and ``+`` are legal in S3 keys but ``+`` decodes to a space in some URL handling and
    ``:`` breaks local file mirrors (Windows, some sync tools), so both become ``-``. The mapping
    is deterministic, which is all a retry needs.
    """
    key = re.sub(r"[^A-Za-z0-9._=-]+", "-", run_id).strip("-")
    if not key:
        raise ValueError(f"run_id {run_id!r} has no usable characters")
    return key


@dataclass(frozen=True)
class RunContext:
    """Identity of one pipeline run, as far as names and S3 locations are concerned.

    Attributes:
        model: model name as in ``include/config/models/<model>.yaml``.
        stage: ``dev`` or ``prod`` (any file under ``include/config/stages``).
        run_id: the Airflow run id; only its S3-safe form (:func:`run_key`) is used in keys.
        ts_nodash: ``YYYYMMDDTHHMMSS`` of the run's logical date (or ``run_after`` for runs
            without one); the time part of every SageMaker name.
        data_uris: channel -> S3 prefix, as returned by ETL; empty means "the standard layout
            under this run's prefix", which is what ETL writes, so builders work either way.
    """

    model: str
    stage: str
    run_id: str
    ts_nodash: str
    data_uris: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d{8}T\d{6}", self.ts_nodash):
            raise ValueError(f"ts_nodash must look like 20240131T235959 (got {self.ts_nodash!r})")
        if not self.run_id:
            raise ValueError("run_id must not be empty")

    @property
    def run_key(self) -> str:
        return run_key(self.run_id)

    def with_data(self, data_uris: Mapping[str, str]) -> RunContext:
        """A copy carrying ETL's channel URIs (so builders point at what ETL really wrote)."""
        return replace(self, data_uris=dict(data_uris))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict, for XCom."""
        return {
            "model": self.model,
            "stage": self.stage,
            "run_id": self.run_id,
            "ts_nodash": self.ts_nodash,
            "data_uris": dict(self.data_uris),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunContext:
        return cls(
            model=data["model"],
            stage=data["stage"],
            run_id=data["run_id"],
            ts_nodash=data["ts_nodash"],
            data_uris=dict(data.get("data_uris") or {}),
        )

    @classmethod
    def from_airflow(cls, context: Mapping[str, Any], *, model: str, stage: str) -> RunContext:
        """Build from an Airflow task context without importing Airflow.

        Airflow 3 gives manually triggered runs no logical date, and then no ``ts_nodash``
        either; ``run_after`` (when the run was queued) is as stable across retries, so it is used
        instead.
        """
        ts = context.get("ts_nodash")
        if not ts:
            dag_run = context["dag_run"]
            when = getattr(dag_run, "logical_date", None) or dag_run.run_after
            ts = when.strftime("%Y%m%dT%H%M%S")
        return cls(model=model, stage=stage, run_id=str(context["run_id"]), ts_nodash=ts)


#: the SageMaker console's page for each kind of resource
_CONSOLE_PAGES = {
    "training": "jobs",
    "tuning": "hyper-tuning-jobs",
    "transform": "transform-jobs",
    "processing": "processing-jobs",
    "endpoint": "endpoints",
}


#: how long a report link printed in a task log stays valid (a person reads the log within a day)
LOG_LINK_SECONDS = 24 * 3600


def s3_console_url(region: str, uri: str) -> str:
    """The AWS console page of an S3 folder (``s3://bucket/prefix/``): a prefix cannot be presigned."""
    from urllib.parse import quote

    bucket, prefix = split_s3_uri(uri)
    return (
        f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?region={region}"
        f"&prefix={quote(prefix, safe='/')}&showversions=false"
    )


def sagemaker_console_url(region: str, kind: str, name: str) -> str:
    """The AWS console page of a SageMaker training/tuning/transform/processing job or endpoint."""
    if kind not in _CONSOLE_PAGES:
        raise ValueError(f"unknown SageMaker resource kind {kind!r}: one of {sorted(_CONSOLE_PAGES)}")
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{_CONSOLE_PAGES[kind]}/{name}"
