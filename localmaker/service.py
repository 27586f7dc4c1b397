"""The seam every resource kind plugs into: the operations it answers and its part in start and stop.

:class:`~localmaker.server.LocalMaker` builds an explicit list of services (training, processing,
transform, tuning, hosting, registry, tags, async inference, logs) and asks each of them the same
questions; nothing registers itself at import time. Adding an operation means adding one method to
one service and naming it in that service's :meth:`Service.operations`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

#: an operation's handler: the validated request dict in, the response dict out
Handler = Callable[[dict[str, Any]], dict[str, Any]]


@runtime_checkable
class Service(Protocol):
    """One resource kind's control plane and lifecycle.

    ``api`` names the botocore service whose JSON 1.1 operations :meth:`operations` answers
    (``"sagemaker"``, ``"logs"``); a service that answers none (async inference, served on the
    runtime routes) returns an empty mapping.
    """

    api: str

    def operations(self) -> Mapping[str, Handler]:
        """Operation name (``CreateTrainingJob``) -> bound method answering it."""
        ...

    def recover(self) -> None:
        """Before the edge serves: repair what a server that died left behind (a job that was running
        becomes Failed)."""
        ...

    def resume(self) -> None:
        """Once the edge serves: bring back what should be running (endpoints' processes)."""
        ...

    def begin_shutdown(self) -> None:
        """Tell all work it is a shutdown, without waiting (every service hears this before any waits)."""
        ...

    def shutdown(self) -> None:
        """Finish the shutdown: stop the work and wait for it (services do this in parallel)."""
        ...


class BaseService:
    """A :class:`Service` with nothing to recover, resume or stop; subclasses override what they have."""

    api = "sagemaker"

    def operations(self) -> Mapping[str, Handler]:
        return {}

    def recover(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def begin_shutdown(self) -> None:
        pass

    def shutdown(self) -> None:
        pass
