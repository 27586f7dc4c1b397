"""What every job runner shares: one thread per job, stop requests, shutdown, finish callbacks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .context import Ctx

log = logging.getLogger("localmaker.jobs")

# Why a job that localmaker's own shutdown ended failed (nobody asked to stop it).
SHUTDOWN_REASON = "InternalServerError: localmaker shut down while the job was running."


class JobRunner:
    """Starts, watches and stops jobs of one kind; ``run_class(runner, name)`` does one job.

    A run object has ``thread``, ``stop_requested`` and ``shutdown`` (events) and calls
    ``runner._finished(name)`` when it ends, which tells ``on_finish`` listeners (tuning).
    """

    kind = ""
    run_class: Callable[[Any, str], Any]

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self._runs: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.on_finish: list[Callable[[str, dict[str, Any] | None], None]] = []

    def start(self, name: str) -> None:
        run = type(self).run_class(self, name)
        with self._lock:
            self._runs[name] = run
        run.thread.start()

    def stop(self, name: str) -> None:
        with self._lock:
            run = self._runs.get(name)
        if run is not None:
            run.stop_requested.set()

    def is_running(self, name: str) -> bool:
        with self._lock:
            run = self._runs.get(name)
        return run is not None and run.thread.is_alive()

    def begin_shutdown(self) -> None:
        """Tell every run it is a shutdown (not a user's stop) without waiting for any of them."""
        with self._lock:
            runs = list(self._runs.values())
        for r in runs:
            r.shutdown.set()
            r.stop_requested.set()

    def shutdown(self, timeout: float = 15.0) -> None:
        self.begin_shutdown()
        with self._lock:
            runs = list(self._runs.values())
        deadline = time.monotonic() + timeout
        for r in runs:
            r.thread.join(max(0.1, deadline - time.monotonic()))

    def _finished(self, name: str) -> None:
        with self._lock:
            self._runs.pop(name, None)
        if not self.on_finish:
            return
        doc = self.ctx.store.get(self.kind, name)
        for cb in list(self.on_finish):
            try:
                cb(name, doc)
            except Exception:  # a listener's bug must not kill the runner
                log.exception("%s finish callback failed for %s", self.kind, name)
