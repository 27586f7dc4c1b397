"""Nothing derived from a request escapes its directory.

S3 keys such as ``p/../../x`` are legal S3 keys, manifests may list absolute or ``../`` entries,
a processing LocalPath may point anywhere, a log group may be called ``..``: localmaker maps all
of them to local paths, and every such path must stay inside its base directory. A job given one
that does not fails with a ClientError naming the key; an API call given one is a 4xx; and in
every case no file appears outside the job's directory.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localmaker import s3io, safepath
from localmaker.logs import LogStore
from tests.faults.conftest import ROLE, Server, start_server
from tests.localmaker.conftest import training_request, unique, wait_for, wait_training

TINY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny-algo:1"
PROC = "123456789012.dkr.ecr.us-east-1.amazonaws.com/proc-algo:1"
BUCKET = "lm-paths"
SERVER_DIRS = ("logs", "s3", "children", "metrics")  # the home's own stores: log streams, durable S3, child records, training metrics


# ---- safepath -----------------------------------------------------------------------------------------
def test_inside_accepts_paths_below_the_base(tmp_path: Path) -> None:
    assert safepath.inside(tmp_path, "a", "b.csv") == tmp_path.resolve() / "a" / "b.csv"
    assert safepath.inside(tmp_path, "a/../b") == tmp_path.resolve() / "b"
    assert safepath.inside(tmp_path, "a//b") == tmp_path.resolve() / "a" / "b"
    assert safepath.inside(tmp_path, ".", allow_base=True) == tmp_path.resolve()


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        (("..",), "outside"),
        (("a/../../x",), "outside"),
        (("a", "..", "..", "x"),  "outside"),
        (("../" * 30 + "tmp/x",), "outside"),
        (("/etc/passwd",), "absolute"),
        (("a", "/etc"), "absolute"),
        (("a\x00b",), "NUL"),
        ((".",), "itself"),
        (("",), "itself"),
        (("a/..",), "itself"),
    ],
)
def test_inside_refuses_escapes(tmp_path: Path, parts: tuple[str, ...], reason: str) -> None:
    with pytest.raises(safepath.PathEscape, match=reason):
        safepath.inside(tmp_path / "base", *parts)


def test_inside_refuses_a_symlink_leading_out(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (base / "link").symlink_to(tmp_path / "elsewhere")
    (base / "inner").symlink_to(base / "sub")
    with pytest.raises(safepath.PathEscape, match="outside"):
        safepath.inside(base, "link", "x")
    with pytest.raises(safepath.PathEscape, match="outside"):
        safepath.inside(base, "link")
    assert safepath.inside(base, "inner", "x") == base.resolve() / "sub" / "x"  # a link that stays inside is fine


@pytest.mark.parametrize("rel", ["../x", "a/../../x", "/abs", "..", ".", "", "a/..", "x\x00"])
def test_relative_refuses_escapes(rel: str) -> None:
    with pytest.raises(safepath.PathEscape):
        safepath.relative(rel)


def test_relative_normalises_paths_inside() -> None:
    assert safepath.relative("a/./b//c") == "a/b/c"
    assert safepath.relative("a/../b") == "b"


class _FakeS3:
    class exceptions:  # noqa: N801 - boto3's client attribute
        NoSuchKey = KeyError
        NoSuchBucket = LookupError

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return {"Body": io.BytesIO(self.objects[Key])}


def test_download_refuses_a_symlink_in_the_channel(tmp_path: Path) -> None:
    dest = tmp_path / "channel"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "sub").symlink_to(outside)
    with pytest.raises(s3io.ChannelError, match=r"s3://b/p/sub/x"):
        s3io.download_objects(_FakeS3({"p/sub/x": b"data"}), [("b", "p/sub/x", "sub/x")], dest, None)
    assert not (outside / "x").exists()
    with pytest.raises(s3io.ChannelError, match=r"s3://b/p/\.\./x"):
        s3io.download_objects(_FakeS3({"p/../x": b"data"}), [("b", "p/../x", "../x")], dest, None)
    assert not (tmp_path / "x").exists()


def test_fetch_model_refuses_dot_names_and_evil_tars(tmp_path: Path) -> None:
    dest = tmp_path / "model"
    with pytest.raises(s3io.ChannelError, match="outside|itself"):
        s3io.fetch_model(_FakeS3({"m/..": b"x"}), "s3://b/m/..", dest)
    for name in ("../escaped", "/abs-escaped"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        try:
            s3io.fetch_model(_FakeS3({"m/model.tar.gz": buf.getvalue()}), "s3://b/m/model.tar.gz", dest)
        except s3io.ChannelError:
            pass  # '..' is refused; an absolute name is made relative (tarfile's "data" filter)
    assert not (tmp_path / "escaped").exists() and not Path("/abs-escaped").exists()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc"
        tar.addfile(info)
    with pytest.raises(s3io.ChannelError, match="tar"):
        s3io.fetch_model(_FakeS3({"m/model.tar.gz": buf.getvalue()}), "s3://b/m/model.tar.gz", dest)


def test_log_store_keeps_dot_names_inside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "home" / "logs"
    store = LogStore(root)
    for group in (".", "..", "../x", "...", "a/../../b"):
        store.ensure_stream(group, "..")
        store.put(group, "..", [f"line of {group}"])
        store.put(group, ".", [f"dot of {group}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["logs"]
    again = LogStore(root)  # and the names come back as they were after a restart
    for group in (".", "..", "../x", "...", "a/../../b"):
        assert again.text(group, "..") == f"line of {group}"
        assert again.text(group, ".").splitlines() == [f"dot of {group}", f"line of {group}"]


def test_log_store_takes_names_as_long_as_aws_allows(tmp_path: Path) -> None:
    # 512 characters each (AWS's limit): quoted, far longer than a file name may be
    names = ["/" * 512, "a" * 512, "../" * 170 + "xy", "+name", "+" + "0" * 64, "\ud800-lone-surrogate"]
    store = LogStore(tmp_path / "logs")
    for group in names:
        store.api_CreateLogGroup({"logGroupName": group})
        for stream in names:
            store.api_CreateLogStream({"logGroupName": group, "logStreamName": stream})
            store.api_PutLogEvents({"logGroupName": group, "logStreamName": stream,
                                    "logEvents": [{"timestamp": 1, "message": f"{len(group)}|{stream[:5]}"}]})
    again = LogStore(tmp_path / "logs")
    assert sorted(again._groups) == sorted(names)
    for group in names:
        assert sorted(again._groups[group].streams) == sorted(names)
        got = again.api_GetLogEvents({"logGroupName": group, "logStreamName": names[2], "startFromHead": True})
        assert [e["message"] for e in got["events"]] == [f"{len(group)}|../.."]
    assert all(len(p.name) <= 255 for p in (tmp_path / "logs").rglob("*"))


# ---- a real server ------------------------------------------------------------------------------------
def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    outer = tmp_path_factory.mktemp("paths")
    srv = start_server(outer / "home")
    s3 = srv.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    yield outer, srv
    srv.stop()


@pytest.fixture()
def guard(env: Any) -> Any:
    """Every file the test makes must be under the home's jobs/<kind>/<job>/ or logs/; the sentinels not at all."""
    outer, srv = env
    sentinel = f"lm-escape-{uuid.uuid4().hex}"
    before = _tree(outer)
    allowed: list[str] = []
    yield sentinel, allowed
    new = _tree(outer) - before
    stray = []
    for p in sorted(new):
        parts = p.split("/")
        if parts[0] != "home" or len(parts) == 1:
            stray.append(p)  # beside the home: outside everything localmaker owns
        elif parts[1] == "jobs":
            if len(parts) > 2 and parts[2] not in ("training", "processing", "transform"):
                stray.append(p)
            elif len(parts) > 3 and "/".join(parts[1:4]) not in allowed:
                stray.append(p)  # in another job's directory, or a job kind's directory itself
        elif parts[1] not in SERVER_DIRS and not parts[1].startswith("state"):
            stray.append(p)  # at the top of the home, where no store lives
    assert stray == [], f"files outside the job directories: {stray}"
    assert not Path("/tmp", sentinel).exists()
    assert not any(sentinel in p for p in new if "logs/" not in p)


