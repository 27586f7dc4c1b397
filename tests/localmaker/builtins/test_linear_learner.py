"""The Linear Learner built-in (``linear-learner:1``): real training on scikit-learn data sets through the
localmaker server, the algorithm's own metric definitions, and the documented response formats.

Server tests share one module fixture (three training jobs run concurrently, then one endpoint with a
production variant per predictor type); the many parsing / encoding cases are unit tests of the module.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError as BotoClientError
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from localmaker.builtins import linear_learner as ll
from localmaker.builtins.runtime import ClientError, TrainingEnv, read_dense_channel
from localmaker.builtins.serving import HttpError
from smformats.recordio import (
    decode_label_map,
    iter_recordio,
    to_recordio_protobuf,
)

from ..conftest import ROLE, unique, wait_endpoint, wait_training

# exactly what sagemaker.core.image_uris.retrieve("linear-learner", region) returns
IMAGE_US_EAST_1 = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
IMAGE_US_WEST_2 = "174872318107.dkr.ecr.us-west-2.amazonaws.com/linear-learner:1"


# ---- helpers ------------------------------------------------------------------------------------------------
def split(loader: Any, stratify: bool, seed: int = 0) -> tuple[np.ndarray, ...]:
    """train / validation / test (60 / 15 / 25 %)."""
    x, y = loader(return_X_y=True)
    x = x.astype(np.float32)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.25, random_state=seed,
                                                      stratify=y if stratify else None)
    x_tr, x_val, y_tr, y_val = train_test_split(x_rest, y_rest, test_size=0.2, random_state=seed,
                                                stratify=y_rest if stratify else None)
    return x_tr, y_tr, x_val, y_val, x_test, y_test


def csv_bytes(x: np.ndarray, y: np.ndarray | None = None) -> bytes:
    rows = x if y is None else np.column_stack([y, x])
    return "".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in rows).encode()


def channel(name: str, bucket: str, prefix: str, ctype: str | None) -> dict[str, Any]:
    ch: dict[str, Any] = {"ChannelName": name, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{prefix}", "S3DataDistributionType": "FullyReplicated"}}}
    if ctype:
        ch["ContentType"] = ctype
    return ch


def job_request(name: str, bucket: str, image: str, hps: dict[str, str], channels: list[dict[str, Any]]) -> dict[str, Any]:
    """A CreateTrainingJob request as a user of the built-in writes it: no MetricDefinitions."""
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": hps,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/ll-output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


def metrics_of(job: dict[str, Any]) -> dict[str, float]:
    return {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}


def invoke(runtime: Any, endpoint: str, variant: str, body: bytes, ctype: str, accept: str) -> bytes:
    r = runtime.invoke_endpoint(EndpointName=endpoint, TargetVariant=variant, Body=body, ContentType=ctype,
                                Accept=accept)
    assert r["ContentType"] == accept and r["InvokedProductionVariant"] == variant
    return r["Body"].read()


# ---- the server fixture: three jobs at once, one endpoint with three variants ------------------------------------
@pytest.fixture(scope="module")
def trained(sm, s3, bucket) -> dict[str, Any]:
    """Regressor from text/csv (train + test), binary and multiclass from RecordIO-protobuf written with the
    project's codec (train + validation + test / train + test)."""
    root = unique("ll-data")
    data = {"reg": split(load_diabetes, stratify=False), "bin": split(load_breast_cancer, stratify=True),
            "multi": split(load_iris, stratify=True)}
    x_tr, y_tr, x_val, y_val, x_te, y_te = data["reg"]
    s3.put_object(Bucket=bucket, Key=f"{root}/reg/train/part-0.csv", Body=csv_bytes(x_tr[:150], y_tr[:150]))
    s3.put_object(Bucket=bucket, Key=f"{root}/reg/train/part-1.csv", Body=csv_bytes(x_tr[150:], y_tr[150:]))
    s3.put_object(Bucket=bucket, Key=f"{root}/reg/test/test.csv", Body=csv_bytes(x_te, y_te))
    for key in ("bin", "multi"):
        x_tr, y_tr, x_val, y_val, x_te, y_te = data[key]
        for part, (xs, ys) in {"train": (x_tr, y_tr), "validation": (x_val, y_val), "test": (x_te, y_te)}.items():
            s3.put_object(Bucket=bucket, Key=f"{root}/{key}/{part}/data.rec", Body=to_recordio_protobuf(xs, ys.astype(float)))
    rec = "application/x-recordio-protobuf"
    jobs = {
        "reg": job_request(unique("ll-reg"), bucket, IMAGE_US_EAST_1,
                           {"predictor_type": "regressor", "feature_dim": "10", "mini_batch_size": "32", "epochs": "20"},
                           [channel("train", bucket, f"{root}/reg/train/", "text/csv"),
                            channel("test", bucket, f"{root}/reg/test/", "text/csv")]),
        "bin": job_request(unique("ll-bin"), bucket, IMAGE_US_WEST_2,
                           {"predictor_type": "binary_classifier", "mini_batch_size": "32", "epochs": "20"},
                           [channel("train", bucket, f"{root}/bin/train/", rec),
                            channel("validation", bucket, f"{root}/bin/validation/", rec),
                            channel("test", bucket, f"{root}/bin/test/", None)]),  # no ContentType: RecordIO
        "multi": job_request(unique("ll-multi"), bucket, IMAGE_US_EAST_1,
                             {"predictor_type": "multiclass_classifier", "num_classes": "3", "mini_batch_size": "16",
                              "epochs": "30"},
                             [channel("train", bucket, f"{root}/multi/train/", rec),
                              channel("test", bucket, f"{root}/multi/test/", rec)]),
    }
    for req in jobs.values():
        sm.create_training_job(**req)
    described = {key: wait_training(sm, req["TrainingJobName"]) for key, req in jobs.items()}
    for key, job in described.items():
        assert job["TrainingJobStatus"] == "Completed", (key, job.get("FailureReason"))
    return {"data": data, "jobs": described}


