"""The Factorization Machines built-in (``factorization-machines:1``) through a real localmaker server: one-hot
user/item rows in sparse RecordIO-protobuf (as the SageMaker FM MovieLens example writes them) with a known
rank-2 interaction, which a linear model cannot learn and the FM must; the documented test metrics in
FinalMetricDataList; both predictor types deployed and answering JSON (dense and sparse), JSON Lines and
RecordIO-protobuf; the failure wording. Pure parts are unit-tested without the server.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from botocore.exceptions import ClientError as BotoClientError
from sklearn.linear_model import LogisticRegression, Ridge

from localmaker.builtins import factorization_machines as fm
from localmaker.builtins.runtime import ClientError
from localmaker.builtins.serving import HttpError
from smformats import record_pb2
from smformats import recordio as rio

from ..conftest import ROLE, unique, wait_endpoint, wait_for, wait_training

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/factorization-machines:1"
IMAGE_EU = "438346466558.dkr.ecr.eu-west-1.amazonaws.com/factorization-machines:1"
USERS, ITEMS, RANK = 120, 100, 2
DIM = USERS + ITEMS
HPS = {"feature_dim": str(DIM), "num_factors": "8", "epochs": "30", "mini_batch_size": "200",
       "linear_lr": "0.02", "factors_lr": "0.02", "factors_init_sigma": "0.1"}


# ---- data: one-hot (user, item) pairs whose rating is driven by a rank-2 interaction --------------------------
def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, rating, clicked); the latent factors are shared across calls (seed 0)."""
    latent = np.random.default_rng(0)
    p, q = latent.normal(size=(USERS, RANK)), latent.normal(size=(ITEMS, RANK))
    rng = np.random.default_rng(seed)
    u, i = rng.integers(USERS, size=n), rng.integers(ITEMS, size=n)
    inter = (p[u] * q[i]).sum(1)
    return u, i, 3.0 + inter + 0.1 * rng.normal(size=n), (inter > 0).astype(np.float32)


U_TR, I_TR, R_TR, C_TR = make_data(6000, 1)
U_TE, I_TE, R_TE, C_TE = make_data(1500, 2)


def onehot(u: np.ndarray, i: np.ndarray) -> sp.csr_matrix:
    rows = np.repeat(np.arange(len(u)), 2)
    return sp.csr_matrix((np.ones(2 * len(u)), (rows, np.stack([u, USERS + i], 1).ravel())), shape=(len(u), DIM))


def sparse_record(keys: list[int], values: list[float], dim: int, label: float | None = None) -> bytes:
    """One framed record as the SDK's ``write_spmatrix_to_sparse_tensor`` writes it: Float32Tensor with values,
    keys and shape under features['values'], the label a dense Float32Tensor under label['values']."""
    record = record_pb2.Record()
    tensor = record.features[rio.VALUES_KEY].float32_tensor
    tensor.values.extend(values)
    tensor.keys.extend(keys)
    tensor.shape.append(dim)
    if label is not None:
        record.label[rio.VALUES_KEY].float32_tensor.values.append(label)
    return rio.frame_record(record.SerializeToString())


def sparse_recordio(x: sp.csr_matrix, labels: np.ndarray | None = None) -> bytes:
    return b"".join(sparse_record(x.indices[x.indptr[r]:x.indptr[r + 1]].tolist(),
                                  x.data[x.indptr[r]:x.indptr[r + 1]].tolist(), x.shape[1],
                                  None if labels is None else float(labels[r])) for r in range(x.shape[0]))


X_TR, X_TE = onehot(U_TR, I_TR), onehot(U_TE, I_TE)


