"""The control plane every job kind shares: create, describe, list and stop, recovery and shutdown.

A :class:`JobService` answers one kind's operations over the resource store and hands the work to its
:class:`~localmaker.jobrunner.JobRunner`; training, processing, transform and tuning subclass it and
add what is their own (validation, the describe view).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from . import controlplane
from .aws import now
from .context import Ctx
from .errors import AwsError, in_use, validation
from .jobrunner import JobRunner
from .service import Handler


class JobService(controlplane.ResourceService):
    """Operations and lifecycle of one job kind (``runner.kind``, e.g. ``TrainingJob``)."""

    summary_keys: ClassVar[tuple[str, ...]] = ()  # what List answers of each job

    def __init__(self, ctx: Ctx, runner: JobRunner) -> None:
        super().__init__(ctx)
        self.runner = runner

    def operations(self) -> Mapping[str, Handler]:
        k = self.kind
        return {f"Create{k}": self.create, f"Describe{k}": self.describe, f"List{k}s": self.list, f"Stop{k}": self.stop}

    def create(self, p: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.view(self.doc(p[self.name_key]))

    def view(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Describe's answer for a stored job: the document with what AWS always shows."""
        return doc

    @property
    def kind(self) -> str:
        return self.runner.kind

    @property
    def noun(self) -> str:
        """The kind in messages ("the training job is in status ...")."""
        return _words(self.kind, " ")

    @property
    def arn_kind(self) -> str:
        """The kind in ARNs (``training-job``)."""
        return _words(self.kind, "-")

    @property
    def list_key(self) -> str:
        return f"{self.kind}Summaries"

    @property
    def name_key(self) -> str:
        return f"{self.kind}Name"

    @property
    def status_key(self) -> str:
        return self.runner.status_key

    def arn(self, name: str) -> str:
        return self.resource_arn(self.arn_kind, name)

    def missing(self, name: str) -> AwsError:
        """The error for a job that does not exist (the provider reads ValidationException as "no such job")."""
        return validation(f"Could not find requested job with name {name}")

    def doc(self, name: str) -> dict[str, Any]:
        return self.get_or_fail(self.kind, name, lambda: self.missing(name))

    def launch(self, p: dict[str, Any], doc: dict[str, Any], *args: Any) -> dict[str, Any]:
        """Store a new job's document, tag it, start its run (``args`` go to its run class); Create's answer."""
        job_arn = doc[f"{self.kind}Arn"]
        self.insert(self.kind, p[self.name_key], doc, p, lambda: self.duplicate(p[self.name_key], job_arn))
        self.runner.start(p[self.name_key], *args)
        return {f"{self.kind}Arn": job_arn}

    def duplicate(self, name: str, job_arn: str) -> AwsError:
        """The error for a Create whose job name is taken."""
        return in_use("Job name must be unique within an AWS account and region, and a job with this name "
                      f"already exists ({job_arn})")

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


def _words(kind: str, sep: str) -> str:
    """``TrainingJob`` -> ``training<sep>job``."""
    return re.sub(r"(?<!^)(?=[A-Z])", sep, kind).lower()
