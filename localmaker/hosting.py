"""Endpoints as supervised local serve processes, and the runtime that invokes them.

Per SageMaker's hosting contract each instance of a production variant runs the image's
``serve`` with the model artifact extracted into its ``/opt/ml/model`` (``SM_MODEL_DIR``),
bound to ``SAGEMAKER_BIND_TO_PORT``, and must answer ``GET /ping`` within the health-check
window. Updates are blue/green: the new fleet must be healthy before traffic moves; if it is
not, the endpoint stays on the old fleet with ``FailureReason`` set.
"""

from __future__ import annotations

import base64
import collections
import http.client
import itertools
import json
import logging
import os
import random
import select
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import s3io, safepath
from .aws import ACCOUNT, arn, iso, now
from .context import Ctx
from .errors import AwsError
from .images import ImageNotMapped
from .procs import Child, clean_env, free_port, stop_all
from .sandbox import Sandbox

log = logging.getLogger("localmaker.hosting")

KIND = "Endpoint"


def group_for(endpoint: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint}"


class DeployError(Exception):
    pass


#: A pooled keep-alive connection idle longer than this is closed instead of reused. Serve processes
#: close idle connections after their keep-alive (gunicorn's default, the built-ins' server: 2 s; the
#: DNN regressor's: 5 s), and a request written into a connection the server is closing fails with a
#: broken pipe. Kept well below the shortest keep-alive the project's programs use.
IDLE_REUSE_SECONDS = 1.0
#: Longest wait between two restarts of a serve process that keeps failing its ping check.
RESTART_BACKOFF_CAP = 30.0
#: Pooled connections per instance.
POOL_SIZE = 32


