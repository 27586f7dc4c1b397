"""The PCA built-in (``pca:1``): real training on load_digits through the localmaker server (RecordIO-protobuf
in regular mode, CSV in randomized mode), checked against scikit-learn's PCA; the documented response formats;
the 1P failure wording. Pure parts are unit-tested without the server.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError as BotoClientError
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from localmaker.builtins import pca
from localmaker.builtins.runtime import ClientError, TrainingEnv
from localmaker.builtins.serving import HttpError
from smformats.recordio import decode_label_map, iter_recordio, to_recordio_protobuf

from ..conftest import ROLE, unique, wait_endpoint, wait_training

# exactly what sagemaker.core.image_uris.retrieve("pca", region) returns
IMAGE_US_EAST_1 = "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1"
IMAGE_EU_WEST_1 = "438346466558.dkr.ecr.eu-west-1.amazonaws.com/pca:1"
K = 10


def csv_bytes(rows: np.ndarray) -> bytes:
    return "".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in rows).encode()


def job_request(name: str, bucket: str, image: str, hps: dict[str, str], prefix: str, ctype: str | None) -> dict[str, Any]:
    ch: dict[str, Any] = {"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{prefix}", "S3DataDistributionType": "FullyReplicated"}}}
    if ctype:
        ch["ContentType"] = ctype
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": hps,
        "InputDataConfig": [ch],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/pca-output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


def artifact(s3: Any, job: dict[str, Any]) -> pca.PCAModel:
    bucket, key = job["ModelArtifacts"]["S3ModelArtifacts"][5:].split("/", 1)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), mode="r:gz") as tar:
        names = [n for n in tar.getnames() if n.strip("./")]
        assert [n.lstrip("./") for n in names] == ["model_algo-1"]  # the real artifact's single file
        member = tar.extractfile(names[0])
        assert member is not None
        with np.load(io.BytesIO(member.read())) as z:
            assert set(z.files) == {"mean", "v", "s"}
            return pca.PCAModel(z["mean"].astype(float), z["v"].astype(float), z["s"].astype(float))


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, PCA]:
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y, PCA(n_components=K).fit(x)


@pytest.fixture(scope="module")
def trained(sm, s3, bucket, digits) -> dict[str, dict[str, Any]]:
    x, y, _ = digits
    root = unique("pca-data")
    # RecordIO-protobuf as the SDK's record_set writes it for PCA: features only, no label; two files
    s3.put_object(Bucket=bucket, Key=f"{root}/rec/part-0", Body=to_recordio_protobuf(x[:900]))
    s3.put_object(Bucket=bucket, Key=f"{root}/rec/part-1", Body=to_recordio_protobuf(x[900:]))
    # CSV in the common training format: the first column is a label (the digit), which PCA ignores
    s3.put_object(Bucket=bucket, Key=f"{root}/csv/digits.csv", Body=csv_bytes(np.column_stack([y, x])))
    common = {"feature_dim": "64", "num_components": str(K), "mini_batch_size": "200"}
    reqs = {
        "regular": job_request(unique("pca-reg"), bucket, IMAGE_US_EAST_1, common, f"{root}/rec/",
                               "application/x-recordio-protobuf"),
        "randomized": job_request(unique("pca-rnd"), bucket, IMAGE_EU_WEST_1,
                                  {**common, "algorithm_mode": "randomized", "extra_components": "20"},
                                  f"{root}/csv/", "text/csv"),
        "missing": job_request(unique("pca-bad"), bucket, IMAGE_US_EAST_1,
                               {"feature_dim": "64", "mini_batch_size": "200"}, f"{root}/rec/", None),
        "none": job_request(unique("pca-none"), bucket, IMAGE_US_EAST_1, {}, f"{root}/rec/", None),
    }
    for req in reqs.values():
        sm.create_training_job(**req)
    return {key: wait_training(sm, req["TrainingJobName"]) for key, req in reqs.items()}


@pytest.fixture(scope="module")
def endpoint(sm, trained) -> str:
    job = trained["regular"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = unique("pca-model")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": IMAGE_US_EAST_1, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
    cfg = unique("pca-cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    name = unique("pca-ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    ep = wait_endpoint(sm, name)
    assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    yield name
    sm.delete_endpoint(EndpointName=name)


def invoke(runtime: Any, endpoint: str, body: bytes, ctype: str, accept: str) -> bytes:
    r = runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType=ctype, Accept=accept)
    assert r["ContentType"] == accept
    return r["Body"].read()


# ---- server tests ---------------------------------------------------------------------------------------------------
def test_projections_reproduce_sklearn_pca(s3, runtime, digits, trained, endpoint):
    x, _, sk = digits
    body = json.loads(invoke(runtime, endpoint, csv_bytes(x), "text/csv", "application/json"))
    proj = np.array([p["projection"] for p in body["projections"]])
    assert proj.shape == (len(x), K)
    # the real PCA orders components by ascending singular value: the top component is the last column
    variances = proj.var(axis=0, ddof=1)
    assert (np.diff(variances) > 0).all()
    assert variances[::-1] == pytest.approx(sk.explained_variance_, rel=1e-4)
    reference = sk.transform(x)
    for j in range(K):
        assert abs(np.corrcoef(proj[:, K - 1 - j], reference[:, j])[0, 1]) > 0.9999
    # the artifact's v / mean / s reconstruct the data as well as sklearn's model does
    model = artifact(s3, trained["regular"])
    assert model.mean.shape == (1, 64) and model.v.shape == (64, K) and model.s.shape == (K,)
    assert model.s**2 / (len(x) - 1) == pytest.approx(sk.explained_variance_[::-1], rel=1e-4)
    recon = proj @ model.v.T + model.mean
    sk_recon = sk.inverse_transform(reference)
    assert np.mean((x - recon) ** 2) == pytest.approx(np.mean((x - sk_recon) ** 2), rel=1e-4)
    m = {mm["MetricName"]: mm["Value"] for mm in trained["regular"]["FinalMetricDataList"]}
    assert m["train:progress"] == 100.0 and m["train:throughput"] > 0


def test_randomized_mode_from_csv_with_a_label_column(s3, digits, trained):
    x, _, sk = digits
    job = trained["randomized"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE_EU_WEST_1
    model = artifact(s3, job)
    assert model.v.shape == (64, K)  # the label column was not taken for a feature
    assert model.s**2 / (len(x) - 1) == pytest.approx(sk.explained_variance_[::-1], rel=1e-2)
    explained = np.sum(model.s**2) / np.sum((x - x.mean(axis=0)) ** 2)
    assert explained == pytest.approx(sk.explained_variance_ratio_.sum(), rel=1e-2)


def test_every_request_and_response_format(runtime, digits, endpoint):
    x = digits[0][:3]
    requests = {
        "text/csv": csv_bytes(x),
        "application/json": json.dumps({"instances": [{"features": r.tolist()} for r in x]}).encode(),
        "application/jsonlines": "".join(json.dumps({"features": r.tolist()}) + "\n" for r in x).encode(),
        "application/x-recordio-protobuf": to_recordio_protobuf(x),
    }
    reference = json.loads(invoke(runtime, endpoint, requests["text/csv"], "text/csv", "application/json"))
    assert list(reference) == ["projections"] and len(reference["projections"]) == 3
    assert all(list(p) == ["projection"] and len(p["projection"]) == K for p in reference["projections"])
    for ctype, body in requests.items():
        assert json.loads(invoke(runtime, endpoint, body, ctype, "application/json")) == reference, ctype
        lines = invoke(runtime, endpoint, body, ctype, "application/jsonlines").decode().splitlines()
        assert [json.loads(line) for line in lines] == reference["projections"]
        rec = invoke(runtime, endpoint, body, ctype, "application/x-recordio-protobuf")
        maps = [decode_label_map(p) for p in iter_recordio(io.BytesIO(rec))]
        assert [list(m) for m in maps] == [["projection"]] * 3
        for m, p in zip(maps, reference["projections"], strict=True):
            assert m["projection"] == pytest.approx(p["projection"], rel=1e-6, abs=1e-6)
    with pytest.raises(BotoClientError) as exc:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1,2,3\n", ContentType="text/csv")
    err = exc.value.response
    assert err["Error"]["Code"] == "ModelError" and err["OriginalStatusCode"] == 400
    assert "expects 64 features" in err["OriginalMessage"]


def test_missing_required_hyperparameters_fail_with_the_1p_wording(trained):
    job = trained["missing"]
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == ("ClientError: No value(s) were specified for 'num_components' which are required "
                                    "hyperparameter(s) (caused by ValidationError)")
    assert trained["none"]["FailureReason"] == (
        "ClientError: No value(s) were specified for 'feature_dim', 'mini_batch_size', 'num_components' which are "
        "required hyperparameter(s) (caused by ValidationError)")


# ---- unit tests (no server) ---------------------------------------------------------------------------------------------
def test_parse_config():
    hp = pca.parse_config({"feature_dim": "5", "mini_batch_size": "10", "num_components": "2"})
    assert hp == {"feature_dim": 5, "mini_batch_size": 10, "num_components": 2, "algorithm_mode": "regular",
                  "subtract_mean": True, "extra_components": -1}
    bad = [({"num_components": "6"}, "num_components (6) cannot be larger than feature_dim (5)"),
           ({"algorithm_mode": "fast"}, "Hyperparameter 'algorithm_mode': value 'fast' is not valid"),
           ({"extra_components": "-2"}, "must be >= -1"),
           ({"subtract_mean": "maybe"}, "must be true or false"),
           ({"k": "3"}, "('k' were unexpected)")]
    for extra, text in bad:
        with pytest.raises(ClientError) as exc:
            pca.parse_config({"feature_dim": "5", "mini_batch_size": "10", "num_components": "2", **extra})
        assert text in str(exc.value)


def test_fit_is_exact_and_independent_of_the_mini_batch_size():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 5.0
    hp = pca.parse_config({"feature_dim": "6", "mini_batch_size": "1", "num_components": "3"})
    one = pca.fit(x, hp)
    big = pca.fit(x, {**hp, "mini_batch_size": 1000})
    assert one.s == pytest.approx(big.s) and one.v == pytest.approx(big.v, abs=1e-9)
    _, s, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    assert one.s == pytest.approx(s[:3][::-1])  # ascending, largest last
    assert np.abs(one.v.T @ vt[:3][::-1].T).diagonal() == pytest.approx(np.ones(3))
    raw = pca.fit(x, {**hp, "subtract_mean": False})  # no centring: the SVD of x itself
    assert raw.mean.tolist() == [[0.0] * 6]
    assert raw.s == pytest.approx(np.linalg.svd(x, compute_uv=False)[:3][::-1])
    rnd = pca.fit(x, {**hp, "algorithm_mode": "randomized"})
    assert rnd.s == pytest.approx(one.s, rel=1e-6)


def test_invoke_shapes_errors_and_roundtrip(tmp_path: Path):
    model = pca.PCAModel(np.array([[1.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([1.0, 2.0]))
    out, ctype = pca.invoke(model, b"2,3\n1,1\n", "text/csv", "")
    assert ctype == "application/json"
    assert json.loads(out) == {"projections": [{"projection": [1.0, 4.0]}, {"projection": [0.0, 0.0]}]}
    out, ctype = pca.invoke(model, b'{"features": [2, 3]}', "application/jsonlines", "application/jsonlines")
    assert (out, ctype) == (b'{"projection": [1.0, 4.0]}\n', "application/jsonlines")
    out, _ = pca.invoke(model, to_recordio_protobuf([[2, 3]]), "application/x-recordio-protobuf",
                        "application/x-recordio-protobuf")
    assert [decode_label_map(p) for p in iter_recordio(io.BytesIO(out))] == [{"projection": [1.0, 4.0]}]
    for body, ctype, accept, status in [(b"1,2,3\n", "text/csv", "application/json", 400),
                                        (b"{}", "application/xml", "application/json", 415),
                                        (b"1,2\n", "text/csv", "text/csv", 406),
                                        (b"not json", "application/json", "application/json", 400)]:
        with pytest.raises(HttpError) as exc:
            pca.invoke(model, body, ctype, accept)
        assert exc.value.status == status
    model.save(tmp_path / "model_algo-1")
    loaded = pca.load(tmp_path)
    assert loaded.project(np.array([[2.0, 3.0]])).tolist() == [[1.0, 4.0]]


def _env(tmp_path: Path, hps: dict[str, str], ctype: str, content: bytes) -> TrainingEnv:
    base = tmp_path / "ml"
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "data" / "train").mkdir(parents=True)
    (base / "input" / "data" / "train" / "part.csv").write_bytes(content)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hps))
    (base / "input" / "config" / "inputdataconfig.json").write_text(json.dumps({"train": {"ContentType": ctype}}))
    return TrainingEnv.load(base)


def test_train_entry_point_csv_label_size(tmp_path: Path, capsys):
    rows = np.random.default_rng(1).normal(size=(50, 4))
    hps = {"feature_dim": "4", "mini_batch_size": "16", "num_components": "2"}
    env = _env(tmp_path / "a", hps, "text/csv;label_size=0", csv_bytes(rows))
    pca.train(env)
    out = capsys.readouterr().out
    assert "#progress_metric: host=algo-1, completed 100.0 % of epochs" in out
    assert "#throughput_metric: host=algo-1, train throughput=" in out and "Test data is not provided." in out
    assert pca.load(env.model_dir).v.shape == (4, 2)
    # without label_size, the first column is a label (common training format): 3 features != feature_dim 4
    with pytest.raises(ClientError) as exc:
        pca.train(_env(tmp_path / "b", hps, "text/csv", csv_bytes(rows)))
    assert "has 3 features per record but feature_dim is 4" in str(exc.value)
    assert "label_size" in str(exc.value)
    with pytest.raises(ClientError, match="at least 2 training records"):
        pca.train(_env(tmp_path / "c", hps, "text/csv;label_size=0", csv_bytes(rows[:1])))
