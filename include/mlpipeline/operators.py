"""The one Airflow-aware module of the pipeline library: thin extensions of the provider's operators.

How every SageMaker operator waits comes from the run's config (``airflow.deferrable``,
``airflow.poll_interval_seconds``, ``airflow.max_wait_seconds``), read when the task runs, so the
stage and the run's own overrides apply: see :class:`ConfiguredWaitMixin`.

The provider's SageMaker operators answer a name collision by starting a *second* job under a
timestamped name. Our names are deterministic per run, so a retried task should instead adopt
the job its first try started (still running or finished) rather than pay for it twice.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointOperator,
    SageMakerProcessingOperator,
    SageMakerRegisterModelVersionOperator,
    SageMakerTrainingOperator,
    SageMakerTransformOperator,
    SageMakerTuningOperator,
)
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.sdk import BaseOperator
from botocore.exceptions import ClientError

ADOPTABLE = ("InProgress", "Stopping", "Completed")

#: ``context -> AirflowSettings`` of the run (``include.mlpipeline.config.AirflowSettings``).
WaitSettings = Callable[[Mapping[str, Any]], Any]


class ConfiguredWaitMixin(BaseOperator):
    """Deferrable mode, poll interval and wait budget from the run's config, for a provider operator.

    ``pools`` (``{job kind: pool name}``, config ``airflow.pools``) puts the task in the pool of
    its ``job_kind`` unless ``pool`` is given: the scheduler then starts at most that pool's slots
    of such tasks at once, deferred ones included.

    ``wait_settings(context)`` returns the run's ``airflow`` config section; it is called when the
    task starts, so a run with ``{"airflow.deferrable": false}`` in its conf, or another stage,
    waits its own way although the operator was built once when the DAG file was parsed. Deferred,
    the trigger polls every ``poll_interval_seconds`` and gives up after ``max_wait_seconds``: the
    provider's triggers would otherwise stop after 60 polls (training, transform, processing: the
    operators' default ``max_attempts``) or 480 (tuning, endpoint: not settable on the operator),
    two and sixteen minutes at a 2 s interval.

    It derives from ``BaseOperator`` (and comes first in a subclass's bases) so that Airflow's
    operator metaclass wraps its ``__init__`` like any operator's.
    """

    #: The ``airflow.pools`` entry (a SageMaker job kind) whose pool this operator's tasks run in.
    job_kind: str = ""

    def __init__(
        self, *, wait_settings: WaitSettings | None = None, pools: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        if pools is not None and "pool" not in kwargs:
            if self.job_kind not in pools:
                raise ValueError(f"{type(self).__name__}: no pool for job kind {self.job_kind!r} in {dict(pools)}")
            kwargs["pool"] = pools[self.job_kind]
        super().__init__(**kwargs)
        self.wait_settings = wait_settings
        self._waiter_attempts: int | None = None

    def apply_wait_settings(self, context: Any) -> None:
        """Set ``deferrable``, ``check_interval``, ``max_ingestion_time`` (and ``max_attempts``) once."""
        if self.wait_settings is None or self._waiter_attempts is not None:
            return
        settings = self.wait_settings(context)
        self.deferrable = settings.deferrable
        self.check_interval = settings.poll_interval_seconds
        self.max_ingestion_time = settings.max_wait_seconds
        if hasattr(self, "max_attempts"):
            self.max_attempts = settings.max_attempts
        self._waiter_attempts = settings.max_attempts
        self.log.info(
            "Waiting %s, a status check every %d s, at most %d s (config airflow.deferrable=%s).",
            "in the triggerer (deferred)" if settings.deferrable else "in this task",
            settings.poll_interval_seconds,
            settings.max_wait_seconds,
            settings.deferrable,
        )

    def execute(self, context: Any) -> Any:
        self.apply_wait_settings(context)
        return super().execute(context)

    def defer(self, *, trigger: Any, method_name: str, kwargs: dict | None = None, timeout: Any = None) -> Any:
        if self._waiter_attempts is not None and isinstance(trigger, AwsBaseWaiterTrigger):
            trigger.attempts = self._waiter_attempts
        return super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)


class ResumableTrainingOperator(ConfiguredWaitMixin, SageMakerTrainingOperator):
    """``SageMakerTrainingOperator`` that adopts an existing job of the same name on retry.

    A job that already failed or was stopped is not adopted: the provider's own behaviour then
    applies (a new job under a timestamped name). An adopted job still running is waited for the
    configured way: deferred to the triggerer, or polled here.

    Deferred, the provider cannot tail the job's log into the task log (its trigger only polls the
    status), so with ``print_log`` the whole log is printed once the job has ended, failed included.
    """

    job_kind = "training"

    def execute(self, context: Any) -> dict:
        self.apply_wait_settings(context)
        name = self.config["TrainingJobName"]
        try:
            description = self.hook.describe_training_job(name)
        except ClientError as err:
            if err.response["Error"]["Code"] != "ValidationException":  # "no such job" on SageMaker
                raise
            return super().execute(context)
        status = description["TrainingJobStatus"]
        if status not in ADOPTABLE:
            return super().execute(context)
        self.log.info(
            "Training job %s already exists (%s): adopting it instead of starting another.", name, status
        )
        if status != "Completed" and self.wait_for_completion:
            if self.deferrable:
                self.defer(
                    trigger=SageMakerTrigger(
                        job_name=name,
                        job_type="Training",
                        waiter_delay=self.check_interval,
                        waiter_max_attempts=self.max_attempts,
                        aws_conn_id=self.aws_conn_id,
                        region_name=self.region_name,
                        verify=self.verify,
                        botocore_config=self.botocore_config,
                    ),
                    method_name="execute_complete",
                    timeout=(
                        datetime.timedelta(seconds=self.max_ingestion_time)
                        if self.max_ingestion_time
                        else self.execution_timeout
                    ),
                )
            elif self.print_log:
                self.hook.check_training_status_with_log(
                    name,
                    self.hook.non_terminal_states,
                    self.hook.training_failed_states,
                    True,
                    self.check_interval,
                    self.max_ingestion_time,
                )
            else:
                self.hook.check_status(
                    name,
                    "TrainingJobStatus",
                    self.hook.describe_training_job,
                    self.check_interval,
                    self.max_ingestion_time,
                    non_terminal_states=self.hook.non_terminal_states,
                )
        return self.serialize_result(name)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, dict]:
        name = (event or {}).get("job_name")
        if self.print_log and name:
            self._print_log(name)
        return super().execute_complete(context, event)

    def _print_log(self, name: str) -> None:
        """The job's CloudWatch log, read to the end once (the job has ended)."""
        self.log.info("Training log of %s (read after the deferred wait):", name)
        try:
            self.hook.check_training_status_with_log(
                name, self.hook.non_terminal_states, self.hook.training_failed_states, False, 0
            )
        except ClientError as err:  # the job's outcome, not its log, decides the task
            self.log.warning("Could not read the log of %s: %s", name, err)


