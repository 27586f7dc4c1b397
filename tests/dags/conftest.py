"""Parse the real ``dags/`` folder once per session, as Airflow's DAG processor would.

Airflow reads ``AIRFLOW_HOME`` when it is first imported; pointing it at a private directory
(unless the caller chose one) keeps these tests from writing into ``~/airflow``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = ROOT / "dags"

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-dags-tests-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@pytest.fixture(scope="session")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    # Airflow 3.3's DagBag has no include_examples: example DAGs are a separate bundle.
    return DagBag(dag_folder=str(DAGS_DIR))
