"""`breast_cancer_xgb_byom` end to end: `airflow dags test` against a real localmaker.

The DAG trains XGBoost inside an Airflow task, uploads `model.tar.gz` and deploys it with the real
built-in image URI (`683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0`), which
localmaker resolves to its built-in XGBoost implementation. Everything the DAG claims is checked here
independently: the tarball's layout and content in S3, the endpoint's status and wiring, and its
answers for the held-out rows against the model in that very tarball.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest

from include.mlpipeline import byom
from include.mlpipeline.s3 import split_s3_uri

from ..airflow_helpers import ROOT, airflow_env, dags_test, migrate, run_succeeded
from .support import deferred_tasks

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "breast_cancer_xgb"
DAG_ID = f"{NAME}_byom"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """localmaker + the stage's bucket and alerts topic (what CloudFormation makes on AWS) + an Airflow DB;
    the DAG runs once for the module."""
    from localmaker.launcher import start

    home = tmp_path_factory.mktemp("byom-e2e")
    stage = byom.load_stage_settings("dev")
    cfg = byom.load_byom_config(NAME)
    server = start(home / "localmaker")
    try:
        s3 = server.client("s3", stage.aws.region)
        s3.create_bucket(Bucket=stage.aws.bucket)
        server.client("sns", stage.aws.region).create_topic(Name=stage.alerts.sns_topic_arn.rsplit(":", 1)[1])
        af = airflow_env(home / "airflow", ROOT / "dags", server.url)
        migrate(af)
        result = dags_test(DAG_ID, af, conf={"stage": "dev"}, timeout=600)
        page = s3.list_objects_v2(Bucket=stage.aws.bucket, Prefix=f"byom/{NAME}/", Delimiter="/")
        yield {
            "server": server, "stage": stage, "cfg": cfg, "s3": s3, "result": result, "airflow": af,
            "output": result.stdout + result.stderr,
            "prefixes": [p["Prefix"] for p in page.get("CommonPrefixes", [])],
            "sm": server.client("sagemaker", stage.aws.region),
            "runtime": server.client("sagemaker-runtime", stage.aws.region),
        }
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _require_success(env: dict[str, Any]) -> None:
    assert run_succeeded(env["result"]), env["output"][-8000:]


def _run_prefix(env: dict[str, Any]) -> str:
    """The successful run's S3 prefix (``byom/<name>/<run key>/``), the only one it made."""
    assert len(env["prefixes"]) == 1, env["prefixes"]
    return env["prefixes"][0]


def _read(env: dict[str, Any], key: str) -> bytes:
    return env["s3"].get_object(Bucket=env["stage"].aws.bucket, Key=key)["Body"].read()


def test_the_run_succeeds_and_every_task_ran(env):
    _require_success(env)
    out = env["output"]
    for task_id in ("prepare_data", "train_and_package", "deploy_config", "deploy", "check_endpoint"):
        assert f"task_id={task_id}" in out and out.count(f"task_id={task_id}") >= 1, task_id
    assert f"serving with {IMAGE}" in out
    assert "endpoint check of breast-cancer-xgb-byom-dev: PASSED" in out
    # the endpoint wait was deferred to the triggerer (the stage's airflow.deferrable)
    assert deferred_tasks(out) == {"deploy"}, out[-8000:]


def test_the_tarball_in_s3_has_the_built_in_containers_layout(env, tmp_path):
    _require_success(env)
    prefix = _run_prefix(env)
    keys = sorted(o["Key"] for o in env["s3"].list_objects_v2(Bucket=env["stage"].aws.bucket, Prefix=prefix)["Contents"])
    assert keys == [prefix + k for k in (
        "data/test.csv", "data/train.csv", "evaluation/endpoint_check.json",
        "evaluation/reference_predictions.csv", "evaluation/training.json", "model/model.tar.gz",
    )]
    with tarfile.open(fileobj=io.BytesIO(_read(env, prefix + "model/model.tar.gz")), mode="r:gz") as tar:
        members = [(m.name, m.isfile()) for m in tar.getmembers()]
        model = json.loads(tar.extractfile("xgboost-model").read())
    assert members == [("xgboost-model", True)]  # one file at the top: the container loads every file there
    assert model["learner"]["objective"]["name"] == "binary:logistic"
    training = json.loads(_read(env, prefix + "evaluation/training.json"))
    assert training["members"][0][:2] == ["xgboost-model", "file"]
    assert training["metrics"]["accuracy"] >= 0.93 and training["metrics"]["auc"] >= 0.97
    assert training["xgboost_version"].startswith("3.2")


