"""Processing jobs as local processes, per SageMaker's processing container contract.

A processing container sees absolute paths under ``/opt/ml``:

    /opt/ml/processing/<anything>/    ProcessingInputs downloaded to each S3Input's LocalPath,
                                      ProcessingOutputs read back from each S3Output's LocalPath
    /opt/ml/config/processingjobconfig.json   the job as the service describes it
    /opt/ml/config/resourceconfig.json        {"current_host": "algo-i", "hosts": [...]}
    /opt/ml/output/message            optional; its first 1024 chars become ExitMessage (and
                                      FailureReason when the job fails)

localmaker runs the container's code as plain processes on a shared machine, where no job may own
``/opt/ml``. So each host ``algo-i`` of a job gets its own base directory
``<home>/jobs/processing/<job>/algo-i/`` laid out like ``/opt/ml`` (passed as
``SAGEMAKER_BASE_DIR``), and every ``/opt/ml`` path the request hands to the container is
**rewritten** to that base: in ``AppSpecification.ContainerEntrypoint``, in
``AppSpecification.ContainerArguments`` and in the values of ``Environment`` (wherever a path
starts, e.g. ``--input=/opt/ml/processing/input`` too). The LocalPaths of inputs and outputs are
mapped the same way. ``processingjobconfig.json`` shows the request unchanged, as AWS writes it.
What localmaker cannot rewrite is a path hard-coded inside the program: a script should take its
paths from its arguments or environment (or join them onto ``SAGEMAKER_BASE_DIR``, defaulting to
``/opt/ml``), which runs unchanged on SageMaker too.

The command is ``ContainerEntrypoint`` when given (a leading ``python``/``python3``/
``/usr/bin/python3``... runs as the interpreter localmaker runs under, which is the one that has
the project's packages), otherwise the image manifest's ``process`` command; ``ContainerArguments``
are appended. Logs go to ``/aws/sagemaker/ProcessingJobs``, stream ``{job}/algo-{i}-{epoch}``.
"""

from __future__ import annotations

import copy
import json
import logging
import posixpath
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from . import s3io, safepath
from .aws import now
from .context import Ctx
from .errors import validation
from .images import ImageNotMapped, ImageSpec
from .jobrunner import SHUTDOWN_REASON, JobFailed, JobRun, JobRunner
from .jobs import JobService
from .procs import Child, clean_env

log = logging.getLogger("localmaker.processing")

KIND = "ProcessingJob"
GROUP = "/aws/sagemaker/ProcessingJobs"
OPT_ML = "/opt/ml"
PROCESSING_ROOT = "/opt/ml/processing"
TERMINAL = ("Completed", "Failed", "Stopped")

# an /opt/ml path wherever one starts: at the beginning or after '=', ':', ',', quotes or space
_OPT_ML_RE = re.compile(r"(?<![\w./-])/opt/ml(?=/|$|[\s,:;'\"])")
_PYTHON_RE = re.compile(r"^(?:/[^\s]*/)?python(?:\d+(?:\.\d+)?)?$")


def rewrite(value: str, base: Path) -> str:
    """Point every ``/opt/ml`` path in ``value`` at the host's base directory."""
    return _OPT_ML_RE.sub(lambda _m: str(base), value)


def local_path(container_path: str, base: Path) -> Path:
    """Where a container path under /opt/ml lives for the host with this base directory (resolved;
    :class:`safepath.PathEscape` if it, or a symbolic link on the way, leads out of ``base``)."""
    norm = posixpath.normpath(container_path)
    rel = posixpath.relpath(norm, OPT_ML)
    return safepath.inside(base, rel)


def _check_local_path(where: str, path: str | None) -> str:
    if not path:
        raise validation(f"{where}: LocalPath is required.")
    norm = posixpath.normpath(path)
    if not path.startswith("/") or not (norm == PROCESSING_ROOT or norm.startswith(PROCESSING_ROOT + "/")):
        raise validation(f"{where}: LocalPath '{path}' must be an absolute path under {PROCESSING_ROOT}.")
    if "\x00" in path or ".." in path.split("/"):
        raise validation(
            f"{where}: LocalPath {path!r} must be an absolute path under {PROCESSING_ROOT} "
            "without '..' segments or NUL characters."
        )
    return norm