class ExchangeError(Exception):
    """A request to a serve process got no response. ``sent`` is False when the request never reached
    any process (the connection was refused), so another instance may take it."""

    def __init__(self, exc: BaseException, sent: bool, first: BaseException | None = None) -> None:
        text = str(exc) or type(exc).__name__
        if first is not None:
            text = f"{str(first) or type(first).__name__}; sent again on a new connection: {text}"
        super().__init__(text)
        self.exc = exc
        self.sent = sent


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket: a sandboxed serve process (runtime: sandbox) listens on port 8080 in a
    network namespace of its own, and a relay inside the sandbox forwards this socket to it."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _peer_closed(c: http.client.HTTPConnection) -> bool:
    """An idle keep-alive socket that is readable has been closed by the server (or holds bytes nobody
    asked for): either way it must not carry a request."""
    if c.sock is None:
        return True
    try:
        p = select.poll()
        p.register(c.sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(p.poll(0))
    except (OSError, ValueError):
        return True


def _no_response_yet(phase: str, exc: BaseException) -> bool:
    """The failure happened writing the request or before the first byte of the status line."""
    if phase == "send":
        return isinstance(exc, OSError)
    if phase == "status":
        # RemoteDisconnected is an empty status line (it subclasses ConnectionResetError)
        return isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError))
    return False


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
    #: in rotation: passed its ping check and not known to be down
    healthy: bool = False
    #: a restart/health thread owns this instance
    healing: bool = False
    _pool: list[tuple[http.client.HTTPConnection, float]] = field(default_factory=list)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock)
    #: serialises starting and stopping the process (a restart racing an endpoint deletion)
    _proc_lock: threading.Lock = field(default_factory=threading.Lock)
    #: runtime: sandbox: the process runs in its own network namespace, reached through a unix socket
    sandbox: Sandbox | None = None

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """A new (unconnected) HTTP connection to the serve process: its loopback port, or the unix socket
        of its sandbox's relay."""
        socket_path = self.child.socket if self.child is not None else None
        if socket_path is not None:
            return UnixHTTPConnection(str(socket_path), timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def in_rotation(self) -> bool:
        return self.healthy and self.child is not None and self.child.poll() is None

    def conn(self, timeout: float, fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        """A connection to the serve process and whether it is a reused keep-alive one. A pooled
        connection idle longer than IDLE_REUSE_SECONDS, or already closed by the server, is discarded."""
        stale: list[http.client.HTTPConnection] = []
        found: http.client.HTTPConnection | None = None
        if not fresh:
            now_ = time.monotonic()
            with self._pool_lock:
                while self._pool:
                    c, used = self._pool.pop()
                    if now_ - used <= IDLE_REUSE_SECONDS and not _peer_closed(c):
                        found = c
                        break
                    stale.append(c)
                if found is None:
                    # the pool is newest-last: everything older than a stale one is stale too
                    stale.extend(c for c, used in self._pool if now_ - used > IDLE_REUSE_SECONDS)
                    self._pool = [(c, used) for c, used in self._pool if now_ - used <= IDLE_REUSE_SECONDS]
        for c in stale:
            c.close()
        if found is not None:
            found.timeout = timeout
            if found.sock is not None:
                found.sock.settimeout(timeout)
            return found, True
        return self.connection(timeout), False

    def release(self, c: http.client.HTTPConnection) -> None:
        with self._pool_lock:
            if len(self._pool) < POOL_SIZE:
                self._pool.append((c, time.monotonic()))
                return
        c.close()

    def drop_pool(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for c, _ in pool:
            c.close()


def call(
    inst: Instance, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange with a serve process over its keep-alive pool.

    A request that fails on a *reused* connection while it is being written, or before any byte of the
    status line arrives, is the server closing an idle connection under us: it is sent again once, on a
    brand-new connection that never goes through the pool. Any other failure is final (the process may
    have handled the request). Raises TimeoutError, or ExchangeError (``sent`` False when nothing
    reached the process: connection refused).
    """
    fresh = False
    first: BaseException | None = None
    while True:
        c, reused = inst.conn(timeout, fresh=fresh)
        phase = "send"
        try:
            if c.sock is None:
                phase = "connect"
                c.connect()
                phase = "send"
            c.request(method, path, body=body, headers=headers)
            phase = "status"
            r = c.getresponse()
            phase = "body"
            data = r.read()
        except TimeoutError:
            c.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            c.close()
            if reused and not fresh and _no_response_yet(phase, exc):
                log.debug("stale keep-alive connection to port %d (%s); resending on a new one", inst.port, exc)
                fresh, first = True, exc
                continue
            raise ExchangeError(exc, sent=first is not None or phase != "connect", first=first) from exc
        rh = {k.lower(): v for k, v in r.getheaders()}
        if r.will_close:
            c.close()
        else:
            inst.release(c)
        return r.status, rh, data


@dataclass
class Fleet:
    """The running processes behind one endpoint config."""

    config_name: str
    config: dict[str, Any]
    variants: dict[str, list[Instance]]
    weights: dict[str, float]
    ready: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False
    #: seconds a (re)started serve process has to pass its ping check
    ping_timeout: float = 120.0
    _rr: dict[str, itertools.count] = field(default_factory=dict)

    def pick(self, target: str | None) -> tuple[str, Instance | None]:
        """The variant a request goes to (by weight, or the target) and the next instance of it that is in
        rotation; None when every instance of that variant is down or being restarted."""
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
        return name, self.next_instance(name)

    def next_instance(self, variant: str, exclude: tuple[Instance, ...] = ()) -> Instance | None:
        instances = self.variants[variant]
        counter = self._rr.setdefault(variant, itertools.count())
        start = next(counter)
        for k in range(len(instances)):
            inst = instances[(start + k) % len(instances)]
            if all(inst is not e for e in exclude) and inst.in_rotation():
                return inst
        return None

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
            fleet.ping_timeout = timeout
            for inst in fleet.all():
                await_ping(inst, timeout)
                inst.healthy = True
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
            inst.healthy = False
            inst.drop_pool()
        # under each instance's process lock, so a restart in progress cannot start a process after this
        locks = [inst._proc_lock for inst in instances]
        for lock in locks:
            lock.acquire()
        try:
            stop_all([i.child for i in instances if i.child is not None], self.ctx.settings.stop_grace)
        finally:
            for lock in locks:
                lock.release()
        for inst in instances:
            shutil.rmtree(inst.base, ignore_errors=True)

    def _supervise(self) -> None:
        """Every ``supervise_interval``: an instance whose process exited, or that was taken out of
        rotation, gets its own healing thread, so restarts of different instances and endpoints run in
        parallel and none waits for another's health check."""
        while not self._closing.wait(self.ctx.settings.supervise_interval):
            with self._lock:
                items = list(self.fleets.items())
            for endpoint, fleet in items:
                if fleet.stopping:
                    continue
                for inst in fleet.all():
                    if inst.child is not None and (inst.child.poll() is not None or not inst.healthy):
                        self._heal(endpoint, fleet, inst)

    def _heal(self, endpoint: str, fleet: Fleet, inst: Instance) -> None:
        """Take ``inst`` out of rotation and bring it back in a thread of its own (once at a time)."""
        inst.healthy = False
        with inst._pool_lock:
            if inst.healing or fleet.stopping or self._closing.is_set():
                return
            inst.healing = True
        inst.drop_pool()
        threading.Thread(
            target=self._restore_instance, args=(endpoint, fleet, inst), name=f"heal-{endpoint}-{inst.stream}", daemon=True
        ).start()

    def _restore_instance(self, endpoint: str, fleet: Fleet, inst: Instance) -> None:
        """Restart the process if it exited and wait for its ping; a process that does not pass the ping
        check within the health-check window is killed and started again after 1, 2, 4 ... s (capped)."""
        group = group_for(endpoint)
        delay = 1.0
        try:
            while not (fleet.stopping or self._closing.is_set()):
                with inst._proc_lock:
                    if fleet.stopping or self._closing.is_set():
                        return
                    code = inst.child.poll() if inst.child is not None else -1
                    if code is not None:
                        inst.restarts += 1
                        msg = f"serve process exited with code {code}; restarting (restart #{inst.restarts})"
                        log.warning("endpoint %s, %s: %s", endpoint, inst.stream, msg)
                        self.ctx.logs.put(group, inst.stream, [f"localmaker: {msg}"])
                        self._spawn(endpoint, inst)
                t0 = time.monotonic()
                try:
                    await_ping(inst, fleet.ping_timeout)
                except DeployError as exc:
                    if fleet.stopping or self._closing.is_set():
                        return
                    msg = f"restart failed: {exc} Killing the process; next attempt in {delay:g} s."
                    log.warning("endpoint %s, %s: %s", endpoint, inst.stream, msg)
                    self.ctx.logs.put(group, inst.stream, [f"localmaker: {msg}"])
                    with inst._proc_lock:
                        if inst.child is not None:
                            inst.child.signal(signal.SIGKILL)
                            try:
                                inst.child.wait(5)
                            except Exception:  # noqa: BLE001 - unkillable; the next spawn replaces it
                                log.exception("killing %s failed", inst.stream)
                    if self._closing.wait(delay):
                        return
                    delay = min(delay * 2, RESTART_BACKOFF_CAP)
                    continue
                if fleet.stopping:
                    return
                inst.healthy = True
                msg = f"back in service after passing the ping check in {time.monotonic() - t0:.1f} s"
                log.warning("endpoint %s, %s: %s", endpoint, inst.stream, msg)
                self.ctx.logs.put(group, inst.stream, [f"localmaker: {msg}"])
                return
        finally:
            with inst._pool_lock:
                inst.healing = False

    # ---- runtime ------------------------------------------------------------------------------------
    def serving_fleet(self, endpoint: str) -> Fleet:
        """The fleet serving ``endpoint``: AWS's ValidationError when there is no such endpoint or it is
        not InService (an InService endpoint still being restored after a restart is waited for)."""
        doc = self.ctx.store.get(KIND, endpoint)
        if doc is None:
            raise AwsError("ValidationError", f"Endpoint {endpoint} of account {ACCOUNT} not found.")
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
        return fleet

    def current_fleet(self, endpoint: str) -> Fleet | None:
        with self._lock:
            return self.fleets.get(endpoint)

    def invoke(self, endpoint: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if self.ctx.store.get(KIND, endpoint) is None:
            raise AwsError("ValidationError", f"Endpoint {endpoint} of account {ACCOUNT} not found.")
        if len(body) > self.ctx.settings.max_payload:
            raise AwsError(
                "ValidationError",
                f"Request payload size {len(body)} bytes exceeds the maximum allowed size of "
                f"{self.ctx.settings.max_payload} bytes (6 MB).",
                status=413,
            )
        fleet = self.serving_fleet(endpoint)
        variant, inst = fleet.pick(headers.get("X-Amzn-SageMaker-Target-Variant"))
        return self.invoke_on(endpoint, fleet, variant, inst, body, headers, self.ctx.settings.invoke_timeout)

    def invoke_on(
        self, endpoint: str, fleet: Fleet, variant: str, inst: Instance | None, body: bytes, headers: dict[str, str],
        timeout: float,
    ) -> tuple[int, dict[str, str], bytes]:
        """One invocation of ``inst`` (another instance of the variant if it refuses the connection) with
        the container timeout ``timeout``; container errors become AWS's ModelError."""
        fwd = _forward_headers(headers)
        status, rheaders, rbody = self._forward(endpoint, fleet, variant, inst, body, fwd, timeout)
        if status >= 400:
            raise self.model_error(endpoint, status, rbody.decode("utf-8", errors="replace"))
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

    def model_error(self, endpoint: str, status: int, text: str) -> AwsError:
        stream_arn = f"arn:aws:logs:{self.ctx.region}:{ACCOUNT}:log-group:{group_for(endpoint)}"
        kind = "client" if status < 500 else "server"
        return AwsError(
            "ModelError",
            f"Received {kind} error ({status}) from primary with message \"{text}\". "
            f"See {stream_arn} in account {ACCOUNT} for more information.",
            status=424,
            OriginalStatusCode=status,
            OriginalMessage=text,
            LogStreamArn=stream_arn,
        )

    def invoke_stream(
        self, endpoint: str, body: bytes, headers: dict[str, str]
    ) -> tuple[dict[str, str], Iterator[bytes]]:
        """InvokeEndpointWithResponseStream: the container's chunked answer, chunk by chunk.

        Errors before the first byte of the body are raised as AwsError (ModelError for a container
        error status, ValidationError for a container whose answer is not streamed); errors while
        streaming are raised by the iterator as :class:`StreamFailure`.
        """
        fleet = self.serving_fleet(endpoint)
        variant, inst = fleet.pick(headers.get("X-Amzn-SageMaker-Target-Variant"))
        fwd = _forward_headers(headers)
        timeout = self.ctx.settings.invoke_timeout
        tried: list[Instance] = []
        while True:
            if inst is None:
                raise _unavailable(endpoint, variant)
            c = inst.connection(timeout)
            try:
                c.connect()
            except OSError:
                c.close()
                self._heal(endpoint, fleet, inst)
                tried.append(inst)
                inst = fleet.next_instance(variant, exclude=tuple(tried))
                continue
            try:
                c.request("POST", "/invocations", body=body, headers=fwd)
                r = c.getresponse()
            except TimeoutError as exc:
                c.close()
                raise _timeout_error(timeout) from exc
            except (OSError, http.client.HTTPException) as exc:
                c.close()
                raise AwsError(
                    "ModelError", f"An error occurred while sending the request to container primary: {exc}",
                    status=424, OriginalStatusCode=502, OriginalMessage=str(exc),
                ) from exc
            break
        if r.status >= 400:
            try:
                text = r.read().decode("utf-8", errors="replace")
            except (OSError, http.client.HTTPException) as exc:
                text = f"(the container's error body could not be read: {exc})"
            c.close()
            raise self.model_error(endpoint, r.status, text)
        if not r.chunked:
            try:
                r.read()
            except (OSError, http.client.HTTPException):
                pass
            c.close()
            raise AwsError(
                "ValidationError",
                f"The model container for production variant {variant} of endpoint {endpoint} did not stream its "
                "response: it answered /invocations with a fixed Content-Length instead of Transfer-Encoding: "
                "chunked. Use InvokeEndpoint for containers that do not support response streaming.",
            )
        rh = {k.lower(): v for k, v in r.getheaders()}
        out = {
            "X-Amzn-SageMaker-Content-Type": rh.get("content-type", "application/octet-stream"),
            "x-Amzn-Invoked-Production-Variant": variant,
        }
        if rh.get("x-amzn-sagemaker-custom-attributes"):
            out["X-Amzn-SageMaker-Custom-Attributes"] = rh["x-amzn-sagemaker-custom-attributes"]

        def chunks() -> Iterator[bytes]:
            try:
                while True:
                    try:
                        data = r.read1(STREAM_READ_SIZE)
                    except TimeoutError as exc:
                        raise StreamFailure(
                            "ModelInvocationTimeExceeded",
                            f"The model did not send the next part of its response within {timeout:.0f} s.",
                        ) from exc
                    except (OSError, http.client.HTTPException, ValueError) as exc:
                        raise StreamFailure(
                            "StreamBroken",
                            f"The connection to the model container was closed before the response ended: "
                            f"{type(exc).__name__}: {exc}",
                        ) from exc
                    if not data:
                        return
                    yield data
            finally:
                c.close()

        return out, chunks()

    def _forward(
        self, endpoint: str, fleet: Fleet, variant: str, inst: Instance | None, body: bytes, headers: dict[str, str],
        timeout: float,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send the request to ``inst``; a request that reached no process (connection refused: the
        process died since it was picked) goes to the next instance of the variant in rotation."""
        tried: list[Instance] = []
        while True:
            if inst is None:
                raise _unavailable(endpoint, variant)
            try:
                return call(inst, "POST", "/invocations", body, headers, timeout)
            except TimeoutError as exc:
                raise _timeout_error(timeout) from exc
            except ExchangeError as exc:
                died = exc.sent and _exits_soon(inst)
                if not exc.sent or died:
                    # down or refusing: out of rotation now (not at the next supervisor pass) until it
                    # answers /ping again
                    self._heal(endpoint, fleet, inst)
                if not exc.sent:
                    tried.append(inst)
                    inst = fleet.next_instance(variant, exclude=tuple(tried))
                    continue
                if died:
                    # the process died with the request in it: not sent again (it may have acted on
                    # it), answered like a request that found no instance, which clients retry
                    raise AwsError(
                        "ServiceUnavailable",
                        f"The service is unavailable. Try your call again. (The serve process of "
                        f"production variant {variant} of endpoint {endpoint} exited while handling the "
                        f"request: {exc}; it is being restarted.)",
                        status=503,
                    ) from exc
                raise AwsError(
                    "ModelError",
                    f"An error occurred while sending the request to container primary: {exc}",
                    status=424,
                    OriginalStatusCode=502,
                    OriginalMessage=str(exc),
                ) from exc


class StreamFailure(Exception):
    """A response stream that broke after it started: AWS's ModelStreamError event with ``code``
    (``StreamBroken`` or ``ModelInvocationTimeExceeded``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


#: bytes read from a streaming container per read (each read becomes at most one PayloadPart)
STREAM_READ_SIZE = 64 * 1024


def _forward_headers(headers: dict[str, str]) -> dict[str, str]:
    """The request headers a container sees (SageMaker strips all others)."""
    fwd = {"Content-Type": headers.get("Content-Type", "application/octet-stream")}
    if headers.get("Accept"):
        fwd["Accept"] = headers["Accept"]
    for h in ("X-Amzn-SageMaker-Custom-Attributes", "X-Amzn-SageMaker-Inference-Id"):
        if headers.get(h):
            fwd[h] = headers[h]
    return fwd


#: how long a dropped connection waits for its serve process to be seen exiting: a process killed
#: with SIGKILL drops its sockets before its guard (the parent localmaker watches) has exited
DEATH_GRACE_SECONDS = 1.0


def _exits_soon(inst: Instance) -> bool:
    """Whether the serve process of ``inst`` has exited or exits within DEATH_GRACE_SECONDS."""
    if inst.child is None:
        return False
    deadline = time.monotonic() + DEATH_GRACE_SECONDS
    while inst.child.poll() is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _unavailable(endpoint: str, variant: str) -> AwsError:
    return AwsError(
        "ServiceUnavailable",
        f"The service is unavailable. Try your call again. (No instance of production variant "
        f"{variant} of endpoint {endpoint} is healthy: its serve processes are being restarted.)",
        status=503,
    )


def _timeout_error(timeout: float) -> AwsError:
    return AwsError(
        "ModelError",
        f"Your invocation timed out while waiting for a response from container primary "
        f"(over {timeout:.0f} s). Review the latency metrics and CloudWatch logs for the endpoint.",
        status=424,
        OriginalStatusCode=504,
        OriginalMessage="timeout",
    )


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
    return Instance(variant, index, port, base, cmd, spec.workdir, env, stream, sandbox=spec.sandbox(serving=True))


def spawn(ctx: Ctx, inst: Instance, group: str) -> None:
    ctx.logs.ensure_stream(group, inst.stream)
    logs = ctx.logs
    inst.drop_pool()
    inst.child = Child(inst.cmd, inst.workdir, inst.env, lambda line: logs.put(group, inst.stream, [line]), inst.sandbox)


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
            c = inst.connection(2)
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


#: Data capture keeps at most this much unwritten capture data (records are dropped oldest first when
#: the destination cannot be written); LOCALMAKER_CAPTURE_BUFFER_BYTES overrides it.
CAPTURE_BUFFER_BYTES = 64 * 1024 * 1024
CAPTURE_BUFFER_RECORDS = 100_000
#: seconds between two warnings of the same kind (a failing destination is retried every flush)
CAPTURE_WARN_EVERY = 10.0


class CaptureWriter:
    """Buffers captured request/response pairs and writes Model Monitor's jsonl files to S3.

    The buffer is bounded: while the destination cannot be written (a missing bucket, a full disk),
    records are kept for the next try up to ``max_bytes`` / ``max_records``, beyond which the oldest are
    dropped, counted in ``dropped`` and reported in the server log.
    """

    def __init__(self, ctx: Ctx, max_bytes: int | None = None, max_records: int | None = None) -> None:
        self.ctx = ctx
        env_bytes = os.environ.get("LOCALMAKER_CAPTURE_BUFFER_BYTES", "")
        self.max_bytes = max_bytes or (int(env_bytes) if env_bytes.isdigit() else CAPTURE_BUFFER_BYTES)
        self.max_records = max_records or CAPTURE_BUFFER_RECORDS
        #: (prefix, jsonl line), oldest first
        self._buf: collections.deque[tuple[str, str]] = collections.deque()
        self._bytes = 0
        #: records dropped because the buffer was full, since the server started
        self.dropped = 0
        self._dropped_unreported = 0
        self._last_warn: dict[str, float] = {}
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
            self._buf.append((prefix, line))
            self._bytes += len(line)
            self._trim()
        self._report_drops()

    @property
    def buffered(self) -> tuple[int, int]:
        """(records, bytes) waiting to be written."""
        with self._lock:
            return len(self._buf), self._bytes

    def _trim(self) -> None:
        """Drop the oldest records beyond the bounds (the newest one always stays). Holds the lock."""
        while len(self._buf) > 1 and (self._bytes > self.max_bytes or len(self._buf) > self.max_records):
            _, line = self._buf.popleft()
            self._bytes -= len(line)
            self.dropped += 1
            self._dropped_unreported += 1

    def _warn_due(self, kind: str) -> bool:
        t = time.monotonic()
        with self._lock:
            if t - self._last_warn.get(kind, -CAPTURE_WARN_EVERY) < CAPTURE_WARN_EVERY:
                return False
            self._last_warn[kind] = t
            return True

    def _report_drops(self, force: bool = False) -> None:
        if not self._dropped_unreported or not (force or self._warn_due("drop")):
            return
        with self._lock:
            n, self._dropped_unreported = self._dropped_unreported, 0
            records, size = len(self._buf), self._bytes
        log.warning(
            "data capture buffer full (%d records, %.1f MB waiting; limit %d records, %.1f MB): dropped the %d "
            "oldest records (%d dropped since start) because their destination cannot be written",
            records, size / 1e6, self.max_records, self.max_bytes / 1e6, n, self.dropped,
        )

    def flush(self) -> None:
        with self._lock:
            items, self._buf = list(self._buf), collections.deque()
            self._bytes = 0
        groups: dict[str, list[str]] = {}
        for prefix, line in items:
            groups.setdefault(prefix, []).append(line)
        failed: list[tuple[str, str]] = []
        for prefix, lines in groups.items():
            t = time.time()
            name = time.strftime("%M-%S", time.gmtime(t)) + f"-{int(t * 1000) % 1000:03d}-{uuid.uuid4().hex[:8]}.jsonl"
            try:
                s3io.upload_bytes(self.ctx.s3(), f"{prefix}/{name}", ("\n".join(lines) + "\n").encode())
            except Exception as exc:  # noqa: BLE001 - keep the records for the next try
                failed.extend((prefix, line) for line in lines)
                if self._warn_due("upload"):
                    log.warning("data capture upload to %s failed (%s: %s); keeping %d records for the next try",
                                prefix, type(exc).__name__, exc, len(lines))
        if failed:
            with self._lock:
                # older than anything recorded meanwhile: back at the front, then the bounds apply
                self._buf.extendleft(reversed(failed))
                self._bytes += sum(len(line) for _, line in failed)
                self._trim()
        self._report_drops()

    def _loop(self) -> None:
        while not self._closing.wait(self.ctx.settings.capture_flush_interval):
            self.flush()

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self.flush()
        self._report_drops(force=True)


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
