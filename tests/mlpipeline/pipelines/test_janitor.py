"""The tasks of `sagemaker_janitor` against moto's SageMaker: policy, plan, dry run, apply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from include.mlpipeline.config import list_models, list_stages, load_config
from include.mlpipeline.pipelines import janitor as tasks

MODEL = "diabetes_dnn"


def _deploy(sm: Any, endpoint: str, model: str) -> None:
    sm.create_model(ModelName=model, ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                    PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/img:1"})
    sm.create_endpoint_config(EndpointConfigName=model, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=model)


def test_policy_protects_every_prod_endpoint_and_takes_the_most_conservative_settings():
    pol = tasks.policy({})
    cfgs = [load_config(m, s) for m in list_models() for s in list_stages()]
    assert pol["protected"] == sorted({c.endpoint.prod_name for c in cfgs})
    assert not set(pol["dev"]) & set(pol["protected"])
    assert pol["slugs"] == sorted({c.model_slug for c in cfgs})
    overridden = tasks.policy({"ttl_hours": 0, "keep_last": 1})
    assert (overridden["ttl_hours"], overridden["keep_last"]) == (0.0, 1)


@pytest.fixture
def world(sagemaker: Any) -> SimpleNamespace:
    """An idle dev endpoint, the prod endpoint and an old unused model of the model's slug."""
    cfg = load_config(MODEL, "dev")
    _deploy(sagemaker, cfg.endpoint.dev_name, f"{cfg.model_slug}-dev-20260101t000000")
    _deploy(sagemaker, cfg.endpoint.prod_name, f"{cfg.model_slug}-dev-20260102t000000")
    return SimpleNamespace(cfg=cfg, clients=SimpleNamespace(sagemaker=sagemaker))


def test_a_manual_run_only_lists(world, capsys):
    later = datetime.now(UTC) + timedelta(days=30)
    planned = tasks.plan(world.clients, {"keep_last": 1}, now=later, scheduled=False)
    assert planned["dry_run"] is True
    deleted = {(a["kind"], a["name"]) for a in planned["plan"]["delete"]}
    assert ("endpoint", world.cfg.endpoint.dev_name) in deleted
    assert not any(name == world.cfg.endpoint.prod_name for _, name in deleted)
    assert tasks.live(planned) is False
    assert "DRY RUN (nothing is deleted)" in capsys.readouterr().out


def test_a_scheduled_run_deletes_the_idle_dev_endpoint_and_keeps_prod(world):
    sm = world.clients.sagemaker
    later = datetime.now(UTC) + timedelta(days=30)
    planned = tasks.plan(world.clients, {"keep_last": 1}, now=later, scheduled=True)
    assert planned["dry_run"] is False and tasks.live(planned) is True
    done = tasks.apply(world.clients, planned)
    assert done["deleted"]["endpoint"] == [world.cfg.endpoint.dev_name]
    left = [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    assert left == [world.cfg.endpoint.prod_name]


def test_nothing_to_delete_skips_apply(world):
    planned = tasks.plan(world.clients, {"dry_run": False}, now=datetime.now(UTC), scheduled=False)
    assert planned["dry_run"] is False and planned["plan"]["delete"] == []
    assert tasks.live(planned) is False