class TuningOperator(ConfiguredWaitMixin, SageMakerTuningOperator):
    """``SageMakerTuningOperator`` waiting as the run's config says (:class:`ConfiguredWaitMixin`)."""

    job_kind = "tuning"


class TransformOperator(ConfiguredWaitMixin, SageMakerTransformOperator):
    """``SageMakerTransformOperator`` waiting as the run's config says (:class:`ConfiguredWaitMixin`)."""

    job_kind = "transform"


class ProcessingOperator(ConfiguredWaitMixin, SageMakerProcessingOperator):
    """``SageMakerProcessingOperator`` waiting as the run's config says (:class:`ConfiguredWaitMixin`)."""

    job_kind = "processing"


class RegisterModelVersionOperator(SageMakerRegisterModelVersionOperator):
    """The provider's register operator with ``extras`` templated, so the evaluation's metrics
    (known only at run time) travel with the package as they are registered."""

    template_fields = (*SageMakerRegisterModelVersionOperator.template_fields, "extras")


class IdempotentEndpointOperator(ConfiguredWaitMixin, SageMakerEndpointOperator):
    """``SageMakerEndpointOperator`` whose retry does not trip over what its first try created.

    The provider creates the model and endpoint config unconditionally; on a retry both exist and
    the task would fail with "Cannot create already existing ...". Names are per run, so an
    existing one *is* this run's: it is reused. The endpoint itself already switches to an
    update when it exists. It waits as the run's config says (:class:`ConfiguredWaitMixin`).
    """

    job_kind = "endpoint"

    def execute(self, context: Any) -> dict:
        config = dict(self.config)
        model = config.get("Model")
        if model and self._exists(self.hook.describe_model, model["ModelName"]):
            self.log.info("Model %s exists (an earlier try of this run): reusing it.", model["ModelName"])
            config.pop("Model")
        endpoint_config = config.get("EndpointConfig")
        if endpoint_config and self._exists(
            self.hook.describe_endpoint_config, endpoint_config["EndpointConfigName"]
        ):
            self.log.info(
                "Endpoint config %s exists (an earlier try of this run): reusing it.",
                endpoint_config["EndpointConfigName"],
            )
            config.pop("EndpointConfig")
        self.config = config
        return super().execute(context)

    @staticmethod
    def _exists(describe: Any, name: str) -> bool:
        try:
            describe(name)
            return True
        except ClientError as err:
            if err.response["Error"]["Code"] == "ValidationException":
                return False
            raise
