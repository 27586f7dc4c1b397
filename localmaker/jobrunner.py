"""What every job kind's runs share: one thread per job, stop requests, shutdown, the finish path.

:class:`JobRunner` starts, watches and stops the jobs of one kind; :class:`JobRun` is one job's thread.
Training, processing, transform and tuning each subclass both: a run implements :meth:`JobRun.run`
(and :meth:`JobRun.fail`, which ends the job Failed), the runner names its run class. Whatever way a
run ends, :meth:`JobRunner.finished` then makes sure its outcome is on disk and tells the listeners.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from . import s3io
from .aws import now
from .context import Ctx
from .procs import Child, stop_all

log = logging.getLogger("localmaker.jobs")

# Why a job that localmaker's own shutdown ended failed (nobody asked to stop it).
SHUTDOWN_REASON = "InternalServerError: localmaker shut down while the job was running."
# Why a job that was running when localmaker died (or was killed) failed, found at the next start.
INTERRUPTED_REASON = "InternalServerError: localmaker stopped while this job was running; the job did not finish."
ACTIVE = ("InProgress", "Stopping")

FinishListener = Callable[[str, "dict[str, Any] | None"], None]


class JobFailed(Exception):
    """Raised inside a run: the message becomes the job's FailureReason."""


class JobRun:
    """One job's thread. ``stop_requested`` is set by StopJob and by a shutdown; ``shutdown`` only by a
    shutdown (so a run can tell a user's stop, ending Stopped, from localmaker's, ending Failed)."""

    def __init__(self, runner: JobRunner, name: str) -> None:
        self.runner = runner
        self.ctx = runner.ctx
        self.name = name
        self.stop_requested = threading.Event()
        self.shutdown = threading.Event()
        self.children: dict[str, Child] = {}  # host -> its process, for runs that start processes
        self.thread = threading.Thread(target=self._main, name=f"{runner.kind}-{name}", daemon=True)

    # ---- what a kind implements ----------------------------------------------------------------
    def run(self) -> None:
        """Do the job and record how it ended."""
        raise NotImplementedError

    def fail(self, reason: str) -> None:
        """Record the job as Failed with ``reason`` (after a crash or an unexpected error)."""
        self.update(lambda d: self.runner.mark_failed(d, reason, force=True))

    def cleanup(self) -> None:
        """Release what the run still holds once it has ended, however it ended (a transform's model
        servers); the children of a run that raised are stopped before its failure is recorded."""

    # ---- stop requests ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stop_requested.set()

    def request_shutdown(self) -> None:
        self.shutdown.set()
        self.request_stop()

    # ---- helpers -------------------------------------------------------------------------------------
    def update(self, fn: Callable[[dict[str, Any]], Any]) -> dict[str, Any] | None:
        return self.ctx.store.update(self.runner.kind, self.name, fn)

    def watch(self, max_runtime: Any) -> str:
        """Wait for the children: "completed" (all exited 0), "failed" (one exited non-zero), "stopped"
        (a stop request) or "timeout" (``max_runtime`` seconds passed)."""
        deadline = time.monotonic() + float(max_runtime) if max_runtime else None
        while True:
            codes = {h: c.poll() for h, c in self.children.items()}
            if any(code not in (None, 0) for code in codes.values()):
                return "failed"
            if all(code == 0 for code in codes.values()):
                for c in self.children.values():
                    c.wait(10)  # drain the log pumps so the last lines (and their metrics) count
                return "completed"
            if self.stop_requested.is_set():
                return "stopped"
            if deadline is not None and time.monotonic() > deadline:
                return "timeout"
            time.sleep(0.05)

    def kill_all(self) -> None:
        stop_all(self.children.values(), self.ctx.settings.stop_grace)

    def _main(self) -> None:
        try:
            self.run()
        except JobFailed as exc:
            self.kill_all()
            self.fail(str(exc))
        except s3io.ChannelError as exc:
            self.kill_all()
            self.fail(f"ClientError: {exc}")
        except Exception as exc:  # noqa: BLE001 - any bug becomes a visible job failure, not a hang
            log.exception("%s %s crashed", self.runner.kind, self.name)
            self.kill_all()
            self.fail(f"InternalServerError: localmaker: {type(exc).__name__}: {exc}")
        finally:
            try:
                self.cleanup()
            finally:
                self.runner.finished(self.name)


