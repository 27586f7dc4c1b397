"""The built-in algorithm and script-mode models through the same `<model>_training` DAG, end to end.

Each model is configuration only (include/config/models/*.yaml): k-means on RecordIO-protobuf,
XGBoost with a tuning job, the scikit-learn framework container running our own script, and
image classification on PNG folders + .lst files. One localmaker and one Airflow DB for the
module; each run is `airflow dags test` with auto-approval, and the test checks what it left:
the channels in the algorithm's format, the job, the evaluation, the registry and prod answering.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from include.mlpipeline.config import load_config
from include.mlpipeline.evaluate import METRICS_FILE

from ..airflow_helpers import ROOT, airflow_env, migrate, run_succeeded
from .support import Pipeline, output_tail

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STAGE = "dev"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from include.mlpipeline.bootstrap import provision_stage
    from localmaker.launcher import start

    home = tmp_path_factory.mktemp("builtin-e2e")
    cfg = load_config("digits_kmeans", STAGE)
    server = start(home / "localmaker")
    try:
        s3 = server.client("s3", cfg.aws.region)
        provision_stage(cfg, s3, server.client("sns", cfg.aws.region))
        airflow = airflow_env(home / "airflow", ROOT / "dags", server.url)
        migrate(airflow)
        yield {"server": server, "airflow": airflow, "s3": s3}
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _pipeline(env: dict[str, Any], model: str) -> Pipeline:
    cfg = load_config(model, STAGE)
    server = env["server"]
    return Pipeline(
        server=server, cfg=cfg, airflow=env["airflow"], s3=env["s3"],
        sm=server.client("sagemaker", cfg.aws.region), runtime=server.client("sagemaker-runtime", cfg.aws.region),
    )


def _train(p: Pipeline) -> dict[str, Any]:
    """Run the DAG; return the run's evaluation document and prefix."""
    result = p.run(f"{p.cfg.model}_training", conf={"auto_approve": True}, timeout=1200)
    assert run_succeeded(result), output_tail(result)
    reports = [k for k in p.keys(f"{p.cfg.model}/") if k.endswith(f"evaluation/{METRICS_FILE}")]
    assert reports, "no evaluation report was written"
    doc = json.loads(p.read_text(reports[-1]))
    assert doc["gate"]["passed"], doc["gate"]
    return {"evaluation": doc, "prefix": reports[-1].split("evaluation/")[0]}


def _prod_invoke(p: Pipeline, body: bytes) -> bytes:
    ep = p.endpoint("prod")
    assert ep["EndpointStatus"] == "InService", ep
    return p.runtime.invoke_endpoint(
        EndpointName=p.cfg.endpoint.prod_name, Body=body,
        ContentType=p.cfg.inference.content_type, Accept=p.cfg.inference.accept,
    )["Body"].read()


def _approved(p: Pipeline) -> list[dict[str, Any]]:
    return p.sm.list_model_packages(
        ModelPackageGroupName=p.cfg.registry.model_package_group_name, ModelApprovalStatus="Approved"
    )["ModelPackageSummaryList"]


def test_digits_kmeans_on_recordio_protobuf(env: dict[str, Any]) -> None:
    p = _pipeline(env, "digits_kmeans")
    run = _train(p)
    keys = p.keys(run["prefix"])
    assert any(k.startswith(f"{run['prefix']}train/") and k.endswith(".rec") for k in keys), keys
    assert any(k.startswith(f"{run['prefix']}train_csv/") for k in keys)  # the baseline's CSV copy
    metrics = run["evaluation"]["metrics"]
    assert metrics["purity"] >= 0.6 and metrics["n"] > 300, metrics
    job = p.sm.describe_training_job(TrainingJobName=run["evaluation"]["training_job"])
    assert job["InputDataConfig"][0]["ContentType"] == "application/x-recordio-protobuf"
    assert {m["MetricName"] for m in job["FinalMetricDataList"]} >= {"test:msd"}
    answer = _prod_invoke(p, b"0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,"
                             b"0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0\n")
    record = json.loads(answer.decode().splitlines()[0])
    assert 0 <= record["closest_cluster"] < 10 and record["distance_to_cluster"] >= 0
    assert len(_approved(p)) == 1

    # batch scoring with the champion: JSON Lines answers paired with the ids by position
    result = p.run("digits_kmeans_batch_transform", timeout=900)
    assert run_succeeded(result), output_tail(result)
    keys = p.keys("digits_kmeans/predictions/")
    summary = json.loads(p.read_text(next(k for k in keys if k.endswith("summary.json"))))
    assert summary["rows_in"] == summary["rows_out"] == 1797
    lines = p.read_text(next(k for k in keys if k.endswith("predictions.csv"))).splitlines()
    assert len(lines) == 1797 and lines[0].split(",")[0] == "0"
    assert {float(line.split(",")[1]) for line in lines} <= {float(c) for c in range(10)}


