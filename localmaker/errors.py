"""AWS-shaped errors.

Clients branch on the error *code* and sometimes on the *message* (the Airflow provider switches
CreateEndpoint to UpdateEndpoint on "Cannot create already existing endpoint"), so every error
localmaker raises carries AWS's own code, message and HTTP status.
"""

from __future__ import annotations


class AwsError(Exception):
    """An error answered to the client in the protocol's error shape."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra

    def __repr__(self) -> str:
        return f"AwsError({self.code!r}, {self.message!r}, {self.status})"


def validation(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def not_found(message: str = "Requested resource not found.") -> AwsError:
    return AwsError("ValidationException", message)


def resource_not_found(message: str) -> AwsError:
    return AwsError("ResourceNotFound", message)


def in_use(message: str) -> AwsError:
    return AwsError("ResourceInUse", message)


def limit_exceeded(message: str) -> AwsError:
    return AwsError("ResourceLimitExceeded", message)
