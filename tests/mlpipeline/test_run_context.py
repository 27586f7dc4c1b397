"""include/mlpipeline/run.py: deterministic names and the run context."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from include.mlpipeline.run import (
    SAGEMAKER_NAME_PATTERN,
    RunContext,
    run_key,
    sagemaker_name,
)
from include.mlpipeline.s3 import s3_uri, split_s3_uri


def test_names_are_sanitised_and_lower_cased() -> None:
    assert sagemaker_name("diabetes_dnn", "dev", "20240601T020000") == "diabetes-dnn-dev-20240601t020000"
    assert sagemaker_name("__weird..Model__", "", "x") == "weird-model-x"


def test_long_names_are_cut_with_a_deterministic_hash() -> None:
    long_model = "a_really_long_model_name_that_keeps_going_and_going_forever"
    first = sagemaker_name(long_model, "prod", "20240601T020000")
    assert len(first) == 63 and SAGEMAKER_NAME_PATTERN.match(first)
    assert first == sagemaker_name(long_model, "prod", "20240601T020000")  # a retry finds it again
    other = sagemaker_name(long_model, "prod", "20240602T020000")
    assert other != first and other[:40] == first[:40]  # same prefix, different hash


def test_tuning_names_respect_32_characters() -> None:
    name = sagemaker_name("diabetes_dnn", "prod", "20240601T020000", max_len=32)
    assert len(name) <= 32 and SAGEMAKER_NAME_PATTERN.match(name)
    # the dev variant fits exactly and stays readable
    assert (
        sagemaker_name("diabetes_dnn", "dev", "20240601T020000", max_len=32)
        == "diabetes-dnn-dev-20240601t020000"
    )


def test_name_without_usable_characters_is_rejected() -> None:
    with pytest.raises(ValueError, match="no letters or digits"):
        sagemaker_name("__", "--")


def test_run_key_makes_airflow_run_ids_s3_safe() -> None:
    assert run_key("manual__2024-06-01T02:00:00+00:00") == "manual__2024-06-01T02-00-00-00-00"
    assert run_key("scheduled__2024-06-01T02:00:00.123+00:00") == "scheduled__2024-06-01T02-00-00.123-00-00"


def test_s3_uri_helpers() -> None:
    assert s3_uri("b", "/m/", "run", "train", trailing_slash=True) == "s3://b/m/run/train/"
    assert split_s3_uri("s3://bucket/a/b.csv") == ("bucket", "a/b.csv")
    with pytest.raises(ValueError, match="not an s3:// URI"):
        split_s3_uri("https://bucket/a")


def test_run_context_validates_and_round_trips() -> None:
    ctx = RunContext("diabetes_dnn", "dev", "manual__x", "20240601T020000")
    with_data = ctx.with_data({"train": "s3://b/train/"})
    assert RunContext.from_dict(with_data.to_dict()) == with_data
    assert ctx.data_uris == {}  # frozen: with_data made a copy
    with pytest.raises(ValueError, match="ts_nodash must look like"):
        RunContext("m", "dev", "r", "2024-06-01")


def test_run_context_from_airflow_context() -> None:
    ctx = RunContext.from_airflow(
        {"ts_nodash": "20240601T020000", "run_id": "scheduled__x"}, model="m", stage="dev"
    )
    assert (ctx.ts_nodash, ctx.run_id) == ("20240601T020000", "scheduled__x")
    # Airflow 3 manual runs have no logical date: run_after is used
    dag_run = SimpleNamespace(logical_date=None, run_after=datetime(2024, 6, 1, 2, 3, 4, tzinfo=UTC))
    ctx = RunContext.from_airflow({"run_id": "manual__y", "dag_run": dag_run}, model="m", stage="prod")
    assert ctx.ts_nodash == "20240601T020304"
