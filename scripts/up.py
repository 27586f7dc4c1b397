"""`make up`: localmaker and the Airflow 3 UI, in the background, ready to trigger and approve runs.

What `airflow standalone` runs, as separate processes this script controls (each the leader of its own
process group, pid file in ``<home>/pids``, output in ``<home>/logs/up``):

* ``python -m localmaker`` with the project's images manifest, then the bucket and the alerts topic
  of every configured model and stage (what the CloudFormation stack provides on AWS);
* ``airflow api-server`` (UI + REST API + execution API), ``scheduler`` (LocalExecutor on SQLite, as
  standalone), ``dag-processor`` and ``triggerer`` (the approval task and the deferrable operators
  wait there);
* the task and triggerer log servers (Airflow's serve-logs app under uvicorn) bound to ``UP_HOST`` on
  ``UP_WORKER_LOG_PORT`` / ``UP_TRIGGERER_LOG_PORT`` (scheduler and triggerer run with
  ``--skip-serve-logs``: theirs would listen on every interface).

Airflow is configured through the environment, and ``<home>/airflow.cfg`` is written with the same
settings (``<home>/env`` has the rest) so the CLI sees them too: AIRFLOW_HOME, the project's dags and plugins,
the ``aws_default`` connection pointing at localmaker (``AIRFLOW_CONN_AWS_DEFAULT`` with
``endpoint_url``), dummy AWS credentials, no example DAGs, DAGs unpaused at creation, and
SimpleAuthManager (Airflow 3's default) with one known admin login. Stop with `make down`.

Settings (environment):
  AIRFLOW_PORT (8080)            UI / API port          LOCALMAKER_PORT (4566)   localmaker port
  UP_HOST (127.0.0.1)            address both bind      UP_HOME (.airflow/up)    AIRFLOW_HOME
  LOCALMAKER_HOME (.localmaker/up)                      UP_USER / UP_PASSWORD (admin / admin)
  UP_DAGS_PAUSED (false)         create DAGs paused     UP_TIMEOUT (300)         seconds to wait for ready
  UP_SCHEDULES (off)             on: the scheduler also starts cron- and Asset-scheduled runs
  UP_WORKER_LOG_PORT (8793)      task log server        UP_TRIGGERER_LOG_PORT (8794)  triggerer log server

``UP_EXECUTOR=celery`` (``make up EXECUTOR=celery``) runs the topology of docker-compose.yaml instead,
from Debian's packages (scripts/up_celery.py): PostgreSQL as the metadata database and Celery result
backend, Redis as the broker, two ``airflow celery worker`` that run the tasks, with the executor,
database and broker settings read from docker-compose.yaml (one source for both):

  UP_EXECUTOR (local)            local or celery        UP_POSTGRES_PORT (5432)  UP_REDIS_PORT (6379)
  UP_CELERY_WORKERS (2)          Celery workers         UP_POSTGRES_BIN          initdb/postgres directory

Schedules are off by default (``[scheduler] use_job_schedule = False``; triggered runs run as usual).
``UP_SCHEDULES=on make up`` gives the deployed behaviour (cron and Assets): each cron-scheduled DAG's
first run is its next slot (the DAGs have no start_date, so no missed slot is started at once).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import up_celery  # noqa: E402
from down import MARKER, Paths, down, running, start_ticks  # noqa: E402

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
COMPONENTS = ["api-server", "scheduler", "dag-processor", "triggerer"]
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
#: the log servers of the scheduler's LocalExecutor workers and of the triggerer (the API server reads
#: running tasks' logs from them); started here, bound to UP_HOST, instead of by `airflow scheduler` and
#: `airflow triggerer`, which bind theirs to every interface
LOG_SERVERS = {"worker-log-server": "worker_log_port", "trigger-log-server": "trigger_log_port"}
LOG_APP = "airflow.utils.serve_logs.log_server:get_app"
SIMPLE_AUTH = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


class UpError(RuntimeError):
    pass


class Settings:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        self.paths = Paths.from_env(env)
        self.host = env.get("UP_HOST", "127.0.0.1")
        self.port = int(env.get("AIRFLOW_PORT", "8080"))
        self.lm_port = int(env.get("LOCALMAKER_PORT", "4566"))
        self.user = env.get("UP_USER", "admin")
        self.password = env.get("UP_PASSWORD", "admin")
        self.paused = env.get("UP_DAGS_PAUSED", "false").lower() in ("1", "true", "yes")
        self.timeout = float(env.get("UP_TIMEOUT", "300"))
        self.schedules = env.get("UP_SCHEDULES", "off").lower() in ("1", "on", "true", "yes")
        self.worker_log_port = int(env.get("UP_WORKER_LOG_PORT", "8793"))
        self.trigger_log_port = int(env.get("UP_TRIGGERER_LOG_PORT", "8794"))
        self.executor = env.get("UP_EXECUTOR", "").strip().lower() or "local"
        self.pg_port = int(env.get("UP_POSTGRES_PORT", "5432"))
        self.redis_port = int(env.get("UP_REDIS_PORT", "6379"))
        self.workers = int(env.get("UP_CELERY_WORKERS", "2"))

    @property
    def celery(self) -> bool:
        return self.executor == "celery"

    def components(self) -> list[str]:
        """What `make up` runs with this executor, in start order."""
        if not self.celery:
            return ["localmaker", *LOG_SERVERS, *COMPONENTS]
        workers = [f"celery-worker-{i}" for i in range(1, self.workers + 1)]
        return ["localmaker", "postgres", "redis", "trigger-log-server", *COMPONENTS,
                *(f"{w}-log-server" for w in workers), *workers]

    def addresses(self) -> dict[str, str]:
        """docker-compose.yaml's service names -> the host:port of what stands for them here."""
        return {"postgres": f"127.0.0.1:{self.pg_port}", "redis": f"127.0.0.1:{self.redis_port}",
                "airflow-apiserver": self.api.split("://", 1)[1], "localmaker": self.lm_url.split("://", 1)[1]}

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def api(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "localhost") else self.host
        return f"http://{host}:{self.port}"

    @property
    def bind_host(self) -> str:
        return "127.0.0.1" if self.host == "localhost" else self.host

    @property
    def lm_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "localhost") else self.host
        return f"http://{host}:{self.lm_port}"


