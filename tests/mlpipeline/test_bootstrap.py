from __future__ import annotations

import boto3
from moto import mock_aws

from include.mlpipeline.bootstrap import provision_stage
from include.mlpipeline.config import load_config


@mock_aws
def test_provision_stage_is_idempotent():
    cfg = load_config("diabetes_dnn", "dev")
    s3 = boto3.client("s3", region_name=cfg.aws.region)
    sns = boto3.client("sns", region_name=cfg.aws.region)
    first = provision_stage(cfg, s3, sns)
    assert first == [f"s3://{cfg.aws.bucket}", cfg.alerts.sns_topic_arn]
    assert provision_stage(cfg, s3, sns) == [cfg.alerts.sns_topic_arn]  # bucket already there
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [cfg.aws.bucket]
    assert [t["TopicArn"] for t in sns.list_topics()["Topics"]] == [cfg.alerts.sns_topic_arn]
