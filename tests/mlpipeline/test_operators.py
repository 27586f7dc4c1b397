"""include/mlpipeline/operators.py: how the SageMaker operators wait (config ``airflow.*``), without AWS.

The operators talk to SageMaker only through their hook, replaced here by a recorder; what a
deferred wait hands to the triggerer is the ``TaskDeferred`` the task raises.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-operators-tests-"))

from include.mlpipeline.config import AirflowSettings  # noqa: E402

JOB = "diabetes-dnn-dev-20240601t020000"
DEFERRED = AirflowSettings(deferrable=True, poll_interval_seconds=5, max_wait_seconds=600)
IN_TASK = AirflowSettings(deferrable=False, poll_interval_seconds=3, max_wait_seconds=900)


class RecordingHook:
    """The few SageMakerHook calls the training operator makes, answered from ``status``."""

    non_terminal_states = {"InProgress", "Stopping"}
    training_failed_states = {"Failed"}

    def __init__(self, status: str | None) -> None:
        self.status = status
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def describe_training_job(self, name: str) -> dict[str, Any]:
        self.calls.append(("describe_training_job", (name,)))
        if self.status is None:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ValidationException", "Message": "not found"}}, "Describe")
        return {"TrainingJobName": name, "TrainingJobStatus": self.status}

    def check_training_status_with_log(self, *args: Any) -> None:
        self.calls.append(("check_training_status_with_log", args))


def training(settings: AirflowSettings, status: str | None = "InProgress") -> Any:
    from include.mlpipeline.operators import ResumableTrainingOperator

    op = ResumableTrainingOperator(
        task_id="train", config={"TrainingJobName": JOB}, print_log=True, wait_settings=lambda ctx: settings
    )
    op.__dict__["hook"] = RecordingHook(status)  # the cached_property's slot
    return op


def test_the_runs_settings_replace_the_parsed_ones_once() -> None:
    from include.mlpipeline.operators import TransformOperator

    seen: list[Any] = []

    def settings(context: Any) -> AirflowSettings:
        seen.append(context)
        return DEFERRED

    op = TransformOperator(task_id="t", config={}, deferrable=False, check_interval=30, wait_settings=settings)
    op.apply_wait_settings({"params": {}})
    op.apply_wait_settings({"params": {}})
    assert len(seen) == 1
    assert (op.deferrable, op.check_interval, op.max_ingestion_time) == (True, 5, 600)
    assert op.max_attempts == 120  # 600 s at 5 s, not the provider's 60 polls


def test_a_deferred_wait_polls_at_the_interval_for_the_whole_budget() -> None:
    """The provider's tuning and endpoint operators build their trigger without an attempt count
    (480 by default): the mixin gives every trigger the configured budget."""
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from airflow.sdk.exceptions import TaskDeferred

    from include.mlpipeline.operators import TuningOperator

    op = TuningOperator(task_id="tune", config={}, wait_settings=lambda ctx: DEFERRED)
    op.apply_wait_settings({})
    with pytest.raises(TaskDeferred) as deferred:
        op.defer(
            trigger=SageMakerTrigger(job_name="tj", job_type="tuning", waiter_delay=op.check_interval),
            method_name="execute_complete",
        )
    trigger = deferred.value.trigger
    assert trigger.waiter_delay == 5 and trigger.attempts == 120
    assert trigger.serialize()[1]["waiter_max_attempts"] == 120


def test_an_adopted_running_job_is_waited_for_in_the_triggerer() -> None:
    from airflow.sdk.exceptions import TaskDeferred

    op = training(DEFERRED)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"params": {}})
    trigger, method = deferred.value.trigger, deferred.value.method_name
    assert method == "execute_complete"
    fields = trigger.serialize()[1]
    assert (fields["job_name"], fields["job_type"], fields["waiter_delay"]) == (JOB, "Training", 5)
    assert fields["waiter_max_attempts"] == 120
    assert [c for c, _ in op.hook.calls] == ["describe_training_job"]  # no new job, no polling here


def test_an_adopted_running_job_is_polled_in_the_task_when_not_deferrable() -> None:
    op = training(IN_TASK)
    op.__dict__["serialize_result"] = lambda name: {"Training": {"TrainingJobName": name}}
    assert op.execute({"params": {}}) == {"Training": {"TrainingJobName": JOB}}
    name, args = op.hook.calls[-1]
    assert name == "check_training_status_with_log"
    assert args[0] == JOB and args[3] is True and args[4:] == (3, 900)  # wait, every 3 s, at most 900 s


def test_the_deferred_training_prints_the_jobs_log_when_it_resumes() -> None:
    op = training(DEFERRED, status="Completed")
    op.__dict__["serialize_result"] = lambda name: {"Training": {"TrainingJobName": name}}
    result = op.execute_complete({}, {"status": "success", "job_name": JOB})
    assert result == {"Training": {"TrainingJobName": JOB}}
    name, args = op.hook.calls[-1]
    assert name == "check_training_status_with_log" and args[0] == JOB
    assert args[3] is False  # read the log once, to its end: the job has ended


def test_a_failed_deferred_training_prints_its_log_and_fails() -> None:
    op = training(DEFERRED, status="Failed")
    with pytest.raises(Exception, match="Error while running job"):
        op.execute_complete({}, {"status": "failed", "job_name": JOB, "message": "bad input"})
    assert "check_training_status_with_log" in [c for c, _ in op.hook.calls]