# ---- processes ---------------------------------------------------------------------------------------------


def spawn(name: str, cmd: list[str], env: dict[str, str], s: Settings, account=None,
          stop_signal: str = "SIGTERM") -> subprocess.Popen:
    """Start ``cmd`` detached: its own session/process group, output to a log file, pid file written
    (with the signal `make down` stops it with). ``account``: run as that user (``pwd`` entry)."""
    s.paths.logs.mkdir(parents=True, exist_ok=True)
    s.paths.pids.mkdir(parents=True, exist_ok=True)
    log = open(s.paths.logs / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it)
    log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
    log.flush()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**env, MARKER: str(s.paths.home)}, stdin=subprocess.DEVNULL,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **up_celery.as_account(account),
    )
    log.close()
    rec = {"name": name, "pid": proc.pid, "start_ticks": start_ticks(proc.pid), "cmd": cmd,
           "stop_signal": stop_signal}
    (s.paths.pids / f"{name}.json").write_text(json.dumps(rec) + "\n")
    return proc


def tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no output)"
    return "\n".join("    " + line for line in lines[-n:])


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(what: str, check, timeout: float, procs: dict[str, subprocess.Popen], s: Settings):
    """Poll ``check`` until it returns something truthy; fail early when a component exits."""
    deadline = time.monotonic() + timeout
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise UpError(f"{name} exited with code {proc.returncode} while waiting for {what}:\n"
                              + tail(s.paths.logs / f"{name}.log"))
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise UpError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


# ---- localmaker -------------------------------------------------------------------------------------------


