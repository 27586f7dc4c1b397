"""The built-in XGBoost image (sagemaker-xgboost:1.7-1) run by localmaker: training quality, the image's own
metric definitions, the real container's error wording, endpoints (trained and bring-your-own model) and a
tuning job on the built-in objective metric. The pure parsing/encoding functions are tested without the server."""

from __future__ import annotations

import io
import json
import math
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from botocore.exceptions import ClientError as BotoClientError
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from localmaker.builtins import MANIFEST
from localmaker.builtins import xgboost_algo as xa
from localmaker.builtins.runtime import ClientError, TrainingEnv
from localmaker.builtins.serving import HttpError
from localmaker.images import ImageRegistry

from ..conftest import ROLE, unique, wait_endpoint, wait_for, wait_training

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
IMAGE_EU = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1"  # eu-west-1's registry account

R2_BOUND = 0.30  # diabetes is noisy: this configuration measures R^2 0.395 on the held-out rows
BINARY_ACC, BINARY_AUC = 0.93, 0.97
MULTI_ACC = 0.90


# ---- data ------------------------------------------------------------------------------------------------------
def split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(n)
    a, b = int(n * 0.6), int(n * 0.8)
    return idx[:a], idx[a:b], idx[b:]


def csv_bytes(y: np.ndarray, x: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in (label, *row)) + "\n" for label, row in zip(y, x, strict=True)).encode()


def features_csv(x: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in x).encode()


def libsvm_bytes(y: np.ndarray, x: np.ndarray) -> bytes:
    return "".join(f"{int(label)} " + " ".join(f"{j}:{v!r}" for j, v in enumerate(map(float, row)) if v) + "\n"
                   for label, row in zip(y, x, strict=True)).encode()


DIABETES = load_diabetes(return_X_y=True)
CANCER = load_breast_cancer(return_X_y=True)
IRIS = load_iris(return_X_y=True)


def channel(name: str, uri: str, ctype: str) -> dict:
    return {"ChannelName": name, "ContentType": ctype, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}}}


def job_request(name: str, bucket: str, prefix: str, hps: dict, ctype: str = "text/csv", image: str = IMAGE,
                validation: bool = True) -> dict:
    chans = [channel("train", f"s3://{bucket}/{prefix}/train/", ctype)]
    if validation:
        chans.append(channel("validation", f"s3://{bucket}/{prefix}/validation/", ctype))
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},  # no MetricDefinitions
        "RoleArn": ROLE,
        "HyperParameters": hps,
        "InputDataConfig": chans,
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/xgb-out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


def model_from_s3(s3, uri: str) -> xgb.Booster:
    bucket, key = uri[len("s3://"):].split("/", 1)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as tar:
        assert tar.getnames() == ["xgboost-model"]
        raw = tar.extractfile("xgboost-model").read()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    return 1 - float(np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def auc(y: np.ndarray, score: np.ndarray) -> float:
    pos, neg = score[y == 1], score[y == 0]
    return float(np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :]))


