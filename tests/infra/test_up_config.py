"""`make up`'s Airflow settings (scripts/up.py): one set for the components, airflow.cfg and the CLI;
its log servers listen on UP_HOST on configurable ports."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_up():
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("mlpipeline_up", ROOT / "scripts" / "up.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


up = _load_up()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def settings(tmp_path):
    env = {"UP_HOME": str(tmp_path / "airflow"), "LOCALMAKER_HOME": str(tmp_path / "lm"), "AIRFLOW_PORT": str(free_port()),
           "LOCALMAKER_PORT": str(free_port()), "UP_WORKER_LOG_PORT": str(free_port()), "UP_TRIGGERER_LOG_PORT": str(free_port())}
    s = up.Settings(env)
    s.paths.home.mkdir(parents=True)
    return s


def test_cfg_holds_every_setting_the_components_get(settings):
    # what Airflow itself wrote there before (its defaults), plus a setting of the user's
    (settings.paths.home / "airflow.cfg").write_text(
        "[core]\ndags_folder = /elsewhere/dags\nload_examples = True\ndefault_timezone = utc\n\n"
        "[webserver]\nexpose_config = True\n")
    config = up.airflow_config(settings)
    up.write_config(settings, config)
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(settings.paths.home / "airflow.cfg")
    assert cfg["webserver"]["expose_config"] == "True" and cfg["core"]["default_timezone"] == "utc"
    for kept in (("core", "default_timezone"), ("webserver", "expose_config")):
        cfg.remove_option(*kept)
    cfg.remove_section("webserver")
    assert cfg["core"]["load_examples"] == "False"
    assert cfg["core"]["dags_folder"] == str(ROOT / "dags")
    assert cfg["logging"]["worker_log_server_port"] == str(settings.worker_log_port)
    assert cfg["logging"]["trigger_log_server_port"] == str(settings.trigger_log_port)
    env = up.airflow_env(settings, config)
    airflow_vars = {k: v for k, v in env.items() if k.startswith("AIRFLOW__")}
    from_cfg = {f"AIRFLOW__{sec.upper()}__{key.upper()}": val for sec in cfg.sections() for key, val in cfg[sec].items()}
    assert airflow_vars == from_cfg
    assert oct((settings.paths.home / "airflow.cfg").stat().st_mode & 0o777) == "0o600"  # the JWT secret


def test_the_cli_with_the_env_file_sees_the_same_settings(settings):
    """What docs/ui.md tells people to do: source $UP_HOME/env, then run Airflow there."""
    up.write_config(settings, up.airflow_config(settings))
    script = f"set -a; . {settings.paths.home / 'env'}; set +a; exec {sys.executable} -c \"$0\""
    code = ("import json; from airflow.configuration import conf; from airflow.utils.net import get_hostname; "
            "print(json.dumps([conf.get('core','dags_folder'), conf.getboolean('core','load_examples'), "
            "conf.get('core','executor'), conf.getint('logging','worker_log_server_port'), get_hostname(), "
            "json.loads(__import__('os').environ['AIRFLOW_CONN_AWS_DEFAULT'])['extra']['endpoint_url']]))")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "PYTHONPATH"))}
    out = subprocess.run(["bash", "-c", script, code], env=clean, cwd="/", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == [str(ROOT / "dags"), False, "LocalExecutor", settings.worker_log_port, "127.0.0.1",
                   settings.lm_url]


def _listening(port: int) -> list[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if state == "0A" and int(p, 16) == port:
                found.append(socket.inet_ntoa(bytes.fromhex(addr)[::-1]) if len(addr) == 8 else addr)
    return found


def test_log_server_listens_on_up_host_only(settings):
    config = up.airflow_config(settings)
    up.write_config(settings, config)
    env = up.airflow_env(settings, config)
    cmd = up.log_server_cmd(settings, "worker-log-server")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _listening(settings.worker_log_port):
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the log server did not start"
            time.sleep(0.3)
        assert _listening(settings.worker_log_port) == ["127.0.0.1"]
        # another process (as the API server does) fetches a task log with a token signed with [api]
        # secret_key; the cfg alone gives both the same key (a random one each would be a 403)
        log = settings.paths.home / "logs" / "dag_id=d" / "attempt=1.log"
        log.parent.mkdir(parents=True)
        log.write_text("hello from the task\n")
        code = ("import sys; from airflow.utils.log.file_task_handler import _fetch_logs_from_service as f; "
                "r = f(sys.argv[1], 'dag_id=d/attempt=1.log'); print(r.status_code, r.text.strip())")
        url = f"http://127.0.0.1:{settings.worker_log_port}/log/dag_id=d/attempt=1.log"
        shell = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
        out = subprocess.run([sys.executable, "-c", code, url], env={**shell, **up.shell_env(settings)},
                             capture_output=True, text=True, timeout=120)
        assert out.stdout.strip().splitlines()[-1:] == ["200 hello from the task"], out.stderr[-2000:]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_busy_log_port_is_refused_with_the_variable_to_set(settings, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings.trigger_log_port = busy.getsockname()[1]
        monkeypatch.setattr(up, "running", lambda paths: {})
        with pytest.raises(up.UpError, match="UP_TRIGGERER_LOG_PORT"):
            up.up(settings)
