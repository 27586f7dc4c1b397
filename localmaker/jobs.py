"""Job kinds beyond training and hosting, each in its own module, registered on the server.

Each module exposes ``register(lm)`` which adds its operations to ``lm.sagemaker.extra`` (name ->
handler taking the validated request dict) and may append callables to ``lm._start_hooks`` /
``lm._stop_hooks``.
"""

from __future__ import annotations

import importlib
from typing import Any

MODULES = ("transform", "processing", "tuning")


def register(lm: Any) -> None:
    for name in MODULES:
        importlib.import_module(f"{__package__}.{name}").register(lm)
