"""Shutdown while a job is still getting ready: the job fails with the shutdown reason, never "Stopped".

In process (not the subprocess server of the other tests) so a test can hold a job in a phase
(downloading data, waiting for its server's ping) and stop localmaker exactly there: the window a
loaded machine hits by chance. "Stopped" would tell the user someone stopped the job; nobody did.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from localmaker import training, transform
from localmaker.server import LocalMaker
from localmaker.store import Store

from .conftest import ROLE, TEST_IMAGES, training_request, unique, wait_for, wait_training

REASON = "InternalServerError: localmaker shut down while the job was running."
BUCKET = "shutdown"


@dataclass
class Held:
    """A localmaker in this process, and a gate that holds one of its job phases until released."""

    lm: LocalMaker
    sm: Any
    s3: Any
    entered: threading.Event
    release: threading.Event
    home: Path

    def hold(self, monkeypatch: pytest.MonkeyPatch, owner: Any, attr: str) -> None:
        original = getattr(owner, attr)

        def held(*args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            self.release.wait(30)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, attr, held)

    def stop_while_held(self, is_told: Any) -> None:
        """Stop localmaker while the phase is held; release it once the job knows it is a shutdown."""
        assert self.entered.wait(60), "the job never reached the held phase"
        stopper = threading.Thread(target=self.lm.stop)
        stopper.start()
        try:
            wait_for(lambda: None, lambda _: is_told(), timeout=30)
        finally:
            self.release.set()
            stopper.join(60)
        assert not stopper.is_alive(), "localmaker did not stop"

    def stored(self, kind: str, name: str) -> dict[str, Any]:
        store = Store(self.home / "state.db")
        try:
            doc = store.get(kind, name)
        finally:
            store.close()
        assert doc is not None
        return doc


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Held]:
    home = tmp_path / "home"
    lm = LocalMaker(home, port=0, images=[TEST_IMAGES])
    lm.start()
    kw = {"endpoint_url": lm.url, "region_name": "us-east-1", "aws_access_key_id": "t",
          "aws_secret_access_key": "t", "config": Config(retries={"max_attempts": 1})}
    h = Held(lm, boto3.client("sagemaker", **kw), boto3.client("s3", **kw), threading.Event(), threading.Event(), home)
    h.s3.create_bucket(Bucket=BUCKET)
    h.s3.put_object(Bucket=BUCKET, Key="data/train/a.csv", Body=b"1,2\n")
    try:
        yield h
    finally:
        h.release.set()
        lm.stop()  # a no-op when the test stopped it


def test_shutdown_during_download_fails_the_training_job(held: Held, monkeypatch: pytest.MonkeyPatch) -> None:
    held.hold(monkeypatch, training.TrainingRun, "_prepare_host")
    name = unique("dl")
    held.sm.create_training_job(**training_request(name, BUCKET))
    assert held.entered.wait(30)
    assert held.sm.describe_training_job(TrainingJobName=name)["SecondaryStatus"] == "Downloading"

    def told() -> bool:
        run = held.lm.training.runner.run_of(name)
        return run is not None and run.shutdown.is_set() and run.stop_requested.is_set()

    held.stop_while_held(told)
    doc = held.stored("TrainingJob", name)
    assert (doc["TrainingJobStatus"], doc["SecondaryStatus"]) == ("Failed", "Failed"), doc
    assert doc["FailureReason"] == REASON


def test_shutdown_while_the_model_server_starts_fails_the_transform_job(held: Held, monkeypatch: pytest.MonkeyPatch) -> None:
    job = unique("txjob")
    held.sm.create_training_job(**training_request(job, BUCKET))
    art = wait_training(held.sm, job)["ModelArtifacts"]["S3ModelArtifacts"]
    model = unique("txmodel")
    held.sm.create_model(ModelName=model, ExecutionRoleArn=ROLE,
                         PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny-algo:1",
                                           "ModelDataUrl": art})
    held.hold(monkeypatch, transform, "await_ping")
    name = unique("tx")
    held.sm.create_transform_job(
        TransformJobName=name, ModelName=model,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/train/"}},
                        "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{BUCKET}/out/{name}"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    runner = held.lm.transform.runner

    def told() -> bool:
        run = runner.run_of(name)
        return run is not None and run.shutdown.is_set() and run.stop_requested.is_set()

    held.stop_while_held(told)
    doc = held.stored("TransformJob", name)
    assert doc["TransformJobStatus"] == "Failed", doc
    assert doc["FailureReason"] == REASON
