"""Batch transform jobs: the model's serve processes fed every record of every input object.

Follows SageMaker's transform contract: records are split per ``SplitType`` (None, Line,
RecordIO), packed per ``BatchStrategy`` and ``MaxPayloadInMB``, sent ``MaxConcurrentTransforms``
at a time, optionally filtered and joined (``DataProcessing``: InputFilter, JoinSource,
OutputFilter — JSONPath subsets), assembled per ``AssembleWith`` and written as one
``<key>.out`` per input object. Defaults come from the container's ``GET /execution-parameters``
when the request leaves them out. A record the container rejects fails the job with a reason
naming the object and the record.
"""

from __future__ import annotations

import copy
import csv
import gzip
import http.client
import io
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from smformats import recordio

from . import controlplane, csvbulk, s3io, safepath
from .aws import now
from .context import Ctx
from .errors import validation
from .hosting import DeployError, ExchangeError, Instance, await_ping, call, prepare_instance, spawn
from .jobrunner import SHUTDOWN_REASON, JobRun, JobRunner
from .jobs import JobService
from .jsonpath import apply_path, parse_path

log = logging.getLogger("localmaker.transform")

KIND = "TransformJob"
GROUP = "/aws/sagemaker/TransformJobs"


class TransformFailed(Exception):
    pass


# ---- record splitting ---------------------------------------------------------------------------
def split_records(data: bytes, split_type: str, where: str) -> list[bytes]:
    if split_type in ("None", None):
        return [data]
    if split_type == "Line":
        return [line for line in data.splitlines() if line.strip()]
    if split_type == "RecordIO":
        return split_recordio(data, where)
    raise TransformFailed(f"SplitType {split_type} is not supported by localmaker (object {where})")


def split_recordio(data: bytes, where: str) -> list[bytes]:
    """Whole RecordIO records (header + payload + padding), so a batch is a valid RecordIO stream."""
    try:
        return recordio.split_recordio(data)
    except recordio.RecordIOError as exc:
        raise TransformFailed(f"object {where}: {exc}") from None


def _csv_fields(record: bytes) -> list[str]:
    """A CSV record's fields. Without quotes a record is plain comma-separated text: split it
    directly (with _csv_line's shortcut this halves the per-record cost of a joined transform;
    the csv module was most of its time)."""
    text = record.decode("utf-8")
    if '"' not in text and "\r" not in text and "\n" not in text:
        return text.split(",") if text else []
    return next(csv.reader([text]), [])


def _csv_line(fields: Any) -> bytes:
    """One CSV record, quoted exactly as ``csv.writer`` would (plain fields are joined directly)."""
    if not isinstance(fields, list):
        fields = [fields]
    if all(type(f) is str for f in fields):
        text = ",".join(fields)
        if text and text.count(",") == len(fields) - 1 and '"' not in text and "\r" not in text and "\n" not in text:
            return text.encode()
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue().encode()


class Filters:
    def __init__(self, dp: dict[str, Any], content_type: str, accept: str) -> None:
        self.input = parse_path(dp.get("InputFilter", "$"))
        self.output = parse_path(dp.get("OutputFilter", "$"))
        self.join = dp.get("JoinSource", "None") == "Input"
        self.in_csv = content_type.split(";")[0].strip() == "text/csv"
        self.in_json = "json" in content_type
        self.out_csv = (accept or content_type).split(";")[0].strip() == "text/csv"
        self.active = bool(self.input or self.output or self.join)
        if self.active and not (self.in_csv or self.in_json):
            raise ValueError(
                f"DataProcessing filters and joins need ContentType text/csv or JSON, not '{content_type}'"
            )

    def filter_inputs(self, records: list[bytes]) -> list[bytes]:
        """The payload of every record: a whole batch at once where csvbulk applies."""
        if not self.input:
            return records
        if self.in_csv:
            bulk = csvbulk.select(records, self.input)
            if bulk is not None:
                return bulk
        return [self.filter_input(r) for r in records]

    def finish_batch(self, sources: list[bytes], outputs: list[bytes]) -> bytes | None:
        """Every record's output line at once (CSV in and out), as newline-terminated lines in one
        buffer; None where that does not apply: then finish() each."""
        if self.in_csv and self.out_csv and (self.join or self.output):
            return csvbulk.select_lines(outputs, self.output, sources if self.join else None)
        return None

    def filter_input(self, record: bytes) -> bytes:
        if not self.input:
            return record
        if self.in_csv:
            return _csv_line(apply_path(_csv_fields(record), self.input))
        return json.dumps(apply_path(json.loads(record), self.input)).encode()

    def finish(self, source: bytes, output: bytes) -> bytes:
        output = output.rstrip(b"\r\n")
        if not self.join and not self.output:
            return output
        if self.in_csv:
            fields = _csv_fields(source) if self.join else []
            out_fields = _csv_fields(output) if self.out_csv else [output.decode()]
            joined: Any = fields + out_fields
            if self.output:
                joined = apply_path(joined, self.output)
            return _csv_line(joined)
        doc: Any = json.loads(source) if self.join else None
        try:
            out_val: Any = json.loads(output)
        except ValueError:
            out_val = output.decode()
        if self.join:
            if isinstance(doc, dict):
                doc["SageMakerOutput"] = out_val
            elif isinstance(doc, list):
                doc = doc + (out_val if isinstance(out_val, list) else [out_val])
            else:
                doc = {"SageMakerInput": doc, "SageMakerOutput": out_val}
        else:
            doc = out_val
        if self.output:
            doc = apply_path(doc, self.output)
        return json.dumps(doc).encode()


