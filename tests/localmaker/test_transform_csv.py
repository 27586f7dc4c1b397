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


# --- csvbulk: a whole batch at once, byte for byte what the per-record path gives --------------
PATHS = ["$", "$[1:]", "$[0,-1]", "$[2]", "$[-1]", "$[:2]", "$[1,0]", "$[5]", "$[3:1]", "$[0,0]", "$[-2:]"]


def _per_record_input(filters, records):
    try:
        return [filters.filter_input(r) for r in records]
    except (ValueError, KeyError, IndexError, TypeError, csv.Error):
        return None


def _per_record_finish(filters, sources, outputs):
    try:
        return [filters.finish(s, o) for s, o in zip(sources, outputs, strict=True)]
    except (ValueError, KeyError, IndexError, TypeError, csv.Error):
        return None


def _random_records(rng: random.Random, n: int, k: int, cells: list[str]) -> list[bytes]:
    return [",".join(rng.choice(cells) for _ in range(k)).encode() for _ in range(n)]


def test_bulk_selection_matches_the_per_record_path() -> None:
    from localmaker.transform import Filters

    rng = random.Random(3)
    cells = ["1", "-2.5", "abc", "", " x ", "7e3"]
    used = 0
    for _ in range(600):
        n, k = rng.randint(1, 6), rng.randint(1, 4)
        records = _random_records(rng, n, k, cells)
        outputs = _random_records(rng, n, rng.randint(1, 2), ["0.5", "-1", "", "9"])
        if rng.random() < 0.1:  # ragged, quoted or non-ASCII batches must fall back
            records[rng.randrange(n)] = rng.choice([b"1,2,3,4,5", b'"a,b",c', "é,1".encode(), b"1"])
        path_in, path_out = rng.choice(PATHS), rng.choice(PATHS)
        join = rng.random() < 0.7
        dp = {"InputFilter": path_in, "OutputFilter": path_out, "JoinSource": "Input" if join else "None"}
        filters = Filters(dp, "text/csv", "text/csv")
        expected_in = _per_record_input(filters, records)
        if expected_in is None:  # the per-record path fails: the batch call fails the same way
            with pytest.raises((IndexError, TypeError, ValueError)):
                filters.filter_inputs(records)
        else:
            assert filters.filter_inputs(records) == expected_in, (records, dp)
        bulk_out = filters.finish_batch(records, outputs)
        if bulk_out is not None:
            used += 1
            expected_out = _per_record_finish(filters, records, outputs)
            assert expected_out is not None and bulk_out == b"".join(o + b"\n" for o in expected_out), (records, outputs, dp)
    assert used > 200  # the bulk path really ran on most batches


def test_bulk_input_filter_on_a_large_batch() -> None:
    from localmaker.csvbulk import select
    from localmaker.jsonpath import parse_path

    records = [b"%d,%d.5,x%d" % (i, i, i) for i in range(10_000)]
    assert select(records, parse_path("$[1:]"))[:2] == [b"0.5,x0", b"1.5,x1"]
    joined = select([b"%d.25" % i for i in range(10_000)], parse_path("$[0,-1]"), left=records)
    assert joined[9999] == b"9999,9999.25"
    assert select(records, parse_path("$['a']")) is None  # keys are for JSON: per-record path
    assert select([b"1,2", b"3"], parse_path("$[0]")) is None  # ragged
    assert select([b"1,", b"3,"], parse_path("$[1]")) is None  # lone empty field: csv quotes it