# ---- everything that runs on the server is started at once, then each test waits for its part ----------
@pytest.fixture(scope="module")
def launched(sm, s3, bucket):
    run = unique("xgb")
    put = lambda key, body: s3.put_object(Bucket=bucket, Key=f"{run}/{key}", Body=body)  # noqa: E731
    x, y = DIABETES
    tr, va, te = split(len(y))
    put("reg/train/part-0.csv", csv_bytes(y[tr[:130]], x[tr[:130]]))  # several files per channel
    put("reg/train/part-1.csv", csv_bytes(y[tr[130:]], x[tr[130:]]))
    put("reg/train/_SUCCESS", b"")  # a Spark marker file: skipped, as the real image does
    put("reg/validation/v.csv", csv_bytes(y[va], x[va]))
    x, y = CANCER
    btr, bva, bte = split(len(y), 1)
    put("bin/train/t.csv", csv_bytes(y[btr], x[btr]))
    put("bin/validation/v.csv", csv_bytes(y[bva], x[bva]))
    put("svm/train/t.libsvm", libsvm_bytes(y[btr], x[btr]))
    put("svm/validation/v.libsvm", libsvm_bytes(y[bva], x[bva]))
    x, y = IRIS
    mtr, mva, mte = split(len(y), 2)
    put("multi/train/t.csv", csv_bytes(y[mtr], x[mtr]))
    put("multi/validation/v.csv", csv_bytes(y[mva], x[mva]))

    jobs = {
        "reg": job_request(unique("xgb-reg"), bucket, f"{run}/reg", {
            "num_round": "200", "eta": "0.1", "max_depth": "3", "subsample": "0.8", "min_child_weight": "3",
            "early_stopping_rounds": "10", "objective": "reg:squarederror", "seed": "1"}),
        "bin": job_request(unique("xgb-bin"), bucket, f"{run}/bin", {
            "num_round": "60", "objective": "binary:logistic", "eval_metric": "auc", "max_depth": "3"},
            ctype="text/csv;label_size=1", image=IMAGE_EU),
        "svm": job_request(unique("xgb-svm"), bucket, f"{run}/svm", {
            "num_round": "60", "objective": "binary:logistic", "eval_metric": "error,logloss"}, ctype="libsvm"),
        "multi": job_request(unique("xgb-multi"), bucket, f"{run}/multi", {
            "num_round": "30", "objective": "multi:softmax", "num_class": "3", "eval_metric": "merror",
            "max_depth": "2"}),
        "no_round": job_request(unique("xgb-noround"), bucket, f"{run}/reg", {"objective": "reg:squarederror"}),
    }
    for req in jobs.values():
        sm.create_training_job(**req)

    tuning = unique("xgb-hpo")
    definition = job_request("unused", bucket, f"{run}/reg", {"num_round": "40", "objective": "reg:squarederror"})
    definition.pop("TrainingJobName")
    definition["StaticHyperParameters"] = definition.pop("HyperParameters")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning,
        HyperParameterTuningJobConfig={
            "Strategy": "Random", "RandomSeed": 7,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5",
                                               "ScalingType": "Auto"}],
                "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": "6",
                                            "ScalingType": "Auto"}]}},
        TrainingJobDefinition=definition)

    # bring-your-own-model: a booster trained here, outside SageMaker, packaged by hand
    byom = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "seed": 3},
                     xgb.DMatrix(x[mtr], label=y[mtr]), num_boost_round=15)
    raw = byom.save_raw("json")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(bytes(raw)))
    put("byom/model.tar.gz", buf.getvalue())
    byom_ep = deploy(sm, IMAGE_EU, f"s3://{bucket}/{run}/byom/model.tar.gz")

    state = {"jobs": jobs, "tuning": tuning, "byom": byom, "byom_ep": byom_ep, "split": (te, bte, mte),
             "endpoints": [byom_ep]}
    yield state
    for ep in state["endpoints"]:
        try:
            sm.delete_endpoint(EndpointName=ep)
        except BotoClientError:
            pass


