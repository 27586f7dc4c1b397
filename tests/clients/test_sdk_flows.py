"""The SageMaker Python SDK 2.x runs unchanged against localmaker.

Each test is one flow of ``flows/`` (a script written as a SageMaker notebook is, changed only in
how it builds its ``sagemaker.Session``: localmaker's endpoint and a bucket) run with the SDK's own
venv. The scripts assert on real outcomes themselves and print a ``RESULT`` line; the tests check
those results again and that nothing tried to reach AWS.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.clients.conftest import FlowResult, Flows

pytestmark = pytest.mark.slow


def _ok(flows: Flows, name: str) -> tuple[FlowResult, dict[str, Any]]:
    run = flows.result(name)
    result = run.result
    # every AWS call went to localmaker: nothing resolved (or tried to resolve) an amazonaws.com host
    assert "amazonaws.com" not in "".join(
        ln for ln in run.output.splitlines() if "Error" in ln or "Failed to resolve" in ln
    ), run.output[-4000:]
    print(f"{name}: {run.seconds:.1f} s")
    return run, result


def test_estimator_xgboost_fit_deploy_predict_transform(flows: Flows) -> None:
    _, r = _ok(flows, "xgboost_estimator")
    assert r["validation_error"] < 0.15
    assert len(r["predictions"]) == 8 and all(0 <= p <= 1 for p in r["predictions"])
    # upload_data's prefix URI (no trailing slash): outputs are named after the object, not its folder
    assert r["transform_output"].endswith("/sdk-xgboost/transform/batch.csv.out")
    assert r["transform_rows"] == 40 and r["first_row"][0] == "1000" and 0 <= float(r["first_row"][1]) <= 1
    sm = flows.server.client("sagemaker")
    # predictor.delete_endpoint() (by name: the tuner flow's best_estimator() endpoint, running at the same
    # time, is also called sagemaker-xgboost-<timestamp>)
    endpoints = {e["EndpointName"] for e in sm.list_endpoints(NameContains="sagemaker-xgboost")["Endpoints"]}
    assert r["endpoint"].startswith("sagemaker-xgboost") and r["endpoint"] not in endpoints, endpoints
    job = sm.describe_training_job(TrainingJobName=r["job"])
    assert job["OutputDataConfig"]["KmsKeyId"] == ""
    names = {m["Name"] for m in job["AlgorithmSpecification"]["MetricDefinitions"]}
    assert {"train:error", "validation:error", "validation:auc"} <= names


def test_hyperparameter_tuner_best_estimator_deploy_and_attach(flows: Flows) -> None:
    _, r = _ok(flows, "tuner")
    assert len(r["trials"]) == 3 and r["best"] in r["trials"]
    assert r["best_auc"] > 0.9
    assert r["probs"][0] > 0.5 > r["probs"][1]
    sm = flows.server.client("sagemaker")
    desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=r["tuning_job"])
    assert desc["BestTrainingJob"]["TrainingJobName"] == r["best"]
    assert desc["TrainingJobDefinition"]["StaticHyperParameters"]["_tuning_objective_metric"] == "validation:auc"


def test_kmeans_record_set_on_two_instances(flows: Flows) -> None:
    _, r = _ok(flows, "kmeans_record_set")
    assert len(set(r["clusters"][:3])) == 3 and r["clusters"][3] == r["clusters"][0]
    job = flows.server.client("sagemaker").describe_training_job(TrainingJobName=r["job"])
    assert job["ResourceConfig"]["InstanceCount"] == 2
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataType"] == "ManifestFile"


def test_sklearn_script_mode_with_upload_data_channels(flows: Flows) -> None:
    run, r = _ok(flows, "sklearn_script_mode")
    assert not r["train"].endswith("/")
    assert r["labels"] == [1.0, 0.0, 1.0]
    logs = flows.server.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                        logStreamNamePrefix=r["job"])["logStreams"]
    text = "\n".join(e["message"] for s in streams for e in logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=s["logStreamName"])["events"])
    # the script listed its channel: the two files, directly (not a 'train/' folder one level down)
    assert "train channel files: ['part-1.csv', 'part-2.csv']" in text, text[-2000:]


def test_linear_learner(flows: Flows) -> None:
    _, r = _ok(flows, "linear_learner")
    assert r["accuracy"] >= 0.85
    assert all(0 <= s <= 1 for s in r["scores"])


def test_pca(flows: Flows) -> None:
    _, r = _ok(flows, "pca")
    assert len(r["projection"]) == 3 and all(len(p) == 2 for p in r["projection"])


def test_training_job_analytics(flows: Flows) -> None:
    run, r = _ok(flows, "training_job_analytics")
    # fit() with its default logs=True streamed the job's CloudWatch log and its billing lines
    assert "#011validation-rmse:" in run.output and "Billable seconds:" in run.output, run.output[-3000:]
    assert {"train:rmse", "validation:rmse"} <= set(r["metrics"])
    assert r["rows"] >= 2


def test_default_model_monitor_suggest_baseline(flows: Flows) -> None:
    _, r = _ok(flows, "model_monitor_baseline")
    # the SDK's own analyzer image and environment contract, unchanged
    assert r["image"] == "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
    env = r["environment"]
    assert env["dataset_source"] == "/opt/ml/processing/input/baseline_dataset_input"
    assert env["output_path"] == "/opt/ml/processing/output" and env["publish_cloudwatch_metrics"] == "Disabled"
    assert '"csv"' in env["dataset_format"] and "baseline_constraints" not in env
    assert r["item_count"] == 200 and r["plan_distinct"] == 2
    for name, mean in r["expected_means"].items():
        assert abs(r["means"][name] - mean) < 1e-6, (name, r["means"], mean)
    assert r["constraint_features"] == ["age", "income", "plan", "visits"]
    assert r["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.1
    s3 = flows.server.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="sdk-flows", Prefix="sdk-model-monitor/baseline/")["Contents"]}
    assert keys == {f"sdk-model-monitor/baseline/{f}.json" for f in ("statistics", "constraints", "post_analytics")}
    # the post-analytics script ran after the results were written, and read them
    post = s3.get_object(Bucket="sdk-flows", Key="sdk-model-monitor/baseline/post_analytics.json")["Body"].read()
    assert json.loads(post) == {"item_count": 200}
    assert env["post_analytics_processor_script"].startswith("/opt/ml/processing/input/")