def describe_view(doc: dict[str, Any]) -> dict[str, Any]:
    """DescribeProcessingJob's answer: the stored job with the defaults AWS shows for every input and
    output (``AppManaged``; an S3Input's mode, distribution and compression)."""
    out = copy.deepcopy(doc)
    for inp in out.get("ProcessingInputs") or []:
        inp.setdefault("AppManaged", False)
        s3 = inp.get("S3Input")
        if isinstance(s3, dict):
            s3.setdefault("S3InputMode", "File")
            s3.setdefault("S3DataDistributionType", "FullyReplicated")
            s3.setdefault("S3CompressionType", "None")
    for o in (out.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        o.setdefault("AppManaged", False)
    return out


class ProcessingRun(JobRun):
    """One processing job: download the inputs, run one process per host, upload the outputs."""

    def __init__(self, runner: JobRunner, name: str) -> None:
        super().__init__(runner, name)
        self.bases: dict[str, Path] = {}

    # ---- state ----------------------------------------------------------------------------------
    def _finish(self, status: str, reason: str | None = None, exit_message: str | None = None) -> None:
        t = now()

        def fn(d: dict[str, Any]) -> None:
            d["ProcessingJobStatus"] = status
            d["ProcessingEndTime"] = t
            d["LastModifiedTime"] = t
            if reason:
                d["FailureReason"] = reason[:1024]
            if exit_message:
                d["ExitMessage"] = exit_message[:1024]

        self.update(fn)

    def fail(self, reason: str) -> None:
        self._finish("Failed", reason, self._exit_message())

    # ---- main -----------------------------------------------------------------------------------
    def run(self) -> None:
        job = self.ctx.store.get(KIND, self.name)
        assert job is not None
        app = job["AppSpecification"]
        entry = list(app.get("ContainerEntrypoint") or [])
        spec: ImageSpec | None
        try:
            spec = self.ctx.images.resolve(app["ImageUri"])
        except ImageNotMapped as exc:
            if not entry:
                raise JobFailed(f"ClientError: {exc}") from exc
            spec = None
        if not entry:
            assert spec is not None
            try:
                base_cmd = spec.command("process")
            except ImageNotMapped as exc:
                raise JobFailed(f"ClientError: {exc}") from exc
        else:
            base_cmd = entry
        self._check_supported(job)

        n = int(job["ProcessingResources"]["ClusterConfig"].get("InstanceCount", 1))
        hosts = [f"algo-{i}" for i in range(1, n + 1)]
        jobdir = safepath.inside(self.ctx.home / "jobs" / "processing", self.name)
        shutil.rmtree(jobdir, ignore_errors=True)
        self.bases = {h: jobdir / h for h in hosts}
        for i, h in enumerate(hosts):
            if self.stop_requested.is_set():
                return self._stopped(job)
            self._prepare_host(job, self.bases[h], h, hosts, i)
        if self.stop_requested.is_set():
            return self._stopped(job)

        started = now()
        self.update(lambda d: d.update(ProcessingStartTime=started, LastModifiedTime=started))
        epoch = int(time.time())
        for h in hosts:
            base = self.bases[h]
            cmd = [rewrite(c, base) for c in base_cmd]
            if entry and _PYTHON_RE.match(cmd[0]):
                cmd[0] = sys.executable
            elif entry and spec is not None:
                cmd = _program_in_image(cmd, spec.workdir)
            if not entry:
                cmd = [c.replace("{python}", sys.executable) for c in cmd]
            cmd += [rewrite(str(a), base) for a in app.get("ContainerArguments", [])]
            env = clean_env(
                self.ctx.endpoint_url,
                self.ctx.region,
                spec.env if spec is not None else {},
                {k: rewrite(str(v), base) for k, v in (job.get("Environment") or {}).items()},
                {"SAGEMAKER_BASE_DIR": str(base), "PROCESSING_JOB_NAME": self.name},
            )
            stream = f"{self.name}/{h}-{epoch}"
            self.ctx.logs.ensure_stream(GROUP, stream)
            cwd = spec.workdir if spec is not None else base
            try:
                self.children[h] = Child(cmd, cwd, env, self._line_handler(stream), spec and spec.sandbox())
            except OSError as exc:
                raise JobFailed(f"ClientError: cannot start {cmd[0]!r} on {h}: {exc}") from exc

        outcome = self.watch((job.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"))
        if outcome == "failed":
            reason = self._failure_reason()
            self.kill_all()
            return self._finish("Failed", reason, self._exit_message())
        if outcome in ("stopped", "timeout"):
            self.kill_all()
            if self.shutdown.is_set():
                return self._finish("Failed", SHUTDOWN_REASON)
            self._upload(job, continuous_only=True)
            reason = None
            if outcome == "timeout":
                limit = job["StoppingCondition"]["MaxRuntimeInSeconds"]
                reason = f"MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds ({limit} s) and was stopped."
            return self._finish("Stopped", reason, self._exit_message())
        self._upload(job, continuous_only=False)
        self._finish("Completed", None, self._exit_message())

    def _stopped(self, job: dict[str, Any]) -> None:
        if self.shutdown.is_set():
            self._finish("Failed", SHUTDOWN_REASON)
        else:
            self._finish("Stopped")

    @staticmethod
    def _check_supported(job: dict[str, Any]) -> None:
        for inp in job.get("ProcessingInputs", []):
            if "DatasetDefinition" in inp:
                raise JobFailed(
                    f"ClientError: ProcessingInput '{inp['InputName']}': DatasetDefinition (Athena/Redshift) "
                    "inputs are not supported by localmaker; use an S3Input."
                )
            s3 = inp.get("S3Input")
            if s3 and s3.get("S3InputMode", "File") == "Pipe":
                raise JobFailed(
                    f"ClientError: ProcessingInput '{inp['InputName']}': S3InputMode Pipe is not supported by "
                    "localmaker; use File."
                )
        for out in (job.get("ProcessingOutputConfig") or {}).get("Outputs", []):
            if "FeatureStoreOutput" in out:
                raise JobFailed(
                    f"ClientError: ProcessingOutput '{out['OutputName']}': FeatureStoreOutput is not supported by localmaker."
                )

    def _prepare_host(self, job: dict[str, Any], base: Path, host: str, hosts: list[str], index: int) -> None:
        for sub in ("config", "output", "processing"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        config = {k: job[k] for k in (
            "ProcessingJobArn", "ProcessingJobName", "AppSpecification", "Environment", "ProcessingInputs",
            "ProcessingOutputConfig", "ProcessingResources", "RoleArn", "StoppingCondition", "NetworkConfig",
            "ExperimentConfig",
        ) if k in job}
        (base / "config" / "processingjobconfig.json").write_text(json.dumps(config, indent=2))
        (base / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
        s3 = self.ctx.s3()
        for inp in job.get("ProcessingInputs", []):
            src = inp.get("S3Input")
            if not src:
                continue
            dest = _mapped(f"ProcessingInput '{inp['InputName']}'", src["LocalPath"], base)
            objects = s3io.resolve_objects(s3, src)
            mine = s3io.shard(objects, src.get("S3DataDistributionType", "FullyReplicated"), index, len(hosts))
            compression = src.get("S3CompressionType")
            s3io.download_objects(s3, mine, dest, compression if compression == "Gzip" else None)
        for out in (job.get("ProcessingOutputConfig") or {}).get("Outputs", []):
            if "S3Output" in out:
                _mapped(f"ProcessingOutput '{out['OutputName']}'", out["S3Output"]["LocalPath"], base).mkdir(
                    parents=True, exist_ok=True
                )

    def _line_handler(self, stream: str) -> Any:
        logs = self.ctx.logs

        def on_line(line: str) -> None:
            logs.put(GROUP, stream, [line])

        return on_line

    def _message(self, host: str) -> str | None:
        base = self.bases.get(host)
        if base is None:
            return None
        try:
            # resolved: a link to a file outside the job's directory is not read into ExitMessage
            f = safepath.inside(base, "output", "message")
            if f.is_file():
                return f.read_text(errors="replace").strip()[:1024] or None
        except (safepath.PathEscape, OSError):
            pass
        return None

    def _exit_message(self) -> str | None:
        failed = [h for h, c in self.children.items() if c.poll() not in (None, 0)]
        for h in failed + list(self.bases):
            msg = self._message(h)
            if msg:
                return msg
        return None

    def _failure_reason(self) -> str:
        for h, c in self.children.items():
            code = c.poll()
            if code in (None, 0):
                continue
            c.wait(10)
            msg = self._message(h)
            if msg:
                return "AlgorithmError: " + msg
            return f"AlgorithmError: process on {h} exited with code {code}. See job logs for more information."
        return "AlgorithmError: processing failed. See job logs for more information."

    def _upload(self, job: dict[str, Any], continuous_only: bool) -> None:
        s3 = self.ctx.s3()
        for out in (job.get("ProcessingOutputConfig") or {}).get("Outputs", []):
            dest = out.get("S3Output")
            if not dest:
                continue
            if continuous_only and dest.get("S3UploadMode") != "Continuous":
                continue
            prefix = dest["S3Uri"].rstrip("/")
            what = f"ProcessingOutput '{out['OutputName']}'"
            for base in self.bases.values():
                root = _mapped(what, dest["LocalPath"], base)
                if not root.is_dir():
                    continue
                for f in sorted(root.rglob("*")):
                    if not f.is_file():
                        continue
                    rel = f.relative_to(root).as_posix()
                    try:
                        # a link the job made to a file outside its directory is not uploaded
                        safepath.inside(base, f.relative_to(base.resolve()).as_posix())
                    except (safepath.PathEscape, ValueError) as exc:
                        raise JobFailed(
                            f"ClientError: {what}: {dest['LocalPath'].rstrip('/')}/{rel} is a link to a file "
                            "outside the job's directory."
                        ) from exc
                    uri = f"{prefix}/{rel}"
                    try:
                        s3io.upload_bytes(s3, uri, f.read_bytes())
                    except ClientError as exc:
                        raise JobFailed(
                            f"ClientError: ProcessingOutput '{out['OutputName']}': cannot upload to {uri}: "
                            f"{exc.response.get('Error', {}).get('Message', exc)}"
                        ) from exc


def _mapped(what: str, container_path: str, base: Path) -> Path:
    """local_path for a job's LocalPath; one that leads out of the host's directory fails the job."""
    try:
        return local_path(container_path, base)
    except safepath.PathEscape as exc:
        raise JobFailed(
            f"ClientError: {what}: LocalPath {container_path!r} leads outside the job's directory ({exc.reason})."
        ) from exc


def _program_in_image(cmd: list[str], workdir: Path) -> list[str]:
    """An entrypoint naming a program the image puts on PATH (``["baseline"]``, ``/opt/program/baseline``)
    runs that program from the image's working directory; Python scripts run under localmaker's
    interpreter, as the image's ``#!/usr/bin/env python3`` would."""
    candidate = workdir / Path(cmd[0]).name
    if not candidate.is_file():
        return cmd
    with candidate.open("rb") as fh:
        first = fh.readline()
    if first.startswith(b"#!") and b"python" in first:
        return [sys.executable, str(candidate), *cmd[1:]]
    return [str(candidate), *cmd[1:]]


class ProcessingService(JobService):
    """CreateProcessingJob, DescribeProcessingJob, ListProcessingJobs, StopProcessingJob."""

    summary_keys = ("ProcessingJobName", "ProcessingJobArn", "CreationTime", "ProcessingEndTime", "LastModifiedTime",
                    "ProcessingJobStatus", "FailureReason", "ExitMessage")

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx, JobRunner(ctx, KIND, ProcessingRun))

    def create(self, p: dict[str, Any]) -> dict[str, Any]:
        seen_in: set[str] = set()
        for i, inp in enumerate(p.get("ProcessingInputs", []), start=1):
            where = f"ProcessingInputs.{i} '{inp['InputName']}'"
            if inp["InputName"] in seen_in:
                raise validation(f"InputName '{inp['InputName']}' is not unique within ProcessingInputs.")
            seen_in.add(inp["InputName"])
            if "S3Input" in inp and "DatasetDefinition" in inp:
                raise validation(f"{where}: specify either S3Input or DatasetDefinition, not both.")
            if "S3Input" not in inp and "DatasetDefinition" not in inp and not inp.get("AppManaged"):
                raise validation(f"{where}: either S3Input or DatasetDefinition must be specified.")
            if "S3Input" in inp:
                _check_local_path(where, inp["S3Input"].get("LocalPath"))
        seen_out: set[str] = set()
        for i, out in enumerate((p.get("ProcessingOutputConfig") or {}).get("Outputs", []), start=1):
            where = f"ProcessingOutputConfig.Outputs.{i} '{out['OutputName']}'"
            if out["OutputName"] in seen_out:
                raise validation(f"OutputName '{out['OutputName']}' is not unique within ProcessingOutputConfig.")
            seen_out.add(out["OutputName"])
            if "S3Output" in out:
                _check_local_path(where, out["S3Output"].get("LocalPath"))
            elif "FeatureStoreOutput" not in out and not out.get("AppManaged"):
                raise validation(f"{where}: either S3Output or FeatureStoreOutput must be specified.")
        return self.launch(p, self.new_doc(p))

    def view(self, doc: dict[str, Any]) -> dict[str, Any]:
        return describe_view(doc)
