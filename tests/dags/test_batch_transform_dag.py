"""`<model>_batch_transform`: without a champion the run skips before preparing any data.

The skip itself (and its message) is ``include.mlpipeline.pipelines.batch_transform.champion``,
tested in ``tests/mlpipeline/pipelines``; here: the wiring that makes it skip the whole run.
"""

from __future__ import annotations

from include.mlpipeline.config import default_stage, list_models, load_config

from .conftest import ROOT  # noqa: F401  (sets AIRFLOW_HOME before Airflow is imported)


def _batch_models() -> list[str]:
    return [m for m in list_models() if load_config(m, default_stage()).data.batch_source_uri and load_config(m, default_stage()).data.batch_id_column]


def test_no_champion_skips_the_whole_run(dag_bag):
    model = _batch_models()[0]
    dag = dag_bag.dags[f"{model}_batch_transform"]
    # the data is prepared only once there is a champion; everything downstream skips with it
    assert "champion" in dag.get_task("batch_input").upstream_task_ids
    assert not dag.get_task("champion").upstream_task_ids
    for task in dag.tasks:
        if task.task_id != "champion":
            assert task.trigger_rule == "all_success", (task.task_id, task.trigger_rule)
            assert "champion" in task.get_flat_relative_ids(upstream=True), task.task_id
