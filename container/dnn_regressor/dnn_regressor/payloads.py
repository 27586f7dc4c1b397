"""Request bodies to feature matrices and predictions to response bodies.

Every client mistake becomes a :class:`PayloadError` with a 4xx status and a message that names
the row (1-based) and column (1-based, plus the feature name), because the caller of an endpoint
or a batch transform only sees this text. Nothing is guessed: a CSV row with one value too many
(typically the label left in) is refused rather than trimmed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

CSV = "text/csv"
JSON = "application/json"
CONTENT_TYPES = (CSV, JSON)
ACCEPT_TYPES = (CSV, JSON)
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker's real-time and batch transform limit (6 MB)


class PayloadError(Exception):
    """A client error: ``status`` is the HTTP code, the message goes back verbatim."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _column_ref(j: int, names: Sequence[str]) -> str:
    return f"column {j + 1} ('{names[j]}')" if j < len(names) else f"column {j + 1}"


def _decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError(
            400, f"the body is not UTF-8 text (undecodable byte at offset {exc.start})"
        ) from None


def _wrong_width(row: int, got: int, names: Sequence[str]) -> PayloadError:
    hint = " (is the label included? send features only)" if got == len(names) + 1 else ""
    return PayloadError(
        400,
        f"row {row} has {got} values, expected {len(names)} features in training order "
        f"{list(names)[:20]}{hint}",
    )


def _locate_bad_csv_cell(
    rows: list[list[str]], line_numbers: list[int], names: Sequence[str]
) -> PayloadError:
    for line, row in zip(line_numbers, rows, strict=True):
        for j, cell in enumerate(row):
            text = cell.strip()
            if not text:
                return PayloadError(400, f"row {line}, {_column_ref(j, names)} is empty; send a number")
            try:
                value = float(text)
            except ValueError:
                return PayloadError(
                    400, f"row {line}, {_column_ref(j, names)}: '{text[:40]}' is not a number"
                )
            if not math.isfinite(value):
                return PayloadError(
                    400, f"row {line}, {_column_ref(j, names)} is {text!r}; send a finite number"
                )
    return PayloadError(400, "a value is not a finite number")  # pragma: no cover - defensive


def decode_csv(body: bytes, names: Sequence[str]) -> np.ndarray:
    """``text/csv``: one row of features per line, no header, no label.

    Well-formed bodies go through numpy's C parser; anything it rejects (or parses into the wrong
    shape, e.g. by skipping a blank line) is re-read cell by cell to name the first bad row and
    column.
    """
    text = _decode_text(body)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise PayloadError(
            400, f"the CSV body is empty; send one line of {len(names)} comma-separated features per row"
        )
    if '"' not in text:
        try:
            values = np.loadtxt(
                io.StringIO(text, newline=None), delimiter=",", dtype=np.float64, ndmin=2, comments=None
            )
        except ValueError:
            values = None
        if values is not None and values.shape == (len(lines), len(names)) and np.isfinite(values).all():
            return values
    return _decode_csv_cells(text, lines, names)


def _decode_csv_cells(text: str, lines: list[str], names: Sequence[str]) -> np.ndarray:
    """The slow, precise path: check every row and cell and report the first problem."""
    if '"' in text:
        try:
            rows = list(csv.reader(io.StringIO("\n".join(lines))))
        except csv.Error as exc:
            raise PayloadError(400, f"malformed CSV: {exc}") from None
    else:
        rows = [line.split(",") for line in lines]
    width = len(names)
    for i, row in enumerate(rows, start=1):
        if len(row) != width:
            if not row or (len(row) == 1 and not row[0].strip()):
                raise PayloadError(400, f"row {i} is empty; send {width} comma-separated features per line")
            raise _wrong_width(i, len(row), names)
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        raise _locate_bad_csv_cell(rows, list(range(1, len(rows) + 1)), names) from None
    if not np.isfinite(values).all():
        raise _locate_bad_csv_cell(rows, list(range(1, len(rows) + 1)), names)
    return values


def _number(value: Any, row: int, j: int, names: Sequence[str]) -> float:
    # bool is an int subclass in Python; true/false are not feature values.
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = json.dumps(value)[:40]
        raise PayloadError(400, f"row {row}, {_column_ref(j, names)}: {shown} is not a number")
    if not math.isfinite(value):
        raise PayloadError(400, f"row {row}, {_column_ref(j, names)} is {value}; send a finite number")
    return float(value)


