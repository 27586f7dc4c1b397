"""The service seam: every resource kind is a Service, its operations are botocore's, recovery is per kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localmaker.controlplane import TagService, service_model
from localmaker.jobrunner import INTERRUPTED_REASON
from localmaker.sagemaker_api import JsonApi
from localmaker.server import LocalMaker
from localmaker.service import Service
from localmaker.training import new_job_doc

from .conftest import training_request


@pytest.fixture
def lm(tmp_path: Path) -> Iterator[LocalMaker]:
    lm = LocalMaker(tmp_path / "home", port=0)  # built, not started: nothing serves, nothing runs
    try:
        yield lm
    finally:
        lm.stop()


def test_every_service_is_a_service_answering_its_models_operations(lm: LocalMaker) -> None:
    answered: dict[str, set[str]] = {}
    for svc in lm.services:
        assert isinstance(svc, Service), type(svc).__name__
        for op, fn in svc.operations().items():
            service_model(svc.api).operation_model(op)  # raises for a name botocore does not know
            assert callable(fn)
            answered.setdefault(svc.api, set()).add(op)
    assert answered["sagemaker"] == set(lm.sagemaker.operations)
    assert answered["logs"] == set(lm.logs_api.operations)
    # each job kind answers its four operations, tuning one more
    for kind in ("TrainingJob", "ProcessingJob", "TransformJob", "HyperParameterTuningJob"):
        assert {f"Create{kind}", f"Describe{kind}", f"List{kind}s", f"Stop{kind}"} <= answered["sagemaker"]
    assert "ListTrainingJobsForHyperParameterTuningJob" in answered["sagemaker"]


def test_two_services_answering_one_operation_is_refused(lm: LocalMaker) -> None:
    with pytest.raises(ValueError, match="two services answer sagemaker operation AddTags"):
        JsonApi("sagemaker", [TagService(lm.ctx), TagService(lm.ctx)], lm.ctx.settings)


def test_recovery_fails_the_running_jobs_of_every_kind_and_only_those(lm: LocalMaker) -> None:
    store = lm.ctx.store
    store.put("TrainingJob", "t-run", new_job_doc(training_request("t-run", "b"), "us-east-1"))
    done = new_job_doc(training_request("t-done", "b"), "us-east-1")
    done["TrainingJobStatus"] = "Completed"
    store.put("TrainingJob", "t-done", done)
    for kind, status in (("ProcessingJob", "InProgress"), ("TransformJob", "Stopping"),
                         ("HyperParameterTuningJob", "InProgress")):
        store.put(kind, "j", {f"{kind}Name": "j", f"{kind}Status": status, "CreationTime": 1.0})
    for svc in lm.services:
        svc.recover()
    t = store.get("TrainingJob", "t-run")
    assert t is not None
    assert (t["TrainingJobStatus"], t["SecondaryStatus"], t["FailureReason"]) == ("Failed", "Failed", INTERRUPTED_REASON)
    assert "TrainingEndTime" in t
    assert store.get("TrainingJob", "t-done")["TrainingJobStatus"] == "Completed"  # type: ignore[index]
    for kind, end in (("ProcessingJob", "ProcessingEndTime"), ("TransformJob", "TransformEndTime"),
                      ("HyperParameterTuningJob", "HyperParameterTuningEndTime")):
        d = store.get(kind, "j")
        assert d is not None
        assert (d[f"{kind}Status"], d["FailureReason"]) == ("Failed", INTERRUPTED_REASON), kind
        assert end in d, kind
