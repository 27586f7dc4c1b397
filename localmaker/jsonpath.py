"""The JSONPath subset batch transform's DataProcessing filters take: ``$``, ``.key``, ``['key']``, ``[i]``,
``[i,j]`` and ``[a:b]``. A leaf: both transform.py and csvbulk.py use it."""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([^\]]*)\]")


def parse_path(path: str) -> list[tuple[str, Any]]:
    path = path.strip()
    if not path.startswith("$"):
        raise ValueError(f"JSONPath '{path}' must start with '$'")
    rest, steps, pos = path[1:], [], 0
    while pos < len(rest):
        m = _TOKEN.match(rest, pos)
        if not m:
            raise ValueError(f"unsupported JSONPath '{path}' (supported: $, .key, [i], [i,j], [a:b])")
        if m.group(1) is not None:
            steps.append(("key", m.group(1)))
        else:
            inner = m.group(2).strip()
            if inner.startswith(("'", '"')):
                steps.append(("key", inner.strip("'\"")))
            elif ":" in inner:
                a, b = inner.split(":", 1)
                steps.append(("slice", (int(a) if a.strip() else None, int(b) if b.strip() else None)))
            else:
                steps.append(("index", [int(x) for x in inner.split(",")]))
        pos = m.end()
    return steps


def apply_path(value: Any, steps: list[tuple[str, Any]]) -> Any:
    for kind, arg in steps:
        if kind == "key":
            value = value[arg]
        elif kind == "slice":
            value = value[arg[0] : arg[1]]
        else:
            value = value[arg[0]] if len(arg) == 1 else [value[i] for i in arg]
    return value
