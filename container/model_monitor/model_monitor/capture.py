"""SageMaker data-capture files -> a Table of feature rows, never failing on a bad line.

A capture file is JSON lines, one invocation each::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "1,2,3\\n4,5,6", "encoding": "CSV"},
                     "endpointOutput": {...}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2026-11-23T12:01:35Z"},
     "eventVersion": "0"}

under ``{endpoint}/{variant}/yyyy/mm/dd/hh/``. ``encoding`` says how ``data`` is stored (CSV or
JSON text, or BASE64 bytes); ``observedContentType`` says what the request was, so BASE64 is
decoded and then read per content type. One invocation can carry many rows (a CSV body with
several lines, ``{"instances": [[...], [...]]}``): every row counts, as it does for the model.

Traffic is messy, and one bad line must not hide an hour of good ones, so every line that
cannot be used (not JSON, keys missing, undecodable payload, unsupported content type) is
counted by reason, a few are kept as examples, and the analysis goes on.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .table import Table, to_token

Row = list[str | None] | dict[str, str | None]
MAX_EXAMPLES = 10
_UNWRAP_KEYS = ("instances", "inputs", "data", "predictions", "outputs")


class Malformed(Exception):
    """One capture record (or payload) that cannot be used; the message is the reason."""


@dataclass
class CaptureResult:
    """What reading the capture files found.

    Attributes:
        rows: feature rows in the window, positional (list) or named (dict).
        files: capture files read.
        lines: non-blank lines read.
        records: records in the window whose features were decoded.
        outside_window: well-formed records skipped because of their inferenceTime.
        malformed: lines that could not be used, with reasons and a few examples.
        output_rows / output_numbers / output_malformed: the endpointOutput side, for the report.
        first_time / last_time: the inference-time range of the records used.
    """

    rows: list[Row] = field(default_factory=list)
    files: int = 0
    lines: int = 0
    records: int = 0
    outside_window: int = 0
    malformed: int = 0
    malformed_reasons: Counter[str] = field(default_factory=Counter)
    malformed_examples: list[dict[str, Any]] = field(default_factory=list)
    output_rows: int = 0
    output_numbers: list[float] = field(default_factory=list)
    output_malformed: int = 0
    first_time: datetime | None = None
    last_time: datetime | None = None

    def reject(self, file: str, line: int, reason: str) -> None:
        self.malformed += 1
        self.malformed_reasons[reason.split(":")[0]] += 1
        if len(self.malformed_examples) < MAX_EXAMPLES:
            self.malformed_examples.append({"file": file, "line": line, "reason": reason})


def parse_inference_time(value: Any) -> datetime | None:
    """eventMetadata.inferenceTime -> aware UTC datetime, or None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    raw = value.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_captures(
    files: list[Path],
    root: Path,
    indexes: tuple[str, ...],
    start: datetime | None = None,
    end: datetime | None = None,
) -> CaptureResult:
    """Read every capture line; keep the rows of records with ``start <= inferenceTime < end``.

    The window is half-open so hourly schedules neither miss nor double-count a record. Without a
    window, records lacking an inferenceTime are still used; with one, they cannot be placed and
    count as malformed.
    """
    result = CaptureResult(files=len(files))
    feature_index = "endpointInput" if "endpointInput" in indexes else "endpointOutput"
    read_outputs = feature_index == "endpointInput" and "endpointOutput" in indexes
    for path in files:
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            result.reject(rel, 0, f"unreadable file: {exc}")
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            result.lines += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                result.reject(rel, number, f"not JSON: {exc.msg}")
                continue
            try:
                when = _check_record(record, feature_index, windowed=start is not None or end is not None)
            except Malformed as exc:
                result.reject(rel, number, str(exc))
                continue
            if when is not None and ((start and when < start) or (end and when >= end)):
                result.outside_window += 1
                continue
            try:
                rows = decode_part(record["captureData"][feature_index], feature_index)
            except Malformed as exc:
                result.reject(rel, number, str(exc))
                continue
            result.records += 1
            result.rows.extend(rows)
            if when is not None:
                result.first_time = when if result.first_time is None else min(result.first_time, when)
                result.last_time = when if result.last_time is None else max(result.last_time, when)
            if read_outputs and "endpointOutput" in record["captureData"]:
                _read_output(result, record["captureData"]["endpointOutput"])
    return result


def _check_record(record: Any, index: str, windowed: bool) -> datetime | None:
    if not isinstance(record, dict) or not isinstance(record.get("captureData"), dict):
        raise Malformed("missing captureData: the record has no captureData object")
    if not isinstance(record["captureData"].get(index), dict):
        raise Malformed(f"missing captureData.{index}: the record has no {index} object")
    meta = record.get("eventMetadata")
    raw_time = meta.get("inferenceTime") if isinstance(meta, dict) else None
    when = parse_inference_time(raw_time)
    if windowed and when is None:
        if raw_time is None:
            raise Malformed("missing eventMetadata.inferenceTime: needed to apply the window")
        raise Malformed(f"bad eventMetadata.inferenceTime: {str(raw_time)[:40]!r}")
    return when