def _put(srv: Server, key: str, body: bytes = b"1,2\n") -> None:
    srv.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    keys = [o["Key"] for o in srv.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=key.split("/")[0])["Contents"]]
    assert key in keys  # S3 keeps the key as it is: the fix is in the local mapping, not in S3


def _train(srv: Server, name: str, source: dict[str, Any], channel: str = "train") -> dict[str, Any]:
    sm = srv.client("sagemaker")
    req = training_request(name, BUCKET, image=TINY)
    req["InputDataConfig"][0]["DataSource"]["S3DataSource"].update(source)
    req["InputDataConfig"][0]["ChannelName"] = channel
    sm.create_training_job(**req)
    return wait_training(sm, name, timeout=60)


def test_training_s3prefix_keys_leading_out_fail_the_job(env: Any, guard: Any) -> None:
    _, srv = env
    sentinel, allowed = guard
    tag = unique("t")
    _put(srv, f"{tag}/ok.csv")
    for key in (f"{tag}/../../x", f"{tag}/" + "../" * 12 + f"tmp/{sentinel}"):
        _put(srv, key)
        name = unique("tpath")
        allowed.append(f"jobs/training/{name}")
        job = _train(srv, name, {"S3Uri": f"s3://{BUCKET}/{tag}/"})
        assert job["TrainingJobStatus"] == "Failed"
        assert job["FailureReason"].startswith("ClientError: ")
        assert f"s3://{BUCKET}/{key}" in job["FailureReason"]
        srv.client("s3").delete_object(Bucket=BUCKET, Key=key)
    home = srv.home
    assert not list(home.glob("jobs/training/*/algo-1/input/x"))


