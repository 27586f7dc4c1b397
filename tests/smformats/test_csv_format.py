"""smformats/csv.py: label-first, header-less CSV."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smformats.csv import (
    algorithm_columns,
    read_algorithm_csv,
    write_algorithm_csv,
    write_csv_with_header,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1.5, 2.0], "target": [10.0, 20.5], "b": pd.array([3, 4], dtype="Int64")})


def test_label_goes_first_without_header_or_index(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    assert write_algorithm_csv(frame, path, label="target", features=["a", "b"]) == 2
    assert path.read_text() == "10.0,1.5,3\n20.5,2.0,4\n"
    assert algorithm_columns("target", ["target", "a"]) == ["target", "a"]


def test_append_streams_chunks_into_one_file(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    write_algorithm_csv(frame, path, label="target", features=["a", "b"])
    write_algorithm_csv(frame.iloc[:1], path, label="target", features=["a", "b"], append=True)
    labels, features = read_algorithm_csv(path)
    np.testing.assert_array_equal(labels, [10.0, 20.5, 10.0])
    np.testing.assert_array_equal(features, [[1.5, 3], [2.0, 4], [1.5, 3]])


def test_features_only_for_inference(frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    write_algorithm_csv(frame, buffer, label=None, features=["a", "b"])
    assert buffer.getvalue() == "1.5,3\n2.0,4\n"
    labels, features = read_algorithm_csv(buffer.getvalue().encode(), has_label=False)
    assert labels is None and features.shape == (2, 2)


def test_missing_columns_are_named(frame: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match=r"\['zzz'\]"):
        write_algorithm_csv(frame, io.StringIO(), label="target", features=["zzz"])


def test_header_written_once_when_appending(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "bad_rows.csv"
    write_csv_with_header(frame, path, append=True)
    write_csv_with_header(frame, path, append=True)
    lines = path.read_text().splitlines()
    assert lines[0] == "a,target,b" and len(lines) == 5


def test_reader_names_the_bad_line() -> None:
    with pytest.raises(ValueError, match="line 2: expected 3 fields, got 2"):
        read_algorithm_csv(b"1,2,3\n4,5\n")
    with pytest.raises(ValueError, match="line 1: non-numeric field"):
        read_algorithm_csv(b"1,x,3\n")


def test_numeric_rows_yield_line_numbers_and_name_the_bad_cell_or_length() -> None:
    from smformats.csv import CsvRowError, numeric_rows

    lines = ["1,2,3\n", "\n", " 4, 5 ,6\r\n", "7,8,9"]
    assert list(numeric_rows(lines)) == [(1, [1.0, 2.0, 3.0]), (3, [4.0, 5.0, 6.0]), (4, [7.0, 8.0, 9.0])]
    with pytest.raises(CsvRowError, match=r"line 2, column 3: 'x' is not a number") as bad:
        list(numeric_rows(["1,2,3", "4,5, x ", "7,8"]))
    assert (bad.value.lineno, bad.value.column, bad.value.cell, bad.value.width) == (2, 3, "x", None)
    with pytest.raises(CsvRowError, match="line 3: expected 3 fields, got 2") as ragged:
        list(numeric_rows(["1,2,3", "", "7,8"]))
    assert (ragged.value.width, ragged.value.got, ragged.value.column) == (3, 2, None)
    assert isinstance(ragged.value, ValueError)  # callers that catch ValueError keep working
    assert list(numeric_rows([])) == []
