"""Identity facts every localmaker response shares: one account, one region per server."""

from __future__ import annotations

import datetime as dt
import time

# moto's default account, so ARNs from S3/IAM/SNS (served by moto) and SageMaker agree.
ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"


def arn(region: str, resource: str, service: str = "sagemaker") -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


def now() -> float:
    """Epoch seconds: the JSON 1.1 protocol's timestamp encoding."""
    return round(time.time(), 3)


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
