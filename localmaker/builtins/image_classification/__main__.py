"""``python -m localmaker.builtins.image_classification train|serve``, as the real image's ``train`` / ``serve``."""

from __future__ import annotations

from localmaker.builtins.runtime import main

from .serving import serve
from .training import train

raise SystemExit(main(train, serve))