def test_training_keys_that_are_odd_but_stay_inside_still_train(env: Any, guard: Any) -> None:
    _, srv = env
    tag = unique("odd")
    for key in (f"{tag}/ok.csv", f"{tag}//double.csv", f"{tag}/a/../b.csv", f"{tag}/./c.csv"):
        _put(srv, key)
    name = unique("todd")
    guard[1].append(f"jobs/training/{name}")
    job = _train(srv, name, {"S3Uri": f"s3://{BUCKET}/{tag}/"})
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    body = srv.client("s3").get_object(Bucket=BUCKET, Key=f"output/{name}/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        model = json.load(tar.extractfile("model.json"))  # type: ignore[arg-type]
    assert model["files"] == ["b.csv", "c.csv", "double.csv", "ok.csv"]


def test_training_manifest_entries_leading_out_fail_the_job(env: Any, guard: Any) -> None:
    _, srv = env
    sentinel, allowed = guard
    tag = unique("m")
    _put(srv, f"{tag}/data/ok.csv")
    for entry in (f"/tmp/{sentinel}", "../../x", "a/../../../x", "ok.csv\x00"):
        manifest = [{"prefix": f"s3://{BUCKET}/{tag}/data/"}, "ok.csv", entry]
        srv.client("s3").put_object(Bucket=BUCKET, Key=f"{tag}/manifest", Body=json.dumps(manifest).encode())
        name = unique("tman")
        allowed.append(f"jobs/training/{name}")
        job = _train(srv, name, {"S3Uri": f"s3://{BUCKET}/{tag}/manifest", "S3DataType": "ManifestFile"})
        assert job["TrainingJobStatus"] == "Failed", job
        assert job["FailureReason"].startswith("ClientError: ")
        assert f"s3://{BUCKET}/{tag}/data/{entry}".replace("\x00", "") in job["FailureReason"].replace("\\x00", "")


def test_training_channel_named_dot_dot_is_a_validation_error(env: Any, guard: Any) -> None:
    _, srv = env
    for channel in ("..", "."):
        with pytest.raises(ClientError) as e:
            _train(srv, unique("tchan"), {"S3Uri": f"s3://{BUCKET}/whatever/"}, channel=channel)
        assert e.value.response["Error"]["Code"] == "ValidationException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "channelName" in e.value.response["Error"]["Message"]


def test_training_failure_file_linked_out_is_not_read(env: Any, guard: Any) -> None:
    outer, srv = env
    secret = outer / "secret.txt"
    secret.write_text("TOP-SECRET host file")
    tag = unique("f")
    _put(srv, f"{tag}/ok.csv")
    name = unique("tlink")
    guard[1].append(f"jobs/training/{name}")
    sm = srv.client("sagemaker")
    req = training_request(name, BUCKET, image=TINY, prefix=f"{tag}/")
    script = (f"import os,sys; os.symlink({str(secret)!r}, os.environ['SAGEMAKER_BASE_DIR'] + '/output/failure');"
              " sys.exit(2)")
    req["AlgorithmSpecification"]["ContainerEntrypoint"] = ["{python}", "-c", script]
    sm.create_training_job(**req)
    job = wait_training(sm, name, timeout=60)
    assert job["TrainingJobStatus"] == "Failed"
    assert "TOP-SECRET" not in job["FailureReason"]
    secret.unlink()


def test_training_model_dir_linked_out_fails_and_uploads_nothing(env: Any, guard: Any) -> None:
    outer, srv = env
    secret_dir = outer / "secret-dir"
    secret_dir.mkdir()
    (secret_dir / "key.pem").write_text("TOP-SECRET host file")
    tag = unique("md")
    _put(srv, f"{tag}/ok.csv")
    name = unique("tmodel")
    guard[1].append(f"jobs/training/{name}")
    sm = srv.client("sagemaker")
    req = training_request(name, BUCKET, image=TINY, prefix=f"{tag}/")
    script = ("import os, shutil; m = os.environ['SM_MODEL_DIR']; shutil.rmtree(m); "
              f"os.symlink({str(secret_dir)!r}, m)")
    req["AlgorithmSpecification"]["ContainerEntrypoint"] = ["{python}", "-c", script]
    sm.create_training_job(**req)
    job = wait_training(sm, name, timeout=60)
    assert job["TrainingJobStatus"] == "Failed", job
    assert job["FailureReason"].startswith("ClientError: ") and "/opt/ml/model" in job["FailureReason"]
    listed = srv.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"output/{name}/").get("Contents", [])
    assert listed == []
    (secret_dir / "key.pem").unlink()
    secret_dir.rmdir()