def channel(name: str, bucket: str, prefix: str, ctype: str | None = "application/x-recordio-protobuf") -> dict:
    ch: dict[str, Any] = {"ChannelName": name, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{prefix}", "S3DataDistributionType": "FullyReplicated"}}}
    if ctype:
        ch["ContentType"] = ctype
    return ch


def job_request(name: str, bucket: str, channels: list[dict], hps: dict[str, str], image: str = IMAGE) -> dict:
    return {"TrainingJobName": name, "RoleArn": ROLE, "HyperParameters": hps, "InputDataConfig": channels,
            "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/fm-out"},
            "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300}}


def final_metrics(job: dict) -> dict[str, float]:
    return {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}


@pytest.fixture(scope="module")
def root(s3, bucket) -> str:
    root = unique("fm-data")
    put = lambda key, body: s3.put_object(Bucket=bucket, Key=f"{root}/{key}", Body=body)  # noqa: E731
    put("reg/train/part-0", sparse_recordio(X_TR[:3000], R_TR[:3000]))
    put("reg/train/part-1", sparse_recordio(X_TR[3000:], R_TR[3000:]))
    put("reg/test/test", sparse_recordio(X_TE, R_TE))
    put("clf/train/train", sparse_recordio(X_TR, C_TR))
    put("clf/test/test", rio.to_recordio_protobuf(X_TE.toarray().astype(np.float32), C_TE))  # dense records too
    put("csv/train.csv", b"1,0,1\n0,1,0\n")
    return root


def regressor_channels(bucket: str, root: str) -> list[dict]:
    # the train channel names no ContentType: RecordIO-protobuf is the default, as for the SDK's record_set
    return [channel("train", bucket, f"{root}/reg/train/", None), channel("test", bucket, f"{root}/reg/test/")]


@pytest.fixture(scope="module")
def jobs(sm, bucket, root) -> dict[str, dict[str, Any]]:
    reg = regressor_channels(bucket, root)
    clf = [channel("train", bucket, f"{root}/clf/train/"), channel("test", bucket, f"{root}/clf/test/")]
    requests = {
        "regressor": job_request(unique("fm-reg"), bucket, reg, {**HPS, "predictor_type": "regressor"}, IMAGE_EU),
        "classifier": job_request(unique("fm-clf"), bucket, clf, {**HPS, "predictor_type": "binary_classifier"}),
        "defaults": job_request(unique("fm-defaults"), bucket, clf[:1], {
            "feature_dim": str(DIM), "num_factors": "4", "predictor_type": "binary_classifier"}),
        "none": job_request(unique("fm-none"), bucket, clf, {}),
        "negative": job_request(unique("fm-neg"), bucket, clf, {**HPS, "predictor_type": "regressor",
                                                               "linear_lr": "-0.1"}),
        "method": job_request(unique("fm-method"), bucket, clf, {**HPS, "predictor_type": "regressor",
                                                                "factors_init_method": "xavier"}),
        "csv": job_request(unique("fm-csv"), bucket, [channel("train", bucket, f"{root}/csv/", "text/csv")],
                           {**HPS, "feature_dim": "2", "predictor_type": "regressor"}),
        "labels": job_request(unique("fm-labels"), bucket, reg, {**HPS, "predictor_type": "binary_classifier"}),
        "dim": job_request(unique("fm-dim"), bucket, clf, {**HPS, "feature_dim": str(DIM - 1),
                                                          "predictor_type": "binary_classifier"}),
    }
    for req in requests.values():
        sm.create_training_job(**req)
    return {key: wait_training(sm, req["TrainingJobName"], timeout=180) for key, req in requests.items()}


def deploy(sm, job: dict, image: str) -> str:
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = unique("fm-model")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": image, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
    cfg = unique("fm-cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    name = unique("fm-ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    return name


@pytest.fixture(scope="module")
def endpoints(sm, jobs) -> dict[str, str]:
    names = {"classifier": deploy(sm, jobs["classifier"], IMAGE), "regressor": deploy(sm, jobs["regressor"], IMAGE_EU)}
    for name in names.values():
        ep = wait_endpoint(sm, name)
        assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    yield names
    for name in names.values():
        sm.delete_endpoint(EndpointName=name)


def artifact(s3, job: dict) -> fm.FMModel:
    bucket, key = job["ModelArtifacts"]["S3ModelArtifacts"][5:].split("/", 1)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), mode="r:gz") as tar:
        names = [n for n in tar.getnames() if n.strip("./")]
        assert [n.lstrip("./") for n in names] == ["model_algo-1"]
        blob = tar.extractfile(names[0]).read()  # type: ignore[union-attr]
    with np.load(io.BytesIO(blob)) as z:
        meta = json.loads(str(z["meta"]))
        return fm.FMModel(meta.pop("predictor_type"), float(z["w0"][0]), z["w"].astype(float), z["V"].astype(float), meta)


