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


# --- text/csv fast path: plain decimals parsed by whole-body numpy operations -----------------
#
# A body made only of digits, signs, dots, commas and newlines, with the same number of fields on
# every line, each field ``[+-]?digits[.digits]`` of at most 24 bytes whose digits (leading zeros
# aside) spell an integer up to 2**53 with at most 22 of them after the dot, is parsed without a
# per-field loop: every field is right-aligned in a 24-byte slot (one gather), its digits become
# an integer with SWAR arithmetic on 64-bit words, and the value is that integer divided by a
# power of ten. Up to 2**53 an integer and 10**k (k <= 22) are exact doubles, so the one division
# is correctly rounded: the same double ``float()`` gives (Clinger's fast path). Anything else
# (exponents, spaces, 16+ significant digits, quotes, empty fields, ragged rows, NaN words, a
# header) returns ``None`` and goes to the paths below, which own every error message.

_WORDS = 3
_SLOT = 8 * _WORDS
_MAX_MANTISSA = 2**53
_MAX_SCALE = 22  # 10**22 is the largest exact power of ten in a double
#: One byte per input byte: digit value in the low nibble, '.' 0x10, '-' 0x20, '+' 0x40,
#: separators 0x80, anything else 0xFF (which sends the body to the general path).
_CLASS_TABLE = bytearray(b"\xff" * 256)
for _digit in range(10):
    _CLASS_TABLE[ord("0") + _digit] = _digit
_CLASS_TABLE[ord(".")] = 0x10
_CLASS_TABLE[ord("-")] = 0x20
_CLASS_TABLE[ord("+")] = 0x40
_CLASS_TABLE[ord(",")] = 0x80
_CLASS_TABLE[ord("\n")] = 0x80
_CLASSES = bytes(_CLASS_TABLE)
_SLOT_DTYPE = np.dtype((np.void, _SLOT))
_CHUNK_FIELDS = 16_384


def _slot_masks(positions: Any) -> list[np.ndarray]:
    """Per field length n (0..slot): the slot's little-endian words with 0xFF at ``positions(n)``."""
    words = np.zeros((_WORDS, _SLOT + 1), np.uint64)
    for n in range(1, _SLOT + 1):
        raw = bytearray(_SLOT)
        for i in positions(n):
            raw[i] = 0xFF
        words[:, n] = np.frombuffer(bytes(raw), "<u8")
    return [words[i].copy() for i in range(_WORDS)]


_KEEP = _slot_masks(lambda n: range(_SLOT - n, _SLOT))  # the field's own bytes (right-aligned)
_FIRST = _slot_masks(lambda n: [_SLOT - n])  # its first byte, the only place for a sign
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_DOT_BITS = np.uint64(0x1010101010101010)
_MINUS_BITS = np.uint64(0x2020202020202020)
_SIGN_BITS = np.uint64(0x6060606060606060)
_ONE = np.uint64(1)
_POW10_FLOAT = 10.0 ** np.arange(_SLOT)
_POW10_INT = 10 ** np.arange(_SLOT, dtype=np.int64)  # only k <= 16 ever reaches the int64 split


def _eight_digits(words: np.ndarray) -> np.ndarray:
    """Eight digit values per word (first digit in the low byte) to the integer they spell."""
    words = words * np.uint64(10) + (words >> np.uint64(8))
    words &= np.uint64(0x00FF00FF00FF00FF)
    words = words * np.uint64(100) + (words >> np.uint64(16))
    words &= np.uint64(0x0000FFFF0000FFFF)
    words = words * np.uint64(10000) + (words >> np.uint64(32))
    words &= np.uint64(0xFFFFFFFF)
    return words.astype(np.int64)


def parse_plain_csv(body: bytes, width: int) -> np.ndarray | None:
    """The rows of a plain numeric CSV body as float64, or ``None`` when it is not plain.

    Never raises for client input and never accepts a body the general path would refuse; on
    every body it accepts, the result is bit-for-bit what the general path returns.
    """
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")  # a lone CR left over is not plain
    body = b"\n" * _SLOT + body.rstrip(b"\n") + b"\n"
    classes = body.translate(_CLASSES)
    if b"\xff" in classes:
        return None
    raw = np.frombuffer(body, np.uint8)[_SLOT:]
    sep_pos = np.flatnonzero(np.frombuffer(classes, np.uint8)[_SLOT:] == 0x80)
    n = sep_pos.size
    if n % width:
        return None
    rows = n // width
    seps = raw[sep_pos].reshape(rows, width)
    if not ((seps[:, :-1] == 44).all() and (seps[:, -1] == 10).all()):
        return None  # ragged rows (or a blank line)
    lengths = np.empty_like(sep_pos)
    lengths[0] = sep_pos[0]
    np.subtract(sep_pos[1:], sep_pos[:-1] + 1, out=lengths[1:])
    if lengths.min() < 1 or lengths.max() > _SLOT:
        return None  # an empty field, or one longer than a slot
    # The slot's bytes end just before each separator: the field, right-aligned, after padding.
    slots = np.ndarray((len(classes) - _SLOT + 1,), _SLOT_DTYPE, classes, 0, (1,))
    values = np.empty(n, np.float64)
    # In chunks, so a 6 MB body's temporaries stay a few MB (and in cache) instead of ~140 MB.
    for start in range(0, n, _CHUNK_FIELDS):
        chunk = _parse_fields(slots, sep_pos[start : start + _CHUNK_FIELDS], lengths[start : start + _CHUNK_FIELDS])
        if chunk is None:
            return None
        values[start : start + chunk.size] = chunk
    return values.reshape(rows, width)