# ---- the job -------------------------------------------------------------------------------------------
class TransformRun(JobRun):
    """One transform job: start the model's serve processes, feed them every record, write the outputs."""

    def __init__(self, runner: JobRunner, name: str) -> None:
        super().__init__(runner, name)
        self.instances: list[Instance] = []

    def _update(self, **fields: Any) -> None:
        self.update(lambda d: d.update(LastModifiedTime=now(), **fields))

    def run(self) -> None:
        try:
            job = self.ctx.store.get(KIND, self.name)
            assert job is not None
            self._update(TransformStartTime=now())
            n = int(job["TransformResources"].get("InstanceCount", 1))
            stamp = int(time.time())
            for i in range(n):
                base = safepath.inside(self.ctx.home / "jobs" / "transform", self.name, f"instance-{i + 1}")
                inst = prepare_instance(
                    self.ctx, job["ModelName"], base, self.name, i,
                    {**job.get("Environment", {}), "SAGEMAKER_BATCH": "true"},
                )
                inst.stream = f"{inst.stream}-{stamp}"  # as AWS names them: <job>/<instance-id>-<epoch>
                spawn(self.ctx, inst, GROUP)
                self.instances.append(inst)
            for inst in self.instances:
                await_ping(inst, self.ctx.settings.health_check_timeout)
            params = self._execution_parameters(self.instances[0])
            self._transform(job, params)
            if self.stop_requested.is_set():
                self._end_stopped()
            else:
                self._update(TransformJobStatus="Completed", TransformEndTime=now())
        except (DeployError, TransformFailed, s3io.ChannelError) as exc:
            if self.stop_requested.is_set():
                self._end_stopped()
            else:
                prefix = "ClientError: " if not isinstance(exc, DeployError) else ""
                self.fail(prefix + str(exc))

    def cleanup(self) -> None:
        for inst in self.instances:
            if inst.child is not None:
                inst.child.stop(self.ctx.settings.stop_grace)

    def _end_stopped(self) -> None:
        if self.shutdown.is_set():
            self.fail(SHUTDOWN_REASON)
        else:
            self._update(TransformJobStatus="Stopped", TransformEndTime=now())

    def _execution_parameters(self, inst: Instance) -> dict[str, Any]:
        try:
            c = inst.connection(5)
            c.request("GET", "/execution-parameters")
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200:
                return json.loads(body)
        except (OSError, ValueError, http.client.HTTPException):
            pass
        return {}

    def _transform(self, job: dict[str, Any], params: dict[str, Any]) -> None:
        instances, stop = self.instances, self.stop_requested
        tin, tout = job["TransformInput"], job["TransformOutput"]
        split = tin.get("SplitType", "None")
        strategy = job.get("BatchStrategy") or {"MULTI_RECORD": "MultiRecord", "SINGLE_RECORD": "SingleRecord"}.get(
            str(params.get("BatchStrategy", "")).upper(), "MultiRecord" if split != "None" else "SingleRecord"
        )
        max_mb = job.get("MaxPayloadInMB") if job.get("MaxPayloadInMB") is not None else params.get("MaxPayloadInMB", 6)
        max_bytes = int(max_mb) * 1024 * 1024 if max_mb else 2**62
        concurrency = int(job.get("MaxConcurrentTransforms") or params.get("MaxConcurrentTransforms") or 1)
        self._update(BatchStrategy=strategy, MaxPayloadInMB=int(max_mb), MaxConcurrentTransforms=concurrency)
        ctype = tin.get("ContentType", "application/octet-stream")
        accept = tout.get("Accept", "")
        try:
            filters = Filters(job.get("DataProcessing", {}), ctype, accept)
        except ValueError as exc:
            raise TransformFailed(str(exc)) from exc
        assemble_line = tout.get("AssembleWith", "None") == "Line"
        per_record = filters.active
        if per_record and strategy == "MultiRecord" and split not in ("Line",):
            raise TransformFailed("DataProcessing with BatchStrategy MultiRecord needs SplitType Line")
        s3 = self.ctx.s3()
        objects = s3io.resolve_objects(s3, tin["DataSource"]["S3DataSource"])
        out_prefix = tout["S3OutputPath"].rstrip("/")
        rr = [0]
        lock = threading.Lock()

        def post(body: bytes) -> tuple[int, bytes]:
            # each instance's keep-alive pool (hosting.call): an idle connection is never reused past the
            # server's keep-alive, and one the server closed under us is resent once on a new connection
            with lock:
                inst = instances[rr[0] % len(instances)]
                rr[0] += 1
            headers = {"Content-Type": ctype}
            if accept:
                headers["Accept"] = accept
            try:
                status, _, data = call(inst, "POST", "/invocations", body, headers, self.ctx.settings.invoke_timeout)
            except (TimeoutError, ExchangeError) as exc:
                raise TransformFailed(f"the container on {inst.stream} did not answer: {exc}") from exc
            return status, data

        records_total = 0
        data_log = f"{instances[0].stream}/data-log"  # AWS: <job>/<instance-id>-<epoch>/data-log
        for bucket, key, rel in objects:
            if stop.is_set():
                return
            where = f"s3://{bucket}/{key}"
            self.ctx.logs.put(GROUP, data_log, [f"{where}: reading"])
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if tin.get("CompressionType") == "Gzip":
                try:
                    data = gzip.decompress(data)
                except OSError as exc:
                    raise TransformFailed(f"object {where} is not gzip data") from exc
            records = split_records(data, split, where)
            try:
                payloads = filters.filter_inputs(records)
            except (ValueError, KeyError, IndexError, TypeError, csv.Error) as exc:
                idx = next(i for i, r in enumerate(records) if not _filter_ok(filters, r))
                raise TransformFailed(
                    f"InputFilter failed on object {where}, record {idx + 1}: {type(exc).__name__}: {exc}"
                ) from exc
            batches = self._batches(payloads, strategy, split, max_bytes, where)
            self.ctx.logs.put(GROUP, data_log, [f"{where}: {len(records)} records in {len(batches)} requests"])

            def run(batch: tuple[int, int, bytes]) -> tuple[int, int, int, bytes]:
                if stop.is_set():
                    return batch[0], batch[1], -1, b""
                status, body = post(batch[2])
                return batch[0], batch[1], status, body

            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                results = list(pool.map(run, batches))
            if stop.is_set():
                return
            outputs: list[bytes] = []
            for start, end, status, body in results:
                if status >= 400:
                    raise TransformFailed(self._explain(where, start, end, status, body, payloads, post))
                if per_record:
                    bulk = None
                    if end - start > 1 and assemble_line and body.isascii():
                        bulk = filters.finish_batch(records[start:end], body.rstrip(b"\r\n").split(b"\n"))
                    if bulk is not None and bulk.count(b"\n") == end - start:
                        outputs.append(bulk)  # whole lines already: assembled as they are
                        continue
                    lines = body.decode("utf-8", errors="replace").rstrip("\r\n").split("\n") if end - start > 1 else [body.decode("utf-8", errors="replace")]
                    if len(lines) != end - start:
                        raise TransformFailed(
                            f"object {where}, records {start + 1}-{end}: the container returned {len(lines)} "
                            f"lines for {end - start} records, so outputs cannot be joined to their inputs"
                        )
                    for i, line in enumerate(lines):
                        try:
                            outputs.append(filters.finish(records[start + i], line.encode()))
                        except (ValueError, KeyError, IndexError, TypeError, csv.Error) as exc:
                            raise TransformFailed(
                                f"OutputFilter/JoinSource failed on object {where}, record {start + i + 1}: {exc}"
                            ) from exc
                else:
                    outputs.append(body)
            if assemble_line:
                blob = b"".join(o if o.endswith(b"\n") else o + b"\n" for o in outputs)
            else:
                blob = b"".join(outputs)
            s3io.upload_bytes(s3, f"{out_prefix}/{rel}.out", blob)
            records_total += len(records)
        self.ctx.logs.put(GROUP, data_log, [f"done: {records_total} records from {len(objects)} objects"])

    @staticmethod
    def _batches(
        records: list[bytes], strategy: str, split: str, max_bytes: int, where: str
    ) -> list[tuple[int, int, bytes]]:
        sep = b"\n" if split == "Line" else b""
        out: list[tuple[int, int, bytes]] = []
        start, size, cur = 0, 0, []  # type: ignore[var-annotated]
        for i, r in enumerate(records):
            if len(r) > max_bytes:
                raise TransformFailed(
                    f"object {where}, record {i + 1} is {len(r)} bytes, larger than MaxPayloadInMB allows ({max_bytes} bytes)"
                )
            if strategy == "SingleRecord":
                out.append((i, i + 1, r + (sep if sep else b"")))
                continue
            add = len(r) + len(sep)
            if cur and size + add > max_bytes:
                out.append((start, i, sep.join(cur) + sep))
                start, size, cur = i, 0, []
            cur.append(r)
            size += add
        if cur:
            out.append((start, len(records), sep.join(cur) + sep))
        return out

    @staticmethod
    def _explain(where: str, start: int, end: int, status: int, body: bytes, payloads: list[bytes], post: Any) -> str:
        msg = body.decode("utf-8", errors="replace")[:300]
        if end - start > 1 and 400 <= status < 500:
            # find the record the container rejects, so the user can fix exactly that one
            for i in range(start, end):
                st, b = post(payloads[i] + b"\n")
                if st >= 400:
                    return (f"object {where}, record {i + 1}: the container answered {st}: "
                            f"{b.decode('utf-8', errors='replace')[:300]}")
        span = f"record {start + 1}" if end - start == 1 else f"records {start + 1}-{end}"
        return f"object {where}, {span}: the container answered {status}: {msg}"


