"""The localmaker service: its command is localmaker's real CLI, and the server answers its healthcheck."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from localmaker.__main__ import parse_args
from tests.infra.support import COMPOSE_FILES, ROOT, compose


def _localmaker(relpath: str) -> dict[str, Any]:
    services = compose(relpath)["services"]
    assert "localmaker" in services, f"{relpath} has no localmaker service"
    return services["localmaker"]


def _args(relpath: str) -> list[str]:
    command = _localmaker(relpath)["command"]
    assert isinstance(command, list), "write the command as a list: no shell word-splitting surprises"
    assert command[:3] == ["python", "-m", "localmaker"], f"{relpath}: {command[:3]}"
    return [str(a) for a in command[3:]]


def _healthcheck_url(service: dict[str, Any]) -> urllib.parse.SplitResult:
    test = service["healthcheck"]["test"]
    urls = [part for part in test if isinstance(part, str) and part.startswith("http")]
    assert len(urls) == 1, f"expected one URL in the healthcheck, got {test}"
    return urllib.parse.urlsplit(urls[0])


def _host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repo file a container path comes from through the service's bind mounts, if any."""
    target = PurePosixPath(container_path)
    for volume in service.get("volumes", []):
        if not isinstance(volume, str):
            continue
        source, _, rest = volume.partition(":")
        mount = PurePosixPath(rest.split(":", 1)[0])
        if source.startswith(".") and (target == mount or mount in target.parents):
            return ROOT / source / target.relative_to(mount)
    return None


@pytest.mark.parametrize("relpath", COMPOSE_FILES)
def test_command_parses_with_localmakers_cli(relpath: str) -> None:
    try:
        args = parse_args(_args(relpath))
    except SystemExit as exc:  # argparse reports the bad option on stderr, then exits
        pytest.fail(f"{relpath}: `python -m localmaker` rejects the service's arguments (exit {exc.code})")
    assert args.host == "0.0.0.0" and args.allow_remote, "other containers must reach it: bind all + allow"
    assert "localmaker" in args.allow_host, "other containers call it as localmaker:4566: --allow-host localmaker"
    service = _localmaker(relpath)
    assert _healthcheck_url(service).port == args.port
    assert any(str(p).endswith(f":{args.port}") for p in service.get("ports", []))
    home_volumes = [v for v in service["volumes"] if str(v).endswith(f":{args.home}")]
    assert home_volumes and not home_volumes[0].startswith("."), "--home must be on a named volume"


def test_connection_port_matches_localmaker() -> None:
    args = parse_args(_args("docker-compose.yaml"))
    env = compose("docker-compose.yaml")["services"]["airflow-worker"]["environment"]
    endpoint = urllib.parse.urlsplit(json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"])
    assert (endpoint.hostname, endpoint.port) == ("localmaker", args.port)


@pytest.mark.parametrize("relpath", COMPOSE_FILES)
def test_images_manifests_come_from_the_repo(relpath: str) -> None:
    service = _localmaker(relpath)
    images = parse_args(_args(relpath)).images
    assert images, "localmaker needs the project's images manifest to run container/ images"
    for image in images:
        host = _host_path(service, str(image))
        assert host is not None, f"{relpath}: --images {image} is not inside a bind mount of the repo"
        assert host.is_file(), (
            f"{relpath}: --images {image} is {host.relative_to(ROOT)} in the repo, which does not exist yet "
            f"(the images manifest is written with container/)"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_started_with_the_service_flags_answers_the_healthcheck(tmp_path: Path) -> None:
    """Start the real server with the compose flags (free port, temp home) and GET the healthcheck path."""
    relpath = "docker-compose.yaml"
    service = _localmaker(relpath)
    args = parse_args(_args(relpath))
    port = _free_port()
    cmd = [sys.executable, "-m", "localmaker", "--host", args.host, "--port", str(port), "--home", str(tmp_path)]
    if args.allow_remote:
        cmd.append("--allow-remote")
    for name in args.allow_host:
        cmd += ["--allow-host", name]
    for image in args.images:  # the real manifest when it exists; its absence is reported above
        host = _host_path(service, str(image))
        if host is not None and host.is_file():
            cmd += ["--images", str(host)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}{_healthcheck_url(service).path}"
        deadline, last_error = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"localmaker exited {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    assert response.status == 200
                # the other containers' Host header (the connection's endpoint_url) is served too
                as_service = urllib.request.Request(url, headers={"Host": f"localmaker:{port}"})
                with urllib.request.urlopen(as_service, timeout=2) as response:
                    assert response.status == 200
                return
            except urllib.error.HTTPError as exc:
                pytest.fail(f"GET {url} answered {exc.code}: the healthcheck path is wrong")
            except OSError as exc:  # not listening yet
                last_error = exc
                time.sleep(0.1)
        pytest.fail(f"no answer from {url} within 30 s: {last_error}")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_docs_show_the_real_command_and_say_processes_not_containers() -> None:
    docs = (ROOT / "docs" / "environments.md").read_text()
    command = " ".join(str(a) for a in _localmaker("docker-compose.yaml")["command"])
    assert f"`{command}`" in docs, "docs/environments.md should quote the service's exact localmaker command"
    assert "not implemented" in docs and "docker.sock" in docs, "say plainly that the Docker-socket mode is future work"
