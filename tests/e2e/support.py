"""Helpers for the end-to-end tests: one localmaker + one AIRFLOW_HOME, and ways to look inside."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from include.mlpipeline.config import PipelineConfig

from ..airflow_helpers import AIRFLOW, ROOT, dags_test

MODEL = "diabetes_dnn"
STAGE = "dev"


@dataclass
class Pipeline:
    """A running localmaker and the Airflow environment pointed at it, shared by a module's tests."""

    server: Any
    cfg: PipelineConfig
    airflow: dict[str, str]
    s3: Any
    sm: Any
    runtime: Any

    def run(self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 900):
        """``airflow dags test`` (a fresh run id each call)."""
        return dags_test(dag_id, self.airflow, conf=conf, timeout=timeout)

    def cli_json(self, *args: str) -> Any:
        """``airflow <args> -o json``, parsed (the CLI may print warnings before the JSON)."""
        result = subprocess.run(
            [AIRFLOW, *args, "-o", "json"],
            env=self.airflow, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stderr[-3000:]}"
        for line in result.stdout.splitlines():
            if line.startswith(("[{", "[]", "{")):
                return json.loads(line)
        raise AssertionError(f"no JSON from airflow {' '.join(args)}:\n{result.stdout[-3000:]}")

    def latest_run(self, dag_id: str) -> dict[str, Any]:
        runs = self.cli_json("dags", "list-runs", dag_id)
        assert runs, f"{dag_id} has no runs"
        return max(runs, key=lambda r: r["run_after"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """task_id -> {"state", "start_date", "end_date", ...} from the metadata DB."""
        return {t["task_id"]: t for t in self.cli_json("tasks", "states-for-dag-run", dag_id, run_id)}

    def downstream_of(self, dag_id: str, task_id: str) -> set[str]:
        """Every task transitively downstream of ``task_id``, from the DAG as Airflow parses it."""
        script = (
            "import json, sys\n"
            "from airflow.dag_processing.dagbag import DagBag\n"
            "dag = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[2]]\n"
            "print(json.dumps(sorted(dag.get_task(sys.argv[3]).get_flat_relative_ids(upstream=False))))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, self.airflow["AIRFLOW__CORE__DAGS_FOLDER"], dag_id, task_id],
            env=self.airflow, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return set(json.loads(result.stdout.strip().splitlines()[-1]))

    def asset_events(self, asset: str, run_id: str) -> list[dict[str, Any]]:
        """The ``extra`` of each event of ``asset`` that the run ``run_id`` emitted, from the metadata DB."""
        script = (
            "import json, sys\n"
            "from sqlalchemy import select\n"
            "from airflow.models.asset import AssetEvent, AssetModel\n"
            "from airflow.utils.session import create_session\n"
            "with create_session() as s:\n"
            "    rows = s.scalars(select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)"
            ".where(AssetModel.name == sys.argv[1], AssetEvent.source_run_id == sys.argv[2])"
            ".order_by(AssetEvent.id)).all()\n"
            "print(json.dumps(list(rows)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, asset, run_id],
            env=self.airflow, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def run_note(self, dag_id: str, run_id: str) -> str | None:
        """The DAG run's note (what the grid shows on the run), from the metadata DB."""
        script = (
            "import json, sys\n"
            "from sqlalchemy import select\n"
            "from airflow.models.dagrun import DagRun\n"
            "from airflow.utils.session import create_session\n"
            "with create_session() as s:\n"
            "    run = s.scalars(select(DagRun).where(DagRun.dag_id == sys.argv[1], DagRun.run_id == sys.argv[2])).one()\n"
            "    print(json.dumps(run.note))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, dag_id, run_id],
            env=self.airflow, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def endpoint(self, target: str) -> dict[str, Any]:
        name = self.cfg.endpoint.dev_name if target == "dev" else self.cfg.endpoint.prod_name
        return self.sm.describe_endpoint(EndpointName=name)

    def predict(self, target: str, rows: list[str]) -> list[float]:
        """One CSV request with ``rows`` (features only) to the dev or prod endpoint."""
        name = self.cfg.endpoint.dev_name if target == "dev" else self.cfg.endpoint.prod_name
        body = self.runtime.invoke_endpoint(
            EndpointName=name, Body=("\n".join(rows) + "\n").encode(), ContentType="text/csv", Accept="text/csv"
        )["Body"].read().decode()
        return [float(line.split(",")[-1]) for line in body.splitlines() if line.strip()]

    def read_text(self, key: str) -> str:
        return self.s3.get_object(Bucket=self.cfg.aws.bucket, Key=key)["Body"].read().decode()

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.cfg.aws.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def deferred_tasks(output: str) -> set[str]:
    """Tasks of one `airflow dags test` run that deferred: the task runner paused them as DEFERRED
    (and `dags test` then ran their trigger in line, as the triggerer would)."""
    return {
        m.group(1)
        for line in output.splitlines()
        if "Pausing task as DEFERRED" in line and (m := re.search(r"\btask_id=([\w.]+)", line))
    }


def output_tail(result: subprocess.CompletedProcess[str], chars: int = 8000) -> str:
    return (result.stdout + result.stderr)[-chars:]


def r2_score(y_true: list[float], y_pred: list[float]) -> float:
    """1 - SS_res / SS_tot, computed here rather than trusting the library under test."""
    mean = sum(y_true) / len(y_true)
    ss_tot = sum((y - mean) ** 2 for y in y_true)
    ss_res = sum((y - p) ** 2 for y, p in zip(y_true, y_pred, strict=True))
    return 1.0 - ss_res / ss_tot
