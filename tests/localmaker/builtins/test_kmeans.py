"""The K-Means built-in image (``kmeans:1``): real clustering on scikit-learn's digits, AWS's metric
lines, hyperparameter errors and response shapes, through a real localmaker server (training,
endpoint, batch transform, tuning) and directly on the module's pure functions."""

from __future__ import annotations

import io
import json
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from localmaker.builtins import kmeans as km
from localmaker.builtins.runtime import ClientError as AlgoClientError
from localmaker.builtins.runtime import TrainingEnv
from localmaker.builtins.serving import HttpError
from smformats.recordio import (
    decode_label_map,
    from_recordio_protobuf,
    iter_recordio,
    to_recordio_protobuf,
)

from ..conftest import ROLE, unique, wait_endpoint, wait_for, wait_training

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1"  # sagemaker.core.image_uris.retrieve("kmeans", ...)
IMAGE_EU = "438346466558.dkr.ecr.eu-west-1.amazonaws.com/kmeans:1"
MISSING = ("ClientError: No value(s) were specified for 'k', 'feature_dim' which are required "
           "hyperparameter(s) (caused by ValidationError)")
PURITY_BOUND = 0.65  # measured ~0.75 on these held-out rows; k-means on digits typically scores 0.7-0.8


# ---- data -------------------------------------------------------------------------------------------
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(7).permutation(len(x))
    tr, te = order[:1400], order[1400:]
    return x[tr].astype(np.float32), y[tr], x[te].astype(np.float32), y[te]


XTR, YTR, XTE, YTE = digits()


def purity(clusters: np.ndarray, truth: np.ndarray) -> float:
    """Share of rows whose digit is their cluster's majority digit."""
    return sum(np.bincount(truth[clusters == c]).max() for c in np.unique(clusters)) / len(truth)


def csv_bytes(x: np.ndarray) -> bytes:
    return "".join(",".join(f"{v:g}" for v in row) + "\n" for row in x).encode()


def channel(name: str, bucket: str, prefix: str, ctype: str, distribution: str = "FullyReplicated") -> dict:
    return {"ChannelName": name, "ContentType": ctype, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{prefix}", "S3DataDistributionType": distribution}}}


def job_request(name: str, bucket: str, channels: list[dict], hps: dict[str, str], image: str = IMAGE,
                count: int = 1) -> dict:
    """A CreateTrainingJob request as the kmeans lowlevel example sends it (no MetricDefinitions:
    the built-in's own definitions apply)."""
    return {"TrainingJobName": name, "RoleArn": ROLE, "HyperParameters": hps, "InputDataConfig": channels,
            "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/km-out"},
            "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": count, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300}}


def centers_of(s3, artifact: str) -> tuple[list[str], np.ndarray]:
    bucket, key = artifact[len("s3://"):].split("/", 1)
    blob = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        names = tar.getnames()
        data = tar.extractfile("model_algo-1").read()  # type: ignore[union-attr]
    return names, km.load_ndarray_list(data)[0]


HPS = {"k": "10", "feature_dim": "64", "mini_batch_size": "500", "force_dense": "True",
       "eval_metrics": '["msd","ssd"]'}


