"""The transform's CSV record helpers agree exactly with the csv module they shortcut."""

from __future__ import annotations

import csv
import io
import random

import pytest

from localmaker.transform import _csv_fields, _csv_line

ALPHABET = ["a", "1", ".", "-", " ", ",", '"', "\r", "\n", "é", ""]


def _reference_line(fields: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue().encode()


def test_fields_match_the_csv_reader_on_random_records() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))
        try:
            expected: list[str] | type[csv.Error] = next(csv.reader([text]), [])
        except csv.Error:
            expected = csv.Error
        if expected is csv.Error:
            with pytest.raises(csv.Error):
                _csv_fields(text.encode())
        else:
            assert _csv_fields(text.encode()) == expected, repr(text)


def test_lines_match_the_csv_writer_on_random_fields() -> None:
    rng = random.Random(11)
    for _ in range(5000):
        fields = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(1, 5))]
        assert _csv_line(fields) == _reference_line(fields), repr(fields)
    assert _csv_line("") == b'""' and _csv_line(["", ""]) == b","
    assert _csv_line("7.5") == b"7.5" and _csv_line(["a,b", "c"]) == b'"a,b",c'


def test_round_trip_of_a_joined_record() -> None:
    fields = _csv_fields(b"17,0.5,-1.25,3")
    assert fields == ["17", "0.5", "-1.25", "3"]
    assert _csv_line([fields[0], "12.5"]) == b"17,12.5"
