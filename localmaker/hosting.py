"""Endpoints as supervised local serve processes, and the runtime that invokes them.

Per SageMaker's hosting contract each instance of a production variant runs the image's
``serve`` with the model artifact extracted into its ``/opt/ml/model`` (``SM_MODEL_DIR``),
bound to ``SAGEMAKER_BIND_TO_PORT``, and must answer ``GET /ping`` within the health-check
window. Updates are blue/green: the new fleet must be healthy before traffic moves; if it is
not, the endpoint stays on the old fleet with ``FailureReason`` set.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import logging
import random
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import s3io, safepath
from .aws import ACCOUNT, arn, iso, now
from .context import Ctx
from .errors import AwsError
from .images import ImageNotMapped
from .procs import Child, clean_env, free_port, stop_all

log = logging.getLogger("localmaker.hosting")

KIND = "Endpoint"


def group_for(endpoint: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint}"


class DeployError(Exception):
    pass


@dataclass
class Instance:
    variant: str
    index: int
    port: int
    base: Path
    cmd: list[str]
    workdir: Path
    env: dict[str, str]
    stream: str
    child: Child | None = None
    restarts: int = 0
    _pool: list[http.client.HTTPConnection] = field(default_factory=list)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock)

    def conn(self, timeout: float) -> http.client.HTTPConnection:
        with self._pool_lock:
            if self._pool:
                c = self._pool.pop()
                c.timeout = timeout
                if c.sock is not None:
                    c.sock.settimeout(timeout)
                return c
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def release(self, c: http.client.HTTPConnection) -> None:
        with self._pool_lock:
            if len(self._pool) < 32:
                self._pool.append(c)
                return
        c.close()

    def drop_pool(self) -> None:
        with self._pool_lock:
            for c in self._pool:
                c.close()
            self._pool.clear()


@dataclass
class Fleet:
    """The running processes behind one endpoint config."""

    config_name: str
    config: dict[str, Any]
    variants: dict[str, list[Instance]]
    weights: dict[str, float]
    ready: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False
    _rr: dict[str, itertools.count] = field(default_factory=dict)

    def pick(self, target: str | None) -> tuple[str, Instance]:
        if target:
            if target not in self.variants:
                raise AwsError(
                    "ValidationError",
                    f"Target variant {target} does not exist for this endpoint.",
                )
            name = target
        else:
            names = [v for v in self.variants if self.weights.get(v, 0) > 0] or list(self.variants)
            total = sum(self.weights.get(v, 0) for v in names)
            if total <= 0:
                name = names[0]
            else:
                r = random.uniform(0, total)
                acc = 0.0
                name = names[-1]
                for v in names:
                    acc += self.weights.get(v, 0)
                    if r <= acc:
                        name = v
                        break
        instances = self.variants[name]
        counter = self._rr.setdefault(name, itertools.count())
        return name, instances[next(counter) % len(instances)]

    def all(self) -> list[Instance]:
        return [i for insts in self.variants.values() for i in insts]


class HostingManager:
    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.fleets: dict[str, Fleet] = {}
        self._lock = threading.RLock()
        self._generation = itertools.count(int(time.time()))
        self._closing = threading.Event()
        self.capture = CaptureWriter(ctx)
        self._supervisor = threading.Thread(target=self._supervise, name="endpoint-supervisor", daemon=True)
        self._supervisor.start()

    # ---- lifecycle --------------------------------------------------------------------------------
    def create(self, name: str) -> None:
        threading.Thread(target=self._create, args=(name,), name=f"create-{name}", daemon=True).start()

    def update(self, name: str, new_config: str) -> None:
        threading.Thread(target=self._update, args=(name, new_config), name=f"update-{name}", daemon=True).start()

    def delete(self, name: str) -> None:
        with self._lock:
            fleet = self.fleets.pop(name, None)
        if fleet is not None:
            self._stop_fleet(fleet)

    def restore(self) -> None:
        """Bring back every endpoint that was serving when localmaker last stopped."""
        for doc in self.ctx.store.list(KIND):
            name = doc["EndpointName"]
            status = doc["EndpointStatus"]
            if status in ("InService", "Creating", "Updating", "SystemUpdating", "RollingBack"):
                if status != "InService":
                    self.ctx.store.update(KIND, name, lambda d: d.update(EndpointStatus="Creating"))
                threading.Thread(target=self._restore_one, args=(name, doc), daemon=True).start()
            elif status == "Deleting":
                self.ctx.store.delete(KIND, name)

    def _restore_one(self, name: str, doc: dict[str, Any]) -> None:
        try:
            fleet = self._deploy(name, doc["EndpointConfigName"])
        except DeployError as exc:
            reason = str(exc)[:1024]
            self.ctx.store.update(KIND, name, lambda d: d.update(EndpointStatus="Failed", FailureReason=reason))
            return
        with self._lock:
            self.fleets[name] = fleet
        self.ctx.store.update(KIND, name, lambda d: d.update(EndpointStatus="InService", LastModifiedTime=now()))

    def shutdown(self) -> None:
        self._closing.set()
        with self._lock:
            fleets = list(self.fleets.values())
            self.fleets.clear()
        threads = [threading.Thread(target=self._stop_fleet, args=(f,), daemon=True) for f in fleets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.ctx.settings.stop_grace + 15)
        self.capture.close()

    def _create(self, name: str) -> None:
        doc = self.ctx.store.get(KIND, name)
        if doc is None:
            return
        try:
            fleet = self._deploy(name, doc["EndpointConfigName"])
        except DeployError as exc:
            reason = str(exc)[:1024]
            self.ctx.store.update(
                KIND, name, lambda d: d.update(EndpointStatus="Failed", FailureReason=reason, LastModifiedTime=now())
            )
            return
        with self._lock:
            if not self.ctx.store.exists(KIND, name):  # deleted while creating
                self._stop_fleet(fleet)
                return
            self.fleets[name] = fleet
        self.ctx.store.update(
            KIND,
            name,
            lambda d: d.update(
                EndpointStatus="InService",
                LastModifiedTime=now(),
                ProductionVariants=_variant_summaries(fleet),
            ),
        )

    def _update(self, name: str, new_config: str) -> None:
        try:
            fleet = self._deploy(name, new_config)
        except DeployError as exc:
            reason = f"Update failed, rolled back to the previous endpoint configuration: {exc}"

            def rollback(d: dict[str, Any]) -> None:
                d.update(EndpointStatus="InService", FailureReason=reason[:1024], LastModifiedTime=now())
                d.pop("PendingDeploymentSummary", None)

            self.ctx.store.update(KIND, name, rollback)
            return
        with self._lock:
            old = self.fleets.get(name)
            self.fleets[name] = fleet
        if old is not None:
            self._stop_fleet(old)

        def done(d: dict[str, Any]) -> None:
            d.update(
                EndpointStatus="InService",
                EndpointConfigName=new_config,
                LastModifiedTime=now(),
                ProductionVariants=_variant_summaries(fleet),
            )
            d.pop("FailureReason", None)
            d.pop("PendingDeploymentSummary", None)

        self.ctx.store.update(KIND, name, done)

    # ---- deploying a fleet ------------------------------------------------------------------------------
    def _deploy(self, endpoint: str, config_name: str) -> Fleet:
        cfg = self.ctx.store.get("EndpointConfig", config_name)
        if cfg is None:
            raise DeployError(f"Could not find endpoint configuration \"{config_name}\".")
        gen = next(self._generation)
        variants: dict[str, list[Instance]] = {}
        weights: dict[str, float] = {}
        fleet = Fleet(config_name, cfg, variants, weights)
        try:
            for pv in cfg["ProductionVariants"]:
                vname = pv["VariantName"]
                weights[vname] = float(pv.get("InitialVariantWeight", 1.0))
                count = int(pv.get("InitialInstanceCount", 1) or 1)
                if "ServerlessConfig" in pv:
                    count = 1
                variants[vname] = [self._start_instance(endpoint, gen, pv, i) for i in range(count)]
            timeout = self.ctx.settings.health_check_timeout
            for pv in cfg["ProductionVariants"]:
                t = pv.get("ContainerStartupHealthCheckTimeoutInSeconds")
                if t:
                    timeout = min(timeout, float(t))
            for inst in fleet.all():
                await_ping(inst, timeout)
        except DeployError:
            self._stop_fleet(fleet)
            raise
        except Exception as exc:
            self._stop_fleet(fleet)
            log.exception("deploying %s failed", endpoint)
            raise DeployError(f"localmaker failed to deploy the endpoint: {type(exc).__name__}: {exc}") from exc
        fleet.ready.set()
        return fleet

    def _start_instance(self, endpoint: str, gen: int, pv: dict[str, Any], index: int) -> Instance:
        vname = pv["VariantName"]
        base = safepath.inside(self.ctx.home / "endpoints", endpoint, str(gen), f"{vname}-{index + 1}")
        inst = prepare_instance(
            self.ctx, pv["ModelName"], base, vname, index,
            {"SAGEMAKER_ENDPOINT_NAME": endpoint, "SAGEMAKER_VARIANT_NAME": vname},
        )
        self._spawn(endpoint, inst)
        return inst

    def _spawn(self, endpoint: str, inst: Instance) -> None:
        spawn(self.ctx, inst, group_for(endpoint))

    def _stop_fleet(self, fleet: Fleet) -> None:
        fleet.stopping = True
        instances = fleet.all()
        for inst in instances:
            inst.drop_pool()
        stop_all([i.child for i in instances if i.child is not None], self.ctx.settings.stop_grace)
        for inst in instances:
            shutil.rmtree(inst.base, ignore_errors=True)

    def _supervise(self) -> None:
        while not self._closing.wait(self.ctx.settings.supervise_interval):
            with self._lock:
                items = list(self.fleets.items())
            for endpoint, fleet in items:
                if fleet.stopping:
                    continue
                for inst in fleet.all():
                    if inst.child is not None and inst.child.poll() is not None and not fleet.stopping:
                        code = inst.child.poll()
                        inst.restarts += 1
                        self.ctx.logs.put(
                            group_for(endpoint),
                            inst.stream,
                            [f"localmaker: serve process exited with code {code}; restarting (restart #{inst.restarts})"],
                        )
                        try:
                            self._spawn(endpoint, inst)
                            await_ping(inst, self.ctx.settings.health_check_timeout)
                        except DeployError as exc:
                            self.ctx.logs.put(group_for(endpoint), inst.stream, [f"localmaker: restart failed: {exc}"])

    # ---- runtime ------------------------------------------------------------------------------------
    def invoke(self, endpoint: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        doc = self.ctx.store.get(KIND, endpoint)
        if doc is None:
            raise AwsError("ValidationError", f"Endpoint {endpoint} of account {ACCOUNT} not found.")
        if len(body) > self.ctx.settings.max_payload:
            raise AwsError(
                "ValidationError",
                f"Request payload size {len(body)} bytes exceeds the maximum allowed size of "
                f"{self.ctx.settings.max_payload} bytes (6 MB).",
                status=413,
            )
        with self._lock:
            fleet = self.fleets.get(endpoint)
        if fleet is None:
            if doc["EndpointStatus"] in ("InService",):
                # being restored after a restart: wait for it rather than fail a client mid-flight
                deadline = time.monotonic() + self.ctx.settings.health_check_timeout
                while fleet is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                    with self._lock:
                        fleet = self.fleets.get(endpoint)
            if fleet is None:
                raise AwsError(
                    "ValidationError",
                    f"Endpoint {endpoint} of account {ACCOUNT} is in status {doc['EndpointStatus']}; "
                    "it must be InService to be invoked.",
                )
        variant, inst = fleet.pick(headers.get("X-Amzn-SageMaker-Target-Variant"))
        fwd = {"Content-Type": headers.get("Content-Type", "application/octet-stream")}
        if headers.get("Accept"):
            fwd["Accept"] = headers["Accept"]
        for h in ("X-Amzn-SageMaker-Custom-Attributes", "X-Amzn-SageMaker-Inference-Id"):
            if headers.get(h):
                fwd[h] = headers[h]
        status, rheaders, rbody = self._forward(inst, body, fwd)
        if status >= 400:
            stream_arn = (
                f"arn:aws:logs:{self.ctx.region}:{ACCOUNT}:log-group:{group_for(endpoint)}"
            )
            text = rbody.decode("utf-8", errors="replace")
            kind = "client" if status < 500 else "server"
            raise AwsError(
                "ModelError",
                f"Received {kind} error ({status}) from primary with message \"{text}\". "
                f"See {stream_arn} in account {ACCOUNT} for more information.",
                status=424,
                OriginalStatusCode=status,
                OriginalMessage=text,
                LogStreamArn=stream_arn,
            )
        out = {
            "Content-Type": rheaders.get("content-type", "application/octet-stream"),
            "x-Amzn-Invoked-Production-Variant": variant,
        }
        if rheaders.get("x-amzn-sagemaker-custom-attributes"):
            out["X-Amzn-SageMaker-Custom-Attributes"] = rheaders["x-amzn-sagemaker-custom-attributes"]
        cap = fleet.config.get("DataCaptureConfig")
        if cap and cap.get("EnableCapture"):
            self.capture.record(endpoint, variant, cap, body, fwd, rbody, out["Content-Type"], headers)
        return 200, out, rbody

    def _forward(self, inst: Instance, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        timeout = self.ctx.settings.invoke_timeout
        for attempt in range(2):
            c = inst.conn(timeout)
            try:
                c.request("POST", "/invocations", body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                rh = {k.lower(): v for k, v in r.getheaders()}
                if r.will_close:
                    c.close()
                else:
                    inst.release(c)
                return r.status, rh, data
            except TimeoutError as exc:
                c.close()
                raise AwsError(
                    "ModelError",
                    f"Your invocation timed out while waiting for a response from container primary "
                    f"(over {timeout:.0f} s). Review the latency metrics and CloudWatch logs for the endpoint.",
                    status=424,
                    OriginalStatusCode=504,
                    OriginalMessage="timeout",
                ) from exc
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                c.close()
                if attempt == 0:
                    continue  # a pooled keep-alive connection the server closed: retry once on a fresh one
                raise AwsError(
                    "ModelError",
                    f"An error occurred while sending the request to container primary: {exc}",
                    status=424,
                    OriginalStatusCode=502,
                    OriginalMessage=str(exc),
                ) from exc
        raise AssertionError("unreachable")


def prepare_instance(
    ctx: Ctx, model_name: str, base: Path, variant: str, index: int, extra_env: dict[str, str]
) -> Instance:
    """Resolve a model's image and artifact into a ready-to-start serve process (not started)."""
    model = ctx.store.get("Model", model_name)
    if model is None:
        raise DeployError(f"Could not find model \"{arn(ctx.region, 'model/' + model_name.lower())}\".")
    container = model.get("PrimaryContainer") or (model.get("Containers") or [None])[0]
    if container is None:
        raise DeployError(f"Model {model_name} has no container.")
    try:
        spec = ctx.images.resolve(container.get("Image", ""))
        cmd = spec.command("serve")
    except ImageNotMapped as exc:
        raise DeployError(str(exc)) from exc
    shutil.rmtree(base, ignore_errors=True)
    (base / "model").mkdir(parents=True)
    if container.get("ModelDataUrl"):
        try:
            s3io.fetch_model(ctx.s3(), container["ModelDataUrl"], base / "model")
        except s3io.ChannelError as exc:
            raise DeployError(str(exc)) from exc
    port = free_port()
    env = clean_env(
        ctx.endpoint_url,
        ctx.region,
        spec.env,
        container.get("Environment", {}),
        {
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "SAGEMAKER_BASE_DIR": str(base),
            "SM_MODEL_DIR": str(base / "model"),
            "SAGEMAKER_SAFE_PORT_RANGE": f"{port}-{port}",
        },
        extra_env,
    )
    stream = f"{variant}/i-{uuid.uuid5(uuid.NAMESPACE_URL, str(base)).hex[:17]}"
    return Instance(variant, index, port, base, cmd, spec.workdir, env, stream)


