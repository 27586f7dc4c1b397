"""include/mlpipeline/config/ (package): merge order, validation messages (file + key), trigger params."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.mlpipeline.config import (
    CONFIG_DIR,
    PROJECT_ROOT,
    ConfigError,
    PipelineConfig,
    config_for_run,
    deep_merge,
    list_models,
    list_stages,
    load_config,
    overrides_from_params,
)

MODEL = "diabetes_dnn"
MODEL_FILE = f"models/{MODEL}.yaml"


def edit_yaml(config_dir: Path, relative: str, changes: dict[str, Any]) -> None:
    """Deep-merge ``changes`` into one YAML file of a config copy."""
    path = config_dir / relative
    current = yaml.safe_load(path.read_text()) or {}
    path.write_text(yaml.safe_dump(deep_merge(current, changes), sort_keys=False))


def problem(
    config_dir: Path | None = None, stage: str = "dev", overrides: dict[str, Any] | None = None
) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(MODEL, stage, overrides, config_dir=config_dir)
    return str(info.value)


# ------------------------------------------------------------------------------ real config


def test_real_config_loads_for_every_stage_with_stage_values() -> None:
    dev = load_config(MODEL, "dev")
    prod = load_config(MODEL, "prod")

    assert (dev.aws.bucket, prod.aws.bucket) == ("mlpipeline-dev", "mlpipeline-prod")
    assert (dev.training.instance_type, dev.training.instance_count) == ("ml.m5.large", 1)
    assert (prod.training.instance_type, prod.training.instance_count) == ("ml.m5.xlarge", 2)
    assert prod.tuning.max_jobs > dev.tuning.max_jobs
    assert prod.training.max_runtime_seconds > dev.training.max_runtime_seconds
    assert prod.endpoint.deployment is not None and dev.endpoint.deployment is None
    # templates are filled from config
    assert dev.aws.role_arn == "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
    assert dev.training.image_uri == "123456789012.dkr.ecr.us-east-1.amazonaws.com/dnn-regressor:latest"
    assert dev.endpoint.dev_name == "diabetes-dnn-dev" and dev.endpoint.prod_name == "diabetes-dnn-prod"
    assert dev.endpoint.data_capture.destination_s3_uri == "s3://mlpipeline-dev/diabetes_dnn/data-capture"
    assert prod.endpoint.data_capture.destination_s3_uri == "s3://mlpipeline-prod/diabetes_dnn/data-capture"
    assert dev.registry.model_package_group_name == "diabetes-dnn"
    # model file values
    assert dev.data.label_column == "target"
    assert dev.data.feature_columns == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert dev.evaluation.thresholds == {"max_rmse": 70.0, "min_r2": 0.2}


def test_models_and_stages_are_listed_from_files(config_dir: Path) -> None:
    shipped = sorted(p.stem for p in (Path(__file__).parents[2] / "include/config/models").glob("*.yaml"))
    assert list_models() == shipped and MODEL in shipped
    assert list_stages() == ["dev", "prod"]
    (config_dir / "models" / "other_model.yaml").write_text((config_dir / MODEL_FILE).read_text())
    assert list_models(config_dir) == sorted([*shipped, "other_model"])
    assert load_config("other_model", "dev", config_dir=config_dir).model_slug == "other-model"


def test_config_round_trips_through_json_for_xcom(dev_cfg: PipelineConfig) -> None:
    again = PipelineConfig.model_validate(json.loads(dev_cfg.model_dump_json()))
    assert again == dev_cfg


def test_metric_definitions_match_the_images_own_file(dev_cfg: PipelineConfig) -> None:
    """The config carries a copy (Airflow deployments do not ship container/); keep it equal."""
    assert dev_cfg.training.metric_definitions_file is not None
    path = PROJECT_ROOT / dev_cfg.training.metric_definitions_file
    if not path.is_file():
        pytest.skip(f"{path} not written yet")
    image_list = json.loads(path.read_text())
    configured = [{"Name": m.name, "Regex": m.regex} for m in dev_cfg.training.metric_definitions]
    assert configured == image_list


def test_config_modules_import_without_heavy_dependencies() -> None:
    """DAG files import these at parse time: no pandas, numpy, matplotlib, sklearn or boto3."""
    code = (
        "import sys, include.mlpipeline.config, include.mlpipeline.sagemaker_requests, include.mlpipeline.run,"
        " include.mlpipeline.etl, include.mlpipeline.evaluate;"
        "heavy = [m for m in ('pandas', 'numpy', 'matplotlib', 'sklearn', 'boto3', 'botocore') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_config_package_imports_nothing_else_of_the_library() -> None:
    """The package map (README Layout): config is the library's base, so it imports no sibling module."""
    code = (
        "import sys, include.mlpipeline.config;"
        "print(sorted(m for m in sys.modules if m.startswith('include.mlpipeline.')"
        " and not m.startswith('include.mlpipeline.config')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ merge order


def test_merge_order_is_base_then_stage_then_model_then_overrides(config_dir: Path) -> None:
    edit_yaml(config_dir, "base.yaml", {"training": {"volume_size_gb": 11}})
    edit_yaml(config_dir, "stages/dev.yaml", {"training": {"volume_size_gb": 22}})
    edit_yaml(config_dir, MODEL_FILE, {"training": {"volume_size_gb": 33}})

    assert load_config(MODEL, "dev", config_dir=config_dir).training.volume_size_gb == 33
    assert (
        load_config(
            MODEL, "dev", {"training": {"volume_size_gb": 44}}, config_dir=config_dir
        ).training.volume_size_gb
        == 44
    )

    model = yaml.safe_load((config_dir / MODEL_FILE).read_text())
    del model["training"]["volume_size_gb"]
    (config_dir / MODEL_FILE).write_text(yaml.safe_dump(model))
    assert load_config(MODEL, "dev", config_dir=config_dir).training.volume_size_gb == 22

    stage = yaml.safe_load((config_dir / "stages/dev.yaml").read_text())
    del stage["training"]["volume_size_gb"]
    (config_dir / "stages/dev.yaml").write_text(yaml.safe_dump(stage))
    assert load_config(MODEL, "dev", config_dir=config_dir).training.volume_size_gb == 11


def test_mappings_merge_but_lists_replace(dev_cfg: PipelineConfig) -> None:
    cfg = load_config(
        MODEL,
        "dev",
        {
            "training": {
                "hyperparameters": {"epochs": 5},
                "metric_definitions": [{"name": "validation:rmse", "regex": "rmse=([0-9.]+)"}],
            }
        },
    )
    # the mapping merged: epochs replaced, the rest kept
    assert cfg.training.hyperparameters == {**dev_cfg.training.hyperparameters, "epochs": 5}
    # the list replaced as a whole
    assert [m.regex for m in cfg.training.metric_definitions] == ["rmse=([0-9.]+)"]
    # the stage's bucket survived the model layer (which does not set it)
    assert cfg.aws.bucket == "mlpipeline-dev"


def test_overrides_may_use_placeholders_and_change_the_account(dev_cfg: PipelineConfig) -> None:
    cfg = load_config(MODEL, "dev", {"aws": {"account_id": "123456789012", "bucket": "ml-{account}-{stage}"}})
    assert cfg.aws.bucket == "ml-123456789012-dev"
    assert cfg.aws.role_arn == "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
    assert cfg.training.image_uri.startswith("123456789012.dkr.ecr.us-east-1.amazonaws.com/")
    assert (
        cfg.endpoint.data_capture.destination_s3_uri == "s3://ml-123456789012-dev/diabetes_dnn/data-capture"
    )
    assert dev_cfg.aws.bucket == "mlpipeline-dev"  # no shared state between loads


# --------------------------------------------------------------------- errors name file + key


def test_error_names_the_model_file_and_key(config_dir: Path) -> None:
    edit_yaml(config_dir, MODEL_FILE, {"training": {"instance_count": 0}})
    assert problem(config_dir) == f"{MODEL_FILE}: training.instance_count: must be >= 1 (got 0)"


def test_error_names_the_stage_file_that_last_set_the_key(config_dir: Path) -> None:
    edit_yaml(config_dir, "stages/prod.yaml", {"training": {"instance_count": -1}})
    assert (
        problem(config_dir, stage="prod")
        == "stages/prod.yaml: training.instance_count: must be >= 1 (got -1)"
    )
    # dev does not set the bad value, so dev still loads
    assert load_config(MODEL, "dev", config_dir=config_dir).training.instance_count == 1


def test_error_names_base_when_only_base_set_the_key(config_dir: Path) -> None:
    edit_yaml(config_dir, "base.yaml", {"transform": {"max_payload_mb": 500}})
    assert problem(config_dir) == "base.yaml: transform.max_payload_mb: must be <= 100 (got 500)"


def test_error_names_run_overrides() -> None:
    message = problem(overrides={"tuning": {"max_parallel_jobs": 0}})
    assert message == "run overrides: tuning.max_parallel_jobs: must be >= 1 (got 0)"


def test_unknown_key_suggests_the_right_one() -> None:
    message = problem(overrides={"training": {"instance_cout": 2}})
    assert message.startswith(
        "run overrides: training.instance_cout: unknown key (did you mean 'instance_count'?)"
    )
    assert "allowed here:" in message and "volume_size_gb" in message


def test_unknown_key_in_a_named_mapping_entry(config_dir: Path) -> None:
    edit_yaml(config_dir, MODEL_FILE, {"data": {"columns": {"bmi": {"maximum": 60}}}})
    message = problem(config_dir)
    assert message.startswith(f"{MODEL_FILE}: data.columns.bmi.maximum: unknown key (did you mean 'max'?)")


def test_unknown_top_level_section(config_dir: Path) -> None:
    edit_yaml(config_dir, "stages/dev.yaml", {"trainig": {"instance_count": 1}})
    assert problem(config_dir).startswith("stages/dev.yaml: trainig: unknown key (did you mean 'training'?)")


def test_wrong_type_and_enum_and_pattern_messages() -> None:
    assert problem(overrides={"training": {"max_runtime_seconds": "an hour"}}).startswith(
        "run overrides: training.max_runtime_seconds: input should be a valid integer"
    )
    assert problem(overrides={"tuning": {"strategy": "Hyperband"}}) == (
        "run overrides: tuning.strategy: must be one of 'Bayesian', 'Random' or 'Grid' (got 'Hyperband')"
    )
    message = problem(overrides={"aws": {"bucket": "My_Bucket"}})
    assert message.startswith("run overrides: aws.bucket: must match ") and "(got 'My_Bucket')" in message
    message = problem(overrides={"training": {"instance_type": "m5.large"}})
    assert message.startswith("run overrides: training.instance_type: must match")


def test_discriminated_range_errors_use_the_yaml_keys(config_dir: Path) -> None:
    edit_yaml(config_dir, MODEL_FILE, {"tuning": {"parameter_ranges": {"batch_size": {"max": "lots"}}}})
    message = problem(config_dir)
    assert message.startswith(
        f"{MODEL_FILE}: tuning.parameter_ranges.batch_size.max: input should be a valid integer"
    )


def test_missing_required_key_names_the_file_that_holds_the_section(config_dir: Path) -> None:
    model = yaml.safe_load((config_dir / MODEL_FILE).read_text())
    del model["data"]["label_column"]
    (config_dir / MODEL_FILE).write_text(yaml.safe_dump(model))
    assert problem(config_dir) == f"{MODEL_FILE}: data.label_column: required key is missing"


def test_unquoted_account_id_gets_a_helpful_message(config_dir: Path) -> None:
    text = (
        (config_dir / "base.yaml")
        .read_text()
        .replace('account_id: "123456789012"', "account_id: 123456789012")
    )
    (config_dir / "base.yaml").write_text(text)
    message = problem(config_dir)
    assert "base.yaml: aws.account_id: must be a quoted 12-digit string" in message


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(MODEL, "dev", {"training": {"instance_count": 0, "volume_size_gb": 0}})
    assert info.value.problems == [
        "run overrides: training.instance_count: must be >= 1 (got 0)",
        "run overrides: training.volume_size_gb: must be >= 1 (got 0)",
    ]
    assert str(info.value).startswith("2 config problems:")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"data": {"label_column": "outcome"}},
            "run overrides: data.label_column: 'outcome' is not one of data.columns",
        ),
        (
            {"data": {"split": {"train": 0.8}}},
            "run overrides: data.split: train + validation + test must be 1 (got 1.1)",
        ),
        (
            {"data": {"columns": {"bmi": {"min": 70}}}},
            "run overrides: data.columns.bmi.min: must be <= max (70.0 > 60.0)",
        ),
        ({"data": {"id_column": "bmi"}}, "run overrides: data.id_column: 'bmi' is a row key, not a feature"),
        (
            {"data": {"columns": {"target": {"nullable": True}}}},
            "run overrides: data.columns.target.nullable: the label column cannot be nullable",
        ),
        (
            {"data": {"columns": {"bmi": {"fill_value": 25}}}},
            "run overrides: data.columns.bmi.fill_value: only applies to nullable columns",
        ),
        (
            {"tuning": {"objective": {"metric": "val:mape"}}},
            "run overrides: tuning.objective.metric: 'val:mape' is not in training.metric_definitions",
        ),
        (
            {"tuning": {"max_jobs": 2, "max_parallel_jobs": 3}},
            "run overrides: tuning.max_parallel_jobs: must be <= tuning.max_jobs (3 > 2)",
        ),
        (
            {"tuning": {"parameter_ranges": {"learning_rate": {"min": 0.0}}}},
            "run overrides: tuning.parameter_ranges.learning_rate.min: must be > 0 for Logarithmic scaling",
        ),
        (
            {"tuning": {"parameter_ranges": {"batch_size": {"min": 256}}}},
            "run overrides: tuning.parameter_ranges.batch_size.min: must be < max (256 >= 128)",
        ),
        (
            {"tuning": {"strategy": "Grid"}},
            "run overrides: tuning.strategy: Grid supports categorical ranges only; tuning.parameter_ranges has learning_rate (continuous), batch_size (integer), dropout (continuous)",
        ),
        (
            {"tuning": {"enabled": True, "objective": None}},
            "run overrides: tuning.objective: required when tuning.enabled is true",
        ),
        (
            {"evaluation": {"thresholds": {"max_mape": 1}}},
            "run overrides: evaluation.thresholds: unknown threshold 'max_mape'",
        ),
        (
            {"evaluation": {"metrics": ["rmse", "mae"]}},
            f"{MODEL_FILE}: evaluation.thresholds.min_r2: metric 'r2' is not in evaluation.metrics",
        ),
        (
            {"endpoint": {"prod_name": "{model_slug}-dev"}},
            "run overrides: endpoint.prod_name: must differ from endpoint.dev_name",
        ),
        (
            {"schedules": {"training": "every night"}},
            "run overrides: schedules.training: must be a 5-field cron expression",
        ),
        (
            {"training": {"metric_definitions": [{"name": "x", "regex": "x=\\d+"}]}},
            "run overrides: training.metric_definitions.0.regex: needs a capturing group",
        ),
        (
            {"training": {"image_uri": "{acount}.dkr.ecr"}},
            "run overrides: training.image_uri: unknown placeholder {acount}",
        ),
        (
            {"training": {"image_uri": "{account.dkr.ecr"}},
            "run overrides: training.image_uri: malformed placeholder in '{account.dkr.ecr'",
        ),
    ],
)
def test_cross_field_rules_name_the_key(overrides: dict[str, Any], expected: str) -> None:
    assert expected in problem(overrides=overrides)


