"""``dag_support.dag_defaults()``: what every DAG shares; ``Clients``: made on first use, once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from include.mlpipeline.dag_support import Clients, dag_defaults, default_args
from include.mlpipeline.failures import PermanentErrorPolicy


def test_a_models_dag_gets_the_projects_settings(dev_cfg):
    kw = dag_defaults("diabetes_dnn", "batch", "etl", settings=dev_cfg.airflow, params={"x": 1})
    assert (kw["catchup"], kw["max_active_runs"]) == (False, 1)
    assert kw["tags"] == ["sagemaker", "batch", "etl", "diabetes_dnn"]
    assert kw["params"] == {"x": 1}
    args = kw["default_args"]
    assert set(args) == set(default_args("diabetes_dnn", dev_cfg.airflow))
    assert args["retries"] == dev_cfg.airflow.retries and isinstance(args["retry_policy"], PermanentErrorPolicy)
    assert args["execution_timeout"] == timedelta(seconds=dev_cfg.airflow.task_timeout_seconds)
    own = object()
    assert dag_defaults("m", settings=dev_cfg.airflow, on_failure_callback=own)["default_args"]["on_failure_callback"] is own


def test_a_dag_of_no_one_model_passes_its_own_default_args():
    kw = dag_defaults(None, "maintenance", default_args_={"retries": 2})
    assert kw["tags"] == ["sagemaker", "maintenance"] and kw["default_args"] == {"retries": 2}
    with pytest.raises(ValueError, match="needs the model and its airflow settings"):
        dag_defaults("m", "x")


def test_clients_are_made_on_first_use_and_kept(monkeypatch):
    made = []

    def fake(self, client_type):
        made.append(client_type)
        return object()

    monkeypatch.setattr(Clients, "_client", fake)
    clients = Clients()
    assert made == []
    assert clients.runtime is clients.runtime and clients.sns is clients.sns
    assert made == ["sagemaker-runtime", "sns"]
