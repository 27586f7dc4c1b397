"""`<model>_batch_transform` without a champion: the run skips with the reason, nothing is prepared."""

from __future__ import annotations

import pytest

from include.mlpipeline.config import default_stage, list_models, load_config

from .conftest import ROOT  # noqa: F401  (sets AIRFLOW_HOME before Airflow is imported)


def _batch_models() -> list[str]:
    return [m for m in list_models() if load_config(m, default_stage()).data.batch_source_uri and load_config(m, default_stage()).data.batch_id_column]


def test_no_champion_skips_the_run_with_a_clear_message(dag_bag, monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException

    import include.mlpipeline.evaluate as evaluate

    model = _batch_models()[0]
    dag = dag_bag.dags[f"{model}_batch_transform"]
    champion = dag.get_task("champion")
    asked = []
    monkeypatch.setitem(champion.python_callable.__globals__, "clients", lambda: (None, "sm"))
    monkeypatch.setattr(evaluate, "latest_approved_package", lambda sm, group: asked.append((sm, group)))

    context = {"params": {"stage": load_config(model, default_stage()).stage}, "run_id": "scheduled__1", "ts_nodash": "20260301T000000"}
    with pytest.raises(AirflowSkipException) as exc:
        champion.python_callable(**context)
    group = load_config(model, default_stage()).registry.model_package_group_name
    assert asked == [("sm", group)]
    assert "no champion yet" in str(exc.value) and group in str(exc.value) and f"{model}_training" in str(exc.value)
    # the data is prepared only once there is a champion; everything downstream skips with it
    assert "champion" in dag.get_task("batch_input").upstream_task_ids
    for task in dag.tasks:
        if task.task_id != "champion":
            assert task.trigger_rule == "all_success", (task.task_id, task.trigger_rule)
