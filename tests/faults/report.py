"""Counts the fault scenarios measured, for ``bench/faults.py`` (and the README's reliability table).

A test calls :func:`record` with what it observed; when ``LOCALMAKER_FAULTS_REPORT`` names a file,
one JSON line per call is appended to it, otherwise nothing is written. The tests assert on the same
numbers, so the bench reports exactly what the suite checked.
"""

from __future__ import annotations

import json
import os
from typing import Any

ENV = "LOCALMAKER_FAULTS_REPORT"


def record(scenario: str, **counts: Any) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"scenario": scenario, **counts}) + "\n")