def test_breast_cancer_xgboost_tuned(env: dict[str, Any]) -> None:
    p = _pipeline(env, "breast_cancer_xgboost")
    run = _train(p)
    metrics = run["evaluation"]["metrics"]
    assert metrics["auc"] >= 0.95 and metrics["accuracy"] >= 0.9, metrics
    tunings = p.sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    tuning = [t for t in tunings if t["HyperParameterTuningJobName"].startswith("breast-cancer-xgboost")]
    assert tuning and tuning[0]["HyperParameterTuningJobStatus"] == "Completed", tuning
    detail = p.sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning[0]["HyperParameterTuningJobName"])
    assert detail["TrainingJobStatusCounters"]["Completed"] == 4
    best = detail["BestTrainingJob"]
    assert best["TrainingJobName"] == run["evaluation"]["training_job"]  # the best trial was evaluated
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == "validation:auc"
    row = "17.99,10.38,122.8,1001,0.1184,0.2776,0.3001,0.1471,0.2419,0.07871,1.095,0.9053,8.589,153.4," \
          "0.006399,0.04904,0.05373,0.01587,0.03003,0.006193,25.38,17.33,184.6,2019,0.1622,0.6656,0.7119," \
          "0.2654,0.4601,0.1189"  # the first (malignant, label 0) row of the data set
    probability = float(_prod_invoke(p, row.encode()).decode().strip())
    assert probability < 0.5


def test_iris_sklearn_script_mode(env: dict[str, Any]) -> None:
    p = _pipeline(env, "iris_sklearn")
    run = _train(p)
    assert run["evaluation"]["metrics"]["accuracy"] >= 0.85, run["evaluation"]["metrics"]
    job = p.sm.describe_training_job(TrainingJobName=run["evaluation"]["training_job"])
    hps = job["HyperParameters"]
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert json.loads(hps["sagemaker_submit_directory"]).endswith("code/sourcedir.tar.gz")
    assert hps["n-estimators"] == "100"
    model = p.sm.describe_model(
        ModelName=p.sm.describe_endpoint_config(EndpointConfigName=p.endpoint("prod")["EndpointConfigName"])[
            "ProductionVariants"][0]["ModelName"]
    )
    assert model["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "train.py"
    # a setosa, a versicolor and a virginica
    answer = _prod_invoke(p, b"5.1,3.5,1.4,0.2\n6.4,3.2,4.5,1.5\n7.7,3.0,6.1,2.3\n").decode()
    assert [int(float(v)) for v in answer.split()] == [0, 1, 2]


def test_image_classifier_on_png_folders(env: dict[str, Any]) -> None:
    p = _pipeline(env, "image_classifier")
    run = _train(p)
    keys = p.keys(run["prefix"])
    lst = [k for k in keys if k.startswith(f"{run['prefix']}train_lst/")]
    assert lst and any(k.endswith(".png") for k in keys)
    lines = p.read_text(lst[0]).splitlines()
    labels = {int(float(line.split("\t")[1])) for line in lines}
    assert labels == {0, 1, 2}
    job = p.sm.describe_training_job(TrainingJobName=run["evaluation"]["training_job"])
    assert job["HyperParameters"]["num_training_samples"] == str(len(lines))
    assert run["evaluation"]["metrics"]["accuracy"] >= 0.85, run["evaluation"]["metrics"]
    test_png = next(k for k in keys if k.startswith(f"{run['prefix']}test/") and k.endswith(".png"))
    probabilities = json.loads(_prod_invoke(p, p.s3.get_object(Bucket=p.cfg.aws.bucket, Key=test_png)["Body"].read()))
    assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-3
    # no tabular baseline for images: the DAG has no baseline step and no monitoring DAG
    assert not [k for k in p.keys(f"{p.cfg.model}/") if "/baseline/" in k]