def _parse_fields(slots: np.ndarray, sep_pos: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """The values of the fields ending before ``sep_pos``, or ``None`` if one is not plain."""
    n = sep_pos.size
    gathered = slots[sep_pos].view("<u8").reshape(n, _WORDS)  # (indexing; take() is 6x slower here)
    words = [gathered[:, i] & _KEEP[i].take(lengths) for i in range(_WORDS)]
    signs = [w & _SIGN_BITS for w in words]
    misplaced = signs[0] & ~_FIRST[0].take(lengths)
    for i in range(1, _WORDS):
        misplaced |= signs[i] & ~_FIRST[i].take(lengths)
    if misplaced.any():
        return None  # a sign after the first character
    top = _eight_digits(words[0] & _LOW_NIBBLES)
    if top.max() >= 100:
        return None  # digits 19+ places from the end: more than a double holds exactly
    dots = [w & _DOT_BITS for w in words]
    dot_words = (dots[0] != 0).astype(np.int8)
    several = dots[0] & (dots[0] - _ONE)
    for i in range(1, _WORDS):
        dot_words += dots[i] != 0
        several |= dots[i] & (dots[i] - _ONE)
    if several.any() or dot_words.max() > 1:
        return None  # two dots in one field
    dot = dots[0] | dots[1] | dots[2]
    sign = signs[0] | signs[1] | signs[2]
    has_dot = dot != 0
    if (lengths - has_dot - (sign != 0)).min() < 1:
        return None  # no digit at all: "-", ".", "+."
    # Digits after the dot: its bit is 8*j + 4 of word w, i.e. slot byte 8*w + j.
    byte = (np.frexp(dot.astype(np.float64))[1] - 5) >> 3
    byte += np.where(dots[1] != 0, 8, np.where(dots[2] != 0, 16, 0))
    k = np.where(has_dot, _SLOT - 1 - byte, 0)
    if k.max() > _MAX_SCALE:
        return None
    # The slot spells an integer below 10**18 with the dot (when there) read as a 0 digit:
    # spelled = hi*10**(k+1) + lo, and the mantissa is hi*10**k + lo. With k >= 17, hi is 0.
    spelled = (top * 100_000_000 + _eight_digits(words[1] & _LOW_NIBBLES)) * 100_000_000
    spelled += _eight_digits(words[2] & _LOW_NIBBLES)
    inner = has_dot & (k < 17)
    scale = _POW10_INT.take(np.where(inner, k, 0))
    mantissa = np.where(inner, (spelled // (scale * 10)) * scale + spelled % scale, spelled)
    if mantissa.max() > _MAX_MANTISSA:
        return None  # 16+ significant digits: float() rounds these, so leave them to it
    values = mantissa.astype(np.float64) / _POW10_FLOAT.take(k)
    values *= 1.0 - 2.0 * ((sign & _MINUS_BITS) != 0)  # -0 stays -0.0, as float("-0") is
    return values


def decode_csv(body: bytes, names: Sequence[str]) -> np.ndarray:
    """``text/csv``: one row of features per line, no header, no label.

    Plain numeric bodies take :func:`parse_plain_csv`; other well-formed bodies go through numpy's
    C parser; anything that rejects (or parses into the wrong shape, e.g. by skipping a blank
    line) is re-read cell by cell to name the first bad row and column.
    """
    values = parse_plain_csv(body, len(names))
    if values is not None:
        return values
    text, lines = _csv_lines(body, names)
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


def decode_csv_cells(body: bytes, names: Sequence[str]) -> np.ndarray:
    """The general path alone, cell by cell: what every faster path must agree with."""
    text, lines = _csv_lines(body, names)
    return _decode_csv_cells(text, lines, names)


def _csv_lines(body: bytes, names: Sequence[str]) -> tuple[str, list[str]]:
    """The body as text and its lines, trailing blank lines dropped; an empty body is a 400."""
    text = _decode_text(body)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise PayloadError(
            400, f"the CSV body is empty; send one line of {len(names)} comma-separated features per row"
        )
    return text, lines


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
    values = tuple(np.asarray(predictions, dtype=np.float64).reshape(-1).tolist())
    # One %-format over the whole body: the same text as "{:.9g}".format per value, in one C call.
    if accept == CSV:
        return (("%.9g\n" * len(values)) % values).encode() if values else b"\n"
    return ('{"predictions": [' + ", ".join(["%.9g"] * len(values)) % values + "]}").encode()
