"""Hyperparameters declared per model (``training.hyperparameter_spec``) and a run's overrides
checked against them when the config loads, i.e. in a run's first task."""

from __future__ import annotations

import pytest
from airflow.sdk.definitions.retry_policy import RetryAction
from pydantic import ValidationError

from include.mlpipeline.config import (
    ConfigError,
    HyperparameterSpec,
    config_for_run,
    form_summary,
    list_models,
    list_stages,
    load_config,
)
from include.mlpipeline.config.hyperparameters import allowed, value_problem
from include.mlpipeline.failures import PermanentErrorPolicy, is_permanent


def refusal(model: str, hyperparameters: dict) -> str:
    with pytest.raises(ConfigError) as info:
        config_for_run(model, {"hyperparameters": hyperparameters})
    return str(info.value)


@pytest.mark.parametrize("model", list_models())
def test_every_model_declares_its_hyperparameters_and_its_defaults_pass(model: str) -> None:
    for stage in list_stages():
        cfg = load_config(model, stage)  # raises on any default outside its declaration
        specs = cfg.training.hyperparameter_spec
        assert specs, f"{model} declares no training.hyperparameter_spec"
        undeclared = set(cfg.training.hyperparameters) - set(specs)
        assert not undeclared, f"{model}: configured but not declared: {undeclared}"
        assert set(cfg.tuning.parameter_ranges) <= set(specs)
        for name, value in cfg.training.hyperparameters.items():
            assert value_problem(value, specs[name]) is None, (model, name, value)


@pytest.mark.parametrize(
    ("model", "overrides", "expected"),
    [
        # wrong type: names the key, the value and what is allowed
        (
            "breast_cancer_xgboost",
            {"max_depth": "deep"},
            "run overrides: training.hyperparameters.max_depth: must be an integer >= 0 (got 'deep')",
        ),
        ("breast_cancer_xgboost", {"num_round": 2.5}, "training.hyperparameters.num_round: must be an integer >= 1 (got 2.5)"),
        ("breast_cancer_xgboost", {"max_depth": True}, "training.hyperparameters.max_depth: must be an integer >= 0 (got True)"),
        # out of range
        ("breast_cancer_xgboost", {"eta": 1.5}, "training.hyperparameters.eta: must be a number from 0 to 1 (got 1.5)"),
        ("breast_cancer_xgboost", {"subsample": 0}, "training.hyperparameters.subsample: must be a number > 0 and <= 1 (got 0)"),
        ("diabetes_dnn", {"dropout": "1"}, "training.hyperparameters.dropout: must be a number >= 0 and < 1 (got '1')"),
        ("diabetes_dnn", {"epochs": 0}, "training.hyperparameters.epochs: must be an integer from 1 to 100000 (got 0)"),
        # not one of the allowed values / not the allowed form
        (
            "breast_cancer_xgboost",
            {"booster": "linear"},
            "training.hyperparameters.booster: must be one of 'gbtree', 'gblinear', 'dart' (got 'linear')",
        ),
        ("digits_kmeans", {"init_method": "kmeans"}, "must be one of 'random', 'kmeans++' (got 'kmeans')"),
        ("diabetes_dnn", {"hidden_units": "64;32"}, "training.hyperparameters.hidden_units: must be a string matching"),
        ("image_classifier", {"num_layers": 19}, "training.hyperparameters.num_layers: must be one of 18, 34"),
        # unknown key: a typo that would silently be ignored (or fail the container) is refused
        (
            "breast_cancer_xgboost",
            {"max_dept": 3},
            "run overrides: training.hyperparameters.max_dept: unknown hyperparameter 'max_dept' = 3 (this model's are: num_round,",
        ),
        ("iris_sklearn", {"n_estimators": 10}, "unknown hyperparameter 'n_estimators' = 10 (this model's are: n-estimators, max-depth, random-state)"),
    ],
)
def test_a_bad_override_is_refused_with_the_key_value_and_what_is_allowed(model, overrides, expected) -> None:
    message = refusal(model, overrides)
    assert expected in message
    assert message.startswith("run overrides: training.hyperparameters.")


