"""`sagemaker_janitor` end to end against a real localmaker with real (tiny) endpoints.

Five "training runs" of diabetes_dnn leave a model and a dev + prod endpoint config each; prod
serves run 1 (old), the dev endpoint serves run 4 (the newest); an unrelated service has its own
endpoint, config and model. With a TTL of 0 hours and keep_last 2:

A. ``dry_run: true`` lists the plan and deletes nothing; a manual run that leaves ``dry_run``
   empty does the same;
B. ``dry_run: false`` deletes exactly what the plan listed: the dev endpoint, every config and model
   of the model beyond the newest two except prod's; prod, what it uses and the unrelated service
   are untouched, and prod still answers.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ..airflow_helpers import ROOT, airflow_env, dags_test, migrate, run_succeeded

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAG_ID = "sagemaker_janitor"
TINY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny-algo:1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
BUCKET = "janitor-e2e"
RUNS = [f"2026031{i}t020000" for i in range(5)]
DEV, PROD = "diabetes-dnn-dev", "diabetes-dnn-prod"


def model_name(run: str) -> str:
    return f"diabetes-dnn-dev-{run}"


def config_name(target: str, run: str) -> str:
    return f"diabetes-dnn-dev-{target}-{run}"


@dataclass
class World:
    server: Any
    sm: Any
    runtime: Any
    airflow: dict[str, str]

    def run(self, conf: dict[str, Any]) -> Any:
        return dags_test(DAG_ID, self.airflow, conf=conf, timeout=600)

    def _all(self, operation: str, key: str, name: str) -> set[str]:
        return {i[name] for page in self.sm.get_paginator(operation).paginate() for i in page[key]}

    def names(self) -> dict[str, set[str]]:
        return {
            "endpoint": self._all("list_endpoints", "Endpoints", "EndpointName"),
            "endpoint_config": self._all("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName"),
            "model": self._all("list_models", "Models", "ModelName"),
        }


def _wait_in_service(sm: Any, name: str) -> None:
    deadline = time.monotonic() + 60
    while (status := sm.describe_endpoint(EndpointName=name)["EndpointStatus"]) != "InService":
        assert status == "Creating" and time.monotonic() < deadline, f"{name}: {status}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from localmaker.launcher import start

    home = tmp_path_factory.mktemp("janitor-e2e")
    server = start(
        home / "localmaker",
        images=[ROOT / "container" / "images.yaml", ROOT / "tests" / "localmaker" / "images.yaml"],
    )
    try:
        s3, sm = server.client("s3"), server.client("sagemaker")
        s3.create_bucket(Bucket=BUCKET)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            data = json.dumps({"lines": 0, "host": "algo-1"}).encode()
            info = tarfile.TarInfo("model.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=buf.getvalue())
        artifact = f"s3://{BUCKET}/model.tar.gz"

        def make_model(name: str) -> None:
            sm.create_model(
                ModelName=name,
                ExecutionRoleArn=ROLE,
                PrimaryContainer={"Image": TINY, "ModelDataUrl": artifact},
            )

        def make_config(name: str, model: str) -> None:
            sm.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": model,
                        "InitialInstanceCount": 1,
                        "InstanceType": "ml.m5.large",
                    }
                ],
            )

        for run in RUNS:  # oldest first, as training runs would have made them
            make_model(model_name(run))
            make_config(config_name("dev", run), model_name(run))
            make_config(config_name("prod", run), model_name(run))
            time.sleep(0.01)
        make_model("other-service-model")
        make_config("other-service-config", "other-service-model")
        sm.create_endpoint(EndpointName=PROD, EndpointConfigName=config_name("prod", RUNS[1]))
        sm.create_endpoint(EndpointName=DEV, EndpointConfigName=config_name("dev", RUNS[4]))
        sm.create_endpoint(EndpointName="other-service", EndpointConfigName="other-service-config")
        for name in (PROD, DEV, "other-service"):
            _wait_in_service(sm, name)
        env = airflow_env(home / "airflow", ROOT / "dags", server.url)
        migrate(env)
        yield World(server=server, sm=sm, runtime=server.client("sagemaker-runtime"), airflow=env)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


EXPECTED = {
    "endpoint": {DEV},
    "endpoint_config": {config_name(t, r) for r in RUNS[:4] for t in ("dev", "prod")}
    - {config_name("prod", RUNS[1])},
    "model": {model_name(RUNS[0]), model_name(RUNS[2])},
}


def _planned(stdout: str) -> dict[str, set[str]]:
    """The DELETE lines of the plan table the task logged."""
    planned: dict[str, set[str]] = {"endpoint": set(), "endpoint_config": set(), "model": set()}
    for kind, name in re.findall(r"DELETE\s+(endpoint_config|endpoint|model)\s+(\S+)", stdout):
        planned[kind].add(name)
    return planned


def test_a_dry_runs_list_the_plan_and_delete_nothing(world: World) -> None:
    before = world.names()
    assert (len(before["endpoint"]), len(before["endpoint_config"]), len(before["model"])) == (3, 11, 6)
    result = world.run({"dry_run": True, "ttl_hours": 0, "keep_last": 2})
    assert run_succeeded(result), result.stdout[-8000:]
    assert "DRY RUN (nothing is deleted)" in result.stdout
    assert _planned(result.stdout) == EXPECTED
    assert re.search(r"keep\s+endpoint\s+diabetes-dnn-prod\s+protected", result.stdout)
    assert re.search(
        rf"keep\s+endpoint_config\s+{config_name('prod', RUNS[1])}\s+used by endpoint {PROD}", result.stdout
    )
    assert world.names() == before

    manual = world.run({"ttl_hours": 0, "keep_last": 2})  # dry_run left empty on a manual trigger
    assert run_succeeded(manual), manual.stdout[-8000:]
    assert "DRY RUN (nothing is deleted)" in manual.stdout
    assert world.names() == before


def test_b_a_live_run_deletes_exactly_the_plan(world: World) -> None:
    before = world.names()
    result = world.run({"dry_run": False, "ttl_hours": 0, "keep_last": 2})
    assert run_succeeded(result), result.stdout[-8000:]
    assert "DRY RUN" not in result.stdout
    assert _planned(result.stdout) == EXPECTED
    after = world.names()
    for kind in before:
        assert before[kind] - after[kind] == EXPECTED[kind], kind
        assert after[kind] <= before[kind]
    assert {PROD, "other-service"} <= after["endpoint"]
    assert {config_name("prod", RUNS[1]), config_name("dev", RUNS[4]), config_name("prod", RUNS[4])} <= after[
        "endpoint_config"
    ]
    assert {model_name(RUNS[1]), model_name(RUNS[3]), model_name(RUNS[4]), "other-service-model"} <= after[
        "model"
    ]
    assert "other-service-config" in after["endpoint_config"]
    assert world.sm.describe_endpoint(EndpointName=PROD)["EndpointStatus"] == "InService"
    answer = world.runtime.invoke_endpoint(EndpointName=PROD, Body=b"1,2,3", ContentType="text/csv")[
        "Body"
    ].read()
    assert answer.decode().strip() == "6.0"

    again = world.run({"dry_run": False, "ttl_hours": 0, "keep_last": 2})  # nothing left to do
    assert run_succeeded(again), again.stdout[-8000:]
    assert "nothing to delete" in again.stdout
    assert world.names() == after
