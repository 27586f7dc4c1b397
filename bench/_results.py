"""Where every benchmark writes its figures: ``bench/results/<name>.json`` (the README quotes them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def save(name: str, results: dict[str, Any]) -> Path:
    """Write ``results`` as ``bench/results/<name>.json``, say where, and return the path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{name}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return out
