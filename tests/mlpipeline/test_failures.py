"""Which failures retry and which fail at once: real botocore errors, real provider messages."""

from __future__ import annotations

import botocore.session
import pytest
from airflow.exceptions import AirflowException
from airflow.sdk.definitions.retry_policy import RetryAction
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from include.mlpipeline.config import ConfigError, config_for_run
from include.mlpipeline.dag_support import default_args
from include.mlpipeline.etl import DataValidationError
from include.mlpipeline.failures import PermanentErrorPolicy, is_permanent


def _client_error(code: str, status: int) -> ClientError:
    """The ClientError botocore itself raises for an answer with this code and HTTP status."""
    sm = botocore.session.get_session().create_client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(sm) as stub:
        stub.add_client_error("describe_training_job", service_error_code=code, http_status_code=status)
        with pytest.raises(ClientError) as caught:
            sm.describe_training_job(TrainingJobName="j")
    return caught.value


@pytest.mark.parametrize(
    ("code", "status"),
    [("ValidationException", 400), ("AccessDeniedException", 400)],
)
def test_a_refused_request_is_permanent(code, status):
    assert is_permanent(_client_error(code, status))


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("Throttling", 400),
        ("InternalFailure", 500),
        ("ServiceUnavailable", 503),
        ("SomethingNew", 502),
        ("ResourceLimitExceeded", 400),  # quota: frees up when other jobs end
    ],
)
def test_throttling_5xx_and_unknown_codes_retry(code, status):
    assert not is_permanent(_client_error(code, status))


def test_connection_errors_retry():
    assert not is_permanent(EndpointConnectionError(endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com"))
    assert not is_permanent(ConnectionClosedError(endpoint_url="https://x"))
    assert not is_permanent(ReadTimeoutError(endpoint_url="https://x"))


@pytest.mark.parametrize(
    "message",
    [
        # SageMakerTrainingOperator, waiting in the task
        "SageMaker job failed because ClientError: invalid literal for int() with base 10: 'abc'",
        # SageMakerHook.check_training_status_with_log
        "Error training diabetes-dnn-1: Failed Reason: ClientError: hyperparameter epochs: 'abc'",
        # execute_complete after a deferral (the trigger's event)
        "Error while running job: {'status': 'error', 'message': 'ClientError: epochs must be an int', "
        "'job_name': 'j'}",
        # a custom image's failure file behind SageMaker's AlgorithmError prefix (the DNN container)
        "Error while running job: {'status': 'failed', 'job_name': 'j', 'message': \"AlgorithmError: "
        "ClientError: hyperparameter 'epochs' must be an integer in [1, 100000], got 'abc'\"}",
    ],
)
def test_an_algorithm_client_error_is_permanent(message):
    assert is_permanent(AirflowException(message))


@pytest.mark.parametrize(
    "message",
    [
        "SageMaker job failed because AlgorithmError: out of memory",
        "SageMaker job failed because AlgorithmError: MemoryError: ClientError: in a traceback",
        "SageMaker job failed because InternalServerError: capacity",
        "SageMaker job took more than 600 seconds",
        "Error while running job: {'status': 'error', 'message': 'Waiter encountered a terminal failure state'}",
    ],
)
def test_other_job_failures_keep_their_retries(message):
    assert not is_permanent(AirflowException(message))


def test_config_data_and_missing_file_errors_are_permanent():
    with pytest.raises(ConfigError) as caught:
        config_for_run("diabetes_dnn", {"instance_type": "ml.bogus"})
    assert is_permanent(caught.value)
    assert is_permanent(DataValidationError("source lacks columns ['target']"))
    assert is_permanent(FileNotFoundError("training.source_dir src: no such folder"))
    assert not is_permanent(RuntimeError("something else"))


def test_a_wrapped_permanent_error_is_permanent_through_its_cause():
    try:
        try:
            raise _client_error("ValidationException", 400)
        except ClientError as err:
            raise RuntimeError("create_training_job failed") from err
    except RuntimeError as wrapped:
        assert is_permanent(wrapped)


def test_the_policy_fails_permanent_errors_and_defers_to_backoff_otherwise():
    policy = PermanentErrorPolicy()
    assert policy.evaluate(_client_error("ValidationException", 400), 1, 3).action is RetryAction.FAIL
    throttled = policy.evaluate(_client_error("ThrottlingException", 400), 1, 3)
    assert throttled.action is RetryAction.DEFAULT and throttled.retry_delay is None
    assert throttled.reason == (
        "ClientError may pass on a retry (throttling, connection, 5xx or unknown error): try 1 of 3, "
        "the task's retries with backoff apply"
    )
    assert policy.evaluate(EndpointConnectionError(endpoint_url="https://x"), 1, 3).action is RetryAction.DEFAULT


def test_default_args_come_from_the_airflow_config_section():
    cfg = config_for_run("diabetes_dnn", {"airflow.retries": 4, "airflow.max_retry_delay_seconds": 120})
    args = default_args("diabetes_dnn", cfg.airflow)
    assert args["retries"] == 4
    assert args["retry_exponential_backoff"] == 2.0
    assert args["max_retry_delay"].total_seconds() == 120
    assert args["retry_delay"].total_seconds() == cfg.airflow.retry_delay_seconds
    assert args["execution_timeout"].total_seconds() == cfg.airflow.task_timeout_seconds >= cfg.airflow.max_wait_seconds
    assert isinstance(args["retry_policy"], PermanentErrorPolicy)
    assert callable(args["on_failure_callback"])


def test_a_task_timeout_shorter_than_the_wait_is_a_config_error():
    with pytest.raises(ConfigError, match="task_timeout_seconds"):
        config_for_run("diabetes_dnn", {"airflow.task_timeout_seconds": 600, "airflow.max_wait_seconds": 3600})
