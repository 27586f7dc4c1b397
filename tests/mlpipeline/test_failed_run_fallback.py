"""A run whose overrides broke its config still cleans up after itself and still alerts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from include.mlpipeline.cleanup import clean_up_run
from include.mlpipeline.config import ConfigError, config_for_failed_run, config_for_run, load_config
from include.mlpipeline.dag_support import failed_run_cfg_ctx
from include.mlpipeline.notify import failure_callback
from include.mlpipeline.sagemaker_requests import endpoint_config_name, model_name, training_job_name

from .conftest import RUN_ID, TS_NODASH

MODEL = "diabetes_dnn"
BAD = {"stage": "prod", "instance_type": "ml.bogus"}


def _context(params: dict[str, Any]) -> dict[str, Any]:
    ti = SimpleNamespace(task_id="train", dag_id=f"{MODEL}_training", try_number=1)
    return {"params": params, "run_id": RUN_ID, "ts_nodash": TS_NODASH, "ti": ti,
            "exception": ConfigError(["overrides: training.instance_type: invalid"])}


def test_a_bad_override_falls_back_to_the_stage_config_and_says_why():
    with pytest.raises(ConfigError):
        config_for_run(MODEL, BAD)
    cfg, problem = config_for_failed_run(MODEL, BAD)
    assert cfg == load_config(MODEL, "prod")  # the run's stage, without the run's overrides
    assert problem and "ml.bogus" in problem and "instance_type" in problem


def test_a_usable_config_is_used_as_is():
    cfg, problem = config_for_failed_run(MODEL, {"stage": "dev", "instance_count": 2})
    assert problem is None and cfg.training.instance_count == 2


def test_an_unknown_stage_falls_back_to_the_default_stage(monkeypatch):
    monkeypatch.setenv("MLPIPELINE_STAGE", "dev")
    cfg, problem = config_for_failed_run(MODEL, {"stage": "nope"})
    assert cfg.stage == "dev" and "nope" in problem


def test_clean_up_of_a_broken_run_removes_the_runs_own_resources(sagemaker):
    cfg, ctx, problem = failed_run_cfg_ctx(MODEL, _context(BAD))
    assert problem
    assert (ctx.run_id, ctx.ts_nodash, ctx.stage) == (RUN_ID, TS_NODASH, "prod")
    # what the run's tasks created, named with the run's config before the override broke it
    made = load_config(MODEL, "prod")
    assert training_job_name(cfg, ctx) == training_job_name(made, ctx)
    sagemaker.create_model(
        ModelName=model_name(made, ctx),
        ExecutionRoleArn=made.aws.role_arn,
        PrimaryContainer={"Image": made.training.image_uri, "ModelDataUrl": "s3://b/model.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=endpoint_config_name(made, ctx, "dev"),
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": model_name(made, ctx),
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )
    removed = clean_up_run(cfg, ctx, sagemaker)
    assert removed["models"] == [model_name(made, ctx)]
    assert removed["endpoint_configs"] == [endpoint_config_name(made, ctx, "dev")]
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []


def test_the_failure_of_a_broken_run_is_still_alerted(aws, monkeypatch):
    import boto3
    from moto.sns.models import sns_backends

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws", "extra": {"region_name": "us-east-1"}}')
    cfg = load_config(MODEL, "prod")
    arn = boto3.client("sns", region_name="us-east-1").create_topic(Name=cfg.alerts.sns_topic_arn.rsplit(":", 1)[1])[
        "TopicArn"
    ]
    assert arn == cfg.alerts.sns_topic_arn

    failure_callback(MODEL)(_context(BAD))

    sent = sns_backends[cfg.aws.account_id]["us-east-1"].topics[arn].sent_notifications
    assert len(sent) == 1, "no alert was published"
    _, message, subject, *_ = sent[0]
    assert subject == f"[prod] {MODEL}: task train failed"
    assert f"run {RUN_ID} task train try 1 failed" in message
    assert "The run's config is invalid" in message and "ml.bogus" in message
