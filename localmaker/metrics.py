"""Training metrics in CloudWatch, where SageMaker puts them.

SageMaker publishes every value a training job's ``MetricDefinitions`` regexes find in its log to
CloudWatch: namespace ``/aws/sagemaker/TrainingJobs``, dimension ``TrainingJobName``, the metric's
``Name``, timestamped with the log line it came from. The SDK's ``TrainingJobAnalytics`` reads them back
with ``GetMetricStatistics`` (Period 60, Average, from TrainingStartTime to TrainingEndTime + 1 min).

:class:`MetricPublisher` sends them with PutMetricData through localmaker's own edge (moto's
CloudWatch answers), in batches from a background thread, so a job's log pump never waits on it;
:meth:`MetricPublisher.close` sends what is left before the job reports its final status. moto keeps
metrics in memory only, so each batch is first appended to ``<home>/metrics/TrainingJobs/<job>.jsonl``
and :func:`restore` puts them back into moto when localmaker starts (CloudWatch keeps them 15 days).

:func:`install_moto_fixes` makes moto's GetMetricStatistics answer as CloudWatch does: StartTime is
rounded down (to the minute for data under 15 days old, 5 minutes under 63 days, else the hour) and
periods are counted from it, so one-minute datapoints sit on whole minutes; moto starts its periods at
the first value found, which merges values AWS keeps in separate minutes (and changes their Average).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

from . import safepath
from .aws import ACCOUNT
from .service import BaseService

log = logging.getLogger("localmaker.metrics")

NAMESPACE = "/aws/sagemaker/TrainingJobs"
DIMENSION = "TrainingJobName"
BATCH = 500  # values per PutMetricData (AWS takes up to 1000 and 1 MB)
# CloudWatch refuses values outside this magnitude range (and NaN, infinities) with InvalidParameterValue
_MIN_MAGNITUDE, _MAX_MAGNITUDE = 8.515920e-109, 1.174271e308


def publishable(value: float) -> bool:
    return math.isfinite(value) and (value == 0 or _MIN_MAGNITUDE <= abs(value) <= _MAX_MAGNITUDE)


class MetricPublisher:
    """Buffers one training job's metric values and puts them into CloudWatch (thread-safe)."""

    def __init__(self, ctx: Any, job_name: str, interval: float = 1.0) -> None:
        self.ctx = ctx
        self.job_name = job_name
        self.interval = interval
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # one PutMetricData at a time, in order
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self.sent = 0

    def add(self, name: str, value: float, timestamp_ms: int) -> None:
        """One value of metric ``name``, found in a log line written at ``timestamp_ms``."""
        if not publishable(value):
            log.debug("job %s: metric %s value %r is not one CloudWatch accepts; not published", self.job_name,
                      name, value)
            return
        datum = {
            "MetricName": name,
            "Dimensions": [{"Name": DIMENSION, "Value": self.job_name}],
            "Timestamp": dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC),
            "Value": value,
        }
        with self._lock:
            if self._closed:
                return
            self._pending.append(datum)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"metrics-{self.job_name}", daemon=True)
                self._thread.start()
            if len(self._pending) >= BATCH:
                self._wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Send everything added so far (the job's status changes after this) and stop."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        self._flush()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._flush()
            with self._lock:
                if self._closed:
                    return

    def _flush(self) -> None:
        with self._send_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if batch:
                self._persist(batch)
            for i in range(0, len(batch), BATCH):
                chunk = batch[i : i + BATCH]
                try:
                    self._cloudwatch().put_metric_data(Namespace=NAMESPACE, MetricData=chunk)
                    self.sent += len(chunk)
                except Exception as exc:  # noqa: BLE001 - metrics never fail the job that reports them
                    log.warning("job %s: could not publish %d metric values to CloudWatch: %s", self.job_name,
                                len(chunk), exc)

    def _persist(self, batch: list[dict[str, Any]]) -> None:
        try:
            path = safepath.inside(self.ctx.home / "metrics" / "TrainingJobs", self.job_name + ".jsonl")
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps({"name": d["MetricName"], "value": d["Value"],
                                             "ts": int(d["Timestamp"].timestamp() * 1000)}) + "\n" for d in batch))
        except (OSError, safepath.PathEscape) as exc:
            log.warning("job %s: could not keep its metric values on disk: %s", self.job_name, exc)

    def _cloudwatch(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session().client(
                "cloudwatch",
                endpoint_url=self.ctx.endpoint_url,
                region_name=self.ctx.region,
                aws_access_key_id="localmaker",
                aws_secret_access_key="localmaker",
                config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30),
            )
        return self._client


