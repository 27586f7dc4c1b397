"""What every job runner shares: one thread per job, stop requests, shutdown, finish callbacks."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from .aws import now
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
    # how often a job whose outcome could not be written (a full disk) is tried again
    retry_interval = 2.0

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self._runs: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.on_finish: list[Callable[[str, dict[str, Any] | None], None]] = []
        self._unrecorded: dict[str, str] = {}  # job -> FailureReason still to be written
        self._retry_thread: threading.Thread | None = None

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
        self._check_recorded(name)
        if not self.on_finish:
            return
        doc = self.ctx.store.get(self.kind, name)
        for cb in list(self.on_finish):
            try:
                cb(name, doc)
            except Exception:  # a listener's bug must not kill the runner
                log.exception("%s finish callback failed for %s", self.kind, name)

    # ---- a run that ended without its outcome on disk ----------------------------------------------
    def _check_recorded(self, name: str) -> None:
        """A run has ended; if its final status could not be written (its last Store.update raised,
        e.g. "database or disk is full") the job would stay InProgress. Mark it Failed instead, now
        or - retried in the background - once the write succeeds. Should localmaker stop first, the
        next start fails it (the disk still says InProgress)."""
        doc = self.ctx.store.get(self.kind, name)
        if doc is None or doc.get(f"{self.kind}Status") not in ("InProgress", "Stopping"):
            return
        error = self.ctx.store.last_error or "the final status update failed"
        reason = f"InternalServerError: the job ended but localmaker could not record its outcome ({error})."
        log.error("%s %s ended without its outcome on disk (%s); marking it Failed", self.kind, name, error)
        with self._lock:
            self._unrecorded[name] = reason
        if not self._record_unrecorded():
            with self._lock:
                if self._retry_thread is None:
                    self._retry_thread = threading.Thread(
                        target=self._retry_unrecorded, name=f"{self.kind}-record-retry", daemon=True
                    )
                    self._retry_thread.start()

    def _record_unrecorded(self) -> bool:
        """Try to write every pending Failed status; True when none is left."""
        with self._lock:
            pending = dict(self._unrecorded)
        for name, reason in pending.items():
            try:
                self.ctx.store.update(self.kind, name, lambda d, r=reason: self._mark_failed(d, r))
            except sqlite3.ProgrammingError:  # the store is closed: stopping; the next start fails it
                with self._lock:
                    self._unrecorded.clear()
                return True
            except (sqlite3.Error, OSError) as exc:
                log.warning("%s %s: still cannot record its outcome: %s", self.kind, name, exc)
                continue
            with self._lock:
                self._unrecorded.pop(name, None)
        with self._lock:
            return not self._unrecorded

    def _retry_unrecorded(self) -> None:
        while True:
            time.sleep(self.retry_interval)
            self._record_unrecorded()
            with self._lock:
                if not self._unrecorded:
                    self._retry_thread = None
                    return

    def _mark_failed(self, d: dict[str, Any], reason: str) -> None:
        status_key = f"{self.kind}Status"
        if d.get(status_key) not in ("InProgress", "Stopping"):
            return
        t = now()
        d[status_key] = "Failed"
        d["FailureReason"] = reason[:1024]
        d["LastModifiedTime"] = t
        d.setdefault(self.kind[: -len("Job")] + "EndTime", t)  # TrainingEndTime, ProcessingEndTime
        if "SecondaryStatus" in d:
            from .training import set_secondary  # training imports this module

            set_secondary(d, "Failed", reason[:1024])