@pytest.fixture(scope="module")
def endpoint(sm, trained) -> str:
    variants = []
    for key, job in trained["jobs"].items():
        model = unique(f"ll-{key}")
        sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": job["AlgorithmSpecification"]["TrainingImage"],
            "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
        variants.append({"VariantName": key, "ModelName": model, "InitialInstanceCount": 1,
                         "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0})
    cfg = unique("ll-cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=variants)
    name = unique("ll-ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    ep = wait_endpoint(sm, name)
    assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    yield name
    sm.delete_endpoint(EndpointName=name)


# ---- server tests ----------------------------------------------------------------------------------------------
def test_regressor_trained_from_csv_reports_test_metrics_and_predicts(s3, runtime, trained, endpoint):
    job = trained["jobs"]["reg"]
    _, _, _, _, x_te, y_te = trained["data"]["reg"]
    m = metrics_of(job)
    # the algorithm's own metric definitions filled FinalMetricDataList (the request named none)
    assert {"test:mse", "test:rmse", "test:absolute_loss", "test:objective_loss", "train:objective_loss",
            "train:progress", "train:throughput"} <= set(m)
    assert 0 < m["train:progress"] <= 100  # early stopping may end it before the 20th epoch
    assert m["test:rmse"] == pytest.approx(math.sqrt(m["test:mse"]), rel=1e-5)
    assert m["test:objective_loss"] == pytest.approx(m["test:mse"], rel=1e-5)  # squared loss is the objective
    # the artifact is model_algo-1, as the real algorithm's
    bkt, key = job["ModelArtifacts"]["S3ModelArtifacts"][5:].split("/", 1)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bkt, Key=key)["Body"].read()), mode="r:gz") as tar:
        assert [n.lstrip("./") for n in tar.getnames() if n.strip("./")] == ["model_algo-1"]
    body = json.loads(invoke(runtime, endpoint, "reg", csv_bytes(x_te), "text/csv", "application/json"))
    assert all(set(p) == {"score"} for p in body["predictions"])
    pred = np.array([p["score"] for p in body["predictions"]])
    r2 = 1 - np.sum((pred - y_te) ** 2) / np.sum((y_te - y_te.mean()) ** 2)
    assert r2 > 0.3  # ordinary least squares reaches 0.36 on this split
    # the metric the job reported is the same model's error on the same rows
    assert np.mean((pred - y_te) ** 2) == pytest.approx(m["test:mse"], rel=1e-3)


def test_binary_classifier_from_recordio(runtime, trained, endpoint):
    job = trained["jobs"]["bin"]
    _, _, _, _, x_te, y_te = trained["data"]["bin"]
    m = metrics_of(job)
    for split_name in ("validation", "test"):
        assert {f"{split_name}:binary_classification_accuracy", f"{split_name}:binary_f_beta",
                f"{split_name}:precision", f"{split_name}:recall"} <= set(m)
    assert {"validation:objective_loss", "validation:objective_loss:final", "test:objective_loss"} <= set(m)
    assert m["test:binary_classification_accuracy"] >= 0.93
    body = json.loads(invoke(runtime, endpoint, "bin", to_recordio_protobuf(x_te), "application/x-recordio-protobuf",
                             "application/json"))
    preds = body["predictions"]
    assert all(set(p) == {"score", "predicted_label"} for p in preds)
    labels = np.array([p["predicted_label"] for p in preds])
    scores = np.array([p["score"] for p in preds])
    assert all(isinstance(p["predicted_label"], int) for p in preds) and set(labels) <= {0, 1}
    assert ((scores >= 0) & (scores <= 1)).all()
    # one calibrated threshold separates the two predicted classes
    assert scores[labels == 1].min() > scores[labels == 0].max()
    accuracy = float((labels == y_te).mean())
    assert accuracy >= 0.93
    assert accuracy == pytest.approx(m["test:binary_classification_accuracy"], abs=1e-9)
    assert roc_auc_score(y_te, scores) > 0.98


def test_multiclass_classifier_from_recordio(runtime, trained, endpoint):
    m = metrics_of(trained["jobs"]["multi"])
    _, _, _, _, x_te, y_te = trained["data"]["multi"]
    assert {"test:multiclass_accuracy", "test:multiclass_top_k_accuracy", "test:dcg", "test:macro_precision",
            "test:macro_recall", "test:macro_f_beta", "test:objective_loss"} <= set(m)
    assert m["test:multiclass_accuracy"] >= 0.9
    assert m["test:multiclass_top_k_accuracy"] == 1.0  # k=3 of 3 classes
    lines = invoke(runtime, endpoint, "multi", csv_bytes(x_te), "text/csv", "application/jsonlines").decode().splitlines()
    preds = [json.loads(line) for line in lines]
    assert len(preds) == len(y_te)
    for p in preds:
        assert set(p) == {"score", "predicted_label"} and len(p["score"]) == 3
        assert sum(p["score"]) == pytest.approx(1.0, abs=1e-5)
        assert p["predicted_label"] == int(np.argmax(p["score"]))
    accuracy = np.mean([p["predicted_label"] == y for p, y in zip(preds, y_te, strict=True)])
    assert accuracy >= 0.9 and accuracy == pytest.approx(m["test:multiclass_accuracy"], abs=1e-9)


@pytest.mark.parametrize("variant", ["reg", "bin", "multi"])
def test_every_request_and_response_format_agrees(runtime, trained, endpoint, variant):
    x = trained["data"][variant][4][:3]
    requests = {
        "text/csv": csv_bytes(x),
        "application/json": json.dumps({"instances": [{"features": r.tolist()} for r in x]}).encode(),
        "application/jsonlines": "".join(json.dumps({"features": r.tolist()}) + "\n" for r in x).encode(),
        "application/x-recordio-protobuf": to_recordio_protobuf(x),
    }
    reference = json.loads(invoke(runtime, endpoint, variant, requests["text/csv"], "text/csv", "application/json"))
    assert set(reference) == {"predictions"} and len(reference["predictions"]) == 3
    keys = {"reg": {"score"}}.get(variant, {"score", "predicted_label"})
    for ctype, body in requests.items():
        as_json = json.loads(invoke(runtime, endpoint, variant, body, ctype, "application/json"))
        assert as_json == reference, ctype
        lines = invoke(runtime, endpoint, variant, body, ctype, "application/jsonlines").decode().splitlines()
        assert [json.loads(line) for line in lines] == reference["predictions"]
        rec = invoke(runtime, endpoint, variant, body, ctype, "application/x-recordio-protobuf")
        label_maps = [decode_label_map(p) for p in iter_recordio(io.BytesIO(rec))]
        assert [set(lm) for lm in label_maps] == [keys] * 3
        for lm, p in zip(label_maps, reference["predictions"], strict=True):
            score = p["score"] if isinstance(p["score"], list) else [p["score"]]
            assert lm["score"] == pytest.approx(score, rel=1e-6)
            if "predicted_label" in keys:
                assert lm["predicted_label"] == [float(p["predicted_label"])]


def test_bad_requests_are_4xx_model_errors(runtime, endpoint):
    cases = [(b"1,2,3\n", "text/csv", 400, "expects 10"), (b"x", "image/png", 415, "not supported")]
    for body, ctype, status, text in cases:
        with pytest.raises(BotoClientError) as exc:
            runtime.invoke_endpoint(EndpointName=endpoint, TargetVariant="reg", Body=body, ContentType=ctype)
        err = exc.value.response
        assert err["Error"]["Code"] == "ModelError" and err["OriginalStatusCode"] == status
        assert text in err["OriginalMessage"]


def test_missing_predictor_type_fails_with_the_1p_wording(sm, bucket, trained):
    cases = {
        (): "ClientError: No value(s) were specified for 'predictor_type' which are required hyperparameter(s) "
            "(caused by ValidationError)",
        ("predictor_type", "multiclass_classifier"): "ClientError: No value(s) were specified for 'num_classes'",
        ("predictor_type", "regressor", "learning_rat", "0.1"): "ClientError: Additional hyperparameters are not "
                                                                "allowed ('learning_rat' were unexpected)",
    }
    train_uri = trained["jobs"]["reg"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    names = {}
    for hp_pairs, _ in cases.items():
        hps = dict(zip(hp_pairs[::2], hp_pairs[1::2], strict=True))
        names[hp_pairs] = unique("ll-bad")
        sm.create_training_job(**job_request(names[hp_pairs], bucket, IMAGE_US_EAST_1, hps, [{
            "ChannelName": "train", "ContentType": "text/csv", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": train_uri, "S3DataDistributionType": "FullyReplicated"}}}]))
    for hp_pairs, reason in cases.items():
        job = wait_training(sm, names[hp_pairs])
        assert job["TrainingJobStatus"] == "Failed"
        assert job["FailureReason"].startswith(reason), job["FailureReason"]


# ---- unit tests (no server) -----------------------------------------------------------------------------------------
def test_parse_config_defaults_and_validation():
    cfg = ll.parse_config({"predictor_type": "binary_classifier"})
    assert (cfg.loss, cfg.optimizer, cfg.epochs, cfg.mini_batch_size, cfg.selection) == (
        "logistic", "adam", 15, 1000, "accuracy")
    assert len(cfg.candidates) == ll.AUTO_NUM_MODELS and cfg.normalize_label is False
    assert ll.parse_config({"predictor_type": "regressor"}).normalize_label is True
    tuned = ll.parse_config({"predictor_type": "regressor", "learning_rate": "0.05", "wd": "0.01",
                             "_tuning_objective_metric": "validation:rmse"})
    assert tuned.candidates == [(0.05, 0.01)]  # automatic model tuning turns the internal models off
    given = ll.parse_config({"predictor_type": "regressor", "learning_rate": "0.05", "num_models": "3"})
    assert [c[0] for c in given.candidates] == pytest.approx([0.05, 0.015, 0.15])
    bad = [
        ({"predictor_type": "ranker"}, "Hyperparameter 'predictor_type': value 'ranker' is not valid"),
        ({"predictor_type": "regressor", "loss": "logistic"}, "value 'logistic' is not valid for predictor_type 'regressor'"),
        ({"predictor_type": "multiclass_classifier", "num_classes": "2"}, "must be >= 3"),
        ({"predictor_type": "regressor", "epochs": "0"}, "'epochs': value '0' is not valid: must be >= 1"),
        ({"predictor_type": "regressor", "learning_rate": "-1"}, "must be a positive number"),
        ({"predictor_type": "binary_classifier", "normalize_label": "true"}, "normalize_label can only be true"),
        ({"predictor_type": "regressor", "bogus": "1"}, "('bogus' were unexpected)"),
    ]
    for hps, text in bad:
        with pytest.raises(ClientError) as exc:
            ll.parse_config(hps)
        assert text in str(exc.value), (hps, str(exc.value))


@pytest.mark.parametrize("ptype,loss", [(ptype, loss) for ptype, losses in ll.LOSSES.items() for loss in losses])
def test_loss_gradients_match_finite_differences(ptype, loss):
    hps = {"predictor_type": ptype, "loss": loss}
    if ptype == ll.MULTICLASS:
        hps["num_classes"] = "3"
    cfg = ll.parse_config(hps)
    rng = np.random.default_rng(1)
    k = 3 if ptype == ll.MULTICLASS else 1
    z = rng.normal(size=(2, 5, k)) * 2
    y = {ll.REGRESSOR: rng.normal(size=5), ll.BINARY: np.array([0, 1, 1, 0, 1.0]),
         ll.MULTICLASS: np.array([0, 2, 1, 1, 0.0])}[ptype]
    w = rng.uniform(0.5, 2.0, size=5)
    _, grad = ll.loss_and_grad(cfg, z, y, w)
    eps = 1e-6
    numeric = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (ll.loss_and_grad(cfg, up, y, w)[0][idx[:2]] - ll.loss_and_grad(cfg, down, y, w)[0][idx[:2]]) / (2 * eps)
    assert grad == pytest.approx(numeric, abs=1e-4)


def test_threshold_calibration_for_each_criterion():
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2])
    y = np.array([1, 1, 0, 1, 1, 0, 0, 0.0])
    cfg = ll.parse_config({"predictor_type": "binary_classifier"})
    assert ll.calibrate_threshold(cfg, scores, y) == (0.6, 7 / 8)  # accuracy: predict 1 for >= 0.6
    cfg = ll.parse_config({"predictor_type": "binary_classifier",
                           "binary_classifier_model_selection_criteria": "precision_at_target_recall",
                           "target_recall": "0.5"})
    assert ll.calibrate_threshold(cfg, scores, y) == (0.9, 1.0)  # recall 0.5 at precision 1
    cfg = ll.parse_config({"predictor_type": "binary_classifier",
                           "binary_classifier_model_selection_criteria": "recall_at_target_precision",
                           "target_precision": "0.85"})
    assert ll.calibrate_threshold(cfg, scores, y) == (0.9, 0.5)  # precision 4/5 < 0.85: back to 2/2
    cfg = ll.parse_config({"predictor_type": "binary_classifier",
                           "binary_classifier_model_selection_criteria": "recall_at_target_precision",
                           "target_precision": "0.75"})
    assert ll.calibrate_threshold(cfg, scores, y) == (0.6, 1.0)  # full recall at precision 4/5 >= 0.75
    cfg = ll.parse_config({"predictor_type": "binary_classifier",
                           "binary_classifier_model_selection_criteria": "cross_entropy_loss"})
    assert ll.calibrate_threshold(cfg, scores, y)[0] == 0.5


def test_roc_auc_matches_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=200).astype(float)
    scores = np.round(rng.normal(size=200) + y, 1)  # rounded: plenty of ties
    assert ll.roc_auc(scores, y) == pytest.approx(roc_auc_score(y, scores))


def _tiny_model(ptype: str) -> ll.LinearModel:
    k = 3 if ptype == ll.MULTICLASS else 1
    weights = np.arange(2 * k, dtype=float).reshape(2, k) - 1
    return ll.LinearModel(ptype, weights, np.zeros(k), np.zeros(2), np.ones(2), 10.0, 2.0, 0.5,
                          {"regressor": "squared_loss", "binary_classifier": "logistic"}.get(ptype, "softmax_loss"))


def test_invoke_shapes_and_errors(tmp_path: Path):
    reg = _tiny_model(ll.REGRESSOR)
    out, ctype = ll.invoke(reg, b"1,2\n0,0\n", "text/csv", "application/json")
    # weights [-1, 0]: raw 1*-1 + 2*0 = -1 -> -1 * y_scale 2 + y_mean 10 = 8
    assert ctype == "application/json" and json.loads(out) == {"predictions": [{"score": 8.0}, {"score": 10.0}]}
    binary = _tiny_model(ll.BINARY)
    out, _ = ll.invoke(binary, b'{"instances": [[0, 0], [-3, 0]]}', "application/json", "*/*")
    assert json.loads(out) == {"predictions": [{"score": 0.5, "predicted_label": 1},
                                               {"score": pytest.approx(0.952574, rel=1e-5), "predicted_label": 1}]}
    multi = _tiny_model(ll.MULTICLASS)
    out, ctype = ll.invoke(multi, b'{"features": [1, 1]}\n', "application/jsonlines", "application/jsonlines")
    line = json.loads(out)
    assert ctype == "application/jsonlines" and line["predicted_label"] == 2 and len(line["score"]) == 3
    out, _ = ll.invoke(multi, to_recordio_protobuf(np.ones((1, 2))), "application/x-recordio-protobuf",
                       "application/x-recordio-protobuf")
    (record,) = list(iter_recordio(io.BytesIO(out)))
    assert decode_label_map(record) == {"score": pytest.approx(line["score"], rel=1e-6), "predicted_label": [2.0]}
    for body, ctype, accept, status in [(b"1,2,3\n", "text/csv", "application/json", 400),
                                        (b"1,2\n", "text/plain", "application/json", 415),
                                        (b"1,2\n", "text/csv", "text/csv", 406),
                                        (b"1,x\n", "text/csv", "application/json", 400)]:
        with pytest.raises(HttpError) as exc:
            ll.invoke(reg, body, ctype, accept)
        assert exc.value.status == status
    reg.save(tmp_path / "model_algo-1")
    assert ll.load(tmp_path).scores(np.array([[1.0, 2.0]])) == pytest.approx([8.0])


def _env(tmp_path: Path, hps: dict[str, str], channels: dict[str, tuple[str | None, dict[str, bytes]]]) -> TrainingEnv:
    base = tmp_path / "ml"
    (base / "input" / "config").mkdir(parents=True)
    config = {}
    for name, (ctype, files) in channels.items():
        config[name] = {"ContentType": ctype} if ctype else {}
        for fname, content in files.items():
            (base / "input" / "data" / name).mkdir(parents=True, exist_ok=True)
            (base / "input" / "data" / name / fname).write_bytes(content)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hps))
    (base / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(config))
    return TrainingEnv.load(base)


def test_training_data_reading_and_its_client_errors(tmp_path: Path):
    env = _env(tmp_path, {}, {
        "csv": ("text/csv", {"a.csv": b"1,2,3\n0,4,5\n", "b.csv": b"1,6,7\n"}),
        "nolabel": ("text/csv;label_size=0", {"a.csv": b"2,3\n"}),
        "rec": (None, {"a.rec": to_recordio_protobuf([[1, 2], [3, 4]], [1.0, 0.0])}),
        "badcsv": ("text/csv", {"a.csv": b"1,2,3\n1,two,3\n"}),
        "ragged": ("text/csv", {"a.csv": b"1,2,3\n1,2\n"}),
        "libsvm": ("text/libsvm", {"a.txt": b"1 1:2\n"}),
    })
    x, y = read_dense_channel(env, "csv")
    assert x.tolist() == [[2, 3], [4, 5], [6, 7]] and y.tolist() == [[1], [0], [1]]
    x, y = read_dense_channel(env, "nolabel")
    assert x.tolist() == [[2, 3]] and y is None
    x, y = read_dense_channel(env, "rec", feature_dim=2)
    assert x.tolist() == [[1, 2], [3, 4]] and y.tolist() == [[1], [0]]
    for name, feature_dim, text in [("badcsv", None, "file a.csv, line 2, column 2: 'two' is not a number"),
                                    ("ragged", None, "line 2 has 2 columns; the first row has 3"),
                                    ("libsvm", None, "Content type 'text/libsvm' of channel 'libsvm' is not supported"),
                                    ("csv", 3, "has 2 features per record but feature_dim is 3")]:
        with pytest.raises(ClientError) as exc:
            read_dense_channel(env, name, feature_dim=feature_dim)
        assert text in str(exc.value)
    cfg = ll.parse_config({"predictor_type": "binary_classifier"})
    with pytest.raises(ClientError, match="label 2 is not valid for predictor_type 'binary_classifier'"):
        ll.check_labels(cfg, np.array([[0.0], [2.0]]), "train")
    with pytest.raises(ClientError, match="has no labels"):
        ll.check_labels(cfg, None, "train")


def test_train_entry_point_writes_model_and_metric_lines(tmp_path: Path, capsys):
    x, y = load_breast_cancer(return_X_y=True)
    env = _env(tmp_path, {"predictor_type": "binary_classifier", "mini_batch_size": "64", "epochs": "5",
                          "num_models": "2", "binary_classifier_model_selection_criteria": "f1"},
               {"train": ("text/csv", {"d.csv": csv_bytes(x[:400], y[:400])}),
                "validation": ("application/x-recordio-protobuf", {"v.rec": to_recordio_protobuf(x[400:], y[400:])})})
    ll.train(env)
    out = capsys.readouterr().out
    assert "#quality_metric: host=algo-1, epoch=0, train binary_classification_cross_entropy_objective <loss>=" in out
    assert "#quality_metric: host=algo-1, validation binary_f_1.000 <score>=" in out
    assert "Test data is not provided." in out
    model = ll.load(env.model_dir)
    assert model.feature_dim == 30 and np.mean(model.predict_labels(model.scores(x[400:])) == y[400:]) > 0.9
    with pytest.raises(ClientError, match="Unsupported channel"):
        ll.train(_env(tmp_path / "other", {"predictor_type": "regressor"}, {"train": ("text/csv", {"a": b"1,2\n"}),
                                                                             "extra": ("text/csv", {"a": b"1,2\n"})}))