def deploy(sm, image: str, artifact: str) -> str:
    model = unique("xgb-model")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": image, "ModelDataUrl": artifact})
    cfg = unique("xgb-cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    name = unique("xgb-ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    return name


def completed(sm, launched, key: str) -> dict:
    job = wait_training(sm, launched["jobs"][key]["TrainingJobName"], timeout=180)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return job


def final_metrics(job: dict) -> dict[str, float]:
    return {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}


# ---- server tests ------------------------------------------------------------------------------------------------
def test_regression_quality_and_builtin_metrics(sm, s3, launched):
    job = completed(sm, launched, "reg")
    booster = model_from_s3(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    x, y = DIABETES
    te = launched["split"][0]
    score = r2(y[te], booster.predict(xgb.DMatrix(x[te])))
    assert score > R2_BOUND, score
    # early stopping kept the best validation round, so the model has fewer than num_round trees
    assert booster.num_boosted_rounds() < 200
    metrics = final_metrics(job)
    # reported by the image's own metric definitions: the request named none
    assert {"train:rmse", "validation:rmse"} <= set(metrics), metrics
    _, va, _ = split(len(y))
    best_rmse = math.sqrt(float(np.mean((booster.predict(xgb.DMatrix(x[va])) - y[va]) ** 2)))
    # the last logged round comes after the best one (early stopping waits 10 rounds)
    assert metrics["validation:rmse"] >= best_rmse - 1e-3
    assert 40 < metrics["validation:rmse"] < 80
    assert metrics["train:rmse"] < metrics["validation:rmse"]


def test_binary_classification_auc_metric(sm, s3, launched):
    job = completed(sm, launched, "bin")
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE_EU
    booster = model_from_s3(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    x, y = CANCER
    te = launched["split"][1]
    prob = booster.predict(xgb.DMatrix(x[te]))
    assert float(np.mean((prob > 0.5) == y[te])) >= BINARY_ACC
    assert auc(y[te], prob) >= BINARY_AUC
    metrics = final_metrics(job)
    assert metrics["validation:auc"] >= 0.95 and "train:auc" in metrics
    assert "validation:rmse" not in metrics  # only the eval_metric asked for


def test_libsvm_training(sm, s3, launched):
    job = completed(sm, launched, "svm")
    booster = model_from_s3(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    x, y = CANCER
    te = launched["split"][1]
    assert booster.num_features() == x.shape[1]
    assert float(np.mean((booster.predict(xgb.DMatrix(x[te])) > 0.5) == y[te])) >= BINARY_ACC
    metrics = final_metrics(job)
    assert {"validation:error", "validation:logloss", "train:error"} <= set(metrics)
    assert metrics["validation:error"] < 0.1


def test_multiclass_softmax(sm, s3, launched):
    job = completed(sm, launched, "multi")
    booster = model_from_s3(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    x, y = IRIS
    te = launched["split"][2]
    pred = booster.predict(xgb.DMatrix(x[te]))
    assert pred.shape == (len(te),)  # multi:softmax predicts the class index
    assert float(np.mean(pred == y[te])) >= MULTI_ACC
    assert final_metrics(job)["validation:merror"] <= 0.1


def test_missing_num_round_fails_with_the_real_wording(sm, launched):
    job = wait_training(sm, launched["jobs"]["no_round"]["TrainingJobName"], timeout=180)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == "ClientError: Missing required hyperparameter: num_round"
    assert "ModelArtifacts" not in job or not job["ModelArtifacts"].get("S3ModelArtifacts")


@pytest.fixture(scope="module")
def trained_endpoint(sm, s3, launched):
    job = completed(sm, launched, "reg")
    name = deploy(sm, IMAGE, job["ModelArtifacts"]["S3ModelArtifacts"])
    launched["endpoints"].append(name)
    ep = wait_endpoint(sm, name, timeout=180)
    assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    return name, model_from_s3(s3, job["ModelArtifacts"]["S3ModelArtifacts"])


def test_endpoint_csv_json_libsvm_and_feature_mismatch(runtime, launched, trained_endpoint):
    name, booster = trained_endpoint
    x, _ = DIABETES
    rows = x[launched["split"][0][:25]]
    expected = booster.predict(xgb.DMatrix(rows))

    r = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=features_csv(rows))
    assert r["ContentType"] == "text/csv"
    text = r["Body"].read().decode()
    assert "\n" not in text  # the real image answers one comma-separated line outside batch transform
    np.testing.assert_allclose([float(v) for v in text.split(",")], expected, rtol=1e-6)

    r = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Accept="application/json",
                                Body=features_csv(rows))
    assert r["ContentType"] == "application/json"
    doc = json.loads(r["Body"].read())
    assert list(doc) == ["predictions"] and len(doc["predictions"]) == 25
    assert all(list(p) == ["score"] and isinstance(p["score"], float) for p in doc["predictions"])
    np.testing.assert_allclose([p["score"] for p in doc["predictions"]], expected, rtol=1e-6)

    body = "\n".join(" ".join(f"{j}:{v!r}" for j, v in enumerate(map(float, row))) for row in rows[:3]).encode()
    r = runtime.invoke_endpoint(EndpointName=name, ContentType="text/libsvm", Body=body)
    np.testing.assert_allclose([float(v) for v in r["Body"].read().decode().split(",")], expected[:3], rtol=1e-6)

    with pytest.raises(BotoClientError) as err:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=features_csv(rows[:, :9]))
    assert err.value.response["Error"]["Code"] == "ModelError"
    assert err.value.response["OriginalStatusCode"] == 400
    assert ("Feature size of text/csv inference data 9 is not consistent with feature size of trained model 10."
            in err.value.response["Error"]["Message"])

    with pytest.raises(BotoClientError) as err:
        runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=b'{"instances": [[1]]}')
    assert err.value.response["OriginalStatusCode"] == 415
    assert "application/json is not an accepted ContentType" in err.value.response["Error"]["Message"]


def test_bring_your_own_model_endpoint(sm, runtime, launched):
    ep = wait_endpoint(sm, launched["byom_ep"], timeout=180)
    assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    x, _ = IRIS
    rows = x[launched["split"][2]]
    expected = launched["byom"].predict(xgb.DMatrix(rows))
    assert expected.shape == (len(rows), 3)

    r = runtime.invoke_endpoint(EndpointName=launched["byom_ep"], ContentType="text/csv", Accept="application/json",
                                Body=features_csv(rows))
    scores = [p["score"] for p in json.loads(r["Body"].read())["predictions"]]
    assert all(isinstance(s, list) and len(s) == 3 for s in scores)  # multi:softprob: a list per row
    np.testing.assert_allclose(scores, expected, rtol=1e-6)

    r = runtime.invoke_endpoint(EndpointName=launched["byom_ep"], ContentType="text/csv", Body=features_csv(rows[:2]))
    # the real image's CSV for multi:softprob: each row's list, comma-joined on one line
    assert r["Body"].read().decode() == ",".join(str(row) for row in expected[:2].tolist())


def test_tuning_on_the_builtin_objective_metric(sm, launched):
    name = launched["tuning"]
    desc = wait_for(lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
                    lambda d: d["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"),
                    timeout=240, interval=0.5)
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name,
                                                                  MaxResults=100)["TrainingJobSummaries"]
    assert len(trials) == 4 and all(t["TrainingJobStatus"] == "Completed" for t in trials)
    values = [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in trials]
    for t in trials:
        assert 0.05 <= float(t["TunedHyperParameters"]["eta"]) <= 0.5
        assert 2 <= int(t["TunedHyperParameters"]["max_depth"]) <= 6
    best = desc["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == "validation:rmse"
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == min(values)
    assert 40 < min(values) < 80


# ---- pure functions (no server) --------------------------------------------------------------------------------
@pytest.mark.parametrize("hps, message", [
    ({"objective": "reg:squarederror"}, "Missing required hyperparameter: num_round"),
    ({"num_round": "10", "silent": "0"}, "Extraneous hyperparameter found: silent"),
    ({"num_round": "ten"}, "Hyperparameter num_round: could not parse value (caused by ValueError)"),
    ({"num_round": "0"}, "Hyperparameter num_round: 0 is not in [1, +inf)"),
    ({"num_round": "5", "eta": "1.5"}, "Hyperparameter eta: 1.5 is not in [0, 1]"),
    ({"num_round": "5", "objective": "reg:foo"}, "Hyperparameter objective: reg:foo is not in ['binary:logistic'"),
    ({"num_round": "5", "objective": "multi:softmax"},
     "Require input for parameter 'num_class' for multi-classification"),
    ({"num_round": "5", "eval_metric": "auc"},
     "Metric 'auc' can only be applied for classification and ranking problems."),
    ({"num_round": "5", "eval_metric": "rmse,bogus"}, "Hyperparameter eval_metric: value ['rmse', 'bogus'] not in"),
    ({"num_round": "5", "eval_metric": "foo@0.5"}, "Parameter 'eval_metric' with customized threshold should be"),
    ({"num_round": "5", "monotone_constraints": "(1,-1)"},
     "monotone_constraints can be used only when the tree_method parameter is set to either 'exact' or 'hist'."),
])
def test_hyperparameter_errors_use_the_real_wording(hps, message):
    with pytest.raises(ClientError) as err:
        xa.validate_hyperparameters(hps)
    assert message in str(err.value)


def test_hyperparameters_parse_aliases_and_map_to_xgboost():
    hps = xa.validate_hyperparameters({
        "num_round": "20", "learning_rate": "0.2", "max_depth": "4", "eval_metric": "error@0.7,logloss",
        "objective": "binary:logistic", "tree_method": "hist", "monotone_constraints": "(1,0)",
        "predictor": "cpu_predictor", "updater": "grow_colmaker,prune", "_tuning_objective_metric": "validation:auc"})
    assert hps["num_round"] == 20 and hps["learning_rate"] == 0.2 and hps["eval_metric"] == ["error@0.7", "logloss"]
    params = xa.xgb_params(hps)
    assert params["monotone_constraints"] == "(1,0)"
    # no GPU here: gpu_hist trains with hist
    assert xa.xgb_params(xa.validate_hyperparameters({"num_round": "1", "tree_method": "gpu_hist"})) == {
        "tree_method": "hist"}
    assert params["updater"] == "grow_colmaker,prune"
    assert not {"num_round", "predictor", "eval_metric", "_tuning_objective_metric"} & set(params)


def test_eval_metrics_and_early_stopping_metric():
    assert xa.eval_metrics(None, None) == (None, [], None)
    native, custom, tuning = xa.eval_metrics("validation:accuracy", ["logloss", "auc"])
    assert native == ["auc", "logloss"] and custom == ["accuracy"] and tuning == ["accuracy"]
    assert xa.early_stopping_metric(tuning, ["logloss", "auc"]) == "accuracy"
    assert xa.early_stopping_metric(None, ["logloss", "auc"]) == "auc"
    assert xa.is_maximize("auc") and not xa.is_maximize("rmse") and xa.is_maximize("ndcg@5")
    fns = xa.custom_metric_fns("binary:logistic")
    assert fns["accuracy"](np.array([0.9, 0.2, 0.6]), np.array([1.0, 0.0, 0.0])) == pytest.approx(2 / 3)
    assert xa.custom_metric_fns("multi:softprob")["accuracy"](np.array([[0.1, 0.9], [0.8, 0.2]]),
                                                               np.array([1.0, 0.0])) == 1.0


@pytest.mark.parametrize("ctype, kind", [(None, "libsvm"), ("csv", "csv"), ("text/csv; label_size=1", "csv"),
                                         ("text/x-libsvm", "libsvm"), ("application/x-parquet", "parquet"),
                                         ("application/x-recordio-protobuf", "recordio-protobuf")])
def test_content_types(ctype, kind):
    assert xa.get_content_type(ctype) == kind


def test_content_type_and_channel_errors():
    with pytest.raises(ClientError, match="Optional parameter label_size must be equal to 1"):
        xa.get_content_type("text/csv;label_size=2")
    with pytest.raises(ClientError, match="application/json is not an accepted ContentType: csv, libsvm"):
        xa.get_content_type("application/json")
    with pytest.raises(ClientError, match="Missing required channel: train"):
        xa.validate_channels({"validation": {}})
    with pytest.raises(ClientError, match="Extraneous channel found: test"):
        xa.validate_channels({"train": {}, "test": {}})
    assert xa.validate_channels({"train": {"ContentType": None}})["train"]["ContentType"] == "text/libsvm"


def test_csv_and_libsvm_loading(tmp_path):
    (tmp_path / "a.csv").write_text("1,0.5,,2\n0,1.5,3,4\n")
    (tmp_path / "b.csv").write_text("1,2.5,1,1e-3\n")
    (tmp_path / ".hidden").write_text("garbage")
    (tmp_path / "_SUCCESS").write_text("")
    ds = xa.load_channel(tmp_path, "csv")
    assert ds.num_row == 3 and ds.num_col == 3
    assert math.isnan(ds.features[0, 1]) and ds.labels.tolist() == [1.0, 0.0, 1.0]
    ds = xa.load_channel(tmp_path, "csv", csv_weights=1)
    assert ds.weights.tolist() == [0.5, 1.5, 2.5] and ds.num_col == 2

    (tmp_path / "a.csv").write_text("1,x,3\n")
    with pytest.raises(ClientError, match="a.csv line 1, column 2: 'x' is not a number"):
        xa.load_channel(tmp_path, "csv")

    svm = tmp_path / "svm"
    svm.mkdir()
    (svm / "t").write_text("1:2.0 0:1.5 3:2\n0 1:1 qid:3\n")
    ds = xa.load_channel(svm, "libsvm")
    assert ds.features.toarray().tolist() == [[1.5, 0, 0, 2], [0, 1, 0, 0]]
    assert ds.labels.tolist() == [1.0, 0.0] and ds.weights.tolist() == [2.0, 1.0]
    (svm / "t").write_text("1 0:1\n0 1;2\n")
    with pytest.raises(ClientError, match="Line 2 '0 1;2...' of file 't' is not 'LIBSVM' format"):
        xa.load_channel(svm, "libsvm")


def test_parquet_and_recordio_training_channels(tmp_path):
    import pandas as pd

    from smformats.recordio import write_recordio_protobuf

    data = np.array([[1.0, 0.5, 2.0], [0.0, 1.5, 3.0]])
    pd.DataFrame(data, columns=["label", "a", "b"]).to_parquet(tmp_path / "d.parquet")
    ds = xa.load_channel(tmp_path, "parquet")
    assert ds.labels.tolist() == [1.0, 0.0] and ds.features.tolist() == [[0.5, 2.0], [1.5, 3.0]]
    rec = tmp_path / "rec"
    rec.mkdir()
    with (rec / "d.rec").open("wb") as fh:
        write_recordio_protobuf(fh, data[:, 1:], data[:, 0])
    ds = xa.load_channel(rec, "recordio-protobuf")
    assert ds.labels.tolist() == [1.0, 0.0] and ds.features.tolist() == [[0.5, 2.0], [1.5, 3.0]]
    (rec / "d.rec").write_bytes(b"not recordio")
    with pytest.raises(ClientError, match="Failed to load recordio-protobuf data"):
        xa.load_channel(rec, "recordio-protobuf")


def _env(tmp_path: Path, hps: dict, hosts: tuple[str, ...] = ("algo-1",), current: str = "algo-1",
         dist: str = "FullyReplicated") -> TrainingEnv:
    x, y = CANCER
    for name, rows in (("train", slice(0, 300)), ("validation", slice(300, 400))):
        (tmp_path / "input" / "data" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "input" / "data" / name / "d.csv").write_bytes(csv_bytes(y[rows], x[rows]))
    chans = {n: {"ContentType": "text/csv", "S3DistributionType": dist} for n in ("train", "validation")}
    return TrainingEnv(tmp_path, hps, chans, list(hosts), current)


def test_train_in_process_custom_metric_early_stopping_and_hosts(tmp_path, capsys):
    env = _env(tmp_path, {"num_round": "40", "objective": "binary:logistic", "eval_metric": "logloss,accuracy",
                          "early_stopping_rounds": "3", "max_depth": "2"})
    xa.train(env)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert lines[0].startswith("[0]#011train-logloss:") and "#011validation-accuracy:" in lines[0]
    booster = xgb.Booster()
    booster.load_model(bytearray((env.model_dir / "xgboost-model").read_bytes()))
    # early stopping on the last eval_metric (accuracy, maximized) keeps the best round
    assert booster.num_boosted_rounds() < 40 and len(lines) == booster.num_boosted_rounds() + 3

    with pytest.raises(ClientError, match="logistic"):  # labels 2 and 5 are the data's fault, not an algorithm error
        xa.train(_labels_env(tmp_path / "bad"))
    follower = _env(tmp_path / "f", {"num_round": "2"}, hosts=("algo-1", "algo-2"), current="algo-2")
    xa.train(follower)
    assert not follower.model_dir.exists()
    with pytest.raises(ClientError, match="ShardedByS3Key"):
        xa.train(_env(tmp_path / "s", {"num_round": "2"}, hosts=("algo-1", "algo-2"), dist="ShardedByS3Key"))


def _labels_env(base: Path) -> TrainingEnv:
    (base / "input" / "data" / "train").mkdir(parents=True)
    (base / "input" / "data" / "train" / "d.csv").write_text("0,1\n2,3\n5,1\n")
    return TrainingEnv(base, {"num_round": "2", "objective": "binary:logistic"},
                          {"train": {"ContentType": "text/csv"}}, ["algo-1"], "algo-1")


def test_eval_line_matches_the_manifest_metric_definitions():
    line = xa.format_eval_line(7, {"train": {"rmse": [3.0, 2.5]}, "validation": {"rmse": [4.0], "mae": [(1e-6, 0)]}})
    assert line == "[7]#011train-rmse:2.50000#011validation-rmse:4.00000#011validation-mae:0.00000"
    defs = ImageRegistry([MANIFEST]).resolve(IMAGE).metrics
    found = {d["Name"]: m.group(1) for d in defs if (m := re.search(d["Regex"], line))}
    assert found == {"train:rmse": "2.50000", "validation:rmse": "4.00000", "validation:mae": "0.00000"}
    names = {d["Name"] for d in defs}
    assert {"validation:auc", "validation:logloss", "validation:error", "validation:mlogloss",
            "validation:merror", "validation:mae", "train:rmse"} <= names


def test_encoding_and_accept_negotiation():
    preds = np.array([0.25, 1.5], dtype=np.float32)
    assert xa.encode_predictions(preds, "text/csv", batch=False) == (b"0.25,1.5", "text/csv")
    assert xa.encode_predictions(preds, "text/csv", batch=True) == (b"0.25\n1.5\n", "text/csv")
    body, ctype = xa.encode_predictions(np.array([[0.5, 0.5]], dtype=np.float32), "application/json", False)
    assert json.loads(body) == {"predictions": [{"score": [0.5, 0.5]}]} and ctype == "application/json"
    ok = ["text/csv", "application/json"]
    assert xa.accept_type(None, ok) == "text/csv" and xa.accept_type("*/*", ok) == "text/csv"
    assert xa.accept_type("application/json; charset=utf-8", ok) == "application/json"
    assert xa.accept_type("text/html, application/json", ok) == "application/json"
    with pytest.raises(HttpError) as err:
        xa.accept_type("text/html", ok)
    assert err.value.status == 415 and "is not an accepted Accept type" in err.value.message


def _model(tmp_path: Path, objective: str = "binary:logistic", **extra) -> tuple[xgb.Booster, np.ndarray]:
    x, y = CANCER
    booster = xgb.train({"objective": objective, "max_depth": 2, **extra}, xgb.DMatrix(x[:200], label=y[:200]), 5)
    return booster, x[200:205]


def test_load_model_formats_pickle_and_ensemble(tmp_path):
    booster, rows = _model(tmp_path)
    expected = booster.predict(xgb.DMatrix(rows))
    for name, writer in [("json", lambda p: booster.save_model(str(p) + ".json")),
                         ("pkl", lambda p: p.write_bytes(pickle.dumps(booster)))]:
        d = tmp_path / name
        d.mkdir()
        writer(d / "xgboost-model")
        if name == "json":
            (d / "xgboost-model.json").rename(d / "xgboost-model")
        model = xa.load_model(d)
        assert model.formats == (["xgb_format"] if name == "json" else ["pkl_format"])
        assert model.objective == "binary:logistic" and model.num_features == 30
        np.testing.assert_allclose(xa.predict(model, rows), expected, rtol=1e-6)
    clf = tmp_path / "sk"
    clf.mkdir()
    x, y = CANCER
    (clf / "xgboost-model").write_bytes(pickle.dumps(xgb.XGBClassifier(n_estimators=3).fit(x, y)))
    assert xa.load_model(clf).formats == ["pkl_format"]
    (clf / "second-model").write_bytes(pickle.dumps(booster))  # two files: an averaged ensemble
    model = xa.load_model(clf)
    assert len(model.boosters) == 2
    (clf / "notes.txt").write_text("not a model")
    with pytest.raises(RuntimeError, match="cannot be loaded"):
        xa.load_model(clf)


def test_parse_request_and_invoke_errors(tmp_path):
    from smformats.recordio import encode_record, frame_record

    booster, rows = _model(tmp_path)
    model = xa.Model([booster], ["xgb_format"], "binary:logistic", 0, 30)
    expected = booster.predict(xgb.DMatrix(rows))
    body = b"".join(frame_record(encode_record(r)) for r in rows)
    out, ctype = xa.invoke(model, body, "application/x-recordio-protobuf", "application/json")
    np.testing.assert_allclose([p["score"] for p in json.loads(out)["predictions"]], expected, rtol=1e-6)
    out, _ = xa.invoke(model, b"0:1 29:2\n", "text/libsvm", "")
    assert len(out.split(b",")) == 1
    csv_body = features_csv(rows[:2]).replace(b"\n", b"\n\n")  # blank lines are skipped
    assert len(xa.invoke(model, csv_body, "text/csv; charset=utf-8", "text/csv")[0].split(b",")) == 2
    cases = [
        (b"1,2,3", "text/csv", 400, "Feature size of text/csv inference data 3 is not consistent"),
        (b"30:1", "text/libsvm", 400, "Feature size of libsvm inference data 31 is larger than"),
        (b"1,2\n1", "text/csv", 415, "Loading csv data failed with Exception"),
        (b"x", "text/plain", 415, "text/plain is not an accepted ContentType"),
        (b"abc", "application/x-recordio-protobuf", 415, "Loading recordio-protobuf data failed"),
        (b"", "text/csv", 204, ""),
    ]
    for body, ctype, status, message in cases:
        with pytest.raises(HttpError) as err:
            xa.invoke(model, body, ctype, "")
        assert err.value.status == status and message in err.value.message, (ctype, err.value.message)


def test_selectable_inference_output(tmp_path, monkeypatch):
    booster, rows = _model(tmp_path)
    model = xa.Model([booster], ["xgb_format"], "binary:logistic", 0, 30)
    prob = booster.predict(xgb.DMatrix(rows[:2]))
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label, probability,predicted_score")
    out, ctype = xa.invoke(model, features_csv(rows[:2]), "text/csv", "application/jsonlines")
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert ctype == "application/jsonlines" and len(lines) == 2
    assert lines[0]["predicted_label"] == int(prob[0] > 0.5)
    assert lines[0]["probability"] == pytest.approx(float(prob[0]))
    assert math.isnan(lines[0]["predicted_score"])  # not a key binary:logistic gives, as the real image
    out, _ = xa.invoke(model, features_csv(rows[:1]), "text/csv", "text/csv")
    assert out.decode().startswith(f"{int(prob[0] > 0.5)},")
