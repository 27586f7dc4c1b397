"""Reading what an endpoint or a transform job answered, keyed by its content type.

One place knows the answer shapes of the models the pipelines serve:

* ``text/csv``: one record a line, the prediction its last field (a model answering several
  outputs a line still has its prediction last; a joined ``id,prediction`` line too). The real
  XGBoost container answers a real-time request of several rows with one line of comma-joined
  values, one a row; a single line is read that way when the caller says it sent several rows
  (the caller then checks the count).
* ``application/json``: the built-ins' ``{"predictions": [record, ...]}``, or one record (a number,
  an object holding the prediction under a field, or a list of class probabilities).
* ``application/jsonlines``: one JSON record a line.

A record is one number: the object's ``field`` (``{"closest_cluster": 3}``), its ``score``, the
single element of a one-element list, or - for a list of class probabilities - the index of the
most probable class. A non-finite prediction is an error, as is anything unreadable; the error
(:class:`ResponseError`) quotes the start of what was answered.

Stdlib only.
"""

from __future__ import annotations

import json
import math
from typing import Any

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
#: Other names clients and containers use for JSON Lines.
_JSONLINES_ALIASES = frozenset({JSONLINES, "application/jsonl", "application/x-jsonlines"})

_SHOWN = 200


class ResponseError(ValueError):
    """An answer that cannot be read as predictions of the expected shape."""


def media_type(content_type: str) -> str:
    """``"Text/CSV; charset=utf-8"`` -> ``"text/csv"``; JSON Lines aliases -> ``application/jsonlines``."""
    base = content_type.split(";", 1)[0].strip().lower()
    return JSONLINES if base in _JSONLINES_ALIASES else base


def _text(body: bytes | str) -> str:
    return body.decode("utf-8", errors="replace") if isinstance(body, bytes | bytearray) else str(body)


def _shown(text: str) -> str:
    return repr(text[:_SHOWN] + ("..." if len(text) > _SHOWN else ""))


def number(token: Any) -> float:
    """One finite prediction from a CSV field (``"0.5"``, ``"[0.5]"``) or a JSON number."""
    if isinstance(token, bool):
        raise ResponseError(f"not a number: {token!r}")
    try:
        value = float(token.strip().strip("[]") if isinstance(token, str) else token)
    except (TypeError, ValueError):
        raise ResponseError(f"not a number: {str(token)[:80]!r}") from None
    if not math.isfinite(value):
        raise ResponseError(f"the prediction is {value}")
    return value


def json_value(record: Any, field: str | None = None) -> float:
    """One prediction from a parsed JSON record (see the module docstring)."""
    if isinstance(record, dict):
        key = field or ("score" if "score" in record else None)
        if key is None or key not in record:
            raise ResponseError(f"prediction field {field!r} not in {sorted(record)} (inference.prediction_field)")
        record = record[key]
    if isinstance(record, list):
        if not record:
            raise ResponseError("empty prediction list")
        if len(record) == 1:
            return number(record[0])
        scores = [number(p) for p in record]
        return float(max(range(len(scores)), key=scores.__getitem__))
    return number(record)


def record_value(line: str, field: str | None = None) -> float:
    """One prediction from one output line of any of the shapes above: JSON when it starts
    with ``{`` or ``[``, else CSV (the last field). A transform's ``.out`` lines are read this way."""
    line = line.strip()
    if not line.startswith(("{", "[")):
        return number(line.split(",")[-1])
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ResponseError(f"not JSON ({exc.msg})") from None
    if isinstance(doc, dict) and isinstance(doc.get("predictions"), list):
        if len(doc["predictions"]) != 1:
            raise ResponseError(f"expected one prediction per record, got {len(doc['predictions'])}")
        doc = doc["predictions"][0]
    return json_value(doc, field)


def _each(parts: list[str], read: Any, what: str = "line") -> list[float]:
    """``read`` of every non-blank part; an error names the part (1-based, blanks counted)."""
    values = []
    for index, part in enumerate(parts, start=1):
        if part.strip():
            try:
                values.append(read(part))
            except ResponseError as exc:
                raise ResponseError(f"{what} {index}: {exc} in {part[:80]!r}") from None
    return values


