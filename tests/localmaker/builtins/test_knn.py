"""The k-NN built-in (``knn:1``) through a real localmaker server: the Airflow provider's own endpoint example
(four CSV rows, sample_size 3, k 3, one CSV request), iris / a regression set in RecordIO-protobuf and CSV with
a ``test`` channel scored against scikit-learn's k-NN, dimension reduction, every request / response format
including ``verbose=true``, and the failure wording. Pure parts are unit-tested without the server.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError as BotoClientError
from sklearn.datasets import load_iris, make_regression
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from localmaker.builtins import knn
from localmaker.builtins.runtime import ClientError
from localmaker.builtins.serving import HttpError
from smformats.recordio import decode_label_map, iter_recordio, to_recordio_protobuf

from ..conftest import ROLE, unique, wait_endpoint, wait_for, wait_training

# what sagemaker.core.image_uris.retrieve("knn", region) returns (the provider example's us-east-1 / us-west-2)
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1"
IMAGE_US_WEST_2 = "174872318107.dkr.ecr.us-west-2.amazonaws.com/knn:1"
IMAGE_EU = "438346466558.dkr.ecr.eu-west-1.amazonaws.com/knn:1"
# example_sagemaker_endpoint.py (apache-airflow-providers-amazon system test)
TRAIN_DATA = "0,4.9,2.5,4.5,1.7\n1,7.0,3.2,4.7,1.4\n0,7.3,2.9,6.3,1.8\n2,5.1,3.5,1.4,0.2\n"
SAMPLE_TEST_DATA = "6.4,3.2,4.5,1.5"
PROVIDER_HPS = {"predictor_type": "classifier", "feature_dim": "4", "k": "3",
                "sample_size": str(TRAIN_DATA.count("\n") - 1)}


def iris() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    order = np.random.default_rng(3).permutation(len(x))
    tr, te = order[:110], order[110:]
    return x[tr].astype(np.float32), y[tr].astype(np.float32), x[te].astype(np.float32), y[te].astype(np.float32)


def regression() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = make_regression(n_samples=400, n_features=6, noise=5.0, random_state=0)
    x, y = x.astype(np.float32), (y / 10).astype(np.float32)
    return x[:320], y[:320], x[320:], y[320:]


XTR, YTR, XTE, YTE = iris()
RXTR, RYTR, RXTE, RYTE = regression()


def csv_bytes(x: np.ndarray, y: np.ndarray | None = None) -> bytes:
    rows = x if y is None else np.column_stack([y, x])
    return "".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in rows).encode()


def channel(name: str, bucket: str, uri: str, ctype: str | None) -> dict[str, Any]:
    ch: dict[str, Any] = {"ChannelName": name, "CompressionType": "None", "DataSource": {"S3DataSource": {
        "S3DataDistributionType": "FullyReplicated", "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{uri}"}}}
    if ctype:
        ch["ContentType"] = ctype
    return ch


def job_request(name: str, bucket: str, channels: list[dict[str, Any]], hps: dict[str, str],
                image: str = IMAGE) -> dict[str, Any]:
    """As the provider example's training_config (no MetricDefinitions: the image's own apply)."""
    return {"TrainingJobName": name, "RoleArn": ROLE, "HyperParameters": hps,
            "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
            "InputDataConfig": channels, "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/knn-results/"},
            "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 6 * 60}}


def final_metrics(job: dict[str, Any]) -> dict[str, float]:
    return {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}


@pytest.fixture(scope="module")
def root(s3, bucket) -> str:
    """The module's data under one S3 prefix."""
    root = unique("knn-data")
    put = lambda key, body: s3.put_object(Bucket=bucket, Key=f"{root}/{key}", Body=body)  # noqa: E731
    put("input-data/train.csv", TRAIN_DATA.encode())
    put("iris/train/iris.rec", to_recordio_protobuf(XTR, YTR))
    put("iris/test/iris.rec", to_recordio_protobuf(XTE, YTE))
    put("reg/train/part-0.csv", csv_bytes(RXTR[:200], RYTR[:200]))
    put("reg/train/part-1.csv", csv_bytes(RXTR[200:], RYTR[200:]))
    put("reg/test/test.csv", csv_bytes(RXTE, RYTE))
    return root


