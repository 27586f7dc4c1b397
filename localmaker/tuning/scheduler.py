"""The scheduler: one thread per tuning job that launches trials as training jobs, collects their objectives
and decides when the search ends."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from .. import controlplane
from ..aws import now
from ..context import Ctx
from ..errors import AwsError
from ..jobrunner import JobFailed, JobRun, JobRunner
from ..training import TrainingService
from .plan import ARN_KIND, KIND, TERMINAL, TRAINING, Plan, better, objective_value, trial_name, trial_request
from .strategies import make_strategy

FAIL_FAST_AFTER = 5  # AWS gives up when this many trials failed and none succeeded
POLL = 0.15


class TuningFailed(JobFailed):
    """The message becomes the tuning job's FailureReason."""


class Tuner(JobRun):
    """One tuning job's scheduler thread: launches trials, collects objectives, decides the end."""

    runner: TuningRunner

    def __init__(self, runner: TuningRunner, name: str, plan: Plan, history: list[tuple[dict[str, str], float]]) -> None:
        super().__init__(runner, name)
        self.trainer = runner.trainer
        self.store = runner.ctx.store
        self.arn = controlplane.resource_arn(self.ctx.region, ARN_KIND, name)
        self.plan = plan
        self.history = history
        self.wake = threading.Event()
        self.running: dict[str, Any] = {}  # trial name -> strategy token
        self.launched = 0
        self.best: float | None = None
        self.succeeded = 0
        self.failed = 0
        self.not_improving = 0

    def request_stop(self) -> None:
        super().request_stop()
        self.wake.set()

    @property
    def minimize(self) -> bool:
        return self.plan.objective_type == "Minimize"

    def fail(self, reason: str) -> None:
        self._stop_trials()
        self._finish("Failed", reason)

    def cleanup(self) -> None:
        self.runner.forget(self)

    def run(self) -> None:
        strategy = make_strategy(self.plan, self.history)
        deadline = time.monotonic() + self.plan.max_runtime if self.plan.max_runtime else None
        stop_launching = False
        while True:
            if self.shutdown.is_set():
                return self._finish("Failed", "InternalServerError: localmaker shut down while the tuning job was running.")
            if self.stop_requested.is_set():
                self._stop_trials()
                if not self._drain(strategy):
                    return self._finish("Failed", "InternalServerError: localmaker shut down while the tuning job was running.")
                return self._finish("Stopped")
            self._collect(strategy)
            if self.succeeded == 0 and self.failed >= FAIL_FAST_AFTER:
                self._stop_trials()
                self._drain(strategy)
                return self._finish("Failed", self._no_success_reason())
            if self._criteria_met() or (deadline is not None and time.monotonic() > deadline):
                if not stop_launching and deadline is not None and time.monotonic() > deadline:
                    self._stop_trials()
                stop_launching = True
            while not stop_launching and self.launched < self.plan.budget and len(self.running) < self.plan.max_parallel:
                suggestion = strategy.suggest()
                if suggestion is None:  # grid exhausted
                    self.plan.budget = self.launched
                    break
                self._launch(*suggestion)
            if not self.running and (stop_launching or self.launched >= self.plan.budget):
                if self.succeeded == 0:
                    return self._finish("Failed", self._no_success_reason())
                return self._finish("Completed")
            self.wake.wait(POLL)
            self.wake.clear()

    def _no_success_reason(self) -> str:
        n = self.succeeded + self.failed
        return (
            f"No training job succeeded after {n} attempts. Please take a look at the training job failures "
            "to get more details."
        )

    def _criteria_met(self) -> bool:
        if self.best is not None and self.plan.target is not None:
            if self.best == self.plan.target or better(self.best, self.plan.target, self.minimize):
                return True
        return self.plan.not_improving is not None and self.not_improving >= self.plan.not_improving

    def _launch(self, token: Any, tuned: dict[str, str]) -> None:
        index = self.launched + 1
        trial = trial_name(self.name, index)
        req = trial_request(self.plan, trial, tuned)
        self.runner.own(trial, self)
        try:
            resp = self.trainer.create(req)
        except AwsError as err:
            raise TuningFailed(f"ClientError: cannot start training job {trial}: {err.message}") from err
        self.store.update(TRAINING, trial, lambda d: d.__setitem__("TuningJobArn", self.arn))
        entry = {"name": trial, "arn": resp["TrainingJobArn"], "tuned": tuned, "created": now()}
        self.store.update(KIND, self.name, lambda d: (d["_lm"]["trials"].append(entry), d.update(LastModifiedTime=now())))
        self.running[trial] = token
        self.launched = index

    def _collect(self, strategy: Any) -> None:
        for trial in list(self.running):
            tdoc = self.store.get(TRAINING, trial)
            status = (tdoc or {}).get("TrainingJobStatus", "Failed")
            if status == "Stopping" and not self.trainer.runner.is_running(trial):
                # a stop that raced with the trial's own end: its runner is gone, it will not change again
                status = "Stopped"
            if status not in TERMINAL:
                continue
            token = self.running.pop(trial)
            value = objective_value(tdoc, self.plan.metric) if status in ("Completed", "Stopped") else None
            strategy.report(token, value)
            if value is None:
                self.failed += 1
                self.not_improving += 1
            else:
                self.succeeded += 1
                if self.best is None or better(value, self.best, self.minimize):
                    self.best = value
                    self.not_improving = 0
                else:
                    self.not_improving += 1
            n = self.not_improving
            self.store.update(KIND, self.name, lambda d, n=n: (d["_lm"].__setitem__("not_improving", n),
                                                                d.update(LastModifiedTime=now())))

    def _stop_trials(self) -> None:
        for trial in list(self.running):
            try:
                self.trainer.stop({"TrainingJobName": trial})
            except AwsError:
                pass  # it finished meanwhile

    def _drain(self, strategy: Any) -> bool:
        """Wait for the running trials to end; False if localmaker shuts down meanwhile."""
        while self.running:
            if self.shutdown.is_set():
                return False
            self._collect(strategy)
            if self.running:
                self.wake.wait(POLL)
                self.wake.clear()
        return True

    def _finish(self, status: str, reason: str | None = None) -> None:
        t = now()

        def fn(d: dict[str, Any]) -> None:
            # a stop that raced with the natural end still ends as Stopped
            stopped = d["HyperParameterTuningJobStatus"] == "Stopping" and status == "Completed"
            d["HyperParameterTuningJobStatus"] = "Stopped" if stopped else status
            d["HyperParameterTuningEndTime"] = t
            d["LastModifiedTime"] = t
            d["ConsumedResources"] = {"RuntimeInSeconds": max(0, int(math.ceil(t - d["CreationTime"])))}
            if reason:
                d["FailureReason"] = reason[:1024]

        self.store.update(KIND, self.name, fn)


class TuningRunner(JobRunner):
    """The tuning jobs' schedulers, and which of them owns each running trial."""

    kind = KIND
    join_timeout = 10.0
    run_class = Tuner

    def __init__(self, ctx: Ctx, trainer: TrainingService) -> None:
        super().__init__(ctx)
        self.trainer = trainer
        self._owner: dict[str, Tuner] = {}  # trial name -> its tuner

    def on_training_finished(self, name: str, _doc: Any) -> None:
        with self._lock:
            tuner = self._owner.get(name)
        if tuner is not None:
            tuner.wake.set()

    def own(self, trial: str, tuner: Tuner) -> None:
        with self._lock:
            self._owner[trial] = tuner

    def forget(self, tuner: Tuner) -> None:
        with self._lock:
            for t in [k for k, v in self._owner.items() if v is tuner]:
                self._owner.pop(t, None)
