"""Bad input makes ``train`` exit non-zero with a one-line reason in ``output/failure``.

Each case runs the real program. Input validation must happen before TensorFlow is imported
(a user should not wait for a 5 s import to learn about a typo in a CSV file), so the cases run
with a ``tensorflow``/``keras`` on ``PYTHONPATH`` that refuses to be imported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.container.dnn_regressor_support import failure_text, make_job, make_rows, run_train, write_csv


def _good_channels(base: Path) -> None:
    write_csv(base / "input/data/train/part-0.csv", make_rows(50, 1))
    write_csv(base / "input/data/validation/part-0.csv", make_rows(20, 2))


def _replace_train(text: str) -> Callable[[Path], None]:
    def setup(base: Path) -> None:
        _good_channels(base)
        (base / "input/data/train/part-0.csv").write_text(text)

    return setup


def _missing(channel: str) -> Callable[[Path], None]:
    def setup(base: Path) -> None:
        _good_channels(base)
        for f in (base / "input/data" / channel).iterdir():
            f.unlink()
        (base / "input/data" / channel).rmdir()

    return setup


def _extra_validation_column(base: Path) -> None:
    _good_channels(base)
    rows = make_rows(20, 2)
    write_csv(base / "input/data/validation/part-0.csv", np.column_stack([rows, rows[:, :1]]), header=None)


def _hyperparameters(**values: str) -> Callable[[Path], None]:
    def setup(base: Path) -> None:
        _good_channels(base)
        (base / "input/config/hyperparameters.json").write_text(json.dumps(values))

    return setup


def _second_file_empty(base: Path) -> None:
    _good_channels(base)
    (base / "input/data/train/sub").mkdir()
    (base / "input/data/train/sub/part-1.csv").write_text("")


def _recordio(base: Path) -> None:
    _good_channels(base)
    config = {"train": {"ContentType": "application/x-recordio-protobuf"}, "validation": {}}
    (base / "input/config/inputdataconfig.json").write_text(json.dumps(config))


def _broken_hyperparameters_json(base: Path) -> None:
    _good_channels(base)
    (base / "input/config/hyperparameters.json").write_text('{"epochs": "3",')


CASES = {
    "missing validation channel": (_missing("validation"), ["channel 'validation' is missing"]),
    "missing train channel": (_missing("train"), ["channel 'train' is missing"]),
    "empty file": (_second_file_empty, ["train/sub/part-1.csv is empty"]),
    "header only": (_replace_train("y,x1,x2,x3\n"), ["train/part-0.csv has a header row but no data rows"]),
    "non-numeric cell": (
        _replace_train("y,x1,x2,x3\n1,2,3,4\n1,2,abc,4\n"),
        ["train/part-0.csv row 3, column 3 ('x2'): 'abc' is not a number"],
    ),
    "empty cell": (
        _replace_train("y,x1,x2,x3\n1,2,3,4\n5,,7,8\n"),
        ["train/part-0.csv row 3, column 2 ('x1') is empty"],
    ),
    "NaN cell": (
        _replace_train("y,x1,x2,x3\n1,2,3,4\n5,6,7,NaN\n9,9,9,9\n"),
        ["train/part-0.csv row 3, column 4 ('x3') is NaN"],
    ),
    "ragged row": (
        _replace_train("y,x1,x2,x3\n1,2,3,4\n5,6,7\n"),
        ["train/part-0.csv row 3 has 3 columns, expected 4"],
    ),
    "column count differs between channels": (
        _extra_validation_column,
        ["channel 'validation' has 5 columns", "'train' has 4"],
    ),
    "bad hyperparameter value": (
        _hyperparameters(learning_rate="fast"),
        ["hyperparameter 'learning_rate' must be a number in (0, 1], got 'fast'"],
    ),
    "bad hidden_units": (
        _hyperparameters(hidden_units="64,0"),
        ["hyperparameter 'hidden_units'", "got '64,0'"],
    ),
    "unknown hyperparameter": (_hyperparameters(epoch="3"), ["unknown hyperparameter(s) 'epoch'"]),
    "label not in header": (_hyperparameters(label="price"), ["label='price' is not a column"]),
    "unsupported content type": (_recordio, ["ContentType 'application/x-recordio-protobuf'"]),
    "hyperparameters.json not JSON": (
        _broken_hyperparameters_json,
        ["hyperparameters.json is not valid JSON"],
    ),
}


@pytest.fixture(scope="module")
def no_tensorflow(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PYTHONPATH entry whose tensorflow and keras raise on import."""
    root = tmp_path_factory.mktemp("no-tf")
    for name in ("tensorflow", "keras"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(
            f"raise ImportError('{name} imported before the input was validated')\n"
        )
    return str(root)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_fast_with_a_one_line_reason(case: str, tmp_path: Path, no_tensorflow: str) -> None:
    setup, expected = CASES[case]
    base = make_job(tmp_path / "ml")
    setup(base)
    result = run_train(base, timeout=60, PYTHONPATH=no_tensorflow)
    assert result.returncode == 1, result.stdout + result.stderr
    reason = failure_text(base)
    assert reason is not None, "no output/failure written"
    assert reason.endswith("\n") and reason.count("\n") == 1, repr(reason)
    assert reason.startswith("ClientError: "), reason
    for fragment in expected:
        assert fragment in reason, reason
    assert reason.strip() in result.stderr  # the job log shows the same reason
    assert not (base / "model" / "model.keras").exists()


def test_the_fake_tensorflow_really_blocks_the_import(tmp_path: Path, no_tensorflow: str) -> None:
    """Guards the test above: with valid input the run reaches the import and fails there."""
    base = make_job(tmp_path / "ml")
    _good_channels(base)
    result = run_train(base, timeout=60, PYTHONPATH=no_tensorflow)
    assert result.returncode == 1
    assert "imported before the input was validated" in failure_text(base)
    assert failure_text(base).startswith("AlgorithmError: ImportError")