def iris_channels(bucket: str, root: str) -> list[dict[str, Any]]:
    return [channel("train", bucket, f"{root}/iris/train/", None),  # RecordIO-protobuf is the default
            channel("test", bucket, f"{root}/iris/test/", "application/x-recordio-protobuf")]


@pytest.fixture(scope="module")
def jobs(sm, bucket, root) -> dict[str, dict[str, Any]]:
    """Every training job of the module, started together and awaited once."""
    provider = [channel("train", bucket, f"{root}/input-data/train.csv", "text/csv")]
    iris_ch = iris_channels(bucket, root)
    reg_ch = [channel("train", bucket, f"{root}/reg/train/", "text/csv"),
              channel("test", bucket, f"{root}/reg/test/", "text/csv;label_size=1")]
    iris_hps = {"predictor_type": "classifier", "feature_dim": "4", "k": "5", "sample_size": "500"}
    requests = {
        "provider": job_request(unique("knn-provider"), bucket, provider, PROVIDER_HPS),
        "iris": job_request(unique("knn-iris"), bucket, iris_ch, iris_hps, image=IMAGE_US_WEST_2),
        "regressor": job_request(unique("knn-reg"), bucket, reg_ch, {
            "predictor_type": "regressor", "feature_dim": "6", "k": "4", "sample_size": "1000"}, image=IMAGE_EU),
        "fjlt": job_request(unique("knn-fjlt"), bucket, iris_ch, {
            **iris_hps, "sample_size": "80", "dimension_reduction_type": "fjlt", "dimension_reduction_target": "3",
            "index_type": "faiss.IVFPQ", "faiss_index_pq_m": "3", "faiss_index_ivf_nlists": "4"}),
        "none": job_request(unique("knn-none"), bucket, provider, {}),
        "type": job_request(unique("knn-type"), bucket, provider, {**PROVIDER_HPS, "predictor_type": "classification"}),
        "target": job_request(unique("knn-target"), bucket, provider, {**PROVIDER_HPS, "dimension_reduction_type": "sign"}),
        "ivfpq": job_request(unique("knn-ivfpq"), bucket, provider, {
            **PROVIDER_HPS, "index_type": "faiss.IVFPQ", "index_metric": "COSINE"}),
        "k": job_request(unique("knn-k"), bucket, provider, {**PROVIDER_HPS, "k": "4"}),
    }
    for req in requests.values():
        sm.create_training_job(**req)
    return {key: wait_training(sm, req["TrainingJobName"], timeout=180) for key, req in requests.items()}


