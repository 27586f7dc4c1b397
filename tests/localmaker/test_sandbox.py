"""runtime: sandbox: third-party-style programs (hard-coded /opt/ml, /opt/program, port 8080) run unchanged.

The images live in sandbox_images/ and are mapped by sandbox_images.yaml. The tests need bubblewrap and
socat (``make system-deps``); they skip, saying why, only where those cannot run.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localmaker import sandbox

from .conftest import HERE, ROLE, Server, start_server, training_request, unique, wait_for, wait_training

IMAGES = HERE / "sandbox_images.yaml"
BYOC = "123456789012.dkr.ecr.us-east-1.amazonaws.com/byoc-sandbox:1"


def _unavailable() -> str | None:
    try:
        sandbox.check(network=True)
    except sandbox.SandboxUnavailable as exc:
        return str(exc)
    return None


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=f"{_unavailable()}")


@pytest.fixture(scope="module")
def caller_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("caller-home")
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = REAL-SECRET\n")
    return home


@pytest.fixture(scope="module")
def sbx(tmp_path_factory: pytest.TempPathFactory, caller_home: Path) -> Iterator[Server]:
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(caller_home)  # the server's caller: its home must stay out of reach
    try:
        srv = start_server(tmp_path_factory.mktemp("sbxhome"), images=IMAGES)
    finally:
        if old is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def sm(sbx: Server) -> Any:
    return sbx.client("sagemaker")


@pytest.fixture(scope="module")
def s3(sbx: Server) -> Any:
    client = sbx.client("s3")
    client.create_bucket(Bucket="sbx")
    client.put_object(Bucket="sbx", Key="train/a.csv", Body=b"1,0.5\n2,0.1\n")
    client.put_object(Bucket="sbx", Key="train/b.csv", Body=b"6,0.2\n")
    return client


def byoc_training(name: str, hps: dict[str, str] | None = None, count: int = 1) -> dict[str, Any]:
    req = training_request(name, "sbx", image=BYOC, hps=hps, count=count, prefix="train/")
    req["InputDataConfig"][0]["ChannelName"] = "training"  # the channel AWS's example reads
    return req


def model_json(s3: Any, name: str) -> dict[str, Any]:
    import io
    import tarfile

    body = s3.get_object(Bucket="sbx", Key=f"output/{name}/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("model.json")
        assert member is not None
        return json.loads(member.read())


def test_training_with_hard_coded_opt_ml_paths(sm: Any, s3: Any) -> None:
    name = unique("sbx-train")
    sm.create_training_job(**byoc_training(name))
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = model_json(s3, name)
    assert model["rows"] == 3 and model["mean"] == 3.0
    assert model["files"] == ["/opt/ml/input/data/training/a.csv", "/opt/ml/input/data/training/b.csv"]
    assert model["cwd"] == "/opt/program" and model["hostname"] == "algo-1"
    assert model["uid"] != 0  # a user namespace: no root inside


def test_a_failing_program_fails_the_job_with_its_failure_file(sm: Any, s3: Any) -> None:
    name = unique("sbx-fail")
    req = byoc_training(name)
    req["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://sbx/train/a.csv"
    req["InputDataConfig"][0]["ChannelName"] = "other"  # /opt/ml/input/data/training is then missing
    sm.create_training_job(**req)
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert "Exception during training" in job["FailureReason"]
    assert "/opt/ml/input/data/training" in job["FailureReason"]


def test_escape_attempts_fail(sm: Any, s3: Any, sbx: Server, caller_home: Path, tmp_path: Path) -> None:
    root = HERE.parent.parent
    marker = f"escape-{uuid.uuid4().hex[:8]}"
    writes = [str(root / marker), str(sbx.home / marker), str(tmp_path / marker), str(HERE / "sandbox_images" / marker),
              f"/opt/program/{marker}"]
    reads = [str(caller_home / ".aws" / "credentials"), str(sbx.home / "state.db")]
    name = unique("sbx-escape")
    sm.create_training_job(**byoc_training(name, {"mode": "escape", "write_to": json.dumps(writes),
                                                  "read_from": json.dumps(reads)}))
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = model_json(s3, name)
    for target in writes:
        assert not Path(target).exists(), f"the sandbox wrote {target} on the host"
    assert not model[f"write:{root / marker}"]["ok"]  # the rest of the host is read-only
    assert "Read-only file system" in model[f"write:{root / marker}"]["error"]
    assert not model[f"write:/opt/program/{marker}"]["ok"]
    for target in reads:
        assert not model[f"read:{target}"]["ok"], f"the sandbox read {target}"
    # HOME is a private, empty /root (holding at most the interpreter localmaker runs under, when it lives there)
    assert model["home"] == "/root" and model["listdir_home"]["ok"]
    assert ".aws" not in model["listdir_home"]["value"]
    # nothing of the caller's environment but the documented basics
    assert not [k for k in model["env_keys"] if k.startswith("PYTEST") or k == "VIRTUAL_ENV"]
    assert "SM_TRAINING_ENV" in model["env_keys"] and "SM_MODEL_DIR" in model["env_keys"]


def test_processing_script_reads_opt_ml_processing_paths(sm: Any, s3: Any) -> None:
    script = (HERE / "sandbox_images" / "process.py").read_bytes()
    s3.put_object(Bucket="sbx", Key="code/process.py", Body=script)
    s3.put_object(Bucket="sbx", Key="proc/train.csv", Body=b"1,a\n2,b\n4,c\n")
    name = unique("sbx-proc")
    sm.create_processing_job(
        ProcessingJobName=name,
        ProcessingInputs=[
            {"InputName": "data", "S3Input": {"S3Uri": "s3://sbx/proc/", "LocalPath": "/opt/ml/processing/input/data",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File"}},
            {"InputName": "code", "S3Input": {"S3Uri": "s3://sbx/code/process.py",
                                              "LocalPath": "/opt/ml/processing/input/code",
                                              "S3DataType": "S3Prefix", "S3InputMode": "File"}},
        ],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "summary", "S3Output": {
            "S3Uri": f"s3://sbx/proc-out/{name}", "LocalPath": "/opt/ml/processing/output/summary",
            "S3UploadMode": "EndOfJob"}}]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        StoppingCondition={"MaxRuntimeInSeconds": 300},
        AppSpecification={"ImageUri": BYOC,
                          "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/process.py"]},
        RoleArn=ROLE,
    )
    job = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name),
                   lambda d: d["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"), 120)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    summary = json.loads(s3.get_object(Bucket="sbx", Key=f"proc-out/{name}/summary.json")["Body"].read())
    assert summary["rows"] == 3 and summary["total"] == 7.0
    assert summary["hostname"] == "algo-1" and summary["config"]["current_host"] == "algo-1"


def test_missing_bubblewrap_fails_the_job_naming_the_package(tmp_path: Path) -> None:
    old = os.environ.get(sandbox.BWRAP_ENV)
    os.environ[sandbox.BWRAP_ENV] = str(tmp_path / "no-such-bwrap")
    try:
        srv = start_server(tmp_path / "home", images=IMAGES)
    finally:
        if old is None:
            os.environ.pop(sandbox.BWRAP_ENV, None)
        else:
            os.environ[sandbox.BWRAP_ENV] = old
    try:
        sm = srv.client("sagemaker")
        s3 = srv.client("s3")
        s3.create_bucket(Bucket="sbx")
        s3.put_object(Bucket="sbx", Key="train/a.csv", Body=b"1,0.5\n")
        name = unique("sbx-nobwrap")
        sm.create_training_job(**byoc_training(name))
        job = wait_training(sm, name, timeout=60)
        assert job["TrainingJobStatus"] == "Failed"
        reason = job["FailureReason"]
        assert "bubblewrap" in reason and "runtime: process" in reason and "not installed" in reason, reason
    finally:
        srv.stop()


def _wait_endpoint(sm: Any, name: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(lambda: sm.describe_endpoint(EndpointName=name),
                    lambda d: d["EndpointStatus"] not in ("Creating", "Updating"), timeout, 0.3)


def test_endpoint_with_two_instances_and_batch_transform(sm: Any, s3: Any, sbx: Server) -> None:
    train = unique("sbx-serve-train")
    sm.create_training_job(**byoc_training(train))
    assert wait_training(sm, train)["TrainingJobStatus"] == "Completed"
    model = unique("sbx-model")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": BYOC, "ModelDataUrl": f"s3://sbx/output/{train}/output/model.tar.gz"})
    endpoint = unique("sbx-ep")
    sm.create_endpoint_config(EndpointConfigName=endpoint, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 2, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    try:
        ep = _wait_endpoint(sm, endpoint)
        assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
        runtime = sbx.client("sagemaker-runtime")
        seen = set()
        for i in range(12):
            r = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=f"{i}\n")
            prediction, instance, hostname = r["Body"].read().decode().strip().split(",")
            assert float(prediction) == i + 3.0  # the trained mean (3.0) from /opt/ml/model
            seen.add(instance)
        # both instances listen on port 8080, each with its own /tmp (its own id there) and network
        assert len(seen) == 2, seen
        with pytest.raises(ClientError) as err:
            runtime.invoke_endpoint(EndpointName=endpoint, ContentType="application/json", Body=b"{}")
        assert "only supports CSV" in str(err.value)
        # nginx and gunicorn logs (the container's stdout/stderr) reach the endpoint's log group
        logs = sbx.client("logs")
        events = wait_for(
            lambda: logs.filter_log_events(logGroupName=f"/aws/sagemaker/Endpoints/{endpoint}")["events"],
            lambda ev: any("Starting gunicorn" in e["message"] or "Booting worker" in e["message"] for e in ev), 30)
        assert any("POST /invocations" in e["message"] for e in events)  # nginx's access log, linked to stdout
    finally:
        sm.delete_endpoint(EndpointName=endpoint)
    s3.put_object(Bucket="sbx", Key="batch/in.csv", Body=b"1\n2\n")
    job = unique("sbx-transform")
    sm.create_transform_job(
        TransformJobName=job, ModelName=model,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://sbx/batch/"}},
                        "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://sbx/batch-out/{job}"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    done = wait_for(lambda: sm.describe_transform_job(TransformJobName=job),
                    lambda d: d["TransformJobStatus"] in ("Completed", "Failed", "Stopped"), 120, 0.3)
    assert done["TransformJobStatus"] == "Completed", done.get("FailureReason")
    out = s3.get_object(Bucket="sbx", Key=f"batch-out/{job}/in.csv.out")["Body"].read().decode()
    assert [float(line.split(",")[0]) for line in out.split()] == [4.0, 5.0]


def test_two_hosts_find_each_other_by_hostname(sm: Any, s3: Any) -> None:
    from localmaker.procs import free_port

    name = unique("sbx-peers")
    sm.create_training_job(**byoc_training(name, {"mode": "peers", "port": str(free_port())}, count=2))
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = model_json(s3, name)  # algo-1's model: it heard algo-2, which connected to "algo-1" by name
    assert model == {**model, "me": "algo-1", "heard": ["algo-2"], "hostname": "algo-1"}
    assert sandbox.host_address(["algo-1", "algo-2"], "algo-2") == "127.0.1.2"


def test_project_model_monitor_baseline_runs_sandboxed(tmp_path: Path) -> None:
    """The project's model-monitor image (runtime: auto, so sandboxed here) as a baseline job does on AWS."""
    from localmaker.images import ImageRegistry
    from localmaker.launcher import ROOT

    manifest = ROOT / "container" / "images.yaml"
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/model-monitor:1.0"
    assert ImageRegistry([manifest]).resolve(image).runtime == "sandbox"
    srv = start_server(tmp_path / "home", images=manifest)
    try:
        sm, s3 = srv.client("sagemaker"), srv.client("s3")
        s3.create_bucket(Bucket="mm-sbx")
        rows = "".join(f"{i % 7 * 10},{i % 5},{(i * 3) % 11}\n" for i in range(200))
        s3.put_object(Bucket="mm-sbx", Key="baseline/train.csv", Body=rows.encode())
        name = unique("sbx-mm-baseline")
        sm.create_processing_job(
            ProcessingJobName=name,
            ProcessingInputs=[{"InputName": "baseline_dataset_input", "S3Input": {
                "S3Uri": "s3://mm-sbx/baseline/", "LocalPath": "/opt/ml/processing/input/baseline_dataset_input",
                "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
            ProcessingOutputConfig={"Outputs": [{"OutputName": "monitoring_output", "S3Output": {
                "S3Uri": f"s3://mm-sbx/out/{name}", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
            ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                   "VolumeSizeInGB": 1}},
            StoppingCondition={"MaxRuntimeInSeconds": 300},
            AppSpecification={"ImageUri": image, "ContainerEntrypoint": ["baseline"]},
            Environment={"dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
                         "output_path": "/opt/ml/processing/output", "dataset_format": '{"csv": {"header": false}}',
                         "feature_names": "target,a,b", "label_column": "target",
                         "publish_cloudwatch_metrics": "Disabled"},
            RoleArn=ROLE,
        )
        job = wait_for(lambda: sm.describe_processing_job(ProcessingJobName=name),
                       lambda d: d["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"), 180, 0.5)
        assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
        constraints = json.loads(s3.get_object(Bucket="mm-sbx", Key=f"out/{name}/constraints.json")["Body"].read())
        stats = json.loads(s3.get_object(Bucket="mm-sbx", Key=f"out/{name}/statistics.json")["Body"].read())
        assert {f["name"] for f in constraints["features"]} >= {"a", "b"}
        assert stats["dataset"]["item_count"] == 200
    finally:
        srv.stop()


def test_interpreter_folders_reached_through_a_symlink_are_bound_at_their_real_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symlinked venv (e.g. a worktree's .venv -> the main checkout's): bwrap cannot mount onto a path
    that goes through a symlink, so only the real folder is bound and the link reaches it."""
    from localmaker import sandbox

    real = tmp_path / "real-venv" / "lib"
    real.mkdir(parents=True)
    link = tmp_path / "checkout" / ".venv"
    link.parent.mkdir()
    link.symlink_to(real.parent)
    monkeypatch.setattr(sys, "path", [str(link / "lib")])
    paths = sandbox._interpreter_paths()
    assert str(real) in paths
    assert str(link / "lib") not in paths