@pytest.fixture(scope="module")
def jobs(sm, s3, bucket):
    """Every training job of the module, started together (they run in parallel) and awaited once."""
    put = lambda key, body: s3.put_object(Bucket=bucket, Key=key, Body=body)  # noqa: E731
    put("km/rio/train/digits.rec", to_recordio_protobuf(XTR, YTR.astype(float)))  # labels, as the SDK writes; ignored
    put("km/rio/test/digits.rec", to_recordio_protobuf(XTE, YTE.astype(float)))
    put("km/csv/train/digits.csv", csv_bytes(XTR))
    put("km/csv/test/digits.csv", csv_bytes(XTE))
    put("km/shard/train/part-0.rec", to_recordio_protobuf(XTR[:700]))
    put("km/shard/train/part-1.rec", to_recordio_protobuf(XTR[700:]))
    rio = [channel("train", bucket, "km/rio/train/", "application/x-recordio-protobuf"),
           channel("test", bucket, "km/rio/test/", "application/x-recordio-protobuf")]
    requests = {
        "rio": job_request(unique("km-rio"), bucket, rio, HPS),
        "csv": job_request(unique("km-csv"), bucket, [channel("train", bucket, "km/csv/train/", "text/csv"),
                                                      channel("test", bucket, "km/csv/test/", "text/csv")],
                           HPS, image=IMAGE_EU),
        "shard": job_request(unique("km-2hosts"), bucket, [
            channel("train", bucket, "km/shard/train/", "application/x-recordio-protobuf", "ShardedByS3Key"),
            rio[1]], HPS, count=2),
        "missing": job_request(unique("km-missing"), bucket, rio, {"mini_batch_size": "500"}),
        "dim": job_request(unique("km-dim"), bucket, rio, {**HPS, "feature_dim": "63"}),
    }
    for req in requests.values():
        sm.create_training_job(**req)
    return {key: wait_training(sm, req["TrainingJobName"], timeout=180) for key, req in requests.items()}


def final_metrics(job: dict) -> dict[str, float]:
    return {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}