def _instance_values(instance: Any, row: int, names: Sequence[str]) -> list[float]:
    if isinstance(instance, dict):
        if set(instance) == {"features"} and isinstance(instance["features"], list):
            instance = instance["features"]
        else:
            missing = [n for n in names if n not in instance]
            unknown = [k for k in instance if k not in names]
            if missing or unknown:
                parts = []
                if missing:
                    parts.append(f"is missing feature(s) {missing[:20]}")
                if unknown:
                    parts.append(f"has unknown key(s) {unknown[:20]}")
                raise PayloadError(
                    400, f"row {row} {' and '.join(parts)}; expected exactly the features {list(names)[:20]}"
                )
            return [_number(instance[n], row, j, names) for j, n in enumerate(names)]
    if isinstance(instance, list):
        if len(instance) != len(names):
            raise _wrong_width(row, len(instance), names)
        return [_number(v, row, j, names) for j, v in enumerate(instance)]
    raise PayloadError(
        400,
        f"row {row} is a JSON {type(instance).__name__}; each instance must be a list of "
        f"{len(names)} numbers or an object mapping feature names to numbers",
    )


def decode_json(body: bytes, names: Sequence[str]) -> np.ndarray:
    """``application/json``: ``{"instances": [...]}``, a bare list, or one feature object.

    An instance is a list of numbers in training order, ``{"features": [...]}`` (the SageMaker
    built-ins' shape), or ``{"<feature>": number, ...}`` with exactly the training features.
    """
    text = _decode_text(body)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if isinstance(doc, dict):
        if "instances" in doc:
            instances = doc["instances"]
            if not isinstance(instances, list):
                raise PayloadError(400, "'instances' must be a JSON list of rows")
        elif doc and all(k in names for k in doc):
            instances = [doc]
        else:
            raise PayloadError(
                400,
                'a JSON object body needs an "instances" list (e.g. {"instances": [[1.0, 2.0]]}) '
                f"or exactly the feature keys {list(names)[:20]}",
            )
    elif isinstance(doc, list):
        instances = doc
    else:
        raise PayloadError(400, f"the JSON body must be an object or a list, got {type(doc).__name__}")
    if not instances:
        raise PayloadError(400, "no rows to predict: the instance list is empty")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in instances):
        # A flat list of numbers: one number per row for a one-feature model, else one row.
        if len(names) == 1:
            instances = [[v] for v in instances]
        elif len(instances) == len(names):
            instances = [instances]
        else:
            raise PayloadError(
                400,
                f"a flat list of {len(instances)} numbers is read as one row, but the model expects "
                f"{len(names)} features {list(names)[:20]}; send a list of rows for several rows",
            )
    return np.array(
        [_instance_values(inst, i, names) for i, inst in enumerate(instances, start=1)], dtype=np.float64
    )


def decode(body: bytes, content_type: str, names: Sequence[str]) -> np.ndarray:
    """Dispatch on the (already validated) content type."""
    if content_type == CSV:
        return decode_csv(body, names)
    return decode_json(body, names)


def check_content_type(mimetype: str) -> str:
    """The request's media type, lower-cased without parameters, or a 415."""
    base = (mimetype or "").split(";")[0].strip().lower()
    if base not in CONTENT_TYPES:
        shown = mimetype or "(none)"
        raise PayloadError(415, f"Content-Type {shown} is not supported; send {' or '.join(CONTENT_TYPES)}")
    return base


def _accept_ranges(header: str) -> list[tuple[str, float]]:
    """``(media range, q)`` pairs of an Accept header; parameters other than q are ignored."""
    ranges = []
    for part in header.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), q))
    return ranges


def negotiate_accept(header: str | None) -> str:
    """The response type for an Accept header, or a 406.

    Absent, empty or ``*/*`` means text/csv (what SageMaker's built-ins answer). Otherwise each
    type we offer gets the q of the most specific range matching it; the highest q wins, then the
    more specific match (``application/json, */*`` is JSON), then text/csv.
    """
    if not header or not header.strip():
        return CSV
    best: tuple[float, int, int] | None = None
    chosen = None
    for preference, offer in enumerate(ACCEPT_TYPES):
        matches = []
        for media, q in _accept_ranges(header):
            if media == offer:
                matches.append((2, q))
            elif media.endswith("/*") and offer.startswith(media[:-1]):
                matches.append((1, q))
            elif media == "*/*" or media == "*":
                matches.append((0, q))
        if not matches:
            continue
        specificity, q = max(matches)
        if q <= 0:
            continue
        key = (q, specificity, -preference)
        if best is None or key > best:
            best, chosen = key, offer
    if chosen is None:
        raise PayloadError(
            406, f"Accept {header.strip()} is not supported; ask for {' or '.join(ACCEPT_TYPES)}"
        )
    return chosen


def encode(predictions: np.ndarray, accept: str) -> bytes:
    """``text/csv``: one prediction per line; ``application/json``: ``{"predictions": [...]}``.

    Nine significant digits print a float32 exactly, without float64 noise digits.
    """
    formatted = list(map("{:.9g}".format, np.asarray(predictions, dtype=np.float64).reshape(-1).tolist()))
    if accept == CSV:
        return ("\n".join(formatted) + "\n").encode()
    return ('{"predictions": [' + ", ".join(formatted) + "]}").encode()
