"""The control plane every job kind shares: create, describe, list and stop, recovery and shutdown.

A :class:`JobService` answers one kind's operations over the resource store and hands the work to its
:class:`~localmaker.jobrunner.JobRunner`; training, processing, transform and tuning subclass it and
add what is their own (validation, the describe view).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from . import controlplane
from .aws import now
from .context import Ctx
from .errors import AwsError, validation
from .jobrunner import JobRunner
from .service import BaseService


class JobService(BaseService):
    """Operations and lifecycle of one job kind (``runner.kind``, e.g. ``TrainingJob``)."""

    noun: ClassVar[str] = "job"  # in messages: "the training job is in status ..."
    arn_kind: ClassVar[str] = ""  # training-job
    summary_keys: ClassVar[tuple[str, ...]] = ()
    list_key: ClassVar[str] = ""  # TrainingJobSummaries

    def __init__(self, ctx: Ctx, runner: JobRunner) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.runner = runner

    @property
    def kind(self) -> str:
        return self.runner.kind

    @property
    def name_key(self) -> str:
        return f"{self.kind}Name"

    @property
    def status_key(self) -> str:
        return self.runner.status_key

    def arn(self, name: str) -> str:
        return controlplane.resource_arn(self.ctx.region, self.arn_kind, name)

    def missing(self, name: str) -> AwsError:
        """The error for a job that does not exist (the provider reads ValidationException as "no such job")."""
        return validation(f"Could not find requested job with name {name}")

    def doc(self, name: str) -> dict[str, Any]:
        doc = self.store.get(self.kind, name)
        if doc is None:
            raise self.missing(name)
        return doc

    def launch(self, p: dict[str, Any], doc: dict[str, Any], duplicate: Callable[[], AwsError], *args: Any) -> None:
        """Store a new job's document (``duplicate()`` if the name is taken), tag it, start its run."""
        name = p[self.name_key]
        self.store.insert_new(self.kind, name, doc, duplicate)
        controlplane.tag_on_create(self.store, doc[f"{self.kind}Arn"], p)
        self.runner.start(name, *args)

    def new_doc(self, p: dict[str, Any]) -> dict[str, Any]:
        """The stored document of a new job: the request without its Tags, with ARN, status and times."""
        t = now()
        doc = {k: v for k, v in p.items() if k != "Tags"}
        doc.update({f"{self.kind}Arn": self.arn(p[self.name_key]), self.status_key: "InProgress",
                    "CreationTime": t, "LastModifiedTime": t})
        return doc

    def list(self, p: dict[str, Any]) -> dict[str, Any]:
        docs = controlplane.filter_sort(self.store.list(self.kind), p, self.name_key, self.status_key)
        return controlplane.paginate(controlplane.summaries(docs, self.summary_keys), p, self.list_key)

    def stop(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p[self.name_key]
        with self.store.locked():  # check and set as one step: the job may be finishing right now
            status = self.doc(name)[self.status_key]
            if status != "InProgress":
                raise validation(f"The request was rejected because the {self.noun} is in status {status}.")
            self.store.update(self.kind, name, self.stopping)
        if not self.runner.stop(name):
            self.no_run_to_stop(name)
        return {}

    def stopping(self, d: dict[str, Any]) -> None:
        """A job's document as a stop request leaves it."""
        d[self.status_key] = "Stopping"
        d["LastModifiedTime"] = now()

    def no_run_to_stop(self, name: str) -> None:
        """A stopped job had no run (its Stopping status is then left for the run's end or the next start)."""

    # ---- lifecycle ------------------------------------------------------------------------------------
    def recover(self) -> None:
        self.runner.fail_interrupted()

    def begin_shutdown(self) -> None:
        self.runner.begin_shutdown()

    def shutdown(self) -> None:
        self.runner.shutdown()
