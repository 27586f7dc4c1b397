"""Validate request parameters against botocore's service model, as the AWS front end does.

botocore's own client-side validator checks types and required members but skips length, range
and pattern constraints; AWS enforces them server side with messages of one shape:

    1 validation error detected: Value 'bad name!' at 'trainingJobName' failed to satisfy
    constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}

We reproduce that shape (member paths in lower camel case, list members as ``.member.N``), so a
client that works against localmaker gets the same errors it would get from AWS.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from typing import Any

from botocore.model import Shape

from .errors import AwsError

MAX_REPORTED = 10


def _path_name(name: str) -> str:
    return name[:1].lower() + name[1:] if name else name


@functools.lru_cache(maxsize=2048)
def _compile(pattern: str) -> re.Pattern[str] | None:
    # Java regexes; the few constructs Python lacks (\p{...} classes) are skipped rather than guessed.
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:
        return None


def _fmt_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return "'" + str(value)[:100] + "'"
    return f"'{value}'"


class _Collector:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, value: Any, path: str, constraint: str) -> None:
        self.errors.append(f"Value {_fmt_value(value)} at '{path}' failed to satisfy constraint: {constraint}")


def _check(shape: Shape, value: Any, path: str, out: _Collector) -> None:
    t = shape.type_name
    meta = shape.metadata
    if t == "structure":
        if not isinstance(value, dict):
            out.add(value, path, "Member must be a structure")
            return
        for req in shape.required_members:
            if value.get(req) is None:
                out.add(None, _join(path, req), "Member must not be null")
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None or member_value is None:
                continue  # unknown members are ignored, as the JSON protocol front end does
            _check(member, member_value, _join(path, name), out)
    elif t == "list":
        if not isinstance(value, list):
            out.add(value, path, "Member must be a list")
            return
        _length(value, len(value), meta, path, out)
        for i, item in enumerate(value, start=1):
            _check(shape.member, item, f"{path}.{i}.member" if path else str(i), out)
    elif t == "map":
        if not isinstance(value, dict):
            out.add(value, path, "Member must be a map")
            return
        _length(value, len(value), meta, path, out)
        for k, v in value.items():
            _check(shape.key, k, f"{path}.{k}.key" if path else k, out)
            _check(shape.value, v, f"{path}.{k}.value" if path else k, out)
    elif t == "string":
        if not isinstance(value, str):
            out.add(value, path, "Member must be a string")
            return
        _length(value, len(value), meta, path, out)
        enum = shape.enum
        if enum and value not in enum:
            out.add(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = meta.get("pattern")
        if pattern:
            rx = _compile(pattern)
            if rx is not None and not rx.fullmatch(value):
                out.add(value, path, f"Member must satisfy regular expression pattern: {pattern}")
    elif t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            out.add(value, path, "Member must be an integer")
            return
        _range(value, meta, path, out)
    elif t in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out.add(value, path, "Member must be a number")
            return
        _range(value, meta, path, out)
    elif t == "boolean":
        if not isinstance(value, bool):
            out.add(value, path, "Member must be a boolean")
    elif t == "blob":
        if not isinstance(value, (str, bytes)):
            out.add(value, path, "Member must be a blob")
    elif t == "timestamp":
        if not is_timestamp(value):
            out.add(value, path, "Member must be a timestamp (epoch seconds or ISO 8601)")


def is_timestamp(value: Any) -> bool:
    """What the JSON protocols accept for a timestamp: epoch seconds (what botocore sends) or ISO 8601."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))  # exactly as the handlers parse it
    except ValueError:
        return False
    return True


def _join(path: str, name: str) -> str:
    return f"{path}.{_path_name(name)}" if path else _path_name(name)


def _length(value: Any, n: int, meta: dict[str, Any], path: str, out: _Collector) -> None:
    if "min" in meta and n < meta["min"]:
        out.add(value, path, f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and n > meta["max"]:
        out.add(value, path, f"Member must have length less than or equal to {meta['max']}")


def _range(value: float, meta: dict[str, Any], path: str, out: _Collector) -> None:
    if "min" in meta and value < meta["min"]:
        out.add(value, path, f"Member must have value greater than or equal to {meta['min']}")
    if "max" in meta and value > meta["max"]:
        out.add(value, path, f"Member must have value less than or equal to {meta['max']}")


def validate(shape: Shape | None, params: Any) -> None:
    """Raise ``ValidationException`` listing every constraint ``params`` breaks."""
    if shape is None:
        return
    out = _Collector()
    _check(shape, params if params is not None else {}, "", out)
    if out.errors:
        n = len(out.errors)
        shown = out.errors[:MAX_REPORTED]
        noun = "error" if n == 1 else "errors"
        raise AwsError("ValidationException", f"{n} validation {noun} detected: " + "; ".join(shown))
