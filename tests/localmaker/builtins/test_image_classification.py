"""The Image Classification built-in (image-classification:1): image-format training, endpoints, batch.

Data: scikit-learn's 8x8 digits 0, 1 and 2 rendered as 32x32 RGB PNGs (CIFAR-sized), written in
the real algorithm's image format - class folders of images plus tab-separated .lst files.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from botocore.exceptions import ClientError as BotoClientError
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from localmaker.builtins import image_classification as ic
from localmaker.builtins.runtime import ClientError, TrainingEnv
from localmaker.builtins.serving import HttpError
from smformats.imagelist import LstEntry, encode_image, save_png, write_lst

from ..conftest import ROLE, unique, wait_endpoint, wait_for, wait_training

TRAIN_IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"  # image_uris.retrieve, us-east-1
HOST_IMAGE = "685385470294.dkr.ecr.eu-west-1.amazonaws.com/image-classification:1"  # ... and eu-west-1
CHANNELS = ("train", "validation", "train_lst", "validation_lst")
HPS = {"num_classes": "3", "num_training_samples": "270", "image_shape": "3,32,32", "epochs": "8",
       "mini_batch_size": "32", "learning_rate": "0.1", "num_layers": "20"}
ACCURACY_BOUND = 0.9  # held-out digits; measured 0.97-1.0


# ---- data ---------------------------------------------------------------------------------------------
def digits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Digits 0-2, shuffled once: 270 train, 90 validation, the rest (177) held out for the endpoint."""
    d = load_digits()
    keep = d.target < 3
    x, y = d.images[keep] / 16.0, d.target[keep]
    order = np.random.default_rng(7).permutation(len(y))
    parts = {"train": order[:270], "validation": order[270:360], "test": order[360:]}
    return {k: (x[v], y[v]) for k, v in parts.items()}


DATA = digits()


def rgb32(img: np.ndarray, fmt: str = "PNG") -> bytes:
    return encode_image(img, fmt, size=(32, 32), mode="RGB")


def write_image_format(root: Path, label_offset: int = 0) -> dict[str, Path]:
    """``root/<channel>/...`` in the image format; returns channel -> directory."""
    for split in ("train", "validation"):
        entries = []
        for i, (img, label) in enumerate(zip(*DATA[split], strict=True)):
            rel = f"digit_{label}/{split}_{i:04d}.png"
            save_png(root / split / rel, img, size=(32, 32), mode="RGB")
            entries.append(LstEntry(i, int(label) + label_offset, rel))
        write_lst(root / f"{split}_lst" / f"{split}.lst", entries)
    return {c: root / c for c in CHANNELS}


def local_env(base: Path, hps: dict[str, str], channels: dict[str, Path],
              content_type: str = "application/x-image", extra: dict[str, dict] | None = None) -> TrainingEnv:
    """A /opt/ml layout for calling ``train`` in-process (the container contract, without a server)."""
    cfg = base / "input" / "config"
    cfg.mkdir(parents=True, exist_ok=True)
    data = base / "input" / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name, src in channels.items():
        (data / name).symlink_to(src, target_is_directory=True)
    (cfg / "hyperparameters.json").write_text(json.dumps(hps))
    idc = {name: {"ContentType": content_type, "TrainingInputMode": "File", "RecordWrapperType": "None"}
           for name in channels}
    idc.update(extra or {})
    (cfg / "inputdataconfig.json").write_text(json.dumps(idc))
    return TrainingEnv.load(base)


