"""``runtime: sandbox``: each host or instance runs in a bubblewrap sandbox laid out like its container.

An image whose manifest entry says ``runtime: sandbox`` runs its programs unmodified, with the paths
and port SageMaker's container contract hard-codes, instead of honouring ``SAGEMAKER_BASE_DIR`` and
``SAGEMAKER_BIND_TO_PORT`` (``runtime: process``). Each host of a job, or instance of an endpoint or
transform job, gets (Linux, Debian package ``bubblewrap``; no root, no daemon):

* the host's own SageMaker directory (``SAGEMAKER_BASE_DIR``) read-write at ``/opt/ml``, the manifest's
  program folder (``workdir``) read-only at ``/opt/program`` and the manifest's ``mounts`` read-only at
  their container paths; every host path of those folders in the command line and the environment
  (``SM_MODEL_DIR``, ``SM_CHANNEL_*``, a processing job's rewritten ``/opt/ml/processing/...``) is
  turned back into the container's path;
* private scratch, discarded with the instance: empty ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``$HOME``
  (``/root``) and ``/var/log``, ``/var/lib``, ``/run`` seeded with the host's directory tree (no
  files), where programs such as nginx write logs, pid and temp files; the rest of the host is
  read-only, with the caller's home, ``/home``, ``/root`` and localmaker's home hidden (the
  interpreter localmaker runs under stays visible when it lives there);
* its own pid, IPC and UTS namespaces and a user namespace in which it is a non-root user; the
  hostname ``algo-i`` and an ``/etc/hosts`` that resolves every host of the job (``algo-1``...
  ``algo-N`` on 127.0.1.1... 127.0.1.N, all loopback: training hosts share the host's network);
* for serving (endpoints, transform): a network namespace of its own, so the container listens on
  port 8080 as SageMaker's contract says and instances coexist; a ``socat`` relay inside forwards
  a unix socket on a bound folder (:attr:`Launch.socket`) to ``127.0.0.1:8080``, and localmaker
  talks HTTP over that socket.

:func:`check` tells, once per process, whether bubblewrap (and socat, for serving) can run here,
with an error naming the package to install and the ``runtime: process`` alternative.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

OPT_ML = "/opt/ml"
OPT_PROGRAM = "/opt/program"
#: where the relay's socket folder is bound inside a serving sandbox
RELAY_DIR = "/run/localmaker"
RELAY_SOCKET = "http.sock"
#: the port SageMaker's serving contract fixes
SERVE_PORT = 8080
#: empty private folders
EMPTY = ("/tmp", "/var/tmp", "/dev/shm")
#: private folders seeded with the host's directory tree
SEEDED = ("/var/log", "/var/lib", "/run")
HIDDEN = ("/root", "/home")
#: environment variable naming the bwrap program (default: bwrap on PATH)
BWRAP_ENV = "LOCALMAKER_BWRAP"
INSIDE_HOME = "/root"
#: the in-sandbox user when localmaker runs as root (nginx and friends behave as in an unprivileged container)
ROOT_MAPS_TO = 1000


class SandboxUnavailable(OSError):
    """The sandbox cannot run on this machine (bubblewrap or socat missing, no user namespaces)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Sandbox:
    """How one image runs sandboxed (from its manifest entry)."""

    program: Path
    #: (container path, host path) bound read-only
    mounts: tuple[tuple[str, str], ...] = ()
    #: serving: own network namespace, reached through a unix socket relay to port 8080
    network: bool = False
    label: str = "image"


@dataclass
class Launch:
    """A sandboxed command ready for :class:`localmaker.procs.Child`, and its scratch folder."""

    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    scratch: Path
    socket: Path | None = None
    _done: bool = field(default=False, repr=False)

    def cleanup(self) -> None:
        if not self._done:
            self._done = True
            shutil.rmtree(self.scratch, ignore_errors=True)


# ---- availability ------------------------------------------------------------------------------------
_checked: dict[tuple[str, bool], str | None] = {}
_check_lock = threading.Lock()


