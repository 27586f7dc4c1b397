"""Training jobs as local processes, per SageMaker's training container contract.

Each host of a job gets a directory shaped like ``/opt/ml`` (``SAGEMAKER_BASE_DIR``):

    input/config/{hyperparameters,resourceconfig,inputdataconfig}.json
    input/data/<channel>/...        downloaded from S3 (sharded per host when asked)
    model/  output/data/  output/failure  checkpoints/

and the sagemaker-training toolkit's ``SM_*`` variables. Hosts are ``algo-1..algo-N``; because
they all run on this machine, each is told every host's reachable address in
``TRAINING_HOST_ADDRESSES`` (JSON host -> "127.0.0.1:port", the port reserved for that host),
where SageMaker would have them resolve host names through DNS.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from . import s3io, safepath
from .aws import arn, now
from .context import Ctx
from .errors import AwsError, in_use, not_found, validation
from .images import ImageNotMapped
from .jobrunner import SHUTDOWN_REASON, JobFailed, JobRun, JobRunner
from .jobs import JobService
from .metrics import MetricPublisher
from .procs import Child, clean_env, free_port

log = logging.getLogger("localmaker.training")

KIND = "TrainingJob"
GROUP = "/aws/sagemaker/TrainingJobs"

MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job stopped because it exceeded MaxRuntimeInSeconds",
}


def set_secondary(doc: dict[str, Any], status: str, message: str | None = None) -> None:
    t = now()
    transitions = doc.setdefault("SecondaryStatusTransitions", [])
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = t
    entry: dict[str, Any] = {"Status": status, "StartTime": t, "StatusMessage": message or MESSAGES.get(status, "")}
    if status in ("Completed", "Failed", "Stopped", "MaxRuntimeExceeded"):
        entry["EndTime"] = t
    transitions.append(entry)
    doc["SecondaryStatus"] = status
    doc["LastModifiedTime"] = t


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class TrainingRun(JobRun):
    """One training job: download, run one process per host, watch, upload, record the outcome."""

    runner: TrainingRunner

    def __init__(self, runner: TrainingRunner, name: str) -> None:
        super().__init__(runner, name)
        self.metrics: dict[str, tuple[float, float]] = {}
        self.metric_defs: list[tuple[str, re.Pattern[str]]] = []
        self.publisher = MetricPublisher(self.ctx, name)  # every matched value, to CloudWatch
        self.builtin = False
        self.started: float | None = None

    # ---- helpers --------------------------------------------------------------------------------
    def secondary(self, status: str, message: str | None = None) -> None:
        self.update(lambda d: set_secondary(d, status, message))

    def fail(self, reason: str) -> None:
        self._finish("Failed", "Failed", reason)

    def _finish(self, status: str, secondary: str, reason: str | None) -> None:
        self.publisher.close()  # metrics are in CloudWatch before the job is seen to end
        end = now()
        started = self.started

        def fn(d: dict[str, Any]) -> None:
            d["TrainingJobStatus"] = status
            set_secondary(d, secondary)
            d["TrainingEndTime"] = end
            if reason:
                d["FailureReason"] = reason[:1024]
            if started is not None:
                secs = max(1, math.ceil(end - started))
                d["TrainingTimeInSeconds"] = secs
                d["BillableTimeInSeconds"] = secs * int(d["ResourceConfig"].get("InstanceCount", 1))
            if self.metrics:
                d["FinalMetricDataList"] = [
                    {"MetricName": k, "Value": v, "Timestamp": ts} for k, (v, ts) in self.metrics.items()
                ]

        self.update(fn)

    # ---- main -----------------------------------------------------------------------------------
    def run(self) -> None:
        job = self.ctx.store.get(KIND, self.name)
        assert job is not None
        algo = job["AlgorithmSpecification"]
        try:
            spec = self.ctx.images.resolve(algo.get("TrainingImage", ""))
            cmd = spec.command("train", algo.get("ContainerEntrypoint"))
        except ImageNotMapped as exc:
            raise JobFailed(f"ClientError: {exc}") from exc
        self.builtin = bool(spec.builtin)
        # a built-in algorithm reports its own metrics (as on AWS) besides any the request adds
        defs = {m["Name"]: m["Regex"] for m in spec.metrics}
        defs.update({m["Name"]: m["Regex"] for m in algo.get("MetricDefinitions", []) if m.get("Regex")})
        self.metric_defs = [(name, re.compile(rx)) for name, rx in defs.items()]
        if algo.get("ContainerArguments"):
            cmd = cmd + list(algo["ContainerArguments"])
        n = int(job["ResourceConfig"].get("InstanceCount", 1))
        hosts = [f"algo-{i}" for i in range(1, n + 1)]
        jobdir = _job_dir(self.ctx.home, self.name)
        shutil.rmtree(jobdir, ignore_errors=True)
        if self.stop_requested.is_set():
            return self._end_stopped("Stopped")

        self.secondary("Downloading")
        bases = {h: jobdir / h for h in hosts}
        for i, h in enumerate(hosts):
            self._prepare_host(job, bases[h], h, hosts, i)
        if self.stop_requested.is_set():
            return self._end_stopped("Stopped")

        self.secondary("Training")
        started = self.started = now()
        self.update(lambda d: d.__setitem__("TrainingStartTime", started))
        ports = {h: free_port() for h in hosts}
        addresses = json.dumps({h: f"127.0.0.1:{ports[h]}" for h in hosts})
        epoch = int(time.time())
        for h in hosts:
            stream = f"{self.name}/{h}-{epoch}"
            self.ctx.logs.ensure_stream(GROUP, stream)
            env = clean_env(
                self.ctx.endpoint_url,
                self.ctx.region,
                spec.env,
                job.get("Environment", {}),
                self._sm_env(job, bases[h], h, hosts),
                {"TRAINING_HOST_ADDRESSES": addresses},
            )
            self.children[h] = Child(cmd, spec.workdir, env, self._line_handler(stream), spec.sandbox())
        outcome = self.watch(job.get("StoppingCondition", {}).get("MaxRuntimeInSeconds"))
        if outcome == "failed":
            reason = self._failure_reason(bases)
            self.kill_all()
            return self._finish("Failed", "Failed", reason)
        if outcome in ("stopped", "timeout"):
            self.kill_all()
            if not self.shutdown.is_set():
                self.secondary("Uploading")
                self._upload(job, bases[hosts[0]], allow_missing=True)
            return self._end_stopped("MaxRuntimeExceeded" if outcome == "timeout" else "Stopped")
        self.secondary("Uploading")
        self._upload(job, bases[hosts[0]], allow_missing=False)
        self._finish("Completed", "Completed", None)

    def _end_stopped(self, secondary: str) -> None:
        """A stopped job ends Stopped, unless the stop is localmaker shutting down: then it failed."""
        if self.shutdown.is_set():
            return self._finish("Failed", "Failed", SHUTDOWN_REASON)
        return self._finish("Stopped", secondary, None)

    def _prepare_host(self, job: dict[str, Any], base: Path, host: str, hosts: list[str], index: int) -> None:
        for sub in ("input/config", "input/data", "model", "output/data", "output/intermediate", "checkpoints"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        cfg = base / "input" / "config"
        (cfg / "hyperparameters.json").write_text(json.dumps(job.get("HyperParameters", {})))
        rc = job["ResourceConfig"]
        (cfg / "resourceconfig.json").write_text(
            json.dumps(
                {
                    "current_host": host,
                    "current_instance_type": rc.get("InstanceType", "ml.m5.large"),
                    "current_group_name": "homogeneousCluster",
                    "hosts": hosts,
                    "instance_groups": [
                        {
                            "instance_group_name": "homogeneousCluster",
                            "instance_type": rc.get("InstanceType", "ml.m5.large"),
                            "hosts": hosts,
                        }
                    ],
                    "network_interface_name": "lo",
                }
            )
        )
        idc = {}
        for ch in job.get("InputDataConfig", []):
            src = ch["DataSource"].get("S3DataSource")
            idc[ch["ChannelName"]] = {
                "ContentType": ch.get("ContentType"),
                "TrainingInputMode": ch.get("InputMode", job["AlgorithmSpecification"].get("TrainingInputMode", "File")),
                "S3DistributionType": (src or {}).get("S3DataDistributionType", "FullyReplicated"),
                "RecordWrapperType": ch.get("RecordWrapperType", "None"),
            }
            idc[ch["ChannelName"]] = {k: v for k, v in idc[ch["ChannelName"]].items() if v is not None}
            if src is None:
                raise JobFailed(
                    f"ClientError: channel '{ch['ChannelName']}': only S3DataSource is supported by localmaker"
                )
            try:
                channel_dir = safepath.inside(base / "input" / "data", ch["ChannelName"])
            except safepath.PathEscape as exc:
                raise JobFailed(f"ClientError: ChannelName {exc.part} {exc.reason}.") from exc
            objects = s3io.resolve_objects(self.ctx.s3(), src)
            mine = s3io.shard(objects, src.get("S3DataDistributionType", "FullyReplicated"), index, len(hosts))
            s3io.download_objects(self.ctx.s3(), mine, channel_dir, ch.get("CompressionType"))
        (cfg / "inputdataconfig.json").write_text(json.dumps(idc))

    def _sm_env(self, job: dict[str, Any], base: Path, host: str, hosts: list[str]) -> dict[str, str]:
        hps = job.get("HyperParameters", {})
        channels = [c["ChannelName"] for c in job.get("InputDataConfig", [])]
        parsed = {}
        for k, v in hps.items():
            try:
                parsed[k] = json.loads(v)
            except (TypeError, ValueError):
                parsed[k] = v
        env = {
            "SAGEMAKER_BASE_DIR": str(base),
            "TRAINING_JOB_NAME": self.name,
            "TRAINING_JOB_ARN": job["TrainingJobArn"],
            "SM_MODEL_DIR": str(base / "model"),
            "SM_INPUT_DIR": str(base / "input"),
            "SM_INPUT_CONFIG_DIR": str(base / "input" / "config"),
            "SM_OUTPUT_DIR": str(base / "output"),
            "SM_OUTPUT_DATA_DIR": str(base / "output" / "data"),
            "SM_OUTPUT_INTERMEDIATE_DIR": str(base / "output" / "intermediate"),
            "SM_CHANNELS": json.dumps(channels),
            "SM_HPS": json.dumps(parsed),
            "SM_CURRENT_HOST": host,
            "SM_HOSTS": json.dumps(hosts),
            "SM_NUM_CPUS": str(cpu_count()),
            "SM_NUM_GPUS": "0",
            "SM_NETWORK_INTERFACE_NAME": "lo",
            "SM_CURRENT_INSTANCE_TYPE": job["ResourceConfig"].get("InstanceType", ""),
            "SM_RESOURCE_CONFIG": (base / "input" / "config" / "resourceconfig.json").read_text(),
            "SM_INPUT_DATA_CONFIG": (base / "input" / "config" / "inputdataconfig.json").read_text(),
            "SM_CHECKPOINT_DIR": str(base / "checkpoints"),
        }
        for c in channels:
            env[f"SM_CHANNEL_{c.upper()}"] = str(base / "input" / "data" / c)
        for k, v in hps.items():
            env[f"SM_HP_{re.sub(r'[^A-Za-z0-9_]', '_', k).upper()}"] = str(v)
        env["SM_TRAINING_ENV"] = json.dumps(
            {
                "job_name": self.name,
                "current_host": host,
                "hosts": hosts,
                "hyperparameters": parsed,
                "channel_input_dirs": {c: env[f"SM_CHANNEL_{c.upper()}"] for c in channels},
                "model_dir": env["SM_MODEL_DIR"],
                "output_data_dir": env["SM_OUTPUT_DATA_DIR"],
                "num_cpus": cpu_count(),
                "num_gpus": 0,
            }
        )
        return env

    def _line_handler(self, stream: str) -> Any:
        logs = self.ctx.logs
        defs = self.metric_defs
        metrics = self.metrics
        publisher = self.publisher

        def on_line(line: str) -> None:
            ts = int(time.time() * 1000)  # the log event's timestamp, and its metric values'
            logs.put(GROUP, stream, [line], ts)
            for name, rx in defs:
                m = rx.search(line)
                if m:
                    try:
                        value = float(m.group(1))
                    except (IndexError, ValueError):
                        continue
                    metrics[name] = (value, ts / 1000)
                    publisher.add(name, value, ts)

        return on_line

    def _failure_reason(self, bases: dict[str, Path]) -> str:
        for h, c in self.children.items():
            code = c.poll()
            if code in (None, 0):
                continue
            c.wait(10)
            text = _read_inside(bases[h], "output", "failure")
            if text:
                # built-in images classify their own failures (ClientError vs AlgorithmError) as on AWS
                if self.builtin and text.startswith(("ClientError:", "AlgorithmError:")):
                    return text[:1024]
                return "AlgorithmError: " + text[:1024]
            return f"AlgorithmError: ExecuteUserScriptError: process on {h} exited with code {code}. See job logs for more information."
        return "AlgorithmError: training failed. See job logs for more information."

    def _upload(self, job: dict[str, Any], base: Path, allow_missing: bool) -> None:
        out = job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        s3 = self.ctx.s3()
        model_uri = f"{out}/{self.name}/output/model.tar.gz"
        s3io.upload_bytes(s3, model_uri, s3io.tar_dir(_own_dir(base, "model")))
        self.update(lambda d: d.__setitem__("ModelArtifacts", {"S3ModelArtifacts": model_uri}))
        data_dir = _own_dir(base, "output", "data")
        if data_dir.exists() and any(data_dir.iterdir()):
            s3io.upload_bytes(s3, f"{out}/{self.name}/output/output.tar.gz", s3io.tar_dir(data_dir))
        ck = job.get("CheckpointConfig")
        ck_dir = _own_dir(base, "checkpoints")
        if ck and ck_dir.exists():
            for f in sorted(ck_dir.rglob("*")):
                if f.is_file():
                    rel = f.relative_to(ck_dir).as_posix()
                    try:
                        safepath.inside(base, "checkpoints", rel)
                    except safepath.PathEscape as exc:
                        raise JobFailed(f"ClientError: checkpoint file {rel} is a link to a file outside the "
                                        f"job's directory ({exc.reason}).") from exc
                    s3io.upload_bytes(s3, ck["S3Uri"].rstrip("/") + "/" + rel, f.read_bytes())


class TrainingRunner(JobRunner):
    """Starts, watches and stops training jobs; one thread per job."""

    kind = KIND
    run_class = TrainingRun

    def mark_failed(self, d: dict[str, Any], reason: str, force: bool = False) -> None:
        was = d.get(self.status_key)
        super().mark_failed(d, reason, force)
        if d.get(self.status_key) == "Failed" and (force or was != "Failed") and "SecondaryStatus" in d:
            set_secondary(d, "Failed", reason[:1024])


class TrainingService(JobService):
    """CreateTrainingJob, DescribeTrainingJob, ListTrainingJobs, StopTrainingJob."""

    runner: TrainingRunner

    summary_keys = ("TrainingJobName", "TrainingJobArn", "CreationTime", "TrainingEndTime", "LastModifiedTime",
                    "TrainingJobStatus", "SecondaryStatus")

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx, TrainingRunner(ctx))

    def missing(self, name: str) -> AwsError:
        return not_found("Requested resource not found.")

    def create(self, p: dict[str, Any]) -> dict[str, Any]:
        doc = new_job_doc(p, self.ctx.region)
        algo = p["AlgorithmSpecification"]
        if not algo.get("TrainingImage") and not algo.get("AlgorithmName"):
            raise validation("Either TrainingImage or AlgorithmName must be specified in AlgorithmSpecification.")
        if int(p["ResourceConfig"].get("InstanceCount", 0) or 0) < 1 and not p["ResourceConfig"].get("InstanceGroups"):
            raise validation("ResourceConfig.InstanceCount must be at least 1 when InstanceGroups is not set.")
        if p["ResourceConfig"].get("InstanceGroups"):
            raise validation("ResourceConfig.InstanceGroups (heterogeneous clusters) is not supported by localmaker.")
        if algo.get("AlgorithmName") and not algo.get("TrainingImage"):
            raise validation("AlgorithmName (marketplace algorithms) is not supported by localmaker; give a TrainingImage.")
        return self.launch(p, doc)

    def duplicate(self, name: str, job_arn: str) -> AwsError:
        return in_use("Training job names must be unique within an AWS account and region, and a training job with "
                      f"this name already exists ({job_arn})")

    def view(self, doc: dict[str, Any]) -> dict[str, Any]:
        return describe_view(doc, self.ctx.images)

    def stopping(self, d: dict[str, Any]) -> None:
        d["TrainingJobStatus"] = "Stopping"
        set_secondary(d, "Stopping")


def _own_dir(base: Path, *parts: str) -> Path:
    """A directory the job uploads from; replaced by a link out of the job's directory, it fails the job
    (the files of the machine it points at are not the job's to upload)."""
    try:
        return safepath.inside(base, *parts)
    except safepath.PathEscape as exc:
        raise JobFailed(
            f"ClientError: /opt/ml/{'/'.join(parts)} is a link to a directory outside the job's directory."
        ) from exc


def _job_dir(home: Path, name: str) -> Path:
    return safepath.inside(home / "jobs" / "training", name)


def _read_inside(base: Path, *parts: str) -> str:
    """The stripped text of a file the job wrote, or '' if it is missing, empty, or a link leading out
    of the job's directory (a failure reason must not carry a host file's contents)."""
    try:
        path = safepath.inside(base, *parts)
        return path.read_text(errors="replace").strip() if path.is_file() else ""
    except (safepath.PathEscape, OSError):
        return ""


def check_channel_names(p: dict[str, Any]) -> None:
    """A channel is the directory /opt/ml/input/data/<ChannelName>: '.' and '..' match the API's
    pattern but name no directory of its own."""
    for i, ch in enumerate(p.get("InputDataConfig") or [], start=1):
        name = ch.get("ChannelName", "")
        try:
            safepath.relative(name)
            if "/" in name or name in (".", ".."):
                raise safepath.PathEscape(name, "is not a directory name")
        except safepath.PathEscape as exc:
            raise validation(
                f"1 validation error detected: Value '{name}' at 'inputDataConfig.{i}.member.channelName' "
                f"failed to satisfy constraint: ChannelName {exc.reason}; it must be a single directory name."
            ) from exc


def new_job_doc(p: dict[str, Any], region: str) -> dict[str, Any]:
    check_channel_names(p)
    t = now()
    doc = dict(p)
    doc.pop("Tags", None)
    doc.update(
        {
            "TrainingJobArn": arn(region, f"training-job/{p['TrainingJobName'].lower()}"),
            "TrainingJobStatus": "InProgress",
            "CreationTime": t,
            "LastModifiedTime": t,
            "ModelArtifacts": {"S3ModelArtifacts": ""},
            "EnableNetworkIsolation": p.get("EnableNetworkIsolation", False),
            "EnableInterContainerTrafficEncryption": p.get("EnableInterContainerTrafficEncryption", False),
            "EnableManagedSpotTraining": p.get("EnableManagedSpotTraining", False),
        }
    )
    doc["AlgorithmSpecification"] = dict(p["AlgorithmSpecification"])
    doc["AlgorithmSpecification"].setdefault("EnableSageMakerMetricsTimeSeries", False)
    set_secondary(doc, "Starting")
    return doc


def fill_definition(d: dict[str, Any], images: Any) -> None:
    """Members AWS adds to a training job (or a tuning job's training definition) when it describes it:
    a built-in algorithm's own ``MetricDefinitions`` when the request named none (the SDK's
    ``training_job_analytics`` and ``HyperparameterTuner.attach`` index them) and each channel's
    ``CompressionType`` (``None``). In place; ``d`` is a copy."""
    algo = d.get("AlgorithmSpecification")
    if isinstance(algo, dict) and "MetricDefinitions" not in algo and algo.get("TrainingImage"):
        try:
            spec = images.resolve(algo["TrainingImage"])
        except ImageNotMapped:
            spec = None
        if spec is not None and spec.builtin and spec.metrics:
            algo["MetricDefinitions"] = [dict(m) for m in spec.metrics]
    for ch in d.get("InputDataConfig") or []:
        ch.setdefault("CompressionType", "None")


def describe_view(doc: dict[str, Any], images: Any) -> dict[str, Any]:
    """DescribeTrainingJob's answer: the stored job plus what AWS always returns with it
    (``OutputDataConfig.KmsKeyId`` is ``""`` when no key was given; ``Estimator.attach`` reads it)."""
    out = copy.deepcopy(doc)
    out.setdefault("OutputDataConfig", {}).setdefault("KmsKeyId", "")
    fill_definition(out, images)
    return out