@pytest.fixture(scope="module")
def image_dirs(tmp_path_factory):
    return write_image_format(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def local_model(tmp_path_factory, image_dirs):
    """A model trained in-process (as the container would), for the pure serving tests."""
    base = tmp_path_factory.mktemp("opt_ml")
    with threadpool_limits(1):  # as the program itself sets before numpy loads (this process loaded it already)
        ic.train(local_env(base, HPS, image_dirs))
    return base / "model"


# ---- hyperparameters (no server) ----------------------------------------------------------------------
def test_missing_required_hyperparameters_use_the_1p_wording():
    with pytest.raises(ClientError) as e:
        ic.validate_hyperparameters({"epochs": "2"})
    assert str(e.value) == ("No value(s) were specified for 'num_classes', 'num_training_samples' which are "
                            "required hyperparameter(s) (caused by ValidationError)")


@pytest.mark.parametrize(("extra", "message"), [
    ({"use_pretrained_model": "1"}, "use_pretrained_model=1 needs the ImageNet-pretrained ResNet weights"),
    ({"multi_label": "1"}, "multi_label=1"),
    ({"num_layers": "19"}, "Hyperparameter 'num_layers': value '19' is not valid: must be one of"),
    ({"top_k": "1"}, "must be an integer larger than 1"),
    ({"image_shape": "224,224"}, "must be 'num_channels,height,width'"),
    ({"image_shape": "4,32,32"}, "num_channels must be 3 (RGB) or 1 (grey)"),
    ({"optimizer": "adagrad"}, "must be one of ['sgd', 'adam', 'rmsprop', 'nag']"),
    ({"learning_rate": "1.5"}, "must be <= 1"),
    ({"lr_scheduler_step": "20,10"}, "must be increasing positive epochs"),
    ({"checkpoint_frequency": "9", "epochs": "3"}, "checkpoint_frequency (9) must not be greater than epochs (3)"),
    ({"augmentation_type": "flip"}, "must be one of ['crop', 'crop_color', 'crop_color_transform']"),
    ({"unknown_knob": "1"}, "Additional hyperparameters are not allowed ('unknown_knob' were unexpected)"),
])
def test_invalid_hyperparameters_are_client_errors(extra, message):
    with pytest.raises(ClientError) as e:
        ic.validate_hyperparameters({"num_classes": "3", "num_training_samples": "10", **extra})
    assert message in str(e.value)


def test_documented_hyperparameters_parse_with_their_defaults():
    hp = ic.validate_hyperparameters({"num_classes": "3", "num_training_samples": "10", "image_shape": "3, 64, 48",
                                      "early_stopping": "True", "lr_scheduler_step": "10, 20", "kv_store": "dist_sync",
                                      "precision_dtype": "float16", "use_pretrained_model": "0"})
    assert hp["image_shape"] == (3, 64, 48) and hp["lr_scheduler_step"] == [10, 20] and hp["early_stopping"] is True
    assert (hp["epochs"], hp["learning_rate"], hp["mini_batch_size"], hp["num_layers"], hp["optimizer"]) == (
        30, 0.1, 32, 152, "sgd")
    assert (hp["momentum"], hp["weight_decay"], hp["early_stopping_patience"], hp["early_stopping_min_epochs"]) == (
        0.9, 0.0001, 5, 10)


# ---- the network (no server) --------------------------------------------------------------------------
def test_backward_matches_finite_differences():
    """The hand-written gradients (conv, batch norm, pooling, softmax) are the loss's true gradients."""
    net = ic.Net.init((3, 8, 8), 3, seed=1)
    net.params = {k: v.astype(np.float64) for k, v in net.params.items()}
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 3, 8, 8)), np.array([0, 1, 2, 1, 0])

    def loss() -> float:
        probs, _ = net.forward(x, training=True)
        return float(-np.log(probs[np.arange(5), y]).mean())

    probs, cache = net.forward(x, training=True)
    grads = net.backward(probs, y, cache)
    for name, w in net.params.items():
        for flat in rng.choice(w.size, size=min(6, w.size), replace=False):
            i = np.unravel_index(flat, w.shape)
            old = w[i]
            w[i] = old + 1e-5
            up = loss()
            w[i] = old - 1e-5
            down = loss()
            w[i] = old
            assert grads[name][i] == pytest.approx((up - down) / 2e-5, rel=1e-3, abs=1e-7), name


def test_decode_image_resizes_to_image_shape_or_resize_then_centre_crops():
    img = np.zeros((40, 60, 3), dtype=np.uint8)
    img[:, 20:40] = 255  # a white vertical band in the middle third
    png = encode_image(img)
    plain = ic.decode_image(png, (3, 32, 32))
    assert plain.shape == (3, 32, 32) and plain.dtype == np.uint8
    assert plain[:, :, 16].min() == 255 and plain[:, :, 0].max() == 0  # squeezed: band still in the middle third
    cropped = ic.decode_image(png, (1, 32, 32), resize=32)  # 40x60 -> 32x48, centre 32x32 crop
    assert cropped.shape == (1, 32, 32)
    assert cropped[0, :, 9:23].min() == 255 and cropped[0, :, 0].max() == 0
    with pytest.raises(ValueError, match="not a decodable JPEG/PNG image"):
        ic.decode_image(b"GIF89a nonsense", (3, 32, 32))


@pytest.mark.parametrize("kind", ["crop", "crop_color", "crop_color_transform"])
def test_augmentation_keeps_shape_and_range_and_changes_pixels(kind):
    batch = (np.random.default_rng(0).random((4, 3, 16, 16)) * 255).astype(np.uint8)
    out = ic.augment(batch, kind, np.random.default_rng(1))
    assert out.shape == batch.shape and out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, batch)