def test_cross_rule_names_the_model_file_when_it_set_the_key(config_dir: Path) -> None:
    edit_yaml(config_dir, MODEL_FILE, {"tuning": {"objective": {"metric": "validation:mae"}}})
    assert problem(config_dir).startswith(
        f"{MODEL_FILE}: tuning.objective.metric: 'validation:mae' is not in"
    )


def test_broken_yaml_names_file_and_line(config_dir: Path) -> None:
    (config_dir / "stages" / "dev.yaml").write_text("training:\n  instance_type: [unclosed\n")
    message = problem(config_dir)
    assert message.startswith("stages/dev.yaml: invalid YAML (line ")


def test_top_level_must_be_a_mapping(config_dir: Path) -> None:
    (config_dir / MODEL_FILE).write_text("- just\n- a list\n")
    assert problem(config_dir) == f"{MODEL_FILE}: top level must be a mapping of sections (got list)"


def test_model_and_stage_keys_are_reserved(config_dir: Path) -> None:
    edit_yaml(config_dir, MODEL_FILE, {"stage": "prod"})
    assert (
        problem(config_dir) == f"{MODEL_FILE}: stage: reserved key, set by load_config() from its arguments"
    )


def test_unknown_model_or_stage_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'house_prices'; available models: .*diabetes_dnn.*digits_kmeans"):
        load_config("house_prices", "dev")
    with pytest.raises(ConfigError, match=r"unknown stage 'qa'; available stages: dev, prod"):
        load_config(MODEL, "qa")