def spawn(ctx: Ctx, inst: Instance, group: str) -> None:
    ctx.logs.ensure_stream(group, inst.stream)
    logs = ctx.logs
    inst.drop_pool()
    inst.child = Child(inst.cmd, inst.workdir, inst.env, lambda line: logs.put(group, inst.stream, [line]))


def await_ping(inst: Instance, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    assert inst.child is not None
    last = "no answer"
    while time.monotonic() < deadline:
        code = inst.child.poll()
        if code is not None:
            inst.child.wait(2)
            raise DeployError(
                f"The primary container for production variant {inst.variant} did not pass the ping health "
                f"check: the container exited with code {code}. Please check CloudWatch logs for this endpoint."
            )
        try:
            c = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=2)
            c.request("GET", "/ping")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return
            last = f"GET /ping answered {r.status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise DeployError(
        f"The primary container for production variant {inst.variant} did not pass the ping health check "
        f"within {timeout:.0f} s ({last}). Please check CloudWatch logs for this endpoint."
    )


def _variant_summaries(fleet: Fleet) -> list[dict[str, Any]]:
    out = []
    for pv in fleet.config["ProductionVariants"]:
        n = len(fleet.variants.get(pv["VariantName"], []))
        out.append(
            {
                "VariantName": pv["VariantName"],
                "CurrentWeight": float(pv.get("InitialVariantWeight", 1.0)),
                "DesiredWeight": float(pv.get("InitialVariantWeight", 1.0)),
                "CurrentInstanceCount": n,
                "DesiredInstanceCount": n,
                "DeployedImages": [],
            }
        )
    return out