def start_localmaker(s: Settings) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [sys.executable, "-m", "localmaker", "--host", s.host if s.host != "localhost" else "127.0.0.1",
           "--port", str(s.lm_port), "--home", str(s.paths.lm_home),
           "--images", str(ROOT / "container" / "images.yaml")]
    if s.host not in ("127.0.0.1", "localhost", "::1"):
        cmd.append("--allow-remote")
        if s.host != "0.0.0.0":  # clients call it by this name (Host header); localmaker refuses unknown names
            cmd += ["--allow-host", s.host]
    log = s.paths.logs / "localmaker.log"
    offset = log.stat().st_size if log.exists() else 0
    proc = spawn("localmaker", cmd, env, s)

    def ready() -> bool:
        with open(log, "rb") as f:
            f.seek(offset)
            return b"localmaker ready on " in f.read()

    wait_for("localmaker", ready, 60, {"localmaker": proc}, s)
    return proc


def bootstrap(s: Settings) -> list[str]:
    """What the CloudFormation stack provides on AWS: each stage's bucket and the alerts topics."""
    import boto3

    from include.mlpipeline.bootstrap import provision_stage
    from include.mlpipeline.config import list_models, list_stages, load_config

    made: list[str] = []
    kw = {"endpoint_url": s.lm_url, "aws_access_key_id": "up", "aws_secret_access_key": "up"}
    for model in list_models():
        for stage in list_stages():
            cfg = load_config(model, stage)
            s3 = boto3.client("s3", region_name=cfg.aws.region, **kw)
            sns = boto3.client("sns", region_name=cfg.aws.region, **kw)
            made += [r for r in provision_stage(cfg, s3, sns) if r not in made]
    return made


# ---- Airflow ----------------------------------------------------------------------------------------------