def test_missing_config_dir_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="base.yaml: not found"):
        load_config(MODEL, "dev", config_dir=tmp_path)


# ------------------------------------------------------------------------- trigger-form params


def test_flat_trigger_params_become_nested_overrides() -> None:
    params = {
        "stage": "dev",
        "instance_type": "ml.m5.large",
        "hyperparameters": {"epochs": 5},
        "deploy": True,
        "auto_approve": False,
    }
    assert overrides_from_params(params) == {
        "training": {"instance_type": "ml.m5.large", "hyperparameters": {"epochs": 5}},
        "run": {"deploy": True, "auto_approve": False},
    }


def test_params_accept_dotted_keys_json_hyperparameters_and_nested_overrides() -> None:
    params = {
        "training.volume_size_gb": 50,
        "hyperparameters": '{"epochs": 3, "dropout": 0.2}',
        "tuning": True,
        "overrides": {"endpoint": {"initial_instance_count": 3}},
        "instance_count": None,  # an untouched optional form field
    }
    assert overrides_from_params(params) == {
        "training": {"volume_size_gb": 50, "hyperparameters": {"epochs": 3, "dropout": 0.2}},
        "tuning": {"enabled": True},
        "endpoint": {"initial_instance_count": 3},
    }


def test_unknown_or_malformed_params_are_rejected() -> None:
    with pytest.raises(
        ConfigError, match=r"run overrides: epochs: unknown trigger parameter \(known: .*auto_approve"
    ):
        overrides_from_params({"epochs": 5})
    with pytest.raises(ConfigError, match="run overrides: hyperparameters: not a JSON object"):
        overrides_from_params({"hyperparameters": "{epochs: 5"})
    with pytest.raises(ConfigError, match="must be a JSON object"):
        overrides_from_params({"hyperparameters": "[1, 2]"})


