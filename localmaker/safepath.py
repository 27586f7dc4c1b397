"""Paths built from request data stay inside their base directory.

Everything localmaker writes or reads on behalf of a request (an S3 key under a channel, a manifest
entry, a channel name, a processing LocalPath, a log group or stream name, a job or endpoint name)
is joined onto a base directory through :func:`inside`, which refuses any part that is absolute,
holds a NUL byte, or (after ``..`` and symbolic links are resolved) lands outside the base.
:func:`relative` is the same check for a path that is not (yet) joined to a directory, e.g. an S3
key relative to its channel prefix.
"""

from __future__ import annotations

import posixpath
from pathlib import Path


class PathEscape(ValueError):
    """A request-derived path would land outside its base directory (the message names it)."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part!r} {reason}")
        self.part = part
        self.reason = reason


def _check_part(part: str) -> None:
    if not isinstance(part, str):
        raise PathEscape(repr(part), "is not a string")
    if "\x00" in part:
        raise PathEscape(part, "contains a NUL byte")
    if part.startswith(("/", "\\")):
        raise PathEscape(part, "is an absolute path")


def relative(rel: str) -> str:
    """``rel`` normalised, if it names something strictly below a directory (no absolute path, no
    NUL byte, no ``..`` leading out of it, not the directory itself); else :class:`PathEscape`."""
    _check_part(rel)
    norm = posixpath.normpath(rel)
    if norm == "." or rel == "":
        raise PathEscape(rel, "names the directory itself, not a path inside it")
    if norm == ".." or norm.startswith("../"):
        raise PathEscape(rel, "leads outside its directory")
    return norm


def inside(base: Path | str, *parts: str, allow_base: bool = False) -> Path:
    """``base / parts...`` resolved (``..`` and symbolic links followed), or :class:`PathEscape`
    when a part is absolute, holds a NUL byte, or the result is not strictly inside ``base``
    (``allow_base`` admits ``base`` itself)."""
    for part in parts:
        _check_part(part)
    root = Path(base).resolve()
    target = root.joinpath(*parts).resolve()
    if target == root:
        if allow_base:
            return target
        raise PathEscape("/".join(parts), "names the directory itself, not a path inside it")
    if root not in target.parents:
        raise PathEscape("/".join(parts), "leads outside its directory")
    return target
