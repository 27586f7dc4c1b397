"""A real localmaker server (subprocess) on a free port with a temporary home, and boto3 clients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
TEST_IMAGES = HERE / "images.yaml"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@dataclass
class Server:
    url: str
    home: Path
    proc: subprocess.Popen[str]
    output: list[str]

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}, read_timeout=90),
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rest = self.proc.stdout.read() if self.proc.stdout else ""
        self.output.extend(rest.splitlines())
        return self.proc.returncode


def start_server(home: Path, *extra: str, images: Path = TEST_IMAGES, timeout: float = 60) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    cmd = [sys.executable, "-m", "localmaker", "--port", "0", "--home", str(home), "--images", str(images),
           "--health-check-timeout", "30", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        output.append(line.rstrip())
        if line.startswith("localmaker ready on "):
            url = line.split()[3]
            return Server(url, home, proc, output)
    proc.kill()
    raise RuntimeError("localmaker did not start:\n" + "\n".join(output))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("lmhome"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def sm(server: Server) -> Any:
    return server.client("sagemaker")


@pytest.fixture(scope="session")
def s3(server: Server) -> Any:
    return server.client("s3")


@pytest.fixture(scope="session")
def logs(server: Server) -> Any:
    return server.client("logs")


@pytest.fixture(scope="session")
def runtime(server: Server) -> Any:
    return server.client("sagemaker-runtime")


@pytest.fixture(scope="session")
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket="lm-tests")
    return "lm-tests"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(fn: Callable[[], Any], pred: Callable[[Any], bool], timeout: float = 60, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    value = fn()
    while not pred(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value: {value}")
        time.sleep(interval)
        value = fn()
    return value


def training_request(name: str, bucket: str, image: str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny-algo:1",
                     hps: dict[str, str] | None = None, count: int = 1, prefix: str = "data/train/",
                     distribution: str = "FullyReplicated", max_runtime: int = 600) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "validation:rmse", "Regex": r"validation:rmse=([0-9.]+)"},
                {"Name": "train:loss", "Regex": r"train:loss=([0-9.]+)"},
            ],
        },
        "RoleArn": ROLE,
        "HyperParameters": hps or {},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{prefix}",
                                                "S3DataDistributionType": distribution}},
                "ContentType": "text/csv",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": count, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }


def wait_training(sm: Any, name: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(
        lambda: sm.describe_training_job(TrainingJobName=name),
        lambda d: d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"),
        timeout,
    )


def wait_endpoint(sm: Any, name: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(
        lambda: sm.describe_endpoint(EndpointName=name),
        lambda d: d["EndpointStatus"] not in ("Creating", "Updating"),
        timeout,
    )