def test_config_for_run_picks_the_stage_and_merges_params(dev_cfg: PipelineConfig) -> None:
    cfg = config_for_run(MODEL, {"stage": "prod", "hyperparameters": {"epochs": 7}, "deploy": False})
    assert cfg.stage == "prod" and cfg.training.instance_type == "ml.m5.xlarge"
    assert cfg.training.hyperparameters["epochs"] == 7
    assert cfg.training.hyperparameters["batch_size"] == dev_cfg.training.hyperparameters["batch_size"]
    assert cfg.run.deploy is False


def test_config_for_run_reports_bad_param_values_as_run_overrides() -> None:
    with pytest.raises(ConfigError, match=r"run overrides: training.instance_count: must be >= 1 \(got 0\)"):
        config_for_run(MODEL, {"stage": "dev", "instance_count": 0})


def test_default_stage_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPIPELINE_STAGE", "prod")
    assert config_for_run(MODEL, {}).stage == "prod"
    monkeypatch.delenv("MLPIPELINE_STAGE")
    assert config_for_run(MODEL, {}).stage == "dev"


def test_shipped_yaml_files_only_hold_known_sections() -> None:
    """Guard against a stray file under include/config being read as a model or stage."""
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        if path.parent.name == "byom":  # bring-your-own-model files: include/mlpipeline/byom/config.py's schema
            continue
        data = yaml.safe_load(path.read_text())
        assert isinstance(data, dict), path
        assert set(data) <= set(PipelineConfig.model_fields) - {"model", "stage"}, path