def secret(path: Path) -> str:
    """A random secret kept in ``path`` (mode 600), made on first use."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_config(s: Settings, compose: Path = up_celery.COMPOSE) -> dict[str, dict[str, str]]:
    """Every Airflow setting of the environment, ``{section: {key: value}}``.

    The components get them as ``AIRFLOW__SECTION__KEY`` variables and ``$UP_HOME/airflow.cfg`` holds
    the same values, so the CLI (``AIRFLOW_HOME=.airflow/up airflow ...``) sees what the UI sees.
    With the Celery executor, the settings of ``compose``'s Airflow services are laid over these
    (:func:`up_celery.celery_config`: its executor, database, broker, result backend, ...).
    """
    home = s.paths.home
    config = {
        "core": {
            "dags_folder": str(ROOT / "dags"),
            "plugins_folder": str(ROOT / "plugins"),
            "load_examples": "False",
            "unit_test_mode": "False",
            "executor": "LocalExecutor",
            "parallelism": "4",  # task slots: plenty for one pipeline run on 2 cores
            "dags_are_paused_at_creation": str(s.paused),
            "auth_manager": SIMPLE_AUTH,
            "simple_auth_manager_users": f"{s.user}:admin",
            "simple_auth_manager_all_admins": "False",
            "simple_auth_manager_passwords_file": str(home / "simple_auth_manager_passwords.json"),
            "execution_api_server_url": f"{s.api}/execution/",
            "hostname_callable": "scripts.up_hostname.hostname",  # the log servers' address
        },
        "database": {"sql_alchemy_conn": f"sqlite:///{home / 'airflow.db'}"},  # Airflow's default, said
        "scheduler": {"use_job_schedule": str(s.schedules)},
        # secret_key signs the API server's requests to the log servers: one value for every process
        "api": {"host": s.host, "port": str(s.port), "workers": "1", "secret_key": secret(home / "api_secret_key")},
        "api_auth": {"jwt_secret": secret(home / "jwt_secret")},
        "logging": {
            "logging_level": "INFO",
            "worker_log_server_port": str(s.worker_log_port),
            "trigger_log_server_port": str(s.trigger_log_port),
        },
    }
    if s.celery:
        taken = up_celery.celery_config(up_celery.compose_settings(compose)[0], s.addresses())
        for section, values in taken.items():
            config.setdefault(section, {}).update(values)
    return config


def shell_env(s: Settings) -> dict[str, str]:
    """What is not an Airflow setting: the localmaker endpoint, its credentials, the import path."""
    return {
        "AIRFLOW_HOME": str(s.paths.home),
        "AWS_ENDPOINT_URL": s.lm_url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {"conn_type": "aws", "extra": {"region_name": "us-east-1", "endpoint_url": s.lm_url}}
        ),
        "PYTHONPATH": str(ROOT),
    }


def write_config(s: Settings, config: dict[str, dict[str, str]]) -> None:
    """``$UP_HOME/airflow.cfg`` with these settings, and ``$UP_HOME/env`` with :func:`shell_env`.

    Written before Airflow would write its own defaults (``load_examples = True``, ``dags_folder`` in
    the home). Other settings already in the file (yours) are kept; comments are not.
    """
    import configparser

    cfg_file = s.paths.home / "airflow.cfg"
    class CaseKeepingParser(configparser.ConfigParser):
        def optionxform(self, optionstr: str) -> str:
            return optionstr  # keep keys as written

    cfg = CaseKeepingParser(interpolation=None)
    if cfg_file.exists():
        cfg.read(cfg_file)
    for section, values in config.items():
        if not cfg.has_section(section):
            cfg.add_section(section)
        for key, value in values.items():
            cfg.set(section, key, value.replace("%", "%%"))  # Airflow reads the file with % interpolation
    with open(cfg_file, "w") as f:
        f.write("# `make up` (scripts/up.py) sets its settings here at every start; add your own freely\n\n")
        cfg.write(f)
    cfg_file.chmod(0o600)  # holds the JWT secret
    env = s.paths.home / "env"
    env.write_text("# `set -a; . .airflow/up/env; set +a` before running the airflow CLI next to `make up`\n"
                   + "".join(f"{k}={shlex.quote(v)}\n" for k, v in shell_env(s).items()))


def airflow_env(s: Settings, config: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    # isolated from the shell's Airflow settings (a database URL there would otherwise be used)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_"))}
    for section, values in (config or airflow_config(s)).items():
        env.update({f"AIRFLOW__{section.upper()}__{key.upper()}": value for key, value in values.items()})
    env.update(shell_env(s))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def create_pools(s: Settings, env: dict[str, str]) -> dict[str, dict]:
    """The Airflow pools of ``airflow.pools`` (include/config) for the stage the DAGs parse as
    (MLPIPELINE_STAGE, default dev): created, or resized to the config, by `airflow pools import`."""
    from include.mlpipeline.config import ConfigError, default_stage
    from include.mlpipeline.config.pools import pools_import_file, stage_pools

    try:
        pools = pools_import_file(stage_pools(default_stage()))
    except ConfigError as exc:
        raise UpError(f"airflow.pools: {exc}") from None
    path = s.paths.home / "pools.json"
    path.write_text(json.dumps(pools, indent=2) + "\n")
    s.paths.logs.mkdir(parents=True, exist_ok=True)
    with open(s.paths.logs / "pools.log", "ab") as log:
        rc = subprocess.run([AIRFLOW, "pools", "import", str(path)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=300).returncode
    if rc != 0:
        raise UpError(f"`airflow pools import {path}` failed:\n" + tail(s.paths.logs / "pools.log"))
    return pools


def log_server_cmd(s: Settings, name: str, host: str | None = None) -> list[str]:
    """Airflow's log server app (what `airflow scheduler` / `triggerer` / `celery worker` serve), bound to
    UP_HOST only (a Celery worker's: to its own address, ``host``)."""
    port = getattr(s, LOG_SERVERS.get(name, "worker_log_port"))
    return [sys.executable, "-m", "uvicorn", LOG_APP, "--factory", "--host", host or s.bind_host,
            "--port", str(port), "--no-access-log"]


def write_passwords(s: Settings) -> None:
    """SimpleAuthManager keeps the passwords it knows in this file and generates the missing ones."""
    f = s.paths.home / "simple_auth_manager_passwords.json"
    f.write_text(json.dumps({s.user: s.password}) + "\n")
    f.chmod(0o600)


def http_json(url: str, data: dict | None = None, token: str | None = None, method: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def token(s: Settings) -> str:
    return http_json(f"{s.api}/auth/token", {"username": s.user, "password": s.password})["access_token"]


def healthy(s: Settings) -> dict | None:
    try:
        health = http_json(f"{s.api}/api/v2/monitor/health")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    ok = all((health.get(p) or {}).get("status") == "healthy" for p in parts)
    return health if ok else None


def expected_dags() -> list[str]:
    from include.mlpipeline.config import list_models

    return [f"{m}_training" for m in list_models()]


def dags_loaded(s: Settings, tok: str) -> list[dict] | None:
    try:
        dags = http_json(f"{s.api}/api/v2/dags?limit=200", token=tok)["dags"]
    except (urllib.error.URLError, OSError, ValueError):
        return None
    ids = {d["dag_id"] for d in dags}
    return dags if all(d in ids for d in expected_dags()) else None


def import_errors(s: Settings, tok: str) -> list[dict]:
    try:
        return http_json(f"{s.api}/api/v2/importErrors", token=tok).get("import_errors", [])
    except (urllib.error.URLError, OSError, ValueError):
        return []


# ---- main -------------------------------------------------------------------------------------------------


def banner(s: Settings, dags: list[dict], made: list[str], elapsed: float | None) -> None:
    took = f" in {elapsed:.0f} s" if elapsed is not None else ""
    print(f"\nAirflow UI:  {s.url}   (login: {s.user} / {s.password}){took}")
    print(f"localmaker:  {s.lm_url}   (AWS_ENDPOINT_URL={s.lm_url} AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x)")
    if s.celery:
        hosts = ", ".join(up_celery.worker_address(i) for i in range(1, s.workers + 1))
        print(f"executor:    CeleryExecutor, {s.workers} workers ({hosts}); PostgreSQL 127.0.0.1:{s.pg_port}, "
              f"Redis 127.0.0.1:{s.redis_port} (settings from docker-compose.yaml)")
    else:
        print("executor:    LocalExecutor on SQLite (`make up EXECUTOR=celery` for the Celery topology)")
    if made:
        print(f"bootstrapped: {', '.join(made)}")
    for d in sorted(dags, key=lambda d: d["dag_id"]):
        print(f"  DAG {d['dag_id']:<32} {'paused' if d.get('is_paused') else 'active'}")
    if not s.schedules:
        print("schedules are off (runs start when triggered; UP_SCHEDULES=on for cron and Asset runs)")
    print(f"AIRFLOW_HOME {s.paths.home}; component logs in {s.paths.logs}; stop with `make down`")


def start_servers(s: Settings) -> dict[str, subprocess.Popen]:
    """PostgreSQL and Redis for the Celery executor, with the compose file's database and credentials;
    returns once both answer and the database exists."""
    pg = up_celery.compose_settings()[1]
    user, password, db = pg.get("POSTGRES_USER", "postgres"), pg.get("POSTGRES_PASSWORD", ""), pg.get("POSTGRES_DB")
    if not password:
        raise UpError("docker-compose.yaml's postgres service has no POSTGRES_PASSWORD (make up uses password auth)")
    bindir = up_celery.postgres_bindir()
    redis_dir = s.paths.home / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    redis_cmd = up_celery.redis_cmd(redis_dir, s.redis_port)  # fails here when redis-server is missing
    pgdir = s.paths.home / "postgres"
    print(f"starting PostgreSQL on 127.0.0.1:{s.pg_port} ({pgdir}) and Redis on 127.0.0.1:{s.redis_port} ...",
          flush=True)
    s.paths.logs.mkdir(parents=True, exist_ok=True)
    account = up_celery.prepare_postgres(pgdir, user, password, bindir, s.paths.logs / "postgres.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_", "PG"))}
    procs = {
        # SIGINT: PostgreSQL's fast shutdown (SIGTERM waits for every client to disconnect)
        "postgres": spawn("postgres", up_celery.postgres_cmd(bindir, pgdir, s.pg_port), env, s, account, "SIGINT"),
        "redis": spawn("redis", redis_cmd, env, s),
    }
    wait_for("PostgreSQL", lambda: up_celery.postgres_ready(s.pg_port, user, password), 120, procs, s)
    wait_for("Redis", lambda: up_celery.redis_ready(s.redis_port), 60, procs, s)
    if db and up_celery.ensure_database(s.pg_port, user, password, db):
        print(f"created database {db}", flush=True)
    return procs


