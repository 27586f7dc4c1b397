"""Shared fixtures: the real config, a run context, and moto-backed AWS clients.

moto runs in-process (``mock_aws``), so these tests need no server, no network and no
credentials; endpoint variables that would point boto3 at a local server are removed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.mlpipeline.config import CONFIG_DIR, PipelineConfig, load_config
from include.mlpipeline.run import RunContext

RUN_ID = "manual__2024-06-01T02:00:00+00:00"
TS_NODASH = "20240601T020000"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private copy of include/config that a test may edit."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    return target


@pytest.fixture(scope="session")
def dev_cfg() -> PipelineConfig:
    return load_config("diabetes_dnn", "dev")


@pytest.fixture(scope="session")
def prod_cfg() -> PipelineConfig:
    return load_config("diabetes_dnn", "prod")


@pytest.fixture
def dev_ctx() -> RunContext:
    return RunContext(model="diabetes_dnn", stage="dev", run_id=RUN_ID, ts_nodash=TS_NODASH)


@pytest.fixture
def prod_ctx() -> RunContext:
    return RunContext(model="diabetes_dnn", stage="prod", run_id=RUN_ID, ts_nodash=TS_NODASH)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process AWS with fake credentials, us-east-1."""
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    """An S3 client with the dev and prod buckets created."""
    import boto3

    client = boto3.client("s3", region_name="us-east-1")
    for bucket in ("mlpipeline-dev", "mlpipeline-prod"):
        client.create_bucket(Bucket=bucket)
    return client


@pytest.fixture
def sagemaker(aws: None) -> Any:
    import boto3

    return boto3.client("sagemaker", region_name="us-east-1")


class S3Reader:
    """Small read helpers over one S3 client, handed to tests as the ``s3_read`` fixture."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def text(self, uri: str) -> str:
        """The body of one object as text."""
        bucket, _, key = uri[len("s3://") :].partition("/")
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")

    def keys(self, uri: str) -> list[str]:
        """Keys under a prefix, sorted."""
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture
def s3_read(s3: Any) -> S3Reader:
    return S3Reader(s3)
