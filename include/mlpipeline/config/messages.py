"""Error translation: a pydantic error or a failed rule becomes ``file: dotted.key: message``.

The file is the layer that last set the key (see :mod:`.layers`), so a user knows what to edit;
unknown keys get a "did you mean" hint from the schema. Any schema root works (the pipeline's
:class:`~.schema.PipelineConfig`, BYOM's own), so every config in the project speaks the same way.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError

#: A key's place in the merged YAML: ``("training", "instance_count")``.
KeyPath = tuple[str, ...]


class ConfigError(ValueError):
    """The merged configuration is unusable; ``problems`` holds one ``file: key: message`` each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} config problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(message)



def source_for(path: KeyPath, sources: Mapping[KeyPath, str], fallback: str) -> str:
    """The layer that last set ``path`` or, failing that, its nearest ancestor."""
    for end in range(len(path), 0, -1):
        if path[:end] in sources:
            return sources[path[:end]]
    return fallback


def validation_problems(
    exc: ValidationError,
    merged: Mapping[str, Any],
    sources: Mapping[KeyPath, str],
    fallback: str,
    *,
    root: type[BaseModel],
    reserved: Collection[str] = (),
) -> ConfigError:
    """Each of ``exc``'s errors as ``file: dotted.key: message a user can act on``, the file being
    the layer that set the key (``fallback`` when none did). ``root`` is the schema validated;
    ``reserved`` its top-level keys the loader sets itself, left out of "allowed here" hints."""
    problems = []
    for err in exc.errors():
        path = _config_path(err["loc"], merged)
        allowed = _allowed_keys(root, path[:-1], reserved) if err["type"] == "extra_forbidden" else []
        where = source_for(path, sources, fallback)
        problems.append(f"{where}: {'.'.join(path) or '<top level>'}: {_message(err, path, allowed)}")
    return ConfigError(problems)


def _message(err: Mapping[str, Any], path: KeyPath, allowed: list[str]) -> str:
    """One pydantic error in words a user can act on (the bound, the pattern, a close key name)."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = err.get("input")
    if kind == "extra_forbidden":
        hint = difflib.get_close_matches(path[-1], allowed, n=1)
        message = f"unknown key{f' (did you mean {hint[0]!r}?)' if hint else ''}"
        if allowed:
            message += f"; allowed here: {', '.join(allowed)}"
    elif kind == "missing":
        message = "required key is missing"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[
            kind
        ]
        bound = next(iter(ctx.values()))
        message = f"must be {op} {bound} (got {got!r})"
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected')} (got {got!r})"
    elif kind == "string_pattern_mismatch":
        message = f"must match {ctx.get('pattern')} (got {got!r})"
    elif kind in ("too_short", "too_long"):
        message = f"{err['msg'].lower()} (got {got!r})"
    elif kind == "value_error":
        message = str(ctx.get("error", err["msg"]))
    else:
        message = f"{err['msg'][0].lower()}{err['msg'][1:]} (got {got!r})"
    return message


def _config_path(loc: Sequence[Any], merged: Mapping[str, Any]) -> KeyPath:
    """Map a pydantic ``loc`` onto keys of the merged YAML.

    pydantic inserts tags such as ``continuous`` for discriminated unions; they are dropped by
    walking the real data, so the user sees only keys that exist in their file.
    """
    path: list[str] = []
    node: Any = merged
    for part in loc:
        if isinstance(node, Mapping):
            if str(part) in node:
                path.append(str(part))
                node = node[str(part)]
            elif isinstance(part, str) and not _is_union_tag(part):
                path.append(part)  # a missing or unknown key
                node = None
        elif isinstance(node, list) and isinstance(part, int):
            path.append(str(part))
            node = node[part] if part < len(node) else None
        elif node is None and isinstance(part, str):
            path.append(part)
    return tuple(path)


def _is_union_tag(part: str) -> bool:
    """pydantic's names for union members (``integer``, ``function-after[...]``) are not keys."""
    return part in ("integer", "continuous", "categorical") or "[" in part


def _allowed_keys(root: type[BaseModel], path: KeyPath, reserved: Collection[str]) -> list[str]:
    """Field names accepted at ``path``, for "did you mean" hints on unknown keys."""
    nodes: list[Any] = [root]
    for part in path:
        following: list[Any] = []
        for node in nodes:
            if isinstance(node, _DictValues):
                following.extend(_schema_nodes(node.annotation))
            elif part in node.model_fields:
                following.extend(_schema_nodes(node.model_fields[part].annotation))
        nodes = following
    keys = {key for node in nodes if not isinstance(node, _DictValues) for key in node.model_fields}
    if not path:
        keys -= set(reserved)
    return sorted(keys)


class _DictValues:
    """Schema walker marker: the next key is a free-form name (a column, a range) in a dict."""

    def __init__(self, annotation: Any) -> None:
        self.annotation = annotation


def _schema_nodes(annotation: Any) -> list[Any]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _schema_nodes(args[0])
    if origin in (Union, types.UnionType):
        return [node for arg in args for node in _schema_nodes(arg)]
    if origin is dict:
        return [_DictValues(args[1])]
    return []
