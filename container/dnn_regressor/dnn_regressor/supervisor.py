"""``serve``: start nginx + gunicorn (or gunicorn alone) and watch them.

The canonical SageMaker bring-your-own-container shape: nginx terminates client connections on
``SAGEMAKER_BIND_TO_PORT`` (default 8080) and proxies to gunicorn on a unix socket; when nginx is
not installed, or ``SERVE_WITH_NGINX=false`` (localmaker sets it), gunicorn binds the port itself.
Either listens on every interface, as a container must on SageMaker, unless
``SAGEMAKER_BIND_TO_HOST`` names the address (localmaker passes 127.0.0.1).
If any child exits the server is broken, so ``serve`` stops the other and exits non-zero: the
platform then replaces the container (SageMaker) or the process (localmaker). SIGTERM/SIGINT
are forwarded as graceful stops, and ``serve`` exits 0 once the children are gone.

Environment:
    SAGEMAKER_BIND_TO_PORT   port to listen on (8080)
    SAGEMAKER_BIND_TO_HOST   address to listen on (every interface, as a container on SageMaker
                             must; localmaker passes 127.0.0.1 so nothing it starts is reachable
                             from the network)
    MODEL_SERVER_WORKERS     gunicorn worker processes (one per CPU)
    MODEL_SERVER_TIMEOUT     seconds a request may take (60)
    MODEL_SERVER_WORKER_CLASS  gunicorn worker class: "gthread" (default) or "sync"
    MODEL_SERVER_THREADS     threads per gthread worker (4)
    SERVE_WITH_NGINX         "false" to never start nginx
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

PROGRAM_DIR = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = PROGRAM_DIR / "nginx.conf"
STOP_GRACE_SECONDS = 20.0
#: SageMaker's payload limit, enforced by nginx when it fronts gunicorn.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


class ConfigError(Exception):
    """A serving environment variable has a value ``serve`` cannot use."""


@dataclass(frozen=True)
class ServeSettings:
    """Serving knobs resolved from the environment.

    Attributes:
        port: the TCP port clients (SageMaker's router, localmaker) connect to.
        workers: gunicorn worker processes; each loads its own copy of the model.
        timeout: seconds before gunicorn kills a stuck worker (and nginx gives up).
        worker_class / threads: gunicorn worker model; gthread keeps client connections alive
            when gunicorn faces clients directly.
        use_nginx: nginx is on PATH and not disabled.
        host: the address to listen on; empty for every interface (the image's default).
    """

    port: int
    workers: int
    timeout: int
    worker_class: str
    threads: int
    use_nginx: bool
    host: str = ""

    @property
    def bind(self) -> str:
        """``host:port`` for gunicorn (``0.0.0.0:port`` when no address is given)."""
        host = self.host or "0.0.0.0"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def _positive_int(environ: Mapping[str, str], name: str, default: int, upper: int) -> int:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= upper:
        raise ConfigError(f"{name}={raw!r} must be an integer from 1 to {upper}")
    return int(raw)


def settings_from_env(environ: Mapping[str, str] = os.environ) -> ServeSettings:
    worker_class = (environ.get("MODEL_SERVER_WORKER_CLASS") or "gthread").strip()
    if worker_class not in ("sync", "gthread"):
        raise ConfigError(f"MODEL_SERVER_WORKER_CLASS={worker_class!r} must be 'sync' or 'gthread'")
    nginx_wanted = (environ.get("SERVE_WITH_NGINX") or "true").strip().lower() != "false"
    return ServeSettings(
        port=_positive_int(environ, "SAGEMAKER_BIND_TO_PORT", 8080, 65535),
        workers=_positive_int(environ, "MODEL_SERVER_WORKERS", os.cpu_count() or 1, 1024),
        timeout=_positive_int(environ, "MODEL_SERVER_TIMEOUT", 60, 86400),
        worker_class=worker_class,
        threads=_positive_int(environ, "MODEL_SERVER_THREADS", 4, 256),
        use_nginx=nginx_wanted and shutil.which("nginx") is not None,
        host=(environ.get("SAGEMAKER_BIND_TO_HOST") or "").strip(),
    )


def gunicorn_command(settings: ServeSettings, bind: str) -> list[str]:
    """``python -m gunicorn`` with this interpreter, so a virtualenv's packages are used."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--chdir",
        str(PROGRAM_DIR),
        "--bind",
        bind,
        "--workers",
        str(settings.workers),
        "--worker-class",
        settings.worker_class,
        "--timeout",
        str(settings.timeout),
        "--graceful-timeout",
        str(int(STOP_GRACE_SECONDS) - 5),
        "--keep-alive",
        "5",
        # gunicorn >= 25 opens a control socket in $HOME by default; two servers on one host
        # (several endpoints under localmaker) would fight over it.
        "--no-control-socket",
        "--error-logfile",
        "-",
        "--log-level",
        "info",
    ]
    if settings.worker_class == "gthread":
        command += ["--threads", str(settings.threads)]
    return [*command, "wsgi:app"]


def render_nginx_conf(
    template: str, *, port: int, socket_path: Path, scratch: Path, timeout: int, host: str = ""
) -> str:
    """Fill the ``@NAME@`` markers (nginx has no environment substitution of its own)."""
    listen = str(port) if not host else f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    values = {
        "@LISTEN@": listen,
        "@PORT@": str(port),
        "@SOCKET@": str(socket_path),
        "@SCRATCH@": str(scratch),
        "@TIMEOUT@": str(timeout),
        "@MAX_BODY_BYTES@": str(MAX_PAYLOAD_BYTES),
        "@MAX_BODY@": str(MAX_PAYLOAD_BYTES),
    }
    for marker, value in values.items():
        template = template.replace(marker, value)
    return template


def _die_with_parent() -> None:
    """Children get SIGTERM if ``serve`` is SIGKILLed, instead of living on as orphans."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


class Supervisor:
    """Owns the child processes: start, watch, stop."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def spawn(self, name: str, command: list[str], env: Mapping[str, str]) -> None:
        print(f"serve: starting {name}: {' '.join(command)}", flush=True)
        self.children[name] = subprocess.Popen(
            command, env=dict(env), preexec_fn=_die_with_parent if sys.platform == "linux" else None
        )

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            print(f"serve: received {signal.Signals(signum).name}, stopping", flush=True)
        self.stopping = True

    def stop_children(self) -> None:
        graceful = {"nginx": signal.SIGQUIT}
        for name, child in self.children.items():
            if child.poll() is None:
                child.send_signal(graceful.get(name, signal.SIGTERM))
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, child in self.children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"serve: {name} did not stop within {STOP_GRACE_SECONDS:g} s, killing it", flush=True)
                child.kill()
                child.wait()

    def watch(self) -> int:
        """Block until a stop signal (exit 0) or until a child exits on its own (exit non-zero)."""
        while not self.stopping:
            for name, child in self.children.items():
                code = child.poll()
                if code is not None and not self.stopping:
                    print(
                        f"serve: {name} exited with code {code}; stopping the server",
                        file=sys.stderr,
                        flush=True,
                    )
                    self.stop_children()
                    return code if code > 0 else 1
            time.sleep(0.1)
        self.stop_children()
        print("serve: stopped", flush=True)
        return 0


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    try:
        settings = settings_from_env(environ)
    except ConfigError as exc:
        print(f"serve: {exc}", file=sys.stderr, flush=True)
        return 2
    # Exported so /execution-parameters reports the real worker count.
    environ["MODEL_SERVER_WORKERS"] = str(settings.workers)
    environ.setdefault("PYTHONUNBUFFERED", "1")
    # One BLAS thread per worker: workers already use every CPU between them.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        environ.setdefault(var, "1")
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

    supervisor = Supervisor()
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    scratch = Path(tempfile.mkdtemp(prefix="dnn-regressor-serve-"))
    # When started as root, nginx workers drop to 'nobody' and must still reach the socket and
    # their temp dirs; nothing in here is secret.
    scratch.chmod(0o755)
    try:
        if settings.use_nginx:
            socket_path = scratch / "gunicorn.sock"
            conf = scratch / "nginx.conf"
            conf.write_text(
                render_nginx_conf(
                    NGINX_TEMPLATE.read_text(encoding="utf-8"),
                    port=settings.port,
                    socket_path=socket_path,
                    scratch=scratch,
                    timeout=settings.timeout,
                    host=settings.host,
                ),
                encoding="utf-8",
            )
            supervisor.spawn("gunicorn", gunicorn_command(settings, f"unix:{socket_path}"), environ)
            supervisor.spawn("nginx", ["nginx", "-p", str(scratch), "-e", "stderr", "-c", str(conf)], environ)
        else:
            supervisor.spawn("gunicorn", gunicorn_command(settings, settings.bind), environ)
        return supervisor.watch()
    finally:
        supervisor.stop_children()  # idempotent; covers a failure while spawning
        shutil.rmtree(scratch, ignore_errors=True)
