"""Which failures can never succeed on a retry, and turning them into an immediate task failure.

A retry pays again for the same outcome when the request itself is wrong: a config or data error,
a request SageMaker refused (``ValidationException``), or a job the algorithm rejected (its
``FailureReason`` starts ``ClientError:``, e.g. a hyperparameter of the wrong type). Those fail at
once (:class:`PermanentErrorPolicy`, the tasks' ``retry_policy``: no retries). Throttling, dropped connections and 5xx answers
are transient: the task's retries (exponential backoff with jitter, see
``include.mlpipeline.dag_support.default_args``) handle them.
"""

from __future__ import annotations

import re
from typing import Any

from airflow.sdk.definitions.retry_policy import RetryAction, RetryDecision, RetryPolicy

#: AWS error codes of a request that is wrong as sent.
PERMANENT_CODES = frozenset(
    {
        "ValidationException",
        "ValidationError",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "MissingParameter",
        "AccessDeniedException",
        "AccessDenied",
        "NoSuchBucket",
    }
)
#: AWS error codes that say "later": always worth a retry.
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
    }
)
# How the provider reports a job whose FailureReason starts "ClientError:" (the algorithm
# refused its input): "SageMaker job failed because ClientError: ...", "Error training <job>:
# Failed Reason: ClientError: ...", and deferred "Error while running job: {... 'message':
# 'ClientError: ...'}". A custom image's failure file reaches FailureReason behind SageMaker's
# "AlgorithmError: " prefix; the project's containers start that file with "ClientError:" when
# the input is at fault (container/*/errors.py), so "AlgorithmError: ClientError:" is one too.
_ALGORITHM_CLIENT_ERROR = re.compile(r"(because |Reason: |'message': ['\"])(AlgorithmError: )?ClientError:")


def _permanent_types() -> tuple[type[BaseException], ...]:
    from .config import ConfigError
    from .etl import DataValidationError

    # FileNotFoundError: a local source file or training.source_dir that is not there
    return (ConfigError, DataValidationError, FileNotFoundError)


def is_permanent(exc: BaseException) -> bool:
    """True when retrying ``exc`` cannot succeed (see the module docstring); transient otherwise.

    Unknown errors count as transient: they keep the task's retries, as before.
    """
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)):
        return False
    if isinstance(exc, _permanent_types()):
        return True
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in TRANSIENT_CODES or status >= 500:
            return False
        return code in PERMANENT_CODES
    from airflow.exceptions import AirflowException

    if type(exc) is AirflowException:  # the provider's wrapper of a job's end state
        return bool(_ALGORITHM_CLIENT_ERROR.search(str(exc)))
    cause = exc.__cause__
    return cause is not None and is_permanent(cause)


class PermanentErrorPolicy(RetryPolicy):
    """A task ``retry_policy``: fail at once on a permanent error (:func:`is_permanent`), otherwise
    the task's own retries (exponential backoff with jitter, capped by ``max_retry_delay``).

    Airflow consults it in the worker for every failure of every task it is set on, TaskFlow
    functions and provider operators alike, before and after a deferral. Only a flag is serialized
    (Airflow re-parses the DAG file on the worker to find the live object).
    """

    def evaluate(self, exception: BaseException, try_number: int, max_tries: int, context: Any = None) -> RetryDecision:
        if is_permanent(exception):
            return RetryDecision.fail(
                f"{type(exception).__name__} cannot succeed on a retry (config, validation, data or "
                "algorithm ClientError): failing now"
            )
        # the default decision (the task's own retries), with a reason Airflow logs ("Retry policy
        # decision"): the task log then says why this failure may be retried
        return RetryDecision(
            action=RetryAction.DEFAULT,
            reason=f"{type(exception).__name__} may pass on a retry (throttling, connection, 5xx or unknown "
            f"error): try {try_number} of {max_tries}, the task's retries with backoff apply",
        )