# ---- moto's GetMetricStatistics, periods as CloudWatch counts them ----------------------------------------
_installed = False
_install_lock = threading.Lock()


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def round_start(start: dt.datetime, now: dt.datetime | None = None) -> dt.datetime:
    """GetMetricStatistics' StartTime as CloudWatch rounds it (by how long ago it is)."""
    start = _utc(start)
    age = (now or dt.datetime.now(dt.UTC)) - start
    if age <= dt.timedelta(days=15):
        return start.replace(second=0, microsecond=0)
    if age <= dt.timedelta(days=63):
        return start.replace(minute=start.minute - start.minute % 5, second=0, microsecond=0)
    return start.replace(minute=0, second=0, microsecond=0)


def install_moto_fixes() -> None:
    """Replace moto's CloudWatch get_metric_statistics with one that counts periods from the rounded
    StartTime (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from moto.cloudwatch.exceptions import InvalidParameterValue
        from moto.cloudwatch.models import CloudWatchBackend, Statistics

        def get_metric_statistics(
            self: Any,
            namespace: str,
            metric_name: str,
            start_time: dt.datetime,
            end_time: dt.datetime,
            period: int,
            stats: list[str],
            dimensions: list[dict[str, str]],
            unit: str | None = None,
        ) -> list[Any]:
            start, end = round_start(start_time), _utc(end_time)
            if start >= end:
                raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
            buckets: dict[int, Any] = {}
            for md in self.get_all_metrics():
                if md.namespace != namespace or md.name != metric_name:
                    continue
                ts = _utc(md.timestamp)
                if not (start <= ts < end) or (unit and md.unit != unit):
                    continue
                if dimensions and not md.filter(None, None, dimensions):
                    continue
                k = int((ts - start).total_seconds() // period)
                s = buckets.get(k)
                if s is None:
                    s = buckets[k] = Statistics(stats, start + dt.timedelta(seconds=k * period))
                s.metric_data.append(md)
                s.unit = md.unit or "None"  # CloudWatch names the unit of every datapoint ("None" if unset)
            return [buckets[k] for k in sorted(buckets)]

        CloudWatchBackend.get_metric_statistics = get_metric_statistics  # type: ignore[method-assign]
        _installed = True


def restore(root: Path, region: str) -> int:
    """Put the training metrics kept under ``root`` (``<home>/metrics``) back into moto's CloudWatch;
    returns how many values. A torn last line (a crash mid-append) is skipped."""
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[ACCOUNT][region]
    count = 0
    for f in sorted((root / "TrainingJobs").glob("*.jsonl")):
        job = f.name[: -len(".jsonl")]
        data = []
        with f.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    v = json.loads(line)
                    data.append({
                        "MetricName": v["name"],
                        "Dimensions": [{"Name": DIMENSION, "Value": job}],
                        "Value": float(v["value"]),
                        "Timestamp": dt.datetime.fromtimestamp(v["ts"] / 1000, dt.UTC),
                    })
                except (ValueError, KeyError, TypeError):
                    continue
        for i in range(0, len(data), BATCH):
            backend.put_metric_data(NAMESPACE, data[i : i + BATCH])
        count += len(data)
    return count


class MetricsService(BaseService):
    """Training metrics in moto's CloudWatch: its statistics fixed, the values kept on disk put back at start
    (moto keeps them in memory only). CloudWatch's operations themselves are moto's."""

    api = "monitoring"

    def __init__(self, root: Path, region: str) -> None:
        self.root = root
        self.region = region
        install_moto_fixes()  # GetMetricStatistics periods counted as CloudWatch counts them

    def recover(self) -> None:
        restored = restore(self.root, self.region)
        if restored:
            log.info("restored %d training metric values from %s", restored, self.root)
