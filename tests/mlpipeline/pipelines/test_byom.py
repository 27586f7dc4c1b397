"""The tasks of `<name>_byom` against moto S3 and an endpoint stub that answers like the container."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

from include.mlpipeline import byom
from include.mlpipeline.pipelines import byom as tasks

NAME = "breast_cancer_xgb"
CONTEXT = {"params": {"stage": "dev", "num_boost_round": 20}, "run_id": "manual__2026-02-03T04:05:06+00:00",
           "ts_nodash": "20260203T040506"}


class Endpoint:
    """InvokeEndpoint answering, row for row, ``answers`` (one prediction per CSV row sent)."""

    def __init__(self, answers: list[float]) -> None:
        self.answers = list(answers)
        self.rows = 0

    def invoke_endpoint(self, **kw: Any) -> dict[str, Any]:
        n = len(kw["Body"].decode().splitlines())
        values, self.answers = self.answers[:n], self.answers[n:]
        self.rows += n
        return {"Body": io.BytesIO("".join(f"{v}\n" for v in values).encode())}


@pytest.fixture(scope="module")
def inputs() -> tuple[Any, Any, Any]:
    return tasks.run_inputs(NAME, CONTEXT)


def test_run_inputs_apply_the_trigger_params(inputs):
    cfg, stage, ctx = inputs
    assert cfg.training.num_boost_round == 20 and stage.stage == "dev"
    assert (ctx.model, ctx.ts_nodash) == (NAME, "20260203T040506")
    assert tasks.run_wait_settings(NAME)(CONTEXT) == stage.airflow


def test_data_to_a_checked_endpoint(inputs, s3, s3_read):
    cfg, stage, ctx = inputs
    clients = SimpleNamespace(s3=s3)
    data = tasks.prepare_data(cfg, stage, ctx, clients)
    assert data["rows"]["train"] + data["rows"]["test"] == 569 and len(data["features"]) == 30
    assert len(s3_read.text(data["test"]).splitlines()) == data["rows"]["test"]

    trained = tasks.train_and_package(cfg, stage, ctx, clients, data)
    assert trained["model_data_url"] == byom.model_data_uri(cfg, stage, ctx)
    assert [m[0] for m in trained["members"]] == ["xgboost-model"]
    assert trained["metrics"]["accuracy"] > 0.9 and trained["num_boost_round"] == 20
    reference = [float(v) for v in s3_read.text(trained["reference_uri"]).split()]
    assert len(reference) == data["rows"]["test"]

    request = tasks.deploy_config(cfg, stage, ctx, trained)
    assert request["Model"]["PrimaryContainer"]["ModelDataUrl"] == trained["model_data_url"]
    assert request["Endpoint"]["EndpointName"] == byom.endpoint_name(cfg, stage)

    clients.runtime = Endpoint(reference)
    checked = tasks.check_endpoint(cfg, stage, ctx, clients, data, trained)
    assert checked["passed"] is True and checked["max_abs_diff"] == 0.0 and checked["rows"] == len(reference)
    assert clients.runtime.rows == len(reference)
    assert '"passed": true' in s3_read.text(byom.run_uri(cfg, stage, ctx, "evaluation/endpoint_check.json"))

    from airflow.sdk.exceptions import AirflowFailException

    clients.runtime = Endpoint([1.0 - p for p in reference])  # a different model answers
    with pytest.raises(AirflowFailException, match=byom.endpoint_name(cfg, stage)):
        tasks.check_endpoint(cfg, stage, ctx, clients, data, trained)
    clients.runtime = Endpoint(reference[:-1])  # one answer short
    with pytest.raises(AirflowFailException, match="answered"):
        tasks.check_endpoint(cfg, stage, ctx, clients, data, trained)
