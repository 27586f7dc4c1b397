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


# ---- `make up EXECUTOR=celery`: docker-compose.yaml is the one source of the Celery topology's settings ----

up_celery = sys.modules["up_celery"]  # what scripts/up.py imported


def _flat(config: dict[str, dict[str, str]]) -> dict[str, str]:
    return {f"AIRFLOW__{sec.upper()}__{key.upper()}": val for sec, vals in config.items() for key, val in vals.items()}


@pytest.fixture
def celery_settings(settings):
    settings.executor = "celery"
    settings.pg_port, settings.redis_port = free_port(), free_port()
    return settings


def test_celery_settings_are_the_compose_files_with_local_addresses(celery_settings):
    s = celery_settings
    config = up.airflow_config(s)
    got = _flat(config)
    common, _ = up_celery.compose_settings()
    taken = [k for k in common if k.startswith("AIRFLOW__") and k not in up_celery.OWN_SETTINGS]
    assert len(taken) >= 6
    for name in taken:  # every Airflow setting of the compose file, bar the listed own ones
        assert got[name] == up_celery.rewrite_hosts(common[name], s.addresses()), name
    assert config["core"]["executor"] == "CeleryExecutor"
    assert config["database"]["sql_alchemy_conn"] == f"postgresql+psycopg2://airflow:airflow@127.0.0.1:{s.pg_port}/airflow"
    assert config["celery"]["result_backend"] == f"db+postgresql+psycopg2://airflow:airflow@127.0.0.1:{s.pg_port}/airflow"
    assert config["celery"]["broker_url"] == f"redis://:@127.0.0.1:{s.redis_port}/0"
    assert config["core"]["execution_api_server_url"] == f"{s.api}/execution/"
    # what make up keeps its own way: its login, its random secrets, DAGs unpaused
    assert config["core"]["auth_manager"] == up.SIMPLE_AUTH
    assert config["api_auth"]["jwt_secret"] == (s.paths.home / "jwt_secret").read_text().strip()
    assert config["core"]["dags_are_paused_at_creation"] == "False"
    # the CLI sees the same (airflow.cfg)
    up.write_config(s, config)
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(s.paths.home / "airflow.cfg")
    assert cfg["celery"]["broker_url"] == config["celery"]["broker_url"]


def test_a_change_to_the_compose_file_is_a_change_to_make_up(celery_settings, tmp_path):
    text = (ROOT / "docker-compose.yaml").read_text()
    assert "redis://:@redis:6379/0" in text
    changed = tmp_path / "docker-compose.yaml"
    changed.write_text(text.replace("redis://:@redis:6379/0", "redis://:@redis:6379/5")
                       .replace("AIRFLOW__CORE__LOAD_EXAMPLES: \"false\"",
                                "AIRFLOW__CORE__LOAD_EXAMPLES: \"false\"\n    AIRFLOW__CORE__PARALLELISM: \"6\""))
    config = up.airflow_config(celery_settings, compose=changed)
    assert config["celery"]["broker_url"] == f"redis://:@127.0.0.1:{celery_settings.redis_port}/5"
    assert config["core"]["parallelism"] == "6"
    assert up.airflow_config(celery_settings)["core"]["parallelism"] == "4"  # make up's own, when compose says none


def test_compose_interpolation_uses_the_environment():
    common, pg = up_celery.compose_settings(env={"AIRFLOW_FERNET_KEY": "k" * 44})
    assert common["AIRFLOW__CORE__FERNET_KEY"] == "k" * 44
    assert up_celery.compose_settings(env={})[0]["AIRFLOW__CORE__FERNET_KEY"] == ""
    assert (pg["POSTGRES_USER"], pg["POSTGRES_DB"]) == ("airflow", "airflow")