def _processing(srv: Server, name: str, local_in: str, uri: str, local_out: str = "/opt/ml/processing/output",
                entry: list[str] | None = None) -> dict[str, Any]:
    req: dict[str, Any] = {
        "ProcessingJobName": name,
        "ProcessingInputs": [{"InputName": "data", "S3Input": {
            "S3Uri": uri, "LocalPath": local_in, "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "out", "S3Output": {
            "S3Uri": f"s3://{BUCKET}/pout/{name}", "LocalPath": local_out, "S3UploadMode": "EndOfJob"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "AppSpecification": {"ImageUri": PROC, "ContainerArguments": ["--mode", "ok", "--input", local_in,
                                                                      f"--output={local_out}"]},
        "RoleArn": ROLE,
    }
    if entry:
        req["AppSpecification"] = {"ImageUri": PROC, "ContainerEntrypoint": entry}
    sm = srv.client("sagemaker")
    sm.create_processing_job(**req)
    return wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name),
                    lambda d: d["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"), timeout=60)


@pytest.mark.parametrize("local", ["/tmp/steal", "/opt/ml/processing/../../../tmp/steal", "/opt/ml/processing/../x",
                                   "/opt/ml/processing/a/../../config", "/opt/ml/processing/in\x00", "opt/ml/processing/x",
                                   "/opt/ml/processingx"])
def test_processing_local_path_outside_is_a_validation_error(env: Any, guard: Any, local: str) -> None:
    _, srv = env
    for where in ("in", "out"):
        with pytest.raises(ClientError) as e:
            if where == "in":
                _processing(srv, unique("plp"), local, f"s3://{BUCKET}/any/")
            else:
                _processing(srv, unique("plp"), "/opt/ml/processing/input", f"s3://{BUCKET}/any/", local_out=local)
        assert e.value.response["Error"]["Code"] == "ValidationException"
        assert "LocalPath" in e.value.response["Error"]["Message"]


def test_processing_keys_leading_out_fail_the_job(env: Any, guard: Any) -> None:
    _, srv = env
    sentinel, allowed = guard
    tag = unique("p")
    _put(srv, f"{tag}/ok.csv")
    key = f"{tag}/" + "../" * 12 + f"tmp/{sentinel}"
    _put(srv, key)
    name = unique("ppath")
    allowed.append(f"jobs/processing/{name}")
    job = _processing(srv, name, "/opt/ml/processing/input", f"s3://{BUCKET}/{tag}/")
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: ") and f"s3://{BUCKET}/{key}" in job["FailureReason"]


def test_processing_output_linked_out_fails_the_job_and_is_not_uploaded(env: Any, guard: Any) -> None:
    outer, srv = env
    secret = outer / "secret-out.txt"
    secret.write_text("TOP-SECRET host file")
    tag = unique("po")
    _put(srv, f"{tag}/ok.csv")
    name = unique("plink")
    guard[1].append(f"jobs/processing/{name}")
    script = f"import os; os.symlink({str(secret)!r}, '/opt/ml/processing/output/leak.txt')"
    job = _processing(srv, name, "/opt/ml/processing/input", f"s3://{BUCKET}/{tag}/",
                      entry=["python3", "-c", script])
    assert job["ProcessingJobStatus"] == "Failed", job
    assert job["FailureReason"].startswith("ClientError: ") and "leak.txt" in job["FailureReason"]
    listed = srv.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"pout/{name}").get("Contents", [])
    assert listed == []
    secret.unlink()