def _read_output(result: CaptureResult, part: Any) -> None:
    """Predictions only feed the report's summary; a bad one never rejects the record."""
    try:
        rows = decode_part(part, "endpointOutput")
    except Malformed:
        result.output_malformed += 1
        return
    result.output_rows += len(rows)
    for row in rows:
        first = next(iter(row.values()), None) if isinstance(row, dict) else (row[0] if row else None)
        if first is None:
            continue
        try:
            result.output_numbers.append(float(first))
        except ValueError:
            continue


def decode_part(part: Any, index: str) -> list[Row]:
    """One captured payload (endpointInput or endpointOutput) -> its rows."""
    if not isinstance(part, dict) or "data" not in part:
        raise Malformed(f"missing captureData.{index}.data: the payload has no data")
    encoding = str(part.get("encoding") or "").upper()
    ctype = str(part.get("observedContentType") or "").split(";")[0].strip().lower()
    data = part["data"]
    if encoding == "BASE64":
        if not isinstance(data, str):
            raise Malformed(f"undecodable data: {index} BASE64 data is not a string")
        try:
            raw = base64.b64decode(data, validate=True)
            data = raw.decode("utf-8")
        except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise Malformed(f"undecodable data: {index} BASE64 payload ({type(exc).__name__})") from exc
    elif encoding not in ("CSV", "JSON", ""):
        raise Malformed(f"unsupported encoding: {encoding!r} in {index}")

    if "csv" in ctype:
        kind = "csv"
    elif "jsonlines" in ctype or "ndjson" in ctype:
        kind = "jsonlines"
    elif "json" in ctype:
        kind = "json"
    elif encoding in ("CSV", "JSON"):
        kind = encoding.lower()
    else:
        raise Malformed(f"unsupported content type: {ctype or '(none)'} in {index}")

    if kind == "json" and isinstance(data, dict | list):  # already structured
        rows = rows_from_json(data)
    elif not isinstance(data, str):
        raise Malformed(f"undecodable data: {index} data is {type(data).__name__}, expected text")
    elif kind == "csv":
        rows = rows_from_csv(data)
    elif kind == "jsonlines":
        rows = []
        for line in data.splitlines():
            if line.strip():
                rows.extend(rows_from_json(_loads(line, index)))
    else:
        rows = rows_from_json(_loads(data, index))
    if not rows:
        raise Malformed(f"empty payload: {index} has no rows")
    return rows


def _loads(text: str, index: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Malformed(f"undecodable data: {index} is not JSON ({exc.msg})") from exc


def rows_from_csv(text: str) -> list[Row]:
    """A CSV body -> rows of text; blank lines are not rows."""
    try:
        return [list(r) for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    except csv.Error as exc:
        raise Malformed(f"undecodable data: CSV ({exc})") from exc


def rows_from_json(obj: Any) -> list[Row]:
    """The JSON request shapes models accept -> rows.

    ``{"instances": [[...], ...]}`` (also ``inputs``/``data``), ``{"instances": [{"features":
    [...]}]}`` (the built-in algorithms' shape), a list of lists, a list of objects (named
    features), one object, or one flat list (one row).
    """
    if isinstance(obj, dict):
        for key in _UNWRAP_KEYS:
            if key in obj and isinstance(obj[key], list) and len(obj) == 1:
                return rows_from_json(obj[key])
        if isinstance(obj.get("features"), list):
            return [[to_token(v) for v in obj["features"]]]
        return [{str(k): to_token(v) for k, v in obj.items()}]
    if isinstance(obj, list):
        if not obj:
            return []
        if all(not isinstance(v, list | dict) for v in obj):
            return [[to_token(v) for v in obj]]
        rows: list[Row] = []
        for item in obj:
            if isinstance(item, list):
                rows.append([to_token(v) for v in item])
            elif isinstance(item, dict):
                rows.extend(rows_from_json(item))
            else:
                raise Malformed("undecodable data: a JSON list mixes rows and scalar values")
        return rows
    return [[to_token(obj)]]


def build_table(rows: list[Row], baseline_names: list[str]) -> Table:
    """Rows -> Table: unnamed columns take the baseline's names by position, as Model Monitor
    maps ``_c0.._cN`` onto the baseline; positions past the baseline become ``_c{i}`` (extra
    columns). Named rows match by name. A row shorter than the widest leaves its tail missing.
    """
    width = max((len(r) for r in rows if isinstance(r, list)), default=0)
    positional = [baseline_names[i] if i < len(baseline_names) else f"_c{i}" for i in range(width)]
    seen: dict[str, None] = dict.fromkeys(positional)
    for row in rows:
        if isinstance(row, dict):
            seen.update(dict.fromkeys(row))
    order = {name: i for i, name in enumerate(baseline_names)}
    known = sorted((n for n in seen if n in order), key=order.__getitem__)
    columns = known + [n for n in seen if n not in order]
    values: dict[str, list[str | None]] = {name: [] for name in columns}
    named_only = [n for n in columns if n not in set(positional)]
    for row in rows:
        if isinstance(row, dict):
            for name in columns:
                values[name].append(row.get(name))
        else:
            for i, name in enumerate(positional):
                values[name].append(row[i] if i < len(row) else None)
            for name in named_only:
                values[name].append(None)
    return Table(columns, values, len(rows))