# ---- training through the server --------------------------------------------------------------------
def test_recordio_training_clusters_digits_and_reports_test_metrics(jobs, s3):
    job = jobs["rio"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    names, centers = centers_of(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    assert names == ["model_algo-1"] and centers.shape == (10, 64) and centers.dtype == np.float32
    clusters, d2 = km.assign(XTE, centers)
    assert purity(clusters, YTE) > PURITY_BOUND
    metrics = final_metrics(job)  # from the manifest's test:msd / test:ssd definitions, none in the request
    assert metrics["test:msd"] == pytest.approx(d2.mean(), rel=1e-4)
    assert metrics["test:ssd"] == pytest.approx(d2.sum(), rel=1e-4)


def test_csv_training_reads_every_column_as_a_feature(jobs, s3):
    job = jobs["csv"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    _, centers = centers_of(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    clusters, d2 = km.assign(XTE, centers)
    assert centers.shape == (10, 64) and purity(clusters, YTE) > PURITY_BOUND
    assert final_metrics(job)["test:msd"] == pytest.approx(d2.mean(), rel=1e-4)


def test_two_hosts_train_on_their_shards_into_one_model(jobs, s3, logs):
    job = jobs["shard"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    _, centers = centers_of(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    clusters, d2 = km.assign(XTE, centers)
    assert centers.shape == (10, 64) and purity(clusters, YTE) > PURITY_BOUND
    assert final_metrics(job)["test:msd"] == pytest.approx(d2.mean(), rel=1e-4)
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                        logStreamNamePrefix=job["TrainingJobName"])["logStreams"]
    text = "\n".join(e["message"] for s in streams for e in logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=s["logStreamName"])["events"])
    assert "700 records" in text and "received" in text and "from algo-2 (700 records)" in text


def test_missing_required_hyperparameters_fail_with_aws_wording(jobs):
    job = jobs["missing"]
    assert job["TrainingJobStatus"] == "Failed" and job["FailureReason"] == MISSING


def test_feature_dim_mismatch_fails_with_a_clear_reason(jobs):
    job = jobs["dim"]
    assert job["TrainingJobStatus"] == "Failed"
    assert "ClientError: The hyperparameter feature_dim=63 does not match the data" in job["FailureReason"]
    assert "has 64 features per record" in job["FailureReason"]


# ---- hosting and batch transform --------------------------------------------------------------------
@pytest.fixture(scope="module")
def endpoint(sm, jobs, s3):
    job = jobs["rio"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = unique("km-model")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": IMAGE, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
    cfg = unique("km-cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    name = unique("km-ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    ep = wait_endpoint(sm, name)
    assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    _, centers = centers_of(s3, job["ModelArtifacts"]["S3ModelArtifacts"])
    yield name, model, centers
    sm.delete_endpoint(EndpointName=name)


def expected(centers: np.ndarray, x: np.ndarray) -> list[dict[str, float]]:
    idx, d2 = km.assign(x, centers)
    return [{"closest_cluster": float(i), "distance_to_cluster": float(np.sqrt(d))} for i, d in zip(idx, d2, strict=True)]


def same(got: list[dict], want: list[dict]) -> bool:
    return len(got) == len(want) and all(
        set(g) == {"closest_cluster", "distance_to_cluster"} and g["closest_cluster"] == w["closest_cluster"]
        and g["distance_to_cluster"] == pytest.approx(w["distance_to_cluster"], rel=1e-4) for g, w in zip(got, want, strict=True))


def test_endpoint_csv_request_answers_json_by_default_and_clusters_held_out_digits(runtime, endpoint):
    name, _, centers = endpoint
    resp = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=csv_bytes(XTE))
    assert resp["ContentType"] == "application/json"
    preds = json.loads(resp["Body"].read())["predictions"]
    assert same(preds, expected(centers, XTE))
    assert all(isinstance(p["closest_cluster"], float) for p in preds)
    assert purity(np.array([int(p["closest_cluster"]) for p in preds]), YTE) > PURITY_BOUND


@pytest.mark.parametrize("ctype", ["application/json", "application/jsonlines", "application/x-recordio-protobuf"])
@pytest.mark.parametrize("accept", ["application/json", "application/jsonlines", "application/x-recordio-protobuf",
                                    "text/csv"])
def test_endpoint_every_request_and_response_type(runtime, endpoint, ctype, accept):
    name, _, centers = endpoint
    x = XTE[:3]
    body = {"application/json": lambda: json.dumps({"instances": [{"features": r.tolist()} for r in x]}).encode(),
            "application/jsonlines": lambda: "".join(json.dumps({"features": r.tolist()}) + "\n" for r in x).encode(),
            "application/x-recordio-protobuf": lambda: to_recordio_protobuf(x)}[ctype]()
    resp = runtime.invoke_endpoint(EndpointName=name, ContentType=ctype, Accept=accept, Body=body)
    assert resp["ContentType"] == accept
    raw = resp["Body"].read()
    if accept == "application/json":
        got = json.loads(raw)["predictions"]
    elif accept == "application/jsonlines":
        got = [json.loads(line) for line in raw.decode().splitlines()]
    elif accept == "text/csv":
        got = [dict(zip(("closest_cluster", "distance_to_cluster"), map(float, line.split(",")), strict=True))
               for line in raw.decode().splitlines()]
    else:
        maps = [decode_label_map(p) for p in iter_recordio(io.BytesIO(raw))]
        assert all(set(m) == {"closest_cluster", "distance_to_cluster"} for m in maps)
        got = [{k: v[0] for k, v in m.items()} for m in maps]
    assert same(got, expected(centers, x))


def test_endpoint_wrong_feature_count_is_a_400_naming_it(runtime, endpoint):
    from botocore.exceptions import ClientError

    name, _, _ = endpoint
    with pytest.raises(ClientError) as err:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1,2,3\n")
    assert err.value.response["Error"]["Code"] == "ModelError"
    assert err.value.response["OriginalStatusCode"] == 400
    assert "row 1 has 3 columns; the model expects 64 features" in err.value.response["Error"]["Message"]


def test_batch_transform_recordio_split_writes_one_json_line_per_record(sm, s3, bucket, endpoint):
    _, model, centers = endpoint
    s3.put_object(Bucket=bucket, Key="km/tx/in/test.rec", Body=to_recordio_protobuf(XTE))
    name = unique("km-tx")
    sm.create_transform_job(
        TransformJobName=name, ModelName=model, BatchStrategy="MultiRecord", MaxPayloadInMB=1,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/km/tx/in/"}},
                        "ContentType": "application/x-recordio-protobuf", "SplitType": "RecordIO"},
        TransformOutput={"S3OutputPath": f"s3://{bucket}/km/tx/out/{name}", "Accept": "application/jsonlines",
                         "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    job = wait_for(lambda: sm.describe_transform_job(TransformJobName=name),
                   lambda d: d["TransformJobStatus"] not in ("InProgress", "Stopping"), timeout=90)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    out = s3.get_object(Bucket=bucket, Key=f"km/tx/out/{name}/test.rec.out")["Body"].read().decode()
    lines = out.splitlines()
    assert len(lines) == len(XTE) and all(lines)
    assert same([json.loads(line) for line in lines], expected(centers, XTE))


def test_tuning_job_accepts_the_builtin_objective_test_msd(sm, bucket, jobs):
    assert jobs["rio"]["TrainingJobStatus"] == "Completed"
    name = unique("km-hpo")[:32]
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig={
            "Strategy": "Random", "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "test:msd"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {"IntegerParameterRanges": [
                {"Name": "extra_center_factor", "MinValue": "4", "MaxValue": "10", "ScalingType": "Auto"}]}},
        TrainingJobDefinition={
            "StaticHyperParameters": {k: v for k, v in HPS.items() if k != "eval_metrics"},
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE, "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/km-hpo"},
            "InputDataConfig": [channel("train", bucket, "km/rio/train/", "application/x-recordio-protobuf"),
                                channel("test", bucket, "km/rio/test/", "application/x-recordio-protobuf")],
            "ResourceConfig": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300}})
    hpo = wait_for(lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
                   lambda d: d["HyperParameterTuningJobStatus"] not in ("InProgress", "Stopping"), timeout=120)
    assert hpo["HyperParameterTuningJobStatus"] == "Completed", hpo.get("FailureReason")
    best = hpo["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == "test:msd"
    trial = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == final_metrics(trial)["test:msd"]
    assert 4 <= int(trial["HyperParameters"]["extra_center_factor"]) <= 10


# ---- the module's pure functions (no server) ---------------------------------------------------------
def test_hyperparameter_validation():
    with pytest.raises(AlgoClientError, match=r"^No value\(s\) were specified for 'k', 'feature_dim' which"):
        km.parse_hps({})
    with pytest.raises(AlgoClientError, match="'feature_dim'") as err:
        km.parse_hps({"k": "3"})
    assert "'k'" not in str(err.value)
    hp = km.parse_hps({"k": "3", "feature_dim": "2", "_tuning_objective_metric": "test:msd"})
    assert (hp["mini_batch_size"], hp["epochs"], hp["init_method"], hp["eval_metrics"]) == (5000, 1, "random", ["msd"])
    assert hp["extra_center_factor"] is None and hp["local_lloyd_num_trials"] is None
    assert km.parse_hps({"k": "3", "feature_dim": "2", "extra_center_factor": "4"})["extra_center_factor"] == 4
    with pytest.raises(AlgoClientError, match="'max_iterations'.*sent as 'local_lloyd_max_iter'"):
        km.parse_hps({"k": "3", "feature_dim": "2", "max_iterations": "10"})
    with pytest.raises(AlgoClientError, match="'bogus'"):
        km.parse_hps({"k": "3", "feature_dim": "2", "bogus": "1"})
    with pytest.raises(AlgoClientError, match="eval_metrics.*JSON list"):
        km.parse_hps({"k": "3", "feature_dim": "2", "eval_metrics": "msd"})
    with pytest.raises(AlgoClientError, match=r"unknown metric\(s\) \['mse'\]"):
        km.parse_hps({"k": "3", "feature_dim": "2", "eval_metrics": '["mse"]'})
    with pytest.raises(AlgoClientError, match="init_method"):
        km.parse_hps({"k": "3", "feature_dim": "2", "init_method": "kmeans||"})
    with pytest.raises(AlgoClientError, match="'k'.*must be >= 1"):
        km.parse_hps({"k": "0", "feature_dim": "2"})


def test_ndarray_file_is_mxnet_nd_save_layout(tmp_path):
    centers = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / "model_algo-1"
    km.save_ndarray_list(path, [centers])
    raw = path.read_bytes()
    # list magic 0x112, reserved, 1 array; V2 record: magic, dense, ndim 2, int64 dims, cpu(0), float32
    assert raw[:24] == struct.pack("<QQQ", 0x112, 0, 1)
    assert raw[24:64] == struct.pack("<IiIqqiii", 0xF993FAC9, 0, 2, 2, 3, 1, 0, 0)
    assert raw[64:88] == centers.tobytes() and raw[88:] == struct.pack("<Q", 0)
    back = km.load_ndarray_list(raw)
    assert len(back) == 1 and np.array_equal(back[0], centers)
    with pytest.raises(ValueError, match="not an MXNet NDArray file"):
        km.load_ndarray_list(b"\x00" * 32)
    with pytest.raises(ValueError, match="truncated"):
        km.load_ndarray_list(raw[:70])


def test_minibatch_then_local_lloyd_clusters_digits_in_process():
    rng = np.random.default_rng(0)
    hp = km.parse_hps({"k": "10", "feature_dim": "64"})
    factor = km.auto_center_factor(len(XTR), 10)
    centers, weights = km.minibatch_kmeans(XTR, 10 * factor, 5000, 1, "random", 0, rng)
    assert factor == 7 and centers.shape == (70, 64) and weights.sum() == len(XTR)
    final = km.reduce_centers(centers, weights, 10, hp, rng)
    assert final.shape == (10, 64) and purity(km.assign(XTE, final)[0], YTE) > PURITY_BOUND
    s = km.scores(XTE, final)
    assert s["ssd"] == pytest.approx(s["msd"] * len(XTE))


def test_half_life_decays_old_points():
    x = np.array([[0.0], [0.0], [0.0], [0.0], [10.0], [10.0], [10.0], [10.0]], dtype=np.float32)
    rng = np.random.default_rng(0)
    # one center, batches of 1 in a fixed order: without decay it is the plain mean (5.0)
    c, w = km.minibatch_kmeans(x, 1, 1, 1, "random", 0, rng)
    assert c[0, 0] == pytest.approx(5.0) and w[0] == 8
    c, w = km.minibatch_kmeans(x, 1, 1, 1, "random", 1, np.random.default_rng(0))
    assert w[0] < 2.0  # weights halve with every point seen


def env_for(tmp_path: Path, hps: dict[str, str], files: dict[str, bytes], ctypes: dict[str, str]) -> TrainingEnv:
    for rel, body in files.items():
        p = tmp_path / "input" / "data" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
    return TrainingEnv(base=tmp_path, hyperparameters=hps, channels={c: {"ContentType": t} for c, t in ctypes.items()},
                       hosts=["algo-1"], current_host="algo-1")


def test_channel_reading_csv_label_size_and_errors(tmp_path):
    env = env_for(tmp_path, {}, {"train/a.csv": b"9,1,2\n9,3,4\n", "test/b.csv": b"1,x\n"},
                  {"train": "text/csv;label_size=1", "test": "text/csv"})
    assert km.read_channel(env, "train", 2).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(AlgoClientError, match="feature_dim=3 does not match.*2 features per record after dropping label_size=1"):
        km.read_channel(env, "train", 3)
    with pytest.raises(AlgoClientError, match=r"line 1: 'x' is not a number"):
        km.read_channel(env, "test", 2)
    env.channels["test"] = {"ContentType": "application/x-parquet"}
    with pytest.raises(AlgoClientError, match="content type 'application/x-parquet' is not supported"):
        km.read_channel(env, "test", 2)
    env.channels["test"] = {}  # default RecordIO-protobuf: a CSV file is a clear error
    with pytest.raises(AlgoClientError, match="not valid RecordIO-protobuf.*text/csv"):
        km.read_channel(env, "test", 2)


def test_train_in_process_writes_model_and_metric_lines(tmp_path, capsys):
    env = env_for(tmp_path, {"k": "10", "feature_dim": "64", "eval_metrics": '["ssd","msd"]'},
                  {"train/d.rec": to_recordio_protobuf(XTR), "test/d.rec": to_recordio_protobuf(XTE)},
                  {"train": "application/x-recordio-protobuf", "test": "application/x-recordio-protobuf"})
    km.train(env)
    out = capsys.readouterr().out
    centers = km.load(env.model_dir).centers
    assert centers.shape == (10, 64)
    s = km.scores(XTE, centers)
    lines = [line.split("] ", 1)[1] for line in out.splitlines() if "#quality_metric" in line]
    assert lines == [f"#quality_metric: host=algo-1, test ssd <loss>={s['ssd']}",
                     f"#quality_metric: host=algo-1, test msd <loss>={s['msd']}"]
    with pytest.raises(AlgoClientError, match="k=2000 exceeds the number of distinct training records"):
        km.train(env_for(tmp_path, {"k": "2000", "feature_dim": "64"}, {}, {"train": "application/x-recordio-protobuf"}))
    with pytest.raises(AlgoClientError, match=r"Unsupported channel\(s\) \['validation'\]"):
        km.train(env_for(tmp_path, {"k": "2", "feature_dim": "64"}, {},
                         {"train": "application/x-recordio-protobuf", "validation": "text/csv"}))


MODEL = km.Model(np.array([[0.0, 0.0], [10.0, 0.0]], dtype=np.float32))


def test_invoke_shapes_and_types():
    body, ctype = km.invoke(MODEL, b"1,0\n9,0\n", "text/csv", "")
    assert ctype == "application/json"
    assert json.loads(body) == {"predictions": [{"closest_cluster": 0.0, "distance_to_cluster": 1.0},
                                                {"closest_cluster": 1.0, "distance_to_cluster": 1.0}]}
    body, ctype = km.invoke(MODEL, json.dumps({"instances": [[3, 4]]}).encode(), "application/json",
                            "application/jsonlines")
    assert (body, ctype) == (b'{"closest_cluster": 0.0, "distance_to_cluster": 5.0}\n', "application/jsonlines")
    body, ctype = km.invoke(MODEL, b'{"data": {"features": {"values": [10, 2]}}}', "application/json", "text/csv")
    assert (body, ctype) == (b"1.0,2.0\n", "text/csv")
    body, ctype = km.invoke(MODEL, to_recordio_protobuf([[7, 4]]), "application/x-recordio-protobuf",
                            "application/x-recordio-protobuf")
    rec = next(iter_recordio(io.BytesIO(body)))
    assert decode_label_map(rec) == {"closest_cluster": [1.0], "distance_to_cluster": [5.0]}
    assert from_recordio_protobuf(to_recordio_protobuf([[1.0, 2.0]]))[0].features == (1.0, 2.0)


@pytest.mark.parametrize(("body", "ctype", "accept", "status", "text"), [
    (b"1,2,3\n", "text/csv", "", 400, "row 1 has 3 columns; the model expects 2 features"),
    (b'{"instances": [[1]]}', "application/json", "", 400, "record 1 has 1 features; the model expects 2"),
    (b"1,2\n", "text/csv", "image/png", 406, "Accept image/png is not supported"),
    (b"1,2\n", "text/libsvm", "", 415, "Content type text/libsvm is not supported"),
    (b"garbage", "application/x-recordio-protobuf", "", 400, "not RecordIO-protobuf"),
])
def test_invoke_rejects_bad_requests(body, ctype, accept, status, text):
    with pytest.raises(HttpError) as err:
        km.invoke(MODEL, body, ctype, accept)
    assert err.value.status == status and text in err.value.message


def test_load_finds_model_algo_1(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model_algo-1"):
        km.load(tmp_path)
    km.save_ndarray_list(tmp_path / "model_algo-1", [MODEL.centers])
    assert km.load(tmp_path).feature_dim == 2


def test_empty_files_and_header_rows(tmp_path):
    env = env_for(tmp_path, {}, {"train/empty.rec": b"", "train/d.rec": to_recordio_protobuf(XTR[:5]),
                                 "test/h.csv": b"pixel0,pixel1\n1,2\n"},
                  {"train": "application/x-recordio-protobuf", "test": "text/csv"})
    assert km.read_channel(env, "train", 64).shape == (5, 64)
    with pytest.raises(AlgoClientError, match=r"line 1: 'pixel0' is not a number \(K-Means reads header-less"):
        km.read_channel(env, "test", 2)