def test_pool_matrix_averages_each_grid_cell():
    p = ic.pool_matrix(10, 6, 8)  # 10 rows -> 8 cells, 6 columns -> 6 cells
    assert p.shape == (60, 48)
    assert np.allclose(p.sum(axis=0), 1.0)
    assert sorted(set(np.count_nonzero(p, axis=0).tolist())) == [1, 2]


# ---- training in-process: data errors (no server) ------------------------------------------------------
@pytest.mark.parametrize(("content_type", "wrapper", "message"), [
    ("application/x-recordio", "None", "MXNet RecordIO (.rec) input is not supported"),
    ("application/x-image", "RecordIO", "uses an augmented manifest (RecordWrapperType RecordIO)"),
    ("text/csv", "None", "the image format needs one of ['application/x-image', 'image/jpeg', 'image/png']"),
])
def test_unsupported_input_formats_say_what_is_supported(tmp_path, image_dirs, content_type, wrapper, message):
    env = local_env(tmp_path, HPS, image_dirs, extra={"train": {"ContentType": content_type, "RecordWrapperType": wrapper}})
    with pytest.raises(ClientError) as e:
        ic.train(env)
    assert message in str(e.value)
    assert "train_lst" in str(e.value) or "image format" in str(e.value)


def test_missing_lst_channel_is_named(tmp_path, image_dirs):
    env = local_env(tmp_path, HPS, {k: v for k, v in image_dirs.items() if k != "validation_lst"})
    with pytest.raises(ClientError, match=r"Missing channel\(s\) \['validation_lst'\]"):
        ic.train(env)


def test_listed_image_that_is_missing_or_not_an_image(tmp_path, image_dirs):
    lst = tmp_path / "lst"
    write_lst(lst / "train.lst", [LstEntry(0, 0, "digit_0/train_0000.png"), LstEntry(1, 1, "nope/missing.png")])
    env = local_env(tmp_path / "a", HPS, {**image_dirs, "train_lst": lst})
    with pytest.raises(ClientError, match=r"Image 'nope/missing.png' listed in channel 'train_lst' \(train.lst, index 1\) "
                                          r"was not found in channel 'train'"):
        ic.train(env)
    imgs = tmp_path / "imgs"
    (imgs / "digit_0").mkdir(parents=True)
    (imgs / "digit_0" / "train_0000.png").write_bytes(b"this is not a png")
    write_lst(lst / "train.lst", [LstEntry(0, 0, "digit_0/train_0000.png")])
    env = local_env(tmp_path / "b", HPS, {**image_dirs, "train": imgs, "train_lst": lst})
    with pytest.raises(ClientError, match="Channel 'train': image 'digit_0/train_0000.png' is not a decodable JPEG/PNG"):
        ic.train(env)


def test_malformed_lst_and_two_lst_files(tmp_path, image_dirs):
    lst = tmp_path / "lst"
    lst.mkdir()
    (lst / "train.lst").write_text("0 0 digit_0/train_0000.png\n")
    with pytest.raises(ClientError, match="Channel 'train_lst': train.lst line 1: expected 3 tab-separated columns"):
        ic.train(local_env(tmp_path / "a", HPS, {**image_dirs, "train_lst": lst}))
    (lst / "more.lst").write_text("0\t0\tdigit_0/train_0000.png\n")
    with pytest.raises(ClientError, match="Channel 'train_lst' must hold exactly one .lst file; found 2"):
        ic.train(local_env(tmp_path / "b", HPS, {**image_dirs, "train_lst": lst}))


def test_sample_count_mismatch_is_a_warning_and_incremental_training_resumes(tmp_path, image_dirs, local_model, capsys):
    art = tmp_path / "model-channel"
    art.mkdir()
    with tarfile.open(art / "model.tar.gz", "w:gz") as tar:
        for f in local_model.iterdir():
            tar.add(f, arcname=f.name)
    hps = {**HPS, "num_training_samples": "1000", "epochs": "1", "learning_rate": "0.001"}
    with threadpool_limits(1):
        ic.train(local_env(tmp_path / "a", hps, {**image_dirs, "model": art},
                           extra={"model": {"ContentType": "application/x-sagemaker-model"}}))
    out = capsys.readouterr().out
    assert "WARNING: num_training_samples=1000 but the train .lst lists 270 images" in out
    assert "Initialised the weights from the model in channel 'model' (incremental training)." in out
    # one low-learning-rate epoch from the trained weights is already accurate
    first = float(out.split("Epoch[0] Validation-accuracy=")[1].split()[0])
    assert first >= ACCURACY_BOUND
    with pytest.raises(ClientError, match="the pretrained model has num_classes=3, image_shape=3,32,32"):
        ic.train(local_env(tmp_path / "b", {**hps, "num_classes": "4"}, {**image_dirs, "model": art},
                           extra={"model": {"ContentType": "application/x-sagemaker-model"}}))