class JobRunner:
    """Starts, watches and stops the jobs of one kind; ``run_class(runner, name, *args)`` does one job.

    When a run ends, :meth:`finished` checks that its outcome is on disk (retrying a write a full disk
    refused) and tells the ``on_finish`` listeners (tuning listens to training).
    """

    kind: str = ""
    run_class: Callable[..., JobRun]
    # how often a job whose outcome could not be written (a full disk) is tried again
    retry_interval = 2.0
    join_timeout = 15.0

    def __init__(self, ctx: Ctx, kind: str = "", run_class: Callable[..., JobRun] | None = None) -> None:
        """``kind`` and ``run_class`` default to the class's (a subclass names its own)."""
        self.ctx = ctx
        if kind:
            self.kind = kind
        if run_class is not None:
            self.run_class = run_class
        self._runs: dict[str, JobRun] = {}
        self._lock = threading.Lock()
        self.on_finish: list[FinishListener] = []
        self._unrecorded: dict[str, str] = {}  # job -> FailureReason still to be written
        self._retry_thread: threading.Thread | None = None

    @property
    def status_key(self) -> str:
        return f"{self.kind}Status"

    @property
    def end_key(self) -> str:
        return self.kind[: -len("Job")] + "EndTime"  # TrainingEndTime, HyperParameterTuningEndTime

    def add_finish_listener(self, fn: FinishListener) -> None:
        self.on_finish.append(fn)

    def start(self, name: str, *args: Any) -> None:
        run = self.run_class(self, name, *args)
        with self._lock:
            self._runs[name] = run
        run.thread.start()

    def run_of(self, name: str) -> JobRun | None:
        with self._lock:
            return self._runs.get(name)

    def stop(self, name: str) -> bool:
        """Ask a job's run to stop; False if no run of it is going."""
        run = self.run_of(name)
        if run is not None:
            run.request_stop()
        return run is not None

    def is_running(self, name: str) -> bool:
        run = self.run_of(name)
        return run is not None and run.thread.is_alive()

    def begin_shutdown(self) -> None:
        """Tell every run it is a shutdown (not a user's stop) without waiting for any of them."""
        with self._lock:
            runs = list(self._runs.values())
        for r in runs:
            r.request_shutdown()

    def shutdown(self) -> None:
        self.begin_shutdown()
        with self._lock:
            runs = list(self._runs.values())
        deadline = time.monotonic() + self.join_timeout
        for r in runs:
            r.thread.join(max(0.1, deadline - time.monotonic()))

    def fail_interrupted(self) -> int:
        """At start: every job the disk says was running failed (its run died with the last server)."""
        n = 0
        for doc in self.ctx.store.list(self.kind):
            if doc.get(self.status_key) in ACTIVE:
                self.ctx.store.update(self.kind, doc[f"{self.kind}Name"],
                                      lambda d: self.mark_failed(d, INTERRUPTED_REASON))
                n += 1
        return n

    def finished(self, name: str) -> None:
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

    def mark_failed(self, d: dict[str, Any], reason: str, force: bool = False) -> None:
        """End a job's document Failed with ``reason`` (only a running one, unless ``force``)."""
        if not force and d.get(self.status_key) not in ACTIVE:
            return
        t = now()
        d[self.status_key] = "Failed"
        d["FailureReason"] = reason[:1024]
        d["LastModifiedTime"] = t
        d.setdefault(self.end_key, t)

    # ---- a run that ended without its outcome on disk ----------------------------------------------
    def _check_recorded(self, name: str) -> None:
        """A run has ended; if its final status could not be written (its last Store.update raised,
        e.g. "database or disk is full") the job would stay InProgress. Mark it Failed instead, now
        or - retried in the background - once the write succeeds. Should localmaker stop first, the
        next start fails it (the disk still says InProgress)."""
        doc = self.ctx.store.get(self.kind, name)
        if doc is None or doc.get(self.status_key) not in ACTIVE:
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
                self.ctx.store.update(self.kind, name, lambda d, r=reason: self.mark_failed(d, r))
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
