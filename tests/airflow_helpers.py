"""Run real DAGs with `airflow dags test` in an isolated AIRFLOW_HOME against a localmaker URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow_env(home: Path, dags_folder: Path, endpoint_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),  # as make up, compose and Astro load it
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {"conn_type": "aws", "extra": {"region_name": "us-east-1", "endpoint_url": endpoint_url}}
            ),
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, cwd=ROOT, timeout=300)


def dags_test(
    dag_id: str,
    env: dict[str, str],
    logical_date: str | None = None,
    conf: dict | None = None,
    timeout: float = 900,
    stream: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``airflow dags test``; with ``stream`` the task progress lines are echoed as they come."""
    cmd = [AIRFLOW, "dags", "test", dag_id]
    if logical_date:
        cmd.append(logical_date)
    if conf is not None:
        cmd += ["--conf", json.dumps(conf)]
    if not stream:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "[DAG TEST] end task" in line or "[DAG TEST] starting" in line or "gate:" in line or "test metrics" in line:
            print("  " + line.split("] ", 1)[-1].split(" [airflow")[0].strip(), flush=True)
    code = proc.wait(timeout)
    return subprocess.CompletedProcess(cmd, code, "".join(lines), "")


def run_succeeded(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 and "state=success" in (result.stdout + result.stderr)
