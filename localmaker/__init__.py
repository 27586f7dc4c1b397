"""localmaker: a local SageMaker that really runs training jobs and endpoints as processes.

Start it with ``python -m localmaker`` and point any AWS client at it with
``AWS_ENDPOINT_URL=http://127.0.0.1:4566``.
"""

from __future__ import annotations

__all__ = ["LocalMaker"]


def __getattr__(name: str) -> object:
    if name == "LocalMaker":
        from .server import LocalMaker

        return LocalMaker
    raise AttributeError(name)
