"""The one thing a flow changes from its AWS version: the session's endpoint and bucket.

Every flow in this folder is written as a notebook for SageMaker would be, except that it builds its
``sagemaker.Session`` here. The endpoint comes from ``AWS_ENDPOINT_URL`` (which boto3 honours for every
client, so the SDK's own S3 and CloudWatch clients reach localmaker too); the bucket is passed as
``default_bucket=`` because the SDK otherwise names it from an STS call to a fixed AWS host.
Runs under the SDK's own virtual environment (sagemaker 2.x), never under the project's.
"""

from __future__ import annotations

import os

import boto3
import sagemaker

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


def session() -> sagemaker.Session:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    boto_session = boto3.Session(region_name=REGION)
    return sagemaker.Session(
        boto_session=boto_session,
        sagemaker_client=boto_session.client("sagemaker", endpoint_url=endpoint),
        sagemaker_runtime_client=boto_session.client("sagemaker-runtime", endpoint_url=endpoint),
        default_bucket=os.environ["LM_BUCKET"],
    )