def _model(srv: Server, files: dict[str, bytes]) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for fname, data in files.items():
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    name = unique("pmodel")
    srv.client("s3").put_object(Bucket=BUCKET, Key=f"models/{name}/model.tar.gz", Body=buf.getvalue())
    srv.client("sagemaker").create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": TINY, "ModelDataUrl": f"s3://{BUCKET}/models/{name}/model.tar.gz"})
    return name


def _transform(srv: Server, model: str, name: str, prefix: str) -> dict[str, Any]:
    sm = srv.client("sagemaker")
    sm.create_transform_job(
        TransformJobName=name, ModelName=model,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}"}},
                        "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{BUCKET}/tout/{name}", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    return wait_for(lambda: sm.describe_transform_job(TransformJobName=name),
                    lambda d: d["TransformJobStatus"] not in ("InProgress", "Stopping"), timeout=60)


def test_transform_keys_leading_out_and_evil_model_tars_fail_the_job(env: Any, guard: Any) -> None:
    _, srv = env
    sentinel, allowed = guard
    tag = unique("x")
    _put(srv, f"{tag}/a.csv")
    key = f"{tag}/../../{sentinel}"
    _put(srv, key)
    name = unique("xpath")
    allowed.append(f"jobs/transform/{name}")
    job = _transform(srv, _model(srv, {"model.json": b"{}"}), name, f"{tag}/")
    assert job["TransformJobStatus"] == "Failed", job
    assert job["FailureReason"].startswith("ClientError: ") and f"s3://{BUCKET}/{key}" in job["FailureReason"]
    listed = srv.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="tout/").get("Contents", [])
    assert not [o for o in listed if sentinel in o["Key"]]

    name = unique("xtar")
    allowed.append(f"jobs/transform/{name}")
    job = _transform(srv, _model(srv, {"model.json": b"{}", f"../../../{sentinel}": b"x"}), name, f"{tag}/a.csv")
    assert job["TransformJobStatus"] == "Failed", job
    assert "tar" in job["FailureReason"]