def test_the_refusal_is_permanent_so_the_task_fails_in_one_try() -> None:
    with pytest.raises(ConfigError) as info:
        config_for_run("breast_cancer_xgboost", {"hyperparameters": '{"eta": "fast"}'})  # the form's JSON text
    assert is_permanent(info.value)
    decision = PermanentErrorPolicy().evaluate(info.value, try_number=1, max_tries=3)
    assert decision.action == RetryAction.FAIL


def test_valid_overrides_pass_including_numbers_as_strings() -> None:
    cfg = config_for_run("breast_cancer_xgboost", {"hyperparameters": {"eta": "0.2", "max_depth": "5", "booster": "dart"}})
    assert cfg.training.hyperparameters["eta"] == "0.2"
    assert cfg.training.hyperparameters["num_round"] == 200  # configured ones stay
    cfg = config_for_run("diabetes_dnn", {"hyperparameters": {"hidden_units": "128, 64", "dropout": 0}})
    assert cfg.training.hyperparameters["hidden_units"] == "128, 64"


def test_every_problem_is_reported_at_once() -> None:
    message = refusal("breast_cancer_xgboost", {"eta": -1, "max_depth": "x", "nope": 1})
    for key in ("eta", "max_depth", "nope"):
        assert f"training.hyperparameters.{key}:" in message


def test_a_required_hyperparameter_cannot_be_removed_and_tuning_ranges_stay_within_bounds() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            "breast_cancer_xgboost",
            "dev",
            {"tuning": {"parameter_ranges": {"eta": {"type": "continuous", "min": 0.1, "max": 3}}}},
        )
    assert "run overrides: tuning.parameter_ranges.eta.max: must be a number from 0 to 1 (got 3.0)" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(
            "diabetes_dnn",
            "dev",
            {"tuning": {"parameter_ranges": {"momentum": {"type": "continuous", "min": 0.1, "max": 0.9}}}},
        )
    assert "tuning.parameter_ranges.momentum: unknown hyperparameter 'momentum'" in str(info.value)


def test_placeholders_filled_later_are_not_judged_yet() -> None:
    cfg = load_config("image_classifier", "dev")
    assert cfg.training.hyperparameters["num_training_samples"] == "{rows.train}"


def test_declarations_are_checked_themselves() -> None:
    with pytest.raises(ValidationError, match="min must be <= max"):
        HyperparameterSpec(type="int", min=5, max=1)
    with pytest.raises(ValidationError, match="min/max apply to int and float only"):
        HyperparameterSpec(type="str", min=1)
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        HyperparameterSpec(type="str", pattern="(")
    with pytest.raises(ValidationError):
        HyperparameterSpec(type="integer")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "good", "bad"),
    [
        (HyperparameterSpec(type="int", min=1), [1, "7", 3.0], [0, "x", 1.5, True, "inf"]),
        (HyperparameterSpec(type="float", max=1, max_exclusive=True), [0.5, "-2", 0], [1, "1.0", "nan", False]),
        (HyperparameterSpec(type="bool"), [True, "false", "True"], ["yes", 1]),
        (HyperparameterSpec(type="str", values=["a", "b"]), ["a"], ["c", ""]),
        (HyperparameterSpec(type="int", values=[0, 1]), [0, "1"], [2, "2"]),
    ],
)
def test_value_problem(spec, good, bad) -> None:
    for value in good:
        assert value_problem(value, spec) is None, value
    for value in bad:
        assert value_problem(value, spec) == f"must be {allowed(spec)} (got {value!r})", value


def test_form_summary_lists_defaults_and_allowed_values() -> None:
    text = form_summary(load_config("iris_sklearn", "dev"))
    assert text == (
        "n-estimators: default 100; an integer >= 1; max-depth: default 4; an integer >= 1; "
        "random-state: default 3; an integer >= 0"
    )