def decode_records(text: str, field: str | None = None) -> list[float]:
    """One prediction per non-blank line, each line read by :func:`record_value` (a transform's
    ``.out`` object, whatever its Accept was); an error names the record."""
    return _each(text.splitlines(), lambda line: record_value(line, field), "record")


def _jsonl_record(line: str, field: str | None) -> float:
    try:
        return json_value(json.loads(line), field)
    except json.JSONDecodeError as exc:
        raise ResponseError(f"not JSON ({exc.msg})") from None


def decode_predictions(
    body: bytes | str, content_type: str, *, field: str | None = None, expected: int = 1
) -> list[float]:
    """The predictions in one answer of ``content_type``, one per record (``expected`` is how
    many rows the request carried: it only tells a comma-joined CSV line of several rows'
    answers from one row's ``id,prediction``).

    Raises:
        ResponseError: the type is not one this module reads, or a record is unreadable or
            not finite; the message names the line or quotes the start of the answer.
    """
    text = _text(body)
    kind = media_type(content_type)
    if kind == CSV:
        lines = [line for line in text.splitlines() if line.strip()]
        if expected > 1 and len(lines) == 1:
            return _each(lines[0].split(","), number, "value")
        return _each(text.splitlines(), lambda line: number(line.split(",")[-1]))
    if kind == JSONLINES:
        return _each(text.splitlines(), lambda line: _jsonl_record(line, field))
    if kind == JSON:
        if not text.strip():
            return []
        try:
            doc = json.loads(text)
            if isinstance(doc, dict) and isinstance(doc.get("predictions"), list):
                return [json_value(p, field) for p in doc["predictions"]]
            return [json_value(doc, field)]
        except json.JSONDecodeError as exc:
            raise ResponseError(f"not JSON ({exc.msg}): {_shown(text)}") from None
        except ResponseError as exc:
            raise ResponseError(f"{exc}: {_shown(text)}") from None
    raise ResponseError(f"cannot read predictions from a {content_type!r} answer: use {CSV}, {JSON} or {JSONLINES}")


def decode_probabilities(body: bytes | str, *, sum_tolerance: float = 0.02) -> list[float]:
    """The class probabilities in an image-classification answer (``application/json``): a bare
    list, one number per class (``[0.02, 0.95, 0.03]``), or its JSON Lines form
    ``{"prediction": [...]}``; each in [0, 1], summing to 1 within ``sum_tolerance`` (float32
    softmax output, rounding in JSON)."""
    text = _text(body)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResponseError(f"response is not JSON ({exc.msg}): {_shown(text)}") from None
    if isinstance(value, dict) and set(value) == {"prediction"}:
        value = value["prediction"]
    if not isinstance(value, list):
        raise ResponseError(f"expected a JSON list of class probabilities, got {type(value).__name__}: {_shown(text)}")
    if not value:
        raise ResponseError("response is an empty list: no class probabilities")
    if any(isinstance(p, bool) or not isinstance(p, int | float) for p in value):
        raise ResponseError(f"class probabilities must be numbers: {_shown(text)}")
    probabilities = [float(p) for p in value]
    if any(not math.isfinite(p) or p < 0 or p > 1 for p in probabilities):
        raise ResponseError(f"class probabilities must lie in [0, 1]: {_shown(text)}")
    total = sum(probabilities)
    if abs(total - 1.0) > sum_tolerance:
        raise ResponseError(f"class probabilities sum to {total:.4f}, not 1: {_shown(text)}")
    return probabilities


def decode_joined(text: str) -> list[tuple[str, float]]:
    """``first,prediction`` lines (a transform's ``JoinSource: Input`` output: the label or id
    the input carried, then the prediction) -> pairs; blank lines are skipped.

    Raises:
        ResponseError: naming the line with one field only or no numeric prediction.
    """
    firsts: list[str] = []

    def read(line: str) -> float:
        fields = line.split(",")
        if len(fields) < 2:
            raise ResponseError("expected 'first,prediction'")
        value = number(fields[-1])
        firsts.append(fields[0].strip())
        return value

    return list(zip(firsts, _each(text.splitlines(), read), strict=True))