def invoke(runtime: Any, endpoint: str, body: bytes, ctype: str, accept: str) -> bytes:
    r = runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType=ctype, Accept=accept)
    assert r["ContentType"] == accept
    return r["Body"].read()


# ---- learning -------------------------------------------------------------------------------------------------
def test_regressor_learns_the_interaction_a_linear_model_cannot(jobs, s3):
    job = jobs["regressor"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    metrics = final_metrics(job)
    baseline = float(np.sqrt(np.mean((R_TE - R_TR.mean()) ** 2)))
    linear = float(np.sqrt(np.mean((Ridge(alpha=1.0).fit(X_TR, R_TR).predict(X_TE) - R_TE) ** 2)))
    assert metrics["test:rmse"] < 0.3 * baseline and metrics["test:rmse"] < 0.3 * linear, (metrics, baseline, linear)
    assert metrics["train:rmse"] > 0 and metrics["train:rmse:epoch"] > 0
    assert metrics["train:progress"] == 100.0 and metrics["train:throughput"] > 0
    assert not any(name.startswith("test:binary") for name in metrics)
    model = artifact(s3, job)
    assert model.w.shape == (DIM,) and model.v.shape == (DIM, 8)
    assert float(np.sqrt(np.mean((model.scores(X_TE) - R_TE) ** 2))) == pytest.approx(metrics["test:rmse"], rel=1e-4)


def test_classifier_reports_the_documented_test_metrics(jobs):
    job = jobs["classifier"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    metrics = final_metrics(job)
    majority = float(max(C_TE.mean(), 1 - C_TE.mean()))
    linear = LogisticRegression(max_iter=1000).fit(X_TR, C_TR).score(X_TE, C_TE)
    assert metrics["test:binary_classification_accuracy"] > max(majority, linear) + 0.3, (metrics, majority, linear)
    assert metrics["test:binary_classification_cross_entropy"] < 0.3
    assert metrics["test:binary_f_beta"] > 0.9
    for name in ("train:binary_classification_accuracy", "train:binary_classification_cross_entropy",
                 "train:binary_f_beta", "train:binary_classification_accuracy:epoch"):
        assert name in metrics
    assert "test:rmse" not in metrics
    # the documented defaults (epochs=1, tiny learning rates) train and score too, if barely
    defaults = jobs["defaults"]
    assert defaults["TrainingJobStatus"] == "Completed", defaults.get("FailureReason")
    assert {"train:binary_classification_accuracy", "train:progress"} <= set(final_metrics(defaults))


def test_hyperparameter_and_data_errors_fail_with_the_reason(jobs):
    reasons = {k: jobs[k].get("FailureReason") for k in ("none", "negative", "method", "csv", "labels", "dim")}
    assert all(jobs[k]["TrainingJobStatus"] == "Failed" for k in reasons)
    assert reasons["none"] == ("ClientError: No value(s) were specified for 'feature_dim', 'num_factors', "
                               "'predictor_type' which are required hyperparameter(s) (caused by ValidationError)")
    assert reasons["negative"] == ("ClientError: Hyperparameter 'linear_lr': value '-0.1' is not valid: must be >= 0.0 "
                                   "(caused by ValidationError)")
    assert reasons["method"].startswith("ClientError: Hyperparameter 'factors_init_method': value 'xavier' is not valid")
    assert "Content type 'text/csv' of channel 'train' is not supported" in reasons["csv"]
    assert "labels must be 0 or 1" in reasons["labels"]
    assert f"has {DIM} features (tensor shape) but feature_dim is {DIM - 1}" in reasons["dim"]


def test_tuning_job_minimises_the_builtin_objective_test_rmse(sm, bucket, root, jobs):
    name = unique("fm-hpo")[:32]
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": "Random", "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "test:rmse"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {"ContinuousParameterRanges": [
                {"Name": "factors_lr", "MinValue": "0.001", "MaxValue": "0.05", "ScalingType": "Logarithmic"}]}},
        TrainingJobDefinition={
            "StaticHyperParameters": {k: v for k, v in {**HPS, "predictor_type": "regressor", "epochs": "10"}.items()
                                      if k != "factors_lr"},
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE, "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/fm-hpo"},
            "InputDataConfig": regressor_channels(bucket, root),
            "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300}})
    hpo = wait_for(lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
                   lambda d: d["HyperParameterTuningJobStatus"] not in ("InProgress", "Stopping"), timeout=120)
    assert hpo["HyperParameterTuningJobStatus"] == "Completed", hpo.get("FailureReason")
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
        "TrainingJobSummaries"]
    scored = {t["TrainingJobName"]: final_metrics(sm.describe_training_job(TrainingJobName=t["TrainingJobName"]))[
        "test:rmse"] for t in trials}
    assert len(scored) == 2
    best = hpo["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == "test:rmse"
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == min(scored.values())
    assert scored[best["TrainingJobName"]] == min(scored.values())


# ---- serving ----------------------------------------------------------------------------------------------------
def test_every_request_and_response_format(s3, runtime, jobs, endpoints):
    rows = X_TE[:4]
    expected = artifact(s3, jobs["classifier"]).scores(rows)
    sparse_json = {"instances": [{"data": {"features": {
        "keys": rows.indices[rows.indptr[r]:rows.indptr[r + 1]].tolist(), "shape": [DIM],
        "values": rows.data[rows.indptr[r]:rows.indptr[r + 1]].tolist()}}} for r in range(4)]}
    requests = {
        "application/json": [json.dumps({"instances": [{"features": r.tolist()} for r in rows.toarray()]}).encode(),
                             json.dumps(sparse_json).encode()],
        "application/jsonlines": ["".join(json.dumps(i) + "\n" for i in sparse_json["instances"]).encode()],
        "application/x-recordio-protobuf": [sparse_recordio(rows), rio.to_recordio_protobuf(rows.toarray())],
    }
    name = endpoints["classifier"]
    for ctype, bodies in requests.items():
        for body in bodies:
            preds = json.loads(invoke(runtime, name, body, ctype, "application/json"))["predictions"]
            assert [list(p) for p in preds] == [["score", "predicted_label"]] * 4
            assert [p["score"] for p in preds] == pytest.approx(expected.tolist(), rel=1e-5)
            assert [p["predicted_label"] for p in preds] == [1.0 if s >= 0.5 else 0.0 for s in expected]
            lines = invoke(runtime, name, body, ctype, "application/jsonlines").decode().splitlines()
            assert [json.loads(line) for line in lines] == preds
            out = invoke(runtime, name, body, ctype, "application/x-recordio-protobuf")
            maps = [rio.decode_label_map(p) for p in rio.iter_recordio(io.BytesIO(out))]
            assert [m["predicted_label"] for m in maps] == [[p["predicted_label"]] for p in preds]
            assert [m["score"][0] for m in maps] == pytest.approx([p["score"] for p in preds], rel=1e-6)
    # predictions over the whole test set are as accurate as the job's test metric said
    preds = json.loads(invoke(runtime, name, sparse_recordio(X_TE), "application/x-recordio-protobuf",
                              "application/json"))["predictions"]
    accuracy = float(np.mean(np.array([p["predicted_label"] for p in preds]) == C_TE))
    assert accuracy == pytest.approx(final_metrics(jobs["classifier"])["test:binary_classification_accuracy"], abs=1e-6)
    # the regressor answers a score only
    reg = json.loads(invoke(runtime, endpoints["regressor"], json.dumps(sparse_json).encode(), "application/json",
                            "application/json"))["predictions"]
    assert [list(p) for p in reg] == [["score"]] * 4
    assert [p["score"] for p in reg] == pytest.approx(artifact(s3, jobs["regressor"]).scores(rows).tolist(), rel=1e-5)
    for body, ctype, accept, status, text in [
        (b"1,0\n", "text/csv", "application/json", 415, "not supported"),
        (json.dumps({"instances": [{"data": {"features": {"keys": [DIM], "shape": [DIM], "values": [1.0]}}}]}).encode(),
         "application/json", "application/json", 400, "outside feature_dim"),
        (json.dumps({"instances": [{"features": [1.0, 0.0]}]}).encode(), "application/json", "application/json",
         400, f"but feature_dim is {DIM}"),
        (json.dumps(sparse_json).encode(), "application/json", "text/csv", 406, "not supported"),
    ]:
        with pytest.raises(BotoClientError) as exc:
            invoke(runtime, name, body, ctype, accept)
        err = exc.value.response
        assert err["Error"]["Code"] == "ModelError" and err["OriginalStatusCode"] == status, err
        assert text in err["OriginalMessage"]


# ---- unit tests (no server) ---------------------------------------------------------------------------------------
def test_defaults_are_the_documented_ones():
    hp = fm.parse_config({"feature_dim": "10", "num_factors": "2", "predictor_type": "regressor"})
    assert {k: hp[k] for k in ("mini_batch_size", "epochs", "bias_lr", "linear_lr", "factors_lr", "bias_wd",
                               "linear_wd", "factors_wd", "bias_init_sigma", "linear_init_sigma",
                               "factors_init_sigma")} == {
        "mini_batch_size": 1000, "epochs": 1, "bias_lr": 0.1, "linear_lr": 0.001, "factors_lr": 0.0001,
        "bias_wd": 0.01, "linear_wd": 0.001, "factors_wd": 0.00001, "bias_init_sigma": 0.01,
        "linear_init_sigma": 0.01, "factors_init_sigma": 0.001}
    assert hp["bias_init_method"] == hp["linear_init_method"] == hp["factors_init_method"] == "normal"
    assert hp["clip_gradient"] is None and hp["eps"] is None and hp["rescale_grad"] is None
    with pytest.raises(ClientError) as exc:
        fm.parse_config({"feature_dim": "10", "num_factors": "0", "predictor_type": "regressor"})
    assert "Hyperparameter 'num_factors': value '0' is not valid: must be >= 1" in str(exc.value)


def test_sparse_records_read_as_the_shared_codec_reads_them():
    x = onehot(U_TE[:5], I_TE[:5])
    blob = sparse_recordio(x, C_TE[:5])
    dense = [r.features for r in rio.from_recordio_protobuf(blob)]  # the shared codec densifies sparse tensors
    rows = list(fm.iter_rows(io.BytesIO(blob)))
    assert np.array_equal(fm.to_csr(rows, DIM, "t").toarray(), np.asarray(dense))
    assert [r.label for r in rows] == [[float(c)] for c in C_TE[:5]]


def test_fm_output_and_gradient_are_right():
    rng = np.random.default_rng(4)
    x = sp.random(6, 9, density=0.4, random_state=5, format="csr")
    w0, w, v = 0.3, rng.normal(size=9), rng.normal(size=(9, 3))
    dense = x.toarray()
    brute = [w0 + dense[r] @ w + sum(dense[r, a] * dense[r, b] * (v[a] @ v[b]) for a in range(9) for b in range(a + 1, 9))
             for r in range(6)]
    assert fm.raw_output(x, w0, w, v)[0] == pytest.approx(brute)
    model = fm.FMModel(fm.BINARY, w0, w, v)
    assert model.scores(x) == pytest.approx(1 / (1 + np.exp(-np.array(brute))))
    with pytest.raises(HttpError) as exc:
        fm.invoke(model, b"1,2\n", "text/csv", "application/json")
    assert exc.value.status == 415
