"""``[core] hostname_callable`` of `make up`: the address its log servers listen on.

Airflow records this name with every task try and triggerer, and the API server fetches running
tasks' logs from ``http://<name>:<[logging] worker_log_server_port>`` (``trigger_log_server_port``
for the triggerer). `make up` binds its log servers to ``UP_HOST`` (``[api] host``), not to every
interface, so the name must be that address rather than the machine's FQDN (on Debian the FQDN is
often 127.0.1.1, where nothing of ours listens). A Celery worker of `make up EXECUTOR=celery` has
its own address (``UP_HOSTNAME``, set by scripts/up.py), where its own log server listens.
"""

from __future__ import annotations

import os


def hostname() -> str:
    if os.environ.get("UP_HOSTNAME"):
        return os.environ["UP_HOSTNAME"]
    from airflow.configuration import conf

    host = conf.get("api", "host", fallback="127.0.0.1")
    return "127.0.0.1" if host in ("0.0.0.0", "localhost", "") else host
