"""The stage's account-side resources a run expects to exist: its bucket and its alerts topic.

On AWS the CloudFormation stack in ``infra/`` makes them; on localmaker the demo, ``make up`` and
the end-to-end tests call :func:`provision_stage`. Idempotent: existing ones are left as they are.
"""

from __future__ import annotations

from typing import Any

from .config import PipelineConfig


def provision_stage(cfg: PipelineConfig, s3_client: Any, sns_client: Any) -> list[str]:
    """Create the bucket (if missing) and the alerts topic (CreateTopic is itself idempotent);
    returns the bucket's URI if it was created, and the topic's ARN."""
    made = []
    if cfg.aws.bucket not in [b["Name"] for b in s3_client.list_buckets()["Buckets"]]:
        s3_client.create_bucket(Bucket=cfg.aws.bucket)
        made.append(f"s3://{cfg.aws.bucket}")
    if cfg.alerts.sns_topic_arn:
        made.append(sns_client.create_topic(Name=cfg.alerts.sns_topic_arn.rsplit(":", 1)[1])["TopicArn"])
    return made
