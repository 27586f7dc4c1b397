"""What every part of a running localmaker shares: state, logs, images, settings, an S3 client."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .images import ImageRegistry
from .logs import LogStore
from .store import Store


@dataclass
class Settings:
    """Tunables; defaults follow AWS where AWS has a number.

    Attributes:
        health_check_timeout: seconds a new serve process has to answer GET /ping (AWS: 8 min max).
        stop_grace: seconds between SIGTERM and SIGKILL when a job is stopped (AWS gives 120 s).
        invoke_timeout: InvokeEndpoint's container timeout (AWS: 60 s).
        max_payload: InvokeEndpoint's request size limit (AWS: 6 MB).
        capture_flush_interval: seconds data capture buffers records before writing a file.
        supervise_interval: how often endpoint processes are checked and restarted.
        read_timeout: seconds a request connection may stay silent (a stalled upload, a slow header)
            before the edge gives its thread back.
        max_api_body: size limit of a JSON API request body (SageMaker, CloudWatch Logs).
        max_instances_per_job: InstanceCount quota of one training, processing or transform job
            (AWS: a per-instance-type account quota; ResourceLimitExceeded above it).
        max_instances_per_variant: InitialInstanceCount quota of one endpoint variant.
        allow_hosts: Host names served besides loopback addresses and localhost (--allow-host).
        cors_origins: browser origins allowed to call localmaker (--cors-origin); none by default.
        faults: injected failures, ``OPERATION=CODE[:COUNT]`` (--fault; :mod:`localmaker.faults`).
    """

    health_check_timeout: float = 120.0
    stop_grace: float = 10.0
    invoke_timeout: float = 60.0
    max_payload: int = 6 * 1024 * 1024
    capture_flush_interval: float = 1.0
    supervise_interval: float = 1.0
    read_timeout: float = 60.0
    max_api_body: int = 16 * 1024 * 1024
    max_instances_per_job: int = 8
    max_instances_per_variant: int = 8
    allow_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()


@dataclass
class Ctx:
    home: Path
    region: str
    store: Store
    logs: LogStore
    images: ImageRegistry
    settings: Settings = field(default_factory=Settings)
    endpoint_url: str = ""
    _local: threading.local = field(default_factory=threading.local)

    def s3(self) -> Any:
        """A boto3 S3 client against localmaker itself (one per thread: clients aren't shared)."""
        client = getattr(self._local, "s3", None)
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id="localmaker",
                aws_secret_access_key="localmaker",
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
            )
            self._local.s3 = client
        return client
