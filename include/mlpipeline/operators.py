"""The one Airflow-aware module of the pipeline library: thin extensions of the provider's operators.

The provider's SageMaker operators answer a name collision by starting a *second* job under a
timestamped name. Our names are deterministic per run, so a retried task should instead adopt
the job its first try started (still running or finished) rather than pay for it twice.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointOperator,
    SageMakerRegisterModelVersionOperator,
    SageMakerTrainingOperator,
)
from botocore.exceptions import ClientError

ADOPTABLE = ("InProgress", "Stopping", "Completed")


class ResumableTrainingOperator(SageMakerTrainingOperator):
    """``SageMakerTrainingOperator`` that adopts an existing job of the same name on retry.

    A job that already failed or was stopped is not adopted: the provider's own behaviour then
    applies (a new job under a timestamped name).
    """

    def execute(self, context: Any) -> dict:
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
            if self.print_log:
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


class RegisterModelVersionOperator(SageMakerRegisterModelVersionOperator):
    """The provider's register operator with ``extras`` templated, so the evaluation's metrics
    (known only at run time) travel with the package as they are registered."""

    template_fields = (*SageMakerRegisterModelVersionOperator.template_fields, "extras")


class IdempotentEndpointOperator(SageMakerEndpointOperator):
    """``SageMakerEndpointOperator`` whose retry does not trip over what its first try created.

    The provider creates the model and endpoint config unconditionally; on a retry both exist and
    the task would fail with "Cannot create already existing ...". Names are per run, so an
    existing one *is* this run's: it is reused. The endpoint itself already switches to an
    update when it exists.
    """

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