@pytest.mark.parametrize("group", [".", "..", "../x", "../../logs-escape", "/aws/../..", "/" * 512, "a." * 256])
def test_log_group_names_stay_inside_the_logs_directory(env: Any, guard: Any, group: str) -> None:
    outer, srv = env
    logs = srv.client("logs")
    # '.', '..' and '../x' are valid CloudWatch Logs names (pattern [\.\-_/#A-Za-z0-9]+): AWS accepts them,
    # so localmaker does too, storing them where they cannot name a directory above logs/
    logs.create_log_group(logGroupName=group)
    for stream in ("..", ".", "../s"):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(logGroupName=group, logStreamName=stream,
                            logEvents=[{"timestamp": 1_700_000_000_000, "message": f"{group}|{stream}"}])
        got = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
        assert [e["message"] for e in got] == [f"{group}|{stream}"]
    with pytest.raises(ClientError) as e:
        logs.create_log_group(logGroupName=group)
    assert e.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    logs_root = (srv.home / "logs").resolve()
    for p in logs_root.rglob("*"):
        assert logs_root in p.resolve().parents
    assert not (outer / "logs-escape").exists() and not (srv.home / "x").exists()


def test_bad_names_reaching_the_api_are_4xx(env: Any, guard: Any) -> None:
    _, srv = env
    sm, logs = srv.client("sagemaker"), srv.client("logs")
    for bad in ("..", "../x", "a/b", "."):
        with pytest.raises(ClientError) as e:
            sm.create_training_job(**training_request(bad, BUCKET, image=TINY))
        assert e.value.response["Error"]["Code"] == "ValidationException"
        with pytest.raises(ClientError) as e:
            sm.create_endpoint_config(EndpointConfigName=bad, ProductionVariants=[{
                "VariantName": bad, "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    for bad in ("a:b", "a*b", "x\x00y"):
        with pytest.raises(ClientError) as e:
            logs.create_log_group(logGroupName=bad)
        assert e.value.response["Error"]["Code"] in ("InvalidParameterException", "ValidationException")
    assert os.path.isdir(srv.home / "logs")


def test_sklearn_entry_points_and_submit_dirs_stay_in_the_code_dir(tmp_path: Path) -> None:
    from localmaker.builtins import sklearn_framework as skl
    from localmaker.builtins.runtime import ClientError as AlgoClientError

    base, model_dir = tmp_path / "base", tmp_path / "base" / "model"
    (base / "code").mkdir(parents=True)
    model_dir.mkdir()
    (tmp_path / "evil.py").write_text("raise SystemExit('imported from outside')\n")
    for program in ("../../evil.py", "/etc/passwd", "../evil"):
        with pytest.raises(AlgoClientError, match="not a file of the code directory"):
            skl.toolkit._check_program(program, base / "code", "sagemaker_program")
        with pytest.raises(AlgoClientError, match="not a file of the code directory"):
            skl.import_user_module(base / "code", program)
    for submit in ("/opt/ml/../..", "/opt/ml/model/../../..", "/opt/ml/code/../../../"):
        with pytest.raises(AlgoClientError, match="outside"):
            skl.resolve_code_dir(submit, base, model_dir)
    assert skl.resolve_code_dir("/opt/ml/code", base, model_dir) == (base / "code").resolve()
    (model_dir / "code").mkdir()
    assert skl.resolve_code_dir("/opt/ml/model/code", base, model_dir) == (model_dir / "code").resolve()


def test_image_classification_lst_paths_stay_in_the_image_channel(tmp_path: Path) -> None:
    from localmaker.builtins import image_classification as ic
    from localmaker.builtins.runtime import ClientError as AlgoClientError
    from localmaker.builtins.runtime import TrainingEnv
    from smformats.imagelist import LstEntry, write_lst

    (tmp_path / "outside.png").write_bytes(b"not even a png")
    base = tmp_path / "opt_ml"
    data = base / "input" / "data"
    for ch in ("train", "validation"):
        (data / ch).mkdir(parents=True)
        (data / ch / "link").symlink_to(tmp_path)  # '..' and absolute paths the .lst reader refuses itself
        write_lst(data / f"{ch}_lst" / f"{ch}.lst", [LstEntry(0, 0, "link/outside.png")])
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(
        {"num_classes": "3", "num_training_samples": "1", "image_shape": "3,32,32", "epochs": "1"}))
    (base / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(
        {ch: {"ContentType": "application/x-image"} for ch in ("train", "validation", "train_lst", "validation_lst")}))
    with pytest.raises(AlgoClientError, match=r"Image 'link/outside\.png' .* is not a path inside "
                                              r"channel 'train'"):
        ic.train(TrainingEnv.load(base))
