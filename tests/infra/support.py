"""Shared helpers for the infrastructure tests: the repo root, YAML loading, Compose interpolation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

#: Compose files we ship, each with the directory its relative paths resolve against. The Astro
#: override is meant to be copied to the project root, so its paths are root-relative too.
COMPOSE_FILES: dict[str, Path] = {
    "docker-compose.yaml": ROOT,
    "docker-compose.override.yml": ROOT,
}

#: `$$` (a literal dollar), `${VAR}`, `${VAR<op>value}` with op in :- - :? ? :+ +, or `$VAR`.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def load_yaml(relpath: str) -> Any:
    """A YAML file of the repo (merge keys resolved, as Compose resolves them)."""
    return yaml.safe_load((ROOT / relpath).read_text())


def walk_strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string (keys and values) in a loaded YAML document, with a dotted path to it."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                found.append((child, key))
            found.extend(walk_strings(value, child))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(walk_strings(value, f"{path}[{i}]"))
    elif isinstance(node, str):
        found.append((path, node))
    return found


def variable_references(text: str) -> list[tuple[str, str | None]]:
    """``(name, operator)`` for each interpolation in ``text``; operator None for ``${VAR}``/``$VAR``."""
    refs = []
    for m in _INTERPOLATION.finditer(text):
        if m.group("escaped"):
            continue
        refs.append((m.group("braced") or m.group("named"), m.group("op")))
    return refs


def interpolate(node: Any, env: dict[str, str] | None = None) -> Any:
    """Compose's variable interpolation over a loaded document (values only, as Compose does)."""
    env = env or {}

    def substitute(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("named")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return arg if unset else str(value)
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise KeyError(f"required variable {name} is not set: {arg}")
            return value
        if op in (":+", "+"):
            set_ = value is not None and (op == "+" or value != "")
            return arg if set_ else ""
        return value or ""

    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if isinstance(node, str):
        return _INTERPOLATION.sub(substitute, node)
    return node


def compose(relpath: str, *, interpolated: bool = True) -> dict[str, Any]:
    """A Compose file as Compose sees it with no variables set (defaults applied)."""
    doc = load_yaml(relpath)
    return interpolate(doc) if interpolated else doc
