"""Shared fixtures for the dnn-regressor container tests (helpers live in dnn_regressor_support)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.container.dnn_regressor_support import (
    TrainedModel,
    failure_text,
    make_job,
    make_rows,
    run_train,
    write_csv,
)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    base = make_job(tmp_path_factory.mktemp("dnn-trained") / "ml")
    train_rows = make_rows(1500, seed=1)
    write_csv(base / "input/data/train/part-0.csv", train_rows)
    write_csv(base / "input/data/validation/part-0.csv", make_rows(300, seed=2))
    result = run_train(base)
    assert result.returncode == 0, f"training failed:\n{result.stdout}\n{result.stderr}\n{failure_text(base)}"
    return TrainedModel(
        base=base,
        model_dir=base / "model",
        stdout=result.stdout,
        train_rows=train_rows,
        test_rows=make_rows(400, seed=3),
    )


@pytest.fixture(scope="session")
def regressor(trained_model: TrainedModel) -> Any:
    from dnn_regressor.inference import load_regressor

    return load_regressor(trained_model.model_dir)