@pytest.fixture(scope="module")
def endpoint(sm, jobs) -> Any:
    """The provider example's model -> endpoint config -> endpoint."""
    job = jobs["provider"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = unique("knn-model")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Mode": "SingleModel", "Image": IMAGE, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
    cfg = unique("knn-endpoint-config")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[{
        "VariantName": "demo", "ModelName": model, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    name = unique("knn-endpoint")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    ep = wait_endpoint(sm, name)
    assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    yield name
    sm.delete_endpoint(EndpointName=name)


def invoke(runtime: Any, endpoint: str, body: bytes, ctype: str, accept: str | None = None) -> tuple[bytes, str]:
    kwargs = {"Accept": accept} if accept else {}
    r = runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType=ctype, **kwargs)
    return r["Body"].read(), r["ContentType"]


# ---- the provider's example, end to end -------------------------------------------------------------------
def test_provider_example_trains_deploys_and_answers(s3, runtime, jobs, endpoint):
    job = jobs["provider"]
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    bucket, key = job["ModelArtifacts"]["S3ModelArtifacts"][5:].split("/", 1)
    assert key.endswith(f"knn-results/{job['TrainingJobName']}/output/model.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), mode="r:gz") as tar:
        assert [n.lstrip("./") for n in tar.getnames() if n.strip("./")] == ["model_algo-1"]
        with np.load(io.BytesIO(tar.extractfile([n for n in tar.getnames() if n.strip("./")][0]).read())) as z:
            assert z["points"].shape == (3, 4)  # sample_size=3 of the 4 rows
            assert set(z["labels"].tolist()) <= {0.0, 1.0, 2.0}
    # exactly the provider's call_endpoint task: text/csv, no Accept, json.loads(...)["predictions"]
    body, ctype = invoke(runtime, endpoint, SAMPLE_TEST_DATA.encode(), "text/csv")
    assert ctype == "application/json"
    predictions = json.loads(body.decode())["predictions"]
    assert predictions == [{"predicted_label": 1.0}]  # the versicolor row (label 1) is the nearest


def test_verbose_answers_carry_distances_and_labels(runtime, endpoint):
    body, _ = invoke(runtime, endpoint, SAMPLE_TEST_DATA.encode(), "text/csv", "application/json; verbose=true")
    (pred,) = json.loads(body)["predictions"]
    assert list(pred) == ["predicted_label", "distances", "labels"]
    assert len(pred["distances"]) == len(pred["labels"]) == 3
    assert pred["distances"] == sorted(pred["distances"])  # nearest first
    assert pred["labels"][0] == pred["predicted_label"] == 1.0
    query = np.array([float(v) for v in SAMPLE_TEST_DATA.split(",")])
    assert pred["distances"][0] == pytest.approx(float(np.sum((query - [7.0, 3.2, 4.7, 1.4]) ** 2)), rel=1e-5)
    rec, _ = invoke(runtime, endpoint, SAMPLE_TEST_DATA.encode(), "text/csv", "application/x-recordio-protobuf; verbose=true")
    (label_map,) = [decode_label_map(p) for p in iter_recordio(io.BytesIO(rec))]
    assert set(label_map) == {"predicted_label", "distances", "labels"}
    assert label_map["labels"] == pred["labels"]
    assert label_map["distances"] == pytest.approx(pred["distances"], rel=1e-6)


def test_every_request_and_response_format(runtime, endpoint):
    x = np.array([[6.4, 3.2, 4.5, 1.5], [5.0, 3.4, 1.5, 0.2], [7.2, 3.0, 5.8, 1.6]], dtype=np.float32)
    requests = {
        "text/csv": csv_bytes(x),
        "text/csv; label_size=1": csv_bytes(x, np.array([9, 9, 9])),  # a label column is dropped when declared
        "application/json": json.dumps({"instances": [
            {"data": {"features": {"values": x[0].tolist()}}}, {"features": x[1].tolist()},
            {"features": x[2].tolist()}]}).encode(),
        "application/jsonlines": "".join(json.dumps({"features": r.tolist()}) + "\n" for r in x).encode(),
        "application/x-recordio-protobuf": to_recordio_protobuf(x),
    }
    reference, _ = invoke(runtime, endpoint, requests["text/csv"], "text/csv", "application/json")
    expected = json.loads(reference)["predictions"]
    assert [p["predicted_label"] for p in expected] == [1.0, 2.0, 0.0]
    for ctype, body in requests.items():
        out, otype = invoke(runtime, endpoint, body, ctype, "application/json")
        assert otype == "application/json" and json.loads(out)["predictions"] == expected, ctype
        out, otype = invoke(runtime, endpoint, body, ctype, "application/jsonlines")
        assert otype == "application/jsonlines"
        assert [json.loads(line) for line in out.decode().splitlines()] == expected, ctype
        out, otype = invoke(runtime, endpoint, body, ctype, "application/x-recordio-protobuf")
        assert otype == "application/x-recordio-protobuf"
        assert [decode_label_map(p) for p in iter_recordio(io.BytesIO(out))] == [
            {"predicted_label": [p["predicted_label"]]} for p in expected], ctype
    for body, ctype, accept, status, text in [
        (b"1,2,3\n", "text/csv", None, 400, "expects 4 features"),
        (SAMPLE_TEST_DATA.encode(), "text/csv", "text/csv", 406, "not supported"),
        (SAMPLE_TEST_DATA.encode(), "application/x-npy", None, 415, "not supported"),
    ]:
        with pytest.raises(BotoClientError) as exc:
            invoke(runtime, endpoint, body, ctype, accept)
        err = exc.value.response
        assert err["Error"]["Code"] == "ModelError" and err["OriginalStatusCode"] == status
        assert text in err["OriginalMessage"]


# the example DAG's tasks (set_up's configs, the four operators, call_endpoint), run as the provider's
# unmodified operators' execute() in a fresh interpreter pointed at localmaker by AWS_ENDPOINT_URL / aws_default
PROVIDER_CHAIN = '''
"""The provider's example_sagemaker_endpoint tasks, run as the operators' execute() against AWS_ENDPOINT_URL."""
import json, sys
import boto3
from airflow.providers.amazon.aws.operators.sagemaker import (SageMakerEndpointConfigOperator,
    SageMakerEndpointOperator, SageMakerModelOperator, SageMakerTrainingOperator)

env_id, role_arn = sys.argv[1], "arn:aws:iam::123456789012:role/SageMakerRole"
TRAIN_DATA = "0,4.9,2.5,4.5,1.7\\n1,7.0,3.2,4.7,1.4\\n0,7.3,2.9,6.3,1.8\\n2,5.1,3.5,1.4,0.2\\n"
bucket_name, input_data_s3_key, training_output_s3_key = f"{env_id}-sagemaker", f"{env_id}/input-data", f"{env_id}/results"
knn_image_uri = "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1"
training_job_name, model_name = f"{env_id}-train", f"{env_id}-KNN-model"
boto3.client("s3").create_bucket(Bucket=bucket_name)
boto3.client("s3").put_object(Bucket=bucket_name, Key=f"{input_data_s3_key}/train.csv", Body=TRAIN_DATA.encode())
training_config = {
    "TrainingJobName": training_job_name, "RoleArn": role_arn,
    "AlgorithmSpecification": {"TrainingImage": knn_image_uri, "TrainingInputMode": "File"},
    "HyperParameters": {"predictor_type": "classifier", "feature_dim": "4", "k": "3",
                        "sample_size": str(TRAIN_DATA.count("\\n") - 1)},
    "InputDataConfig": [{"ChannelName": "train", "CompressionType": "None", "ContentType": "text/csv",
                         "DataSource": {"S3DataSource": {"S3DataDistributionType": "FullyReplicated", "S3DataType": "S3Prefix",
                                                         "S3Uri": f"s3://{bucket_name}/{input_data_s3_key}/train.csv"}}}],
    "OutputDataConfig": {"S3OutputPath": f"s3://{bucket_name}/{training_output_s3_key}/"},
    "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
    "StoppingCondition": {"MaxRuntimeInSeconds": 6 * 60},
}
model_config = {"ModelName": model_name, "ExecutionRoleArn": role_arn, "PrimaryContainer": {
    "Mode": "SingleModel", "Image": knn_image_uri,
    "ModelDataUrl": f"s3://{bucket_name}/{training_output_s3_key}/{training_job_name}/output/model.tar.gz"}}
endpoint_config = {"EndpointConfigName": f"{env_id}-endpoint-config", "ProductionVariants": [{
    "VariantName": f"{env_id}-demo", "ModelName": model_name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}]}
deploy = {"EndpointName": f"{env_id}-endpoint", "EndpointConfigName": f"{env_id}-endpoint-config"}
SageMakerTrainingOperator(task_id="train_model", config=training_config, print_log=False, check_interval=1).execute({})
SageMakerModelOperator(task_id="create_model", config=model_config).execute({})
SageMakerEndpointConfigOperator(task_id="configure_endpoint", config=endpoint_config).execute({})
SageMakerEndpointOperator(task_id="deploy_endpoint", config=deploy, check_interval=1).execute({})
# call_endpoint, verbatim
response = boto3.Session().client("sagemaker-runtime").invoke_endpoint(
    EndpointName=deploy["EndpointName"], ContentType="text/csv", Body="6.4,3.2,4.5,1.5")
print("PREDICTIONS " + json.dumps(json.loads(response["Body"].read().decode())["predictions"]))
boto3.client("sagemaker").delete_endpoint(EndpointName=deploy["EndpointName"])
'''


def test_provider_operators_run_the_example_against_localmaker(server, tmp_path):
    script = tmp_path / "example_sagemaker_endpoint_tasks.py"
    script.write_text(PROVIDER_CHAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_"))}
    env.update({"AWS_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "us-east-1", "AIRFLOW_HOME": str(tmp_path / "airflow"),
                "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                    {"conn_type": "aws", "extra": {"region_name": "us-east-1", "endpoint_url": server.url}})})
    result = subprocess.run([sys.executable, str(script), unique("knn-af")], env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("PREDICTIONS ")]
    assert json.loads(line.removeprefix("PREDICTIONS ")) == [{"predicted_label": 1.0}]


# ---- the test channel and its metrics ----------------------------------------------------------------------
def test_classifier_test_accuracy_matches_scikit_learn(jobs, logs):
    job = jobs["iris"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    reference = KNeighborsClassifier(n_neighbors=5).fit(XTR, YTR).score(XTE, YTE)
    metrics = final_metrics(job)
    assert set(metrics) == {"test:accuracy"}
    assert metrics["test:accuracy"] == pytest.approx(reference, abs=0.03)  # ties may break differently
    assert metrics["test:accuracy"] > 0.9
    events = logs.filter_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                    logStreamNamePrefix=job["TrainingJobName"])["events"]
    lines = [e["message"] for e in events]
    assert any("#test_score (algo-1) : ('accuracy', " in line for line in lines)
    assert any("#quality_metric: host=algo-1, test accuracy <score>=" in line for line in lines)


def test_regressor_test_mse_matches_scikit_learn(jobs):
    job = jobs["regressor"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    reference = KNeighborsRegressor(n_neighbors=4).fit(RXTR, RYTR).predict(RXTE)
    metrics = final_metrics(job)
    assert set(metrics) == {"test:mse"}
    assert metrics["test:mse"] == pytest.approx(float(np.mean((reference - RYTE) ** 2)), rel=1e-3)
    assert metrics["test:mse"] < 0.5 * float(np.var(RYTE))  # far better than predicting the mean


def test_dimension_reduction_and_faiss_index_hyperparameters_are_accepted(jobs):
    job = jobs["fjlt"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert final_metrics(job)["test:accuracy"] > 0.8  # 4 -> 3 dimensions keeps iris separable


def test_hyperparameter_errors_fail_the_job_with_the_reason(jobs):
    reasons = {key: jobs[key].get("FailureReason") for key in ("none", "type", "target", "ivfpq", "k")}
    assert all(jobs[key]["TrainingJobStatus"] == "Failed" for key in reasons)
    assert reasons["none"] == ("ClientError: No value(s) were specified for 'feature_dim', 'k', 'predictor_type', "
                               "'sample_size' which are required hyperparameter(s) (caused by ValidationError)")
    assert reasons["type"].startswith("ClientError: Hyperparameter 'predictor_type': value 'classification' is not valid")
    assert reasons["target"] == (
        "ClientError: No value(s) were specified for 'dimension_reduction_target' which are required "
        "hyperparameter(s) when dimension_reduction_type is set (caused by ValidationError)")
    assert "index_metric 'COSINE' is not supported with index_type 'faiss.IVFPQ'" in reasons["ivfpq"]
    assert reasons["k"].startswith("ClientError: k (4) is larger than the number of points in the index (3)")


def test_tuning_job_maximises_the_builtin_objective_test_accuracy(sm, bucket, root, jobs):
    name = unique("knn-hpo")[:32]
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": "Random", "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "test:accuracy"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {"IntegerParameterRanges": [  # within the 110 training points
                {"Name": "k", "MinValue": "1", "MaxValue": "50", "ScalingType": "Linear"}]}},
        TrainingJobDefinition={
            "StaticHyperParameters": {"predictor_type": "classifier", "feature_dim": "4", "sample_size": "2000"},
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE, "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/knn-hpo"},
            "InputDataConfig": iris_channels(bucket, root),
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300}})
    hpo = wait_for(lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
                   lambda d: d["HyperParameterTuningJobStatus"] not in ("InProgress", "Stopping"), timeout=120)
    assert hpo["HyperParameterTuningJobStatus"] == "Completed", hpo.get("FailureReason")
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
        "TrainingJobSummaries"]
    assert len(trials) == 2
    scored = {t["TrainingJobName"]: final_metrics(sm.describe_training_job(TrainingJobName=t["TrainingJobName"]))[
        "test:accuracy"] for t in trials}
    best = hpo["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == "test:accuracy"
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == max(scored.values())
    assert scored[best["TrainingJobName"]] == max(scored.values())


# ---- unit tests (no server) ---------------------------------------------------------------------------------
def test_parse_config_defaults_and_rules():
    hp = knn.parse_config(PROVIDER_HPS)
    assert hp == {"feature_dim": 4, "k": 3, "predictor_type": "classifier", "sample_size": 3, "mini_batch_size": 5000,
                  "dimension_reduction_type": None, "dimension_reduction_target": None, "index_type": "faiss.Flat",
                  "index_metric": "L2", "faiss_index_ivf_nlists": "auto", "faiss_index_pq_m": None}
    for extra, text in [
        ({"dimension_reduction_type": "sign", "dimension_reduction_target": "4"}, "must be less than feature_dim"),
        ({"faiss_index_pq_m": "5"}, "Hyperparameter 'faiss_index_pq_m': value '5' is not valid"),
        ({"faiss_index_ivf_nlists": "0"}, "Hyperparameter 'faiss_index_ivf_nlists'"),
        ({"index_type": "hnsw"}, "Hyperparameter 'index_type'"),
        ({"knn": "1"}, "Additional hyperparameters are not allowed ('knn' were unexpected)"),
    ]:
        with pytest.raises(ClientError, match=None) as exc:
            knn.parse_config({**PROVIDER_HPS, **extra})
        assert text in str(exc.value)
    assert knn.parse_config({**PROVIDER_HPS, "faiss_index_ivf_nlists": "16", "_tuning_objective_metric": "x"})[
        "faiss_index_ivf_nlists"] == 16


def test_projections_keep_distances_roughly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 64)).astype(np.float32)
    d0 = np.linalg.norm(x[:, None] - x[None], axis=2)
    for kind in ("sign", "fjlt"):
        p = knn.projection_matrix(kind, 64, 32, np.random.default_rng(1))
        assert p.shape == (64, 32)
        y = x @ p
        ratio = np.linalg.norm(y[:, None] - y[None], axis=2)[d0 > 0] / d0[d0 > 0]
        assert 0.7 < np.median(ratio) < 1.3, kind


def test_vote_regression_and_metrics_directly():
    points = np.array([[0.0], [1.0], [2.0], [10.0]], dtype=np.float32)
    labels = np.array([5.0, 7.0, 7.0, 1.0], dtype=np.float32)
    clf = knn.KNNModel(points, labels, k=3, predictor_type="classifier")
    reg = knn.KNNModel(points, labels, k=2, predictor_type="regressor")
    assert clf.predict(np.array([[0.1]]))[0].tolist() == [7.0]  # two 7s beat one nearer 5
    tie = knn.KNNModel(points[:2], labels[:2], k=2, predictor_type="classifier")
    assert tie.predict(np.array([[0.2]]))[0].tolist() == [5.0]  # a tie goes to the nearest
    assert reg.predict(np.array([[9.0]]))[0].tolist() == [4.0]  # mean of 1 and 7
    ip = knn.KNNModel(points, labels, k=2, predictor_type="regressor", index_metric="INNER_PRODUCT")
    dist, idx = ip.search(np.array([[1.0]]))
    assert idx.tolist() == [[3, 2]] and dist.tolist() == [[10.0, 2.0]]  # largest inner product first
    with pytest.raises(HttpError) as exc:
        knn.invoke(clf, b"1,2\n", "text/csv", "application/json")
    assert exc.value.status == 400