# ------------------------------------------------------------------------ how operators wait


def test_every_stage_defers_and_polls_as_configured() -> None:
    """The worker slot is free while SageMaker works, in every stage, unless a run says otherwise."""
    for stage in list_stages():
        waits = load_config(MODEL, stage).airflow
        assert waits.deferrable is True, stage
        assert waits.poll_interval_seconds == 2, stage
        # the trigger's attempt budget covers the whole wait, not the provider's fixed 60 polls
        assert waits.max_attempts * waits.poll_interval_seconds >= waits.max_wait_seconds


def test_a_run_may_wait_in_its_task_instead() -> None:
    cfg = config_for_run(MODEL, {"stage": "dev", "airflow.deferrable": False, "airflow.poll_interval_seconds": 5})
    assert cfg.airflow.deferrable is False and cfg.airflow.poll_interval_seconds == 5
    assert cfg.airflow.max_attempts == -(-cfg.airflow.max_wait_seconds // 5)


def test_bad_wait_settings_name_the_key() -> None:
    assert "run overrides: airflow.poll_interval_seconds: must be >= 1 (got 0)" in problem(
        overrides={"airflow": {"poll_interval_seconds": 0}}
    )
    assert "airflow.defferable: unknown key (did you mean 'deferrable'?)" in problem(
        overrides={"airflow": {"defferable": False}}
    )
