"""Model Monitor container: reading SageMaker data-capture files.

Encodings (CSV, JSON, BASE64), request shapes, multi-row requests, the time window, and the
rule that a malformed line is counted and reported, never fatal.
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

MONITOR_DIR = Path(__file__).resolve().parents[2] / "container" / "model_monitor"
sys.path.insert(0, str(MONITOR_DIR))

from model_monitor.capture import Malformed, build_table, decode_part, read_captures  # noqa: E402
from model_monitor.config import parse_dataset_format  # noqa: E402
from model_monitor.errors import MonitorError  # noqa: E402
from model_monitor.table import data_files  # noqa: E402

BOTH = ("endpointInput", "endpointOutput")


def part(data: Any, ctype: str = "text/csv", encoding: str = "CSV", mode: str = "INPUT") -> dict[str, Any]:
    return {"observedContentType": ctype, "mode": mode, "data": data, "encoding": encoding}


def record(inp: dict[str, Any], when: str = "2026-11-23T12:01:35Z", out: dict[str, Any] | None = None) -> str:
    data = {"endpointInput": inp}
    if out is not None:
        data["endpointOutput"] = out
    return json.dumps(
        {
            "captureData": data,
            "eventMetadata": {"eventId": "e", "inferenceTime": when, "inferenceId": "i"},
            "eventVersion": "0",
        }
    )


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ----------------------------------------------------------------------------- payloads


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (part("1,2,3\n4,5,6"), [["1", "2", "3"], ["4", "5", "6"]]),
        (part("1,2,3\n\n4,5,6\n"), [["1", "2", "3"], ["4", "5", "6"]]),
        (part('1,"a,b",3'), [["1", "a,b", "3"]]),
        (
            part('{"instances": [[1, 2.5, "x"], [3, null, "y"]]}', "application/json", "JSON"),
            [["1", "2.5", "x"], ["3", None, "y"]],
        ),
        (part('{"instances": [{"features": [1, 2]}]}', "application/json", "JSON"), [["1", "2"]]),
        (part("[[1, 2], [3, 4]]", "application/json", "JSON"), [["1", "2"], ["3", "4"]]),
        (part("[1, 2, 3]", "application/json", "JSON"), [["1", "2", "3"]]),
        (
            part('[{"a": 1, "b": "x"}, {"a": 2}]', "application/json", "JSON"),
            [{"a": "1", "b": "x"}, {"a": "2"}],
        ),
        (part('{"a": 1.0, "b": true}', "application/json", "JSON"), [{"a": "1.0", "b": "true"}]),
        (part({"instances": [[1, 2]]}, "application/json", "JSON"), [["1", "2"]]),
        (part("[1, 2]\n[3, 4]\n", "application/jsonlines", "JSON"), [["1", "2"], ["3", "4"]]),
        (part(b64("7,8\n9,10"), "text/csv", "BASE64"), [["7", "8"], ["9", "10"]]),
        (part(b64('{"instances": [[1, 2]]}'), "application/json; charset=utf-8", "BASE64"), [["1", "2"]]),
    ],
)
def test_payload_shapes_and_encodings(payload: dict[str, Any], expected: list[Any]) -> None:
    assert decode_part(payload, "endpointInput") == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (part("%%%not base64%%%", "text/csv", "BASE64"), "undecodable data"),
        (part(base64.b64encode(b"\xff\xfe\x00").decode(), "text/csv", "BASE64"), "undecodable data"),
        (part("{not json", "application/json", "JSON"), "undecodable data"),
        (part(b64("x"), "application/x-npy", "BASE64"), "unsupported content type"),
        (part("", "text/csv", "CSV"), "empty payload"),
        ({"observedContentType": "text/csv"}, "missing captureData.endpointInput.data"),
    ],
)
def test_unusable_payloads_name_their_reason(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(Malformed, match=reason):
        decode_part(payload, "endpointInput")


# ----------------------------------------------------------------------------- files


def write_capture(root: Path, hour: str, lines: list[str]) -> Path:
    folder = root / "my-endpoint" / "AllTraffic" / hour
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{len(list(folder.iterdir())):02d}-00-000-abcdef12.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_nested_hour_folders_multi_row_requests_and_outputs(tmp_path: Path) -> None:
    write_capture(
        tmp_path,
        "2026/11/23/12",
        [
            record(part("1,2\n3,4\n5,6"), out=part("0.5\n0.7\n0.9", mode="OUTPUT")),
            record(
                part('{"instances": [[7, 8]]}', "application/json", "JSON"), out=part("1.5", mode="OUTPUT")
            ),
        ],
    )
    write_capture(
        tmp_path, "2026/11/23/13", [record(part(b64("9,10"), "text/csv", "BASE64"), "2026-11-23T13:10:00Z")]
    )
    files = data_files(tmp_path)
    assert len(files) == 2
    result = read_captures(files, tmp_path, BOTH)
    assert (result.records, len(result.rows), result.malformed) == (3, 5, 0)
    assert result.output_rows == 4 and result.output_numbers == [0.5, 0.7, 0.9, 1.5]
    table = build_table(result.rows, ["x", "y"])
    assert table.columns == ["x", "y"] and table.n_rows == 5
    assert table.values["x"] == ["1", "3", "5", "7", "9"]


def test_malformed_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    good = record(part("1,2"))
    write_capture(
        tmp_path,
        "2026/11/23/12",
        [
            good,
            "this is not json",
            json.dumps({"eventMetadata": {"inferenceTime": "2026-11-23T12:00:00Z"}}),
            json.dumps({"captureData": {"endpointOutput": part("1")}}),
            record(part("%%%", "text/csv", "BASE64")),
            record(part("AAAA", "image/png", "BASE64")),
            "",
            good,
        ],
    )
    result = read_captures(data_files(tmp_path), tmp_path, BOTH)
    assert result.records == 2 and len(result.rows) == 2
    assert result.malformed == 5
    assert result.malformed_reasons == {
        "not JSON": 1,
        "missing captureData": 1,
        "missing captureData.endpointInput": 1,
        "undecodable data": 1,
        "unsupported content type": 1,
    }
    assert [e["line"] for e in result.malformed_examples] == [2, 3, 4, 5, 6]
    assert result.malformed_examples[0]["file"].startswith("my-endpoint/AllTraffic/2026/11/23/12/")


def test_time_window_is_half_open_and_filters_records(tmp_path: Path) -> None:
    write_capture(tmp_path, "2026/11/23/11", [record(part("1,1"), "2026-11-23T11:59:59Z")])
    write_capture(
        tmp_path,
        "2026/11/23/12",
        [
            record(part("2,2"), "2026-11-23T12:00:00Z"),
            record(part("3,3\n4,4"), "2026-11-23T12:30:00.123Z"),
            record(part("5,5"), "2026-11-23T13:00:00+00:00"),
            json.dumps({"captureData": {"endpointInput": part("6,6")}}),  # no time: cannot be placed
        ],
    )
    start = datetime(2026, 11, 23, 12, tzinfo=UTC)
    end = datetime(2026, 11, 23, 13, tzinfo=UTC)
    result = read_captures(data_files(tmp_path), tmp_path, BOTH, start, end)
    assert [r[0] for r in result.rows] == ["2", "3", "4"]
    assert (result.records, result.outside_window, result.malformed) == (2, 2, 1)
    assert result.first_time == start and result.last_time.minute == 30
    unwindowed = read_captures(data_files(tmp_path), tmp_path, BOTH)
    assert unwindowed.records == 5 and unwindowed.malformed == 0


def test_output_only_index_analyzes_predictions(tmp_path: Path) -> None:
    write_capture(tmp_path, "2026/11/23/12", [record(part("1,2"), out=part("0.25\n0.75", mode="OUTPUT"))])
    result = read_captures(data_files(tmp_path), tmp_path, ("endpointOutput",))
    assert result.rows == [["0.25"], ["0.75"]]


def test_named_and_positional_rows_line_up_with_the_baseline() -> None:
    table = build_table([["1", "2"], {"b": "5", "a": "4", "new": "z"}, ["7"]], ["a", "b"])
    assert table.columns == ["a", "b", "new"]
    assert table.values == {"a": ["1", "4", "7"], "b": ["2", "5", None], "new": [None, "z", None]}


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"csv": {"header": true}}', "csv"),
        ('{"csv": {"header": "false"}}', "csv"),
        ('{"json": {"lines": true}}', "json"),
        ('{"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}', "capture"),
    ],
)
def test_dataset_formats(text: str, kind: str) -> None:
    assert parse_dataset_format(text, "analyze").kind == kind


@pytest.mark.parametrize(
    "text",
    [
        '{"csv": ',
        '{"avro": {}}',
        '{"sagemakerCaptureJson": {"captureIndexNames": ["request"]}}',
        "[1]",
        '{"parquet": {}}',
    ],
)
def test_bad_dataset_formats_are_client_errors(text: str) -> None:
    with pytest.raises(MonitorError, match="dataset_format"):
        parse_dataset_format(text, "analyze")