def worker_ready(s: Settings, name: str, offset: int) -> bool:
    log = s.paths.logs / f"{name}.log"
    with open(log, "rb") as f:
        f.seek(offset)
        return b" ready." in f.read()


def up(s: Settings) -> int:
    t0 = time.monotonic()
    if s.executor not in EXECUTORS:
        raise UpError(f"UP_EXECUTOR={s.executor!r}: choose one of {', '.join(EXECUTORS)}")
    if s.celery and not 1 <= s.workers <= 200:
        raise UpError(f"UP_CELERY_WORKERS={s.workers}: between 1 and 200 (worker i listens on 127.0.0.<1+i>)")
    have = running(s.paths)
    wanted = s.components()
    state = s.paths.home / "up.json"  # the settings it was started with (ports, login, executor)
    started = json.loads(state.read_text()) if state.exists() else {}
    same = started.get("executor", "local") == s.executor
    if have and same and all(n in have for n in wanted):
        s.__dict__.update(started)
        pids = ", ".join(f"{n} {have[n]['pid']}" for n in wanted)
        print(f"make up: already running ({pids})")
        if not healthy(s):
            print(f"warning: {s.api}/api/v2/monitor/health does not report every component healthy (yet)")
        try:
            dags = dags_loaded(s, token(s)) or []
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            dags = []
        banner(s, dags, [], None)
        return 0
    if have or (s.paths.pids.exists() and any(s.paths.pids.glob("*.json"))):
        if same:
            print("make up: a previous environment is partly running or was not stopped: stopping it first")
        else:
            print(f"make up: the environment here runs the {started.get('executor', 'local')} executor, "
                  f"{s.executor} asked for: stopping it first")
        down(s.paths)
    ports = [(s.port, "AIRFLOW_PORT", s.bind_host), (s.lm_port, "LOCALMAKER_PORT", s.bind_host),
             (s.trigger_log_port, "UP_TRIGGERER_LOG_PORT", s.bind_host)]
    if s.celery:
        ports += [(s.pg_port, "UP_POSTGRES_PORT", "127.0.0.1"), (s.redis_port, "UP_REDIS_PORT", "127.0.0.1")]
        ports += [(s.worker_log_port, "UP_WORKER_LOG_PORT", up_celery.worker_address(i))
                  for i in range(1, s.workers + 1)]
    else:
        ports.append((s.worker_log_port, "UP_WORKER_LOG_PORT", s.bind_host))
    for port, what, host in ports:
        if not port_free(host, port):
            raise UpError(f"port {port} is in use on {host}: stop what listens there or set {what}=<another port>")
    s.paths.home.mkdir(parents=True, exist_ok=True)
    s.paths.lm_home.mkdir(parents=True, exist_ok=True)
    keep = ("host", "port", "lm_port", "user", "password", "paused", "schedules", "worker_log_port", "trigger_log_port",
            "executor", "pg_port", "redis_port", "workers")
    state.write_text(json.dumps({k: getattr(s, k) for k in keep}) + "\n")

    print(f"starting localmaker on {s.lm_url} (home {s.paths.lm_home}) ...", flush=True)
    lm = start_localmaker(s)
    made = bootstrap(s)
    procs = {"localmaker": lm}
    try:
        config = airflow_config(s)
    except up_celery.ComposeError as exc:
        raise UpError(str(exc)) from None
    if s.celery:
        try:
            procs.update(start_servers(s))
        except up_celery.ComposeError as exc:
            raise UpError(str(exc)) from None

    write_config(s, config)
    env = airflow_env(s, config)
    write_passwords(s)
    print(f"preparing Airflow's database (AIRFLOW_HOME={s.paths.home}) ...", flush=True)
    with open(s.paths.logs / "db-migrate.log", "ab") as log:
        rc = subprocess.run([AIRFLOW, "db", "migrate"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, timeout=600).returncode
    if rc != 0:
        raise UpError("`airflow db migrate` failed:\n" + tail(s.paths.logs / "db-migrate.log"))
    pools = create_pools(s, env)
    print("pools: " + ", ".join(f"{name} ({p['slots']} slots)" for name, p in pools.items()), flush=True)

    print(f"starting Airflow: {', '.join(n for n in wanted if n not in procs)} ...", flush=True)
    for name in LOG_SERVERS if not s.celery else ["trigger-log-server"]:
        procs[name] = spawn(name, log_server_cmd(s, name), env, s)
    for name in COMPONENTS:
        cmd = [AIRFLOW, name]
        if name == "api-server":
            cmd += ["--host", s.host, "--port", str(s.port), "--workers", "1"]
        elif name in ("scheduler", "triggerer"):
            cmd.append("--skip-serve-logs")  # this script runs them, bound to UP_HOST (LOG_SERVERS)
        procs[name] = spawn(name, cmd, env, s)
    offsets = {}
    for i in range(1, s.workers + 1 if s.celery else 1):
        name, address = f"celery-worker-{i}", up_celery.worker_address(i)
        # the worker's hostname in its task instances: the address its log server listens on
        worker_env = {**env, "UP_HOSTNAME": address}
        procs[f"{name}-log-server"] = spawn(f"{name}-log-server", log_server_cmd(s, name, address), worker_env, s)
        worker_log = s.paths.logs / f"{name}.log"
        offsets[name] = worker_log.stat().st_size if worker_log.exists() else 0
        procs[name] = spawn(name, up_celery.worker_cmd(AIRFLOW, i), worker_env, s)

    remaining = lambda: max(10.0, s.timeout - (time.monotonic() - t0))  # noqa: E731
    wait_for(f"the UI on {s.url} and healthy components", lambda: healthy(s), remaining(), procs, s)
    for name, offset in offsets.items():
        wait_for(f"{name} to connect to Redis", lambda n=name, o=offset: worker_ready(s, n, o), remaining(), procs, s)
    tok = token(s)
    try:
        dags = wait_for("the DAGs to be parsed", lambda: dags_loaded(s, tok), remaining(), procs, s)
    except UpError:
        errors = import_errors(s, tok)
        if errors:
            raise UpError("DAG import errors:\n" + "\n".join(f"  {e['filename']}: {e['stack_trace']}" for e in errors)) from None
        raise
    for err in import_errors(s, tok):
        print(f"warning: import error in {err['filename']}:\n{err['stack_trace']}")
    banner(s, dags, made, time.monotonic() - t0)
    return 0


def main() -> int:
    s = Settings()
    try:
        return up(s)
    except (UpError, subprocess.TimeoutExpired) as exc:
        print(f"\nmake up FAILED: {exc}\nstopping what was started ...", file=sys.stderr)
        down(s.paths)
        return 1
    except KeyboardInterrupt:
        down(s.paths, echo=lambda *_: None)
        return 130
    except BaseException:  # anything unexpected: leave nothing half-started behind
        down(s.paths, echo=lambda *_: None)
        raise


if __name__ == "__main__":
    sys.exit(main())