def test_the_endpoint_is_in_service_with_the_built_in_image_and_this_runs_tarball(env):
    _require_success(env)
    sm = env["sm"]
    endpoint = sm.describe_endpoint(EndpointName="breast-cancer-xgb-byom-dev")
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    [variant] = config["ProductionVariants"]
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == (
        f"s3://{env['stage'].aws.bucket}/{_run_prefix(env)}model/model.tar.gz"
    )
    assert not sm.list_training_jobs(NameContains="breast-cancer-xgb")["TrainingJobSummaries"]  # trained outside


def test_the_endpoint_answers_what_the_uploaded_model_predicts(env, tmp_path):
    """Independent of the DAG's own check: score the test rows with the tarball from S3 here, and ask
    the endpoint for the same rows."""
    _require_success(env)
    prefix = _run_prefix(env)
    bucket, key = split_s3_uri(f"s3://{env['stage'].aws.bucket}/{prefix}model/model.tar.gz")
    local = tmp_path / "model.tar.gz"
    env["s3"].download_file(bucket, key, str(local))
    [booster] = byom.load_packaged_model(local)
    test = byom.from_labelled_csv(_read(env, prefix + "data/test.csv").decode())
    expected = byom.predict(booster, test.features)
    reference = [float(v) for v in _read(env, prefix + "evaluation/reference_predictions.csv").split()]
    assert byom.max_abs_diff(expected, reference) == 0.0  # the DAG's reference is this tarball's model

    rows = byom.feature_rows_csv(test.features)
    body = env["runtime"].invoke_endpoint(
        EndpointName="breast-cancer-xgb-byom-dev", Body=("\n".join(rows) + "\n").encode(),
        ContentType="text/csv", Accept="text/csv",
    )["Body"].read()
    answers = [float(v) for v in body.decode().strip().split(",")]  # the container's real-time CSV shape
    assert len(answers) == test.rows == 143
    assert byom.max_abs_diff(answers, expected) <= 1e-5
    accuracy = sum(int(p > 0.5) == int(y) for p, y in zip(answers, test.labels, strict=True)) / test.rows
    assert accuracy >= 0.93

    check = json.loads(_read(env, prefix + "evaluation/endpoint_check.json"))
    assert check["passed"] is True and check["reasons"] == []
    assert check["rows"] == 143 and check["max_abs_diff"] <= 1e-5
    assert check["accuracy"] == pytest.approx(accuracy)


def test_a_model_below_the_quality_bar_is_not_deployed_and_the_endpoint_keeps_serving(env):
    """One depth-1 tree cannot reach training.min_test_accuracy / min_test_auc: the run fails in train_and_package (no
    retries: the same data gives the same model), uploads no tarball and leaves the endpoint alone."""
    _require_success(env)
    sm = env["sm"]
    before = sm.describe_endpoint(EndpointName="breast-cancer-xgb-byom-dev")["EndpointConfigName"]
    result = dags_test(
        DAG_ID, env["airflow"], conf={"num_boost_round": 1, "xgboost_params": {"max_depth": 1}}, timeout=300
    )
    out = result.stdout + result.stderr
    assert not run_succeeded(result), out[-5000:]
    assert "AirflowFailException: model not deployed: test accuracy" in out, out[-5000:]
    assert "< training.min_test_auc 0.97" in out
    page = env["s3"].list_objects_v2(Bucket=env["stage"].aws.bucket, Prefix=f"byom/{NAME}/")
    tarballs = [o["Key"] for o in page["Contents"] if o["Key"].endswith("model.tar.gz")]
    assert tarballs == [f"{_run_prefix(env)}model/model.tar.gz"]  # the failed run uploaded none
    after = sm.describe_endpoint(EndpointName="breast-cancer-xgb-byom-dev")
    assert (after["EndpointStatus"], after["EndpointConfigName"]) == ("InService", before)