class CaptureWriter:
    """Buffers captured request/response pairs and writes Model Monitor's jsonl files to S3."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self._buf: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="data-capture", daemon=True)
        self._thread.start()

    def record(
        self,
        endpoint: str,
        variant: str,
        cfg: dict[str, Any],
        req: bytes,
        req_headers: dict[str, str],
        resp: bytes,
        resp_type: str,
        headers: dict[str, str],
    ) -> None:
        pct = float(cfg.get("InitialSamplingPercentage", 100))
        if pct < 100 and random.uniform(0, 100) >= pct:
            return
        modes = {o.get("CaptureMode") for o in cfg.get("CaptureOptions", [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}])}
        hdr = cfg.get("CaptureContentTypeHeader") or {}
        csv_types = hdr.get("CsvContentTypes") or ["text/csv"]
        json_types = hdr.get("JsonContentTypes") or ["application/json"]
        t = now()
        data: dict[str, Any] = {}
        if "Input" in modes:
            data["endpointInput"] = _capture_part(req, req_headers.get("Content-Type", ""), "INPUT", csv_types, json_types)
        if "Output" in modes:
            data["endpointOutput"] = _capture_part(resp, resp_type, "OUTPUT", csv_types, json_types)
        meta: dict[str, Any] = {"eventId": str(uuid.uuid4()), "inferenceTime": iso(t)[:-5] + "Z"}
        if headers.get("X-Amzn-SageMaker-Inference-Id"):
            meta["inferenceId"] = headers["X-Amzn-SageMaker-Inference-Id"]
        line = json.dumps({"captureData": data, "eventMetadata": meta, "eventVersion": "0"})
        hour = time.strftime("%Y/%m/%d/%H", time.gmtime(t))
        prefix = f"{cfg['DestinationS3Uri'].rstrip('/')}/{endpoint}/{variant}/{hour}"
        with self._lock:
            self._buf.setdefault(prefix, []).append(line)

    def flush(self) -> None:
        with self._lock:
            buf, self._buf = self._buf, {}
        for prefix, lines in buf.items():
            t = time.time()
            name = time.strftime("%M-%S", time.gmtime(t)) + f"-{int(t * 1000) % 1000:03d}-{uuid.uuid4().hex[:8]}.jsonl"
            try:
                s3io.upload_bytes(self.ctx.s3(), f"{prefix}/{name}", ("\n".join(lines) + "\n").encode())
            except Exception:  # noqa: BLE001 - keep the records for the next try
                log.exception("data capture upload to %s failed; will retry", prefix)
                with self._lock:
                    self._buf.setdefault(prefix, [])[:0] = lines

    def _loop(self) -> None:
        while not self._closing.wait(self.ctx.settings.capture_flush_interval):
            self.flush()

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self.flush()


def _capture_part(data: bytes, ctype: str, mode: str, csv_types: list[str], json_types: list[str]) -> dict[str, Any]:
    base_type = ctype.split(";")[0].strip()
    if base_type in csv_types or base_type in json_types:
        try:
            text = data.decode("utf-8")
            return {
                "observedContentType": ctype,
                "mode": mode,
                "data": text,
                "encoding": "CSV" if base_type in csv_types else "JSON",
            }
        except UnicodeDecodeError:
            pass
    return {"observedContentType": ctype, "mode": mode, "data": base64.b64encode(data).decode(), "encoding": "BASE64"}