# ---- serving functions (no server) --------------------------------------------------------------------
@pytest.fixture(scope="module")
def net(local_model):
    return ic.load_model(local_model)


def test_invoke_returns_the_probability_list(net):
    img, label = DATA["test"][0][0], DATA["test"][1][0]
    body, ctype = ic.invoke(net, rgb32(img), "image/png", "application/json")
    probs = json.loads(body)
    assert ctype == "application/json" and isinstance(probs, list) and len(probs) == 3
    assert sum(probs) == pytest.approx(1.0, abs=1e-5) and int(np.argmax(probs)) == label


def test_invoke_jsonlines_and_batch_default(net, monkeypatch):
    png = rgb32(DATA["test"][0][1])
    body, ctype = ic.invoke(net, png, "application/x-image", "application/jsonlines")
    assert ctype == "application/jsonlines" and body.endswith(b"\n")
    assert list(json.loads(body)) == ["prediction"] and len(json.loads(body)["prediction"]) == 3
    assert json.loads(ic.invoke(net, png, "image/png", "")[0]) == json.loads(body)["prediction"]
    monkeypatch.setenv("SAGEMAKER_BATCH", "true")
    assert ic.invoke(net, png, "image/png", "")[0] == body


@pytest.mark.parametrize(("body", "ctype", "accept", "status", "message"), [
    (b"not an image", "application/x-image", "", 400, "unable to read the request body as an image"),
    (b"", "image/png", "", 400, "the request body is empty"),
    (b"1,2,3", "text/csv", "", 415, "Content type text/csv is not supported"),
    (None, "image/png", "text/csv", 406, "Accept text/csv is not supported"),
])
def test_invoke_errors_are_4xx(net, body, ctype, accept, status, message):
    with pytest.raises(HttpError) as e:
        ic.invoke(net, rgb32(DATA["test"][0][0]) if body is None else body, ctype, accept)
    assert e.value.status == status and message in e.value.message


# ---- through localmaker: training job, endpoint, batch transform --------------------------------------
def request(name: str, bucket: str, prefix: str, hps: dict[str, str], image: str = TRAIN_IMAGE) -> dict:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": hps,
        "InputDataConfig": [
            {"ChannelName": c, "ContentType": "application/x-image",
             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{prefix}/{c}/",
                                             "S3DataDistributionType": "FullyReplicated"}}}
            for c in CHANNELS
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/ic-output"},
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


@pytest.fixture(scope="module")
def s3_data(s3, bucket, image_dirs):
    root = image_dirs["train"].parent
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"ic/{path.relative_to(root).as_posix()}", Body=path.read_bytes())
    return "ic"


@pytest.fixture(scope="module")
def job(sm, bucket, s3_data):
    name = unique("ic")
    sm.create_training_job(**request(name, bucket, s3_data, HPS))
    done = wait_training(sm, name, timeout=180)
    assert done["TrainingJobStatus"] == "Completed", done.get("FailureReason")
    return done


def test_training_job_reports_accuracy_and_writes_the_real_artifact_names(s3, logs, job):
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert set(metrics) == {"train:accuracy", "validation:accuracy", "train:accuracy:epoch", "validation:accuracy:epoch"}
    assert metrics["validation:accuracy"] >= ACCURACY_BOUND  # 90 held-out digits
    assert metrics["train:accuracy:epoch"] >= ACCURACY_BOUND
    bucket, key = job["ModelArtifacts"]["S3ModelArtifacts"][5:].split("/", 1)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), mode="r:gz") as tar:
        names = sorted(tar.getnames())
        shapes = json.load(tar.extractfile("model-shapes.json"))
    assert names[-2:] == ["image-classification-symbol.json", "model-shapes.json"]
    assert len(names) == 3 and names[0].startswith("image-classification-0") and names[0].endswith(".params")
    assert shapes == [{"shape": [1, 3, 32, 32], "name": "data"}]
    stream = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                       logStreamNamePrefix=job["TrainingJobName"] + "/")["logStreams"][0]
    lines = [e["message"] for e in logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                                       logStreamName=stream["logStreamName"], startFromHead=True)["events"]]
    epoch_lines = [ln.split("] ", 1)[1] for ln in lines if "] Epoch[" in ln and "Batch" not in ln]
    assert epoch_lines[0].startswith("Epoch[0] Train-accuracy=") and epoch_lines[1].startswith("Epoch[0] Time cost=")
    assert epoch_lines[2].startswith("Epoch[0] Validation-accuracy=")
    assert any("Saved checkpoint to" in ln and names[0] in ln for ln in lines)