def check(network: bool, label: str = "image") -> str:
    """The bwrap program to run, or SandboxUnavailable saying what to install (probed once per process)."""
    named = os.environ.get(BWRAP_ENV, "bwrap")
    alternative = (
        f"Install the Debian package 'bubblewrap'{' and socat' if network else ''} (make system-deps), "
        f"or set 'runtime: process' for image '{label}' in the images manifest."
    )
    with _check_lock:
        key = (named, network)
        if key not in _checked:
            _checked[key] = _probe(named, network)
        problem = _checked[key]
    if problem:
        raise SandboxUnavailable(f"runtime: sandbox cannot run here: {problem}. {alternative}")
    program = shutil.which(named)
    assert program is not None
    return program


def _probe(named: str, network: bool) -> str | None:
    program = shutil.which(named)
    if program is None:
        return f"bubblewrap ('{named}') is not installed"
    if network and shutil.which("socat") is None:
        return "socat (the relay to a sandboxed server's port 8080) is not installed"
    try:
        done = subprocess.run(
            [program, *_namespaces(network), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap ({program}) could not be run: {exc}"
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        return (
            f"bubblewrap ({program}) cannot create namespaces here ({why[-1] if why else f'exit {done.returncode}'}; "
            "are unprivileged user namespaces disabled?)"
        )
    return None


def _namespaces(network: bool) -> list[str]:
    uid = os.getuid() or ROOT_MAPS_TO
    gid = os.getgid() or ROOT_MAPS_TO
    args = ["--unshare-user", "--uid", str(uid), "--gid", str(gid)]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if network:
        args.append("--unshare-net")
    return args


# ---- building a sandboxed command ----------------------------------------------------------------------
_tree_lock = threading.Lock()
_trees: dict[str, list[str]] = {}


def _dir_tree(root: str) -> list[str]:
    """Every directory under ``root`` (no symlinks, one filesystem), parents first; cached."""
    with _tree_lock:
        if root not in _trees:
            found: list[str] = []
            if os.path.isdir(root) and not os.path.islink(root):
                dev = os.stat(root).st_dev
                for dirpath, dirnames, _ in os.walk(root, onerror=lambda _e: None):
                    keep = []
                    for d in sorted(dirnames):
                        p = os.path.join(dirpath, d)
                        try:
                            if not os.path.islink(p) and os.stat(p).st_dev == dev:
                                keep.append(d)
                                found.append(p)
                        except OSError:
                            continue
                    dirnames[:] = keep
            _trees[root] = found
        return _trees[root]


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _interpreter_paths() -> list[str]:
    """What the interpreter localmaker runs under needs to be visible (its prefixes, its sys.path)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.add(str(Path(sys.executable).parent))
    paths.update(p for p in sys.path if p and os.path.isabs(p))
    out = set()
    for p in paths:
        if os.path.isdir(p):
            out.add(os.path.realpath(p))
            # a path through a symlink (a symlinked venv) is reached through that link once its real
            # folder is visible; bwrap cannot mount onto a path that goes through a symlink
            if os.path.realpath(os.path.abspath(p)) == os.path.abspath(p):
                out.add(os.path.abspath(p))
    return sorted(out, key=lambda p: (p.count("/"), p))


def _substitute(text: str, mapping: list[tuple[str, str]]) -> str:
    for host, inside in mapping:
        text = re.sub(re.escape(host) + r"(?=/|$|[^\w.\-])", lambda _m, inside=inside: inside, text)
    return text


def _hosts(base: Path) -> tuple[str | None, list[str]]:
    """This host's name and the job's hosts, from its resourceconfig.json (training or processing)."""
    for cfg in (base / "input" / "config" / "resourceconfig.json", base / "config" / "resourceconfig.json"):
        try:
            data = json.loads(cfg.read_text())
        except (OSError, ValueError):
            continue
        hosts = [str(h) for h in data.get("hosts", []) if re.fullmatch(r"[A-Za-z0-9-]{1,63}", str(h))]
        current = str(data.get("current_host", ""))
        return (current if current in hosts else None), hosts
    return None, []


def host_address(hosts: list[str], host: str) -> str:
    """The loopback address ``host`` resolves to inside the sandboxes of a job (127.0.1.<its position>)."""
    i = hosts.index(host)
    return f"127.0.{1 + i // 254}.{1 + i % 254}"


def prepare(box: Sandbox, cmd: list[str], cwd: Path, env: dict[str, str], hide: list[Path]) -> Launch:
    """The bwrap command line running ``cmd`` the way its container would (see the module doc).

    ``env`` must name the host's SageMaker directory in ``SAGEMAKER_BASE_DIR`` (it becomes ``/opt/ml``);
    ``hide`` lists further host folders the sandbox must not see (localmaker's home)."""
    bwrap = check(box.network, box.label)
    if not env.get("SAGEMAKER_BASE_DIR"):
        raise ValueError("a sandboxed process needs SAGEMAKER_BASE_DIR (its /opt/ml)")
    base = Path(env["SAGEMAKER_BASE_DIR"]).resolve()
    program = Path(box.program).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="localmaker-sbx-"))
    try:
        mapping = [(str(base), OPT_ML), (str(program), OPT_PROGRAM)]
        for inside, host in box.mounts:
            mapping.append((str(Path(host).resolve()), inside))
        mapping.sort(key=lambda m: -len(m[0]))  # the longest host path first: nested folders map right

        args = [bwrap, "--die-with-parent", *_namespaces(box.network)]
        current, hosts = _hosts(base)
        if current:
            args += ["--hostname", current]
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for d in EMPTY:
            args += ["--tmpfs", d]
        for root in SEEDED:
            if os.path.isdir(root):
                args += ["--tmpfs", root]
                for d in _dir_tree(root):
                    args += ["--dir", d]
        args += ["--tmpfs", "/opt"]
        hidden = [*HIDDEN, os.environ.get("HOME", ""), *(str(h) for h in hide)]
        hidden = sorted({os.path.realpath(h) for h in hidden if h and os.path.isdir(h) and h != "/"})
        for h in hidden:
            args += ["--tmpfs", h]
        masked = [*hidden, *EMPTY, *SEEDED, "/opt"]
        for p in _interpreter_paths():
            if any(_under(p, m) and p != m for m in masked) and not any(_under(m, p) for m in masked):
                args += ["--ro-bind", p, p]
        args += ["--bind", str(base), OPT_ML, "--ro-bind", str(program), OPT_PROGRAM]
        for inside, host in box.mounts:
            args += ["--ro-bind", str(Path(host).resolve()), inside]
        hosts_file = scratch / "hosts"
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{host_address(hosts, h)}\t{h}" for h in hosts]
        hosts_file.write_text("\n".join(lines) + "\n")
        args += ["--ro-bind", str(hosts_file), "/etc/hosts"]
        socket = None
        if box.network:
            relay = scratch / "relay"
            relay.mkdir()
            args += ["--bind", str(relay), RELAY_DIR]
            socket = relay / RELAY_SOCKET
        inside_cwd = _substitute(str(Path(cwd).resolve()), mapping)
        args += ["--chdir", inside_cwd if inside_cwd.startswith("/opt/") else OPT_ML]

        inner = [_substitute(c, mapping) for c in cmd]
        if box.network:
            relay_cmd = (
                f"socat UNIX-LISTEN:{RELAY_DIR}/{RELAY_SOCKET},fork,unlink-early TCP:127.0.0.1:{SERVE_PORT} &"
                ' exec "$@"'
            )
            inner = ["/bin/sh", "-c", relay_cmd, "localmaker-relay", *inner]
        new_env = {k: _substitute(v, mapping) for k, v in env.items() if k not in ("TMPDIR", "SAGEMAKER_SAFE_PORT_RANGE")}
        new_env["HOME"] = INSIDE_HOME
        new_env["SAGEMAKER_BASE_DIR"] = OPT_ML
        if box.network:
            new_env["SAGEMAKER_BIND_TO_PORT"] = str(SERVE_PORT)
        return Launch([*args, "--", *inner], Path(cwd), new_env, scratch, socket)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