def test_the_local_executor_is_untouched_by_the_compose_file(settings):
    config = up.airflow_config(settings)
    assert config["core"]["executor"] == "LocalExecutor" and "celery" not in config
    assert config["database"]["sql_alchemy_conn"] == f"sqlite:///{settings.paths.home / 'airflow.db'}"
    assert settings.components() == ["localmaker", "worker-log-server", "trigger-log-server", *up.COMPONENTS]


def test_an_unknown_executor_is_refused_with_the_choices(settings):
    settings.executor = "kubernetes"
    with pytest.raises(up.UpError, match="local, celery"):
        up.up(settings)


def test_postgres_refuses_a_home_its_account_cannot_enter():
    import pwd
    import shutil
    import tempfile

    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres account (Debian's postgresql package makes it)")
    base = Path(tempfile.mkdtemp(prefix="up-reach-", dir="/tmp"))  # pytest's own tmp is mode 700
    try:
        base.chmod(0o755)
        (base / "private" / "home").mkdir(parents=True)
        target = base / "private" / "home" / "postgres"
        (base / "private").chmod(0o700)
        assert up_celery.unreachable_ancestor(target, account) == base / "private"
        (base / "private").chmod(0o711)
        assert up_celery.unreachable_ancestor(target, account) is None
        (base / "private").chmod(0o700)
        if os.geteuid() == 0:  # make up stops before initdb, naming the directory and the way out
            with pytest.raises(up_celery.ComposeError, match=r"cannot enter .*private.*UP_HOME"):
                up_celery.prepare_postgres(target, "airflow", "airflow", Path("/nonexistent"), base / "log")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_make_down_stops_a_component_with_its_recorded_signal(settings):
    """PostgreSQL is stopped with SIGINT (its fast shutdown; SIGTERM waits for every client): a component
    that ignores SIGTERM and exits on SIGINT goes at once, without the SIGKILL of the grace period."""
    down = sys.modules["down"]
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(120)"
    proc = up.spawn("postgres", [sys.executable, "-c", code], dict(os.environ), settings, stop_signal="SIGINT")
    try:
        deadline = time.monotonic() + 30
        log = settings.paths.logs / "postgres.log"
        while not log.read_bytes().rstrip().endswith(b"\nup"):  # its SIGTERM handler is in place
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
        said: list[str] = []
        t0 = time.monotonic()
        assert down.down(settings.paths, grace=20, echo=said.append) == 1
        assert time.monotonic() - t0 < 10 and not any("SIGKILL" in line for line in said), said
        assert proc.wait(timeout=5) != 0  # KeyboardInterrupt: SIGINT did it
        assert not (settings.paths.pids / "postgres.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_make_up_creates_the_configured_pools_and_resizes_changed_ones(settings, monkeypatch):
    """`make up` creates an Airflow pool per SageMaker job kind with the stage's slots (issue 15.8),
    through the real `airflow pools import` into a real (SQLite) metadata database."""
    from include.mlpipeline.config.pools import stage_pools

    config = up.airflow_config(settings)
    up.write_config(settings, config)
    env = {**up.airflow_env(settings, config), "MLPIPELINE_STAGE": "prod"}
    run = lambda *args: subprocess.run([up.AIRFLOW, *args], env=env, cwd=ROOT, capture_output=True, text=True,  # noqa: E731
                                       timeout=300)
    migrated = run("db", "migrate")
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]
    # a pool left from an earlier `make up` with another size is resized to the config
    assert run("pools", "set", "sagemaker_training", "9", "stale").returncode == 0

    monkeypatch.setenv("MLPIPELINE_STAGE", "prod")  # the stage the DAGs parse as picks the sizes
    up.create_pools(settings, env)

    listed = run("pools", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    got = {p["pool"]: (int(p["slots"]), str(p["include_deferred"]).lower()) for p in json.loads(listed.stdout)}
    pools = stage_pools("prod")
    expected = {getattr(pools, k).name: (getattr(pools, k).slots, "true") for k in pools.names()}
    assert {name: got.get(name) for name in expected} == expected
    assert expected["sagemaker_training"] == (4, "true")