FIRST_TWO = int(np.flatnonzero(DATA["train"][1] == 2)[0])  # the first train.lst row labelled 2


@pytest.mark.parametrize(("hps", "reason"), [
    ({k: v for k, v in HPS.items() if k != "num_classes"},
     "ClientError: No value(s) were specified for 'num_classes' which are required hyperparameter(s) "
     "(caused by ValidationError)"),
    ({**HPS, "num_classes": "2"},
     f"ClientError: Channel 'train_lst': train.lst row {FIRST_TWO + 1} (index {FIRST_TWO}, "
     f"digit_2/train_{FIRST_TWO:04d}.png) has label 2, outside [0, num_classes) = [0, 2)."),
])
def test_bad_training_input_fails_with_the_reason(sm, bucket, s3_data, hps, reason):
    name = unique("icbad")
    sm.create_training_job(**request(name, bucket, s3_data, hps))
    done = wait_training(sm, name)
    assert done["TrainingJobStatus"] == "Failed"
    assert done["FailureReason"].startswith(reason)


@pytest.fixture(scope="module")
def model(sm, job):
    name = unique("icmodel")
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": HOST_IMAGE, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
    return name


@pytest.fixture(scope="module")
def endpoint(sm, model):
    cfg = unique("iccfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    name = unique("icep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    ep = wait_endpoint(sm, name)
    assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    yield name
    sm.delete_endpoint(EndpointName=name)


def test_endpoint_classifies_png_and_jpeg_images(runtime, endpoint):
    x, y = DATA["test"]
    right = 0
    for i in range(40):
        fmt, ctype = ("PNG", "image/png") if i % 2 else ("JPEG", "application/x-image")
        r = runtime.invoke_endpoint(EndpointName=endpoint, Body=rgb32(x[i], fmt), ContentType=ctype)
        assert r["ContentType"] == "application/json"
        probs = json.loads(r["Body"].read())
        assert isinstance(probs, list) and len(probs) == 3 and sum(probs) == pytest.approx(1.0, abs=1e-5)
        right += int(np.argmax(probs)) == y[i]
    assert right / 40 >= ACCURACY_BOUND
    r = runtime.invoke_endpoint(EndpointName=endpoint, Body=rgb32(x[0]), ContentType="image/jpeg",
                                Accept="application/jsonlines")
    assert list(json.loads(r["Body"].read())) == ["prediction"]


def test_endpoint_garbage_bytes_are_a_model_error(runtime, endpoint):
    with pytest.raises(BotoClientError) as e:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"\x00\x01garbage", ContentType="application/x-image")
    err = e.value.response
    assert err["Error"]["Code"] == "ModelError" and err["OriginalStatusCode"] == 400
    assert err["OriginalMessage"].startswith("unable to read the request body as an image")


def test_batch_transform_writes_one_prediction_line_per_image(sm, s3, bucket, model):
    x, y = DATA["test"]
    for i in range(6):
        s3.put_object(Bucket=bucket, Key=f"ic-batch/in/img_{i}.png", Body=rgb32(x[100 + i]))
    name = unique("ictx")
    sm.create_transform_job(
        TransformJobName=name, ModelName=model, BatchStrategy="SingleRecord",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/ic-batch/in/"}},
                        "ContentType": "application/x-image", "SplitType": "None"},
        TransformOutput={"S3OutputPath": f"s3://{bucket}/ic-batch/out/{name}"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    done = wait_for(lambda: sm.describe_transform_job(TransformJobName=name),
                    lambda d: d["TransformJobStatus"] not in ("InProgress", "Stopping"), timeout=90)
    assert done["TransformJobStatus"] == "Completed", done.get("FailureReason")
    right = 0
    for i in range(6):
        out = s3.get_object(Bucket=bucket, Key=f"ic-batch/out/{name}/img_{i}.png.out")["Body"].read()
        pred = json.loads(out)["prediction"]
        assert len(pred) == 3
        right += int(np.argmax(pred)) == y[100 + i]
    assert right >= 5