def _filter_ok(filters: Filters, record: bytes) -> bool:
    try:
        filters.filter_input(record)
        return True
    except (ValueError, KeyError, IndexError, TypeError, csv.Error):
        return False


# ---- API -----------------------------------------------------------------------------------------------
def describe_view(doc: dict[str, Any]) -> dict[str, Any]:
    """DescribeTransformJob's answer: the stored job with the defaults AWS shows for what the request
    left out (input compression and split, output assembly and key, the identity DataProcessing)."""
    out = copy.deepcopy(doc)
    tin = out["TransformInput"]
    tin.setdefault("CompressionType", "None")
    tin.setdefault("SplitType", "None")
    tout = out["TransformOutput"]
    tout.setdefault("AssembleWith", "None")
    tout.setdefault("KmsKeyId", "")
    dp = out.setdefault("DataProcessing", {})
    dp.setdefault("InputFilter", "$")
    dp.setdefault("OutputFilter", "$")
    dp.setdefault("JoinSource", "None")
    return out


class TransformService(JobService):
    """CreateTransformJob, DescribeTransformJob, ListTransformJobs, StopTransformJob."""

    summary_keys = ("TransformJobName", "TransformJobArn", "CreationTime", "TransformEndTime", "LastModifiedTime",
                    "TransformJobStatus", "FailureReason")

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx, JobRunner(ctx, KIND, TransformRun))

    def create(self, p: dict[str, Any]) -> dict[str, Any]:
        if self.store.get("Model", p["ModelName"]) is None:
            raise validation(f"Could not find model \"{controlplane.resource_arn(self.ctx.region, 'model', p['ModelName'])}\".")
        if not p["TransformInput"]["DataSource"].get("S3DataSource"):
            raise validation("TransformInput.DataSource.S3DataSource is required.")
        for path_key in ("InputFilter", "OutputFilter"):
            path = p.get("DataProcessing", {}).get(path_key)
            if path:
                try:
                    parse_path(path)
                except ValueError as exc:
                    raise validation(f"DataProcessing.{path_key}: {exc}") from exc
        return self.launch(p, self.new_doc(p))

    def view(self, doc: dict[str, Any]) -> dict[str, Any]:
        return describe_view(doc)
