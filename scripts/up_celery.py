"""`make up EXECUTOR=celery`: the topology of docker-compose.yaml, from Debian packages, without Docker.

* **One source of settings.** The Airflow settings of the compose file's Airflow services
  (``x-airflow-common.environment``: the executor, the metadata database, the Celery broker and result
  backend, ...) and the ``postgres`` service's database, user and password are read from
  ``docker-compose.yaml`` itself, with the compose service names (``postgres``, ``redis``,
  ``airflow-apiserver``, ``localmaker``) replaced by the loopback addresses of the processes `make up`
  starts. Change the compose file and `make up` follows. The few settings `make up` sets its own way are
  listed, with the reason, in :data:`OWN_SETTINGS`.
* **PostgreSQL** (Debian's ``postgresql``): a cluster in ``<home>/postgres`` made with ``initdb`` on first
  start (password authentication, scram-sha-256), listening on 127.0.0.1 only, no Unix socket. PostgreSQL
  refuses to run as root: as root, ``initdb`` and ``postgres`` run as the unprivileged ``postgres``
  account that Debian's package creates (it owns ``<home>/postgres``, mode 700); as anyone else, as
  yourself. Stopped with SIGINT (PostgreSQL's fast shutdown).
* **Redis** (Debian's ``redis-server``): bound to 127.0.0.1, data in ``<home>/redis``.
* **Celery workers**: ``airflow celery worker`` each, standing for a machine of their own: worker ``i``
  records ``127.0.0.<1+i>`` as its hostname in the task instances it runs (Linux routes all of 127/8 to
  the loopback interface) and its log server (started here, as for the other components) listens there,
  on ``UP_WORKER_LOG_PORT``, where the API server fetches running tasks' logs.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yaml"

#: settings of the compose file's Airflow services that `make up` sets its own way, and why
OWN_SETTINGS = {
    "AIRFLOW__CORE__AUTH_MANAGER": "SimpleAuthManager with UP_USER / UP_PASSWORD (the compose image has the "
                                   "FAB provider, requirements.txt does not)",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "UP_DAGS_PAUSED (default: unpaused, ready to trigger)",
    "AIRFLOW__API_AUTH__JWT_SECRET": "a random secret kept in the home, not a fixed development value",
    "AIRFLOW__API__SECRET_KEY": "a random secret kept in the home, not a fixed development value",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "its server listens on every interface; "
                                               "/api/v2/monitor/health reports the scheduler",
}
#: settings `make up` adds in Celery mode (the compose file leaves them at Airflow's defaults)
CELERY_EXTRA = {
    # two workers x 2 = [core] parallelism 4 (Airflow's default of 16 processes each is for big machines)
    ("celery", "worker_concurrency"): "2",
}
_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\})")


class ComposeError(RuntimeError):
    pass


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``$$`` (what the Airflow
    settings of the compose file use)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name, op, default = m.group(2), m.group(3), m.group(4) or ""
        value = env.get(name)
        if op == ":-" and not value or op == "-" and value is None:
            return default
        return value or ""

    return _VAR.sub(sub, text)


def compose_settings(path: Path = COMPOSE, env: dict[str, str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """``(Airflow services' common environment, postgres service's environment)`` of the compose file,
    interpolated with ``env`` (default: this process's environment), as ``docker compose`` would."""
    import yaml

    env = dict(os.environ if env is None else env)
    try:
        doc = yaml.safe_load(path.read_text())
        common = doc["x-airflow-common"]["environment"]
        postgres = doc["services"]["postgres"]["environment"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ComposeError(f"cannot read the Airflow and postgres settings of {path}: {exc!r}") from exc
    return ({k: _interpolate(str(v), env) for k, v in common.items()},
            {k: _interpolate(str(v), env) for k, v in postgres.items()})


def rewrite_hosts(value: str, addresses: dict[str, str]) -> str:
    """Compose service names in URLs (``user:pw@postgres/db``, ``redis://:@redis:6379/0``,
    ``http://airflow-apiserver:8080/...``) -> the ``host:port`` of the process that stands for them."""
    for service, address in addresses.items():
        value = re.sub(rf"(?<=[@/]){re.escape(service)}(?::\d+)?(?=[/?\"]|$)", address, value)
    return value


def celery_config(compose: dict[str, str], addresses: dict[str, str]) -> dict[str, dict[str, str]]:
    """``{section: {key: value}}`` of the compose file's ``AIRFLOW__`` settings for `make up`: hosts
    rewritten, :data:`OWN_SETTINGS` left out, :data:`CELERY_EXTRA` added."""
    out: dict[str, dict[str, str]] = {}
    for name, value in compose.items():
        if not name.startswith("AIRFLOW__") or name in OWN_SETTINGS:
            continue
        section, _, key = name[len("AIRFLOW__"):].partition("__")
        out.setdefault(section.lower(), {})[key.lower()] = rewrite_hosts(value, addresses)
    for (section, key), value in CELERY_EXTRA.items():
        out.setdefault(section, {}).setdefault(key, value)
    return out


# ---- PostgreSQL --------------------------------------------------------------------------------------------


def postgres_bindir(env: dict[str, str] | None = None) -> Path:
    """Where ``initdb`` and ``postgres`` are: UP_POSTGRES_BIN, else Debian's newest
    ``/usr/lib/postgresql/<version>/bin``, else PATH."""
    env = dict(os.environ if env is None else env)
    if env.get("UP_POSTGRES_BIN"):
        return Path(env["UP_POSTGRES_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    which = shutil.which("postgres")
    if which:
        return Path(which).resolve().parent
    raise ComposeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres, no postgres on "
                       "PATH): run `make system-deps` as root, or `apt-get install postgresql`")


def redis_server() -> str:
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if not found:
        raise ComposeError("redis-server is not installed: run `make system-deps` as root, or "
                           "`apt-get install redis-server`")
    return found


def server_account() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: ``postgres`` when we are root (it refuses to run as root), else
    None (as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ComposeError("running as root, and PostgreSQL refuses to run as root; there is no `postgres` "
                           "account to run it as (Debian's postgresql package creates it)") from None


def unreachable_ancestor(path: Path, account: pwd.struct_passwd) -> Path | None:
    """The first directory above ``path`` that ``account`` may not enter (mode bits; no ACLs)."""
    groups = {account.pw_gid} | {g for g in os.getgrouplist(account.pw_name, account.pw_gid)}
    for d in reversed(path.parents):
        st = d.stat()
        if st.st_uid == account.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return d
    return None


def prepare_postgres(pgdir: Path, user: str, password: str, bindir: Path, log: Path) -> pwd.struct_passwd | None:
    """``initdb`` the cluster in ``pgdir/data`` (once); returns the account it runs as."""
    account = server_account()
    pgdir.mkdir(parents=True, exist_ok=True)
    if account is not None:
        blocked = unreachable_ancestor(pgdir, account)
        if blocked is not None:
            raise ComposeError(
                f"PostgreSQL runs as the `postgres` account (it refuses to run as root), which cannot enter "
                f"{blocked} (mode {oct(blocked.stat().st_mode & 0o777)}) on the way to {pgdir}: set UP_HOME "
                f"to a directory it can reach (e.g. UP_HOME=/var/tmp/mlpipeline-up)")
        os.chown(pgdir, account.pw_uid, account.pw_gid)
    pgdir.chmod(0o700)
    data = pgdir / "data"
    if (data / "PG_VERSION").exists():
        return account
    pwfile = pgdir / "initdb-password"
    pwfile.write_text(password + "\n")
    try:
        if account is not None:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        pwfile.chmod(0o600)
        cmd = [str(bindir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
               "--auth=scram-sha-256", "-E", "UTF8", "--no-locale"]
        with open(log, "ab") as out:
            rc = subprocess.run(cmd, cwd=pgdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                timeout=300, **as_account(account)).returncode
        if rc != 0:
            shutil.rmtree(data, ignore_errors=True)
            raise ComposeError(f"initdb failed (exit {rc}), see {log}")
    finally:
        pwfile.unlink(missing_ok=True)
    return account


def as_account(account: pwd.struct_passwd | None) -> dict:
    """Popen keywords that run the child as ``account`` (None: as ourselves)."""
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def postgres_cmd(bindir: Path, pgdir: Path, port: int) -> list[str]:
    return [str(bindir / "postgres"), "-D", str(pgdir / "data"), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            # a development database: a crash may lose the last transactions, never corrupt
            "-c", "synchronous_commit=off"]


def postgres_ready(port: int, user: str, password: str) -> bool:
    import psycopg2

    try:
        psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password, dbname="postgres",
                         connect_timeout=2).close()
    except psycopg2.OperationalError:
        return False
    return True


def ensure_database(port: int, user: str, password: str, db: str) -> bool:
    """Create ``db`` if missing (the postgres image does it for POSTGRES_DB); True if it was made."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password, dbname="postgres",
                            connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
            return True
    finally:
        conn.close()


# ---- Redis -------------------------------------------------------------------------------------------------


def redis_cmd(redis_dir: Path, port: int) -> list[str]:
    return [redis_server(), "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
            "--dir", str(redis_dir), "--daemonize", "no", "--logfile", ""]


def redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


# ---- Celery workers ----------------------------------------------------------------------------------------


def worker_address(i: int) -> str:
    """Worker ``i``'s (1-based) address: its hostname in task instances, where its log server listens."""
    return f"127.0.0.{1 + i}"


def worker_cmd(airflow: str, i: int) -> list[str]:
    # --skip-serve-logs: its own log server would listen on every interface; up.py runs one on its address
    return [airflow, "celery", "worker", "--celery-hostname", f"worker-{i}@%h", "--skip-serve-logs"]
