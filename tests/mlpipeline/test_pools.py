"""``airflow.pools``: an Airflow pool per SageMaker job kind, sized per stage, deployment-wide (issue 15.8)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from include.mlpipeline.config import JOB_KINDS, PROJECT_ROOT, ConfigError, list_models, load_config
from include.mlpipeline.config.pools import pools_import_file, stage_pools

from .test_config_loading import edit_yaml

MODEL = "diabetes_dnn"


def test_each_job_kind_has_its_pool_sized_by_the_stage_file() -> None:
    dev, prod = stage_pools("dev"), stage_pools("prod")
    assert dev.names() == {kind: f"sagemaker_{kind}" for kind in JOB_KINDS} == prod.names()
    assert {k: getattr(dev, k).slots for k in JOB_KINDS} == {
        "training": 2, "tuning": 1, "processing": 2, "transform": 2, "endpoint": 2}
    assert {k: getattr(prod, k).slots for k in JOB_KINDS} == {
        "training": 4, "tuning": 2, "processing": 4, "transform": 4, "endpoint": 4}
    # every model's config carries the same pools as its stage (what the DAG files read)
    for model in list_models():
        assert load_config(model, "prod").airflow.pools == prod


def test_a_stage_file_resizes_one_pool_and_keeps_the_others(config_dir: Path) -> None:
    edit_yaml(config_dir, "stages/dev.yaml", {"airflow": {"pools": {"training": {"slots": 7}}}})
    pools = stage_pools("dev", config_dir)
    assert pools.training.slots == 7 and pools.training.name == "sagemaker_training"
    assert pools.tuning.slots == 1
    assert load_config(MODEL, "dev", config_dir=config_dir).airflow.pools == pools


def test_invalid_pool_size_names_the_stage_file_and_key(config_dir: Path) -> None:
    edit_yaml(config_dir, "stages/prod.yaml", {"airflow": {"pools": {"transform": {"slots": 0}}}})
    with pytest.raises(ConfigError) as err:
        stage_pools("prod", config_dir)
    assert str(err.value) == "stages/prod.yaml: airflow.pools.transform.slots: must be >= 1 (got 0)"


def test_two_kinds_cannot_share_a_pool(config_dir: Path) -> None:
    edit_yaml(config_dir, "base.yaml", {"airflow": {"pools": {"tuning": {"name": "sagemaker_training"}}}})
    with pytest.raises(ConfigError, match="each job kind needs its own pool name"):
        stage_pools("dev", config_dir)


def test_a_model_or_a_run_cannot_set_pools(config_dir: Path) -> None:
    """Pools are shared by every DAG and fixed when the file is parsed: per model or per run they would lie."""
    with pytest.raises(ConfigError, match=r"run overrides: airflow.pools: pools are shared"):
        load_config(MODEL, "dev", {"airflow": {"pools": {"training": {"slots": 9}}}})
    edit_yaml(config_dir, f"models/{MODEL}.yaml", {"airflow": {"pools": {"training": {"slots": 9}}}})
    with pytest.raises(ConfigError, match=rf"models/{MODEL}.yaml: airflow.pools: pools are"):
        load_config(MODEL, "dev", config_dir=config_dir)
    with pytest.raises(ConfigError, match=rf"models/{MODEL}.yaml: airflow.pools: pools are deployment-wide"):
        stage_pools("dev", config_dir)


def test_import_file_counts_deferred_tasks_against_the_pool() -> None:
    """A deferred training task waits in the triggerer: without include_deferred its slot would free
    up and a backfill would start more jobs than the pool allows."""
    data = pools_import_file(stage_pools("prod"))
    assert data["sagemaker_training"]["slots"] == 4 and data["sagemaker_tuning"]["slots"] == 2
    assert all(p["include_deferred"] is True and p["description"] for p in data.values())
    assert sorted(data) == sorted(f"sagemaker_{kind}" for kind in JOB_KINDS)


def test_command_line_prints_what_airflow_pools_import_reads(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "include.mlpipeline.config.pools", "--stage", "prod"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == pools_import_file(stage_pools("prod"))
    bad = subprocess.run([sys.executable, "-m", "include.mlpipeline.config.pools", "--stage", "qa"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown stage 'qa'; available stages: dev, prod" in bad.stderr
