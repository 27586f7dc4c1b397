"""The SageMaker scikit-learn framework image (script mode) run by localmaker.

Through a real localmaker server: a user script packaged as sourcedir.tar.gz in S3 trains with the
real image URI and the SDK's JSON-encoded ``sagemaker_*`` hyperparameters, gets its hyperparameters
as arguments and the toolkit's SM_* variables, and its model classifies held-out iris; a crashing
script fails with the toolkit's ExecuteUserScriptError reason; the model deploys with
SAGEMAKER_PROGRAM / SAGEMAKER_SUBMIT_DIRECTORY and answers JSON, CSV and NPY; inference code without
model_fn fails the endpoint. The many content-type and error cases run in-process against the
module's functions.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from botocore.exceptions import ClientError as BotoClientError
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from localmaker.builtins import sklearn_framework as skf
from localmaker.builtins.runtime import ClientError
from localmaker.builtins.serving import HttpError

from ..conftest import ROLE, training_request, unique, wait_endpoint, wait_training

SCRIPTS = Path(__file__).with_name("sklearn_scripts")
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
IMAGE_EU = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


# ---- data and code --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def iris() -> dict[str, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    return {"X_train": X_tr, "y_train": y_tr, "X_test": X_te, "y_test": y_te}


def sourcedir_tar(*names: str) -> bytes:
    """sourcedir.tar.gz as the SageMaker Python SDK uploads it: the scripts at the archive's root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in names:
            tar.add(SCRIPTS / name, arcname=name)
    return buf.getvalue()


def sdk_hps(program: str, submit: str, job: str, region: str = "us-east-1", **user: Any) -> dict[str, str]:
    """Hyperparameters as SKLearn(...).fit() sends them: every value JSON-encoded."""
    hps = {
        "sagemaker_program": json.dumps(program),
        "sagemaker_submit_directory": json.dumps(submit),
        "sagemaker_container_log_level": "20",
        "sagemaker_job_name": json.dumps(job),
        "sagemaker_region": json.dumps(region),
    }
    hps.update({k: json.dumps(v) for k, v in user.items()})
    return hps


@pytest.fixture(scope="module")
def code_uri(s3: Any, bucket: str, iris: dict[str, np.ndarray]) -> str:
    rows = np.column_stack([iris["y_train"], iris["X_train"]])
    csv = "\n".join(",".join(f"{v:g}" for v in row) for row in rows) + "\n"
    s3.put_object(Bucket=bucket, Key="sklearn/train/iris.csv", Body=csv.encode())
    key = "sklearn/code/sourcedir.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=sourcedir_tar("train_iris.py", "crash.py", "no_model_fn.py"))
    return f"s3://{bucket}/{key}"


@pytest.fixture(scope="module")
def jobs(sm: Any, bucket: str, code_uri: str) -> dict[str, dict[str, Any]]:
    """Three jobs started together (the machine has 2 cores; they mostly wait on process start-up)."""
    names = {k: unique(f"skl-{k}") for k in ("ok", "crash", "noprog")}
    ok_hps = sdk_hps("train_iris.py", code_uri, names["ok"], **{"n-estimators": 25, "max-depth": 4,
                                                                 "criterion": "entropy"})
    ok_hps["sagemaker_mpi_enabled"] = "false"
    ok = training_request(names["ok"], bucket, image=IMAGE, hps=ok_hps, prefix="sklearn/train/")
    # the image defines no metrics; the request's definitions read the script's own log lines
    ok["AlgorithmSpecification"]["MetricDefinitions"] = [{"Name": "train:accuracy",
                                                          "Regex": r"train accuracy: ([0-9.]+)"}]
    requests = {
        "ok": ok,
        "crash": training_request(names["crash"], bucket, image=IMAGE_EU, prefix="sklearn/train/",
                                  hps=sdk_hps("crash.py", code_uri, names["crash"], "eu-west-1",
                                              **{"min-rows": 1000})),
        "noprog": training_request(names["noprog"], bucket, image=IMAGE, prefix="sklearn/train/",
                                   hps={"sagemaker_submit_directory": json.dumps(code_uri), "n-estimators": "5"}),
    }
    for req in requests.values():
        sm.create_training_job(**req)
    return {k: wait_training(sm, name, timeout=90) for k, name in names.items()}


def test_training_runs_the_script_with_hyperparameters_as_arguments(jobs, s3, logs, code_uri, iris, tmp_path):
    job = jobs["ok"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    bucket, key = job["ModelArtifacts"]["S3ModelArtifacts"][len("s3://"):].split("/", 1)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as tar:
        tar.extractall(tmp_path, filter="data")
    model = joblib.load(tmp_path / "model.joblib")
    # the hyperparameters reached the script's argparse, JSON-decoded
    assert (model.n_estimators, model.max_depth, model.criterion) == (25, 4, "entropy")
    accuracy = float(np.mean(model.predict(iris["X_test"].astype(np.float32)) == iris["y_test"]))
    assert accuracy > 0.9
    info = json.loads((tmp_path / "training_info.json").read_text())
    # sorted keys, user hyperparameters only (no sagemaker_*), cwd = the code dir
    assert info["argv"] == ["--criterion", "entropy", "--max-depth", "4", "--n-estimators", "25"]
    assert info["unknown_args"] == [] and info["cwd"].endswith("/code") and info["rows"] == 105
    env = info["environment"]
    assert env["SM_USER_ENTRY_POINT"] == "train_iris.py" and env["SM_MODULE_NAME"] == "train_iris"
    assert env["SM_MODULE_DIR"] == code_uri
    assert json.loads(env["SM_USER_ARGS"]) == info["argv"]
    assert json.loads(env["SM_HPS"]) == {"criterion": "entropy", "max-depth": 4, "n-estimators": 25}
    assert json.loads(env["SM_FRAMEWORK_PARAMS"]) == {"sagemaker_mpi_enabled": False}
    assert env["SM_HP_N-ESTIMATORS"] == "25" and env["SM_HP_CRITERION"] == "entropy"
    assert env["SM_HP_SAGEMAKER_PROGRAM"] is None  # the toolkit exports user hyperparameters only
    assert env["SM_CHANNELS"] == '["train"]' and env["SM_LOG_LEVEL"] == "20"
    assert env["SAGEMAKER_JOB_NAME"] == job["TrainingJobName"] and env["SAGEMAKER_REGION"] == "us-east-1"
    assert {"module_dir", "user_entry_point", "hyperparameters", "channel_input_dirs"} <= set(info["training_env_keys"])
    stream = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                       logStreamNamePrefix=job["TrainingJobName"] + "/")["logStreams"][0]
    lines = [e["message"] for e in logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                                       logStreamName=stream["logStreamName"])["events"]]
    text = "\n".join(lines)
    assert "Invoking script with the following command:" in text
    assert "train_iris.py --criterion entropy --max-depth 4 --n-estimators 25" in text
    assert "train accuracy: " in text
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert 0.9 < metrics["train:accuracy"] <= 1.0


def test_crashing_script_fails_with_the_toolkits_reason(jobs):
    job = jobs["crash"]
    assert job["TrainingJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith('AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "'), reason
    assert "ValueError: training data has 105 rows, fewer than --min-rows 1000" in reason
    assert reason.endswith(f'Command "{sys.executable} crash.py --min-rows 1000"'), reason


def test_missing_sagemaker_program_is_a_client_error(jobs):
    job = jobs["noprog"]
    assert job["TrainingJobStatus"] == "Failed"
    assert "ClientError: " in job["FailureReason"]
    assert "'sagemaker_program'" in job["FailureReason"] and "is missing" in job["FailureReason"]


# ---- hosting ----------------------------------------------------------------------------------------------
def deploy(sm: Any, image: str, artifact: str, env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    model = unique("skl-model")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": image, "ModelDataUrl": artifact, "Environment": env})
    cfg = unique("skl-cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    name = unique("skl-ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    return name, wait_endpoint(sm, name, timeout=60)


@pytest.fixture(scope="module")
def endpoint(sm: Any, jobs: dict[str, dict[str, Any]], code_uri: str):
    artifact = jobs["ok"]["ModelArtifacts"]["S3ModelArtifacts"]
    # what SKLearnModel(entry_point="train_iris.py", source_dir=...) puts in the model's Environment
    name, ep = deploy(sm, IMAGE, artifact, {
        "SAGEMAKER_PROGRAM": "train_iris.py", "SAGEMAKER_SUBMIT_DIRECTORY": code_uri,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": "us-east-1"})
    assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    yield name
    sm.delete_endpoint(EndpointName=name)


def test_endpoint_answers_json_csv_and_npy(runtime, endpoint, iris):
    X, y = iris["X_test"], iris["y_test"]
    r = runtime.invoke_endpoint(EndpointName=endpoint, Body=json.dumps(X.tolist()), ContentType="application/json",
                                Accept="application/json")
    assert r["ContentType"] == "application/json"
    labels = json.loads(r["Body"].read())
    assert len(labels) == len(y) and np.mean(np.array(labels) == y) > 0.9

    csv_body = "\n".join(",".join(f"{v:g}" for v in row) for row in X)
    r = runtime.invoke_endpoint(EndpointName=endpoint, Body=csv_body, ContentType="text/csv", Accept="text/csv")
    assert r["ContentType"] == "text/csv"
    assert r["Body"].read().decode() == "".join(f"{v}\n" for v in labels)

    buf = io.BytesIO()
    np.save(buf, X[:5])
    r = runtime.invoke_endpoint(EndpointName=endpoint, Body=buf.getvalue(), ContentType="application/x-npy",
                                Accept="application/x-npy")
    assert r["ContentType"] == "application/x-npy"
    assert np.load(io.BytesIO(r["Body"].read())).tolist() == labels[:5]

    # no Accept: the container's default, JSON
    r = runtime.invoke_endpoint(EndpointName=endpoint, Body=json.dumps(X[:3].tolist()), ContentType="application/json")
    assert r["ContentType"] == "application/json" and json.loads(r["Body"].read()) == labels[:3]


def test_endpoint_errors_keep_the_containers_status_codes(runtime, endpoint):
    def error(body: str, ctype: str, accept: str = "application/json") -> dict[str, Any]:
        with pytest.raises(BotoClientError) as e:
            runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType=ctype, Accept=accept)
        assert e.value.response["Error"]["Code"] == "ModelError"
        return e.value.response

    err = error("5.1,3.5,1.4,0.2", "text/plain")
    assert err["OriginalStatusCode"] == 415
    assert "Content type text/plain is not supported by this framework" in err["OriginalMessage"]
    err = error("[[5.1, 3.5, 1.4, 0.2]]", "application/json", accept="application/xml")
    assert err["OriginalStatusCode"] == 406
    assert "Content type application/xml is not supported by this framework" in err["OriginalMessage"]
    # as on AWS: one CSV row squeezes to a 1-D array, which the model's predict rejects
    err = error("5.1,3.5,1.4,0.2", "text/csv")
    assert err["OriginalStatusCode"] == 500 and "Expected 2D array" in err["OriginalMessage"]


def test_inference_code_without_model_fn_fails_the_endpoint(sm, logs, jobs, code_uri):
    artifact = jobs["ok"]["ModelArtifacts"]["S3ModelArtifacts"]
    name, ep = deploy(sm, IMAGE_EU, artifact, {"SAGEMAKER_PROGRAM": "no_model_fn.py",
                                               "SAGEMAKER_SUBMIT_DIRECTORY": code_uri})
    assert ep["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in ep["FailureReason"]
    group = f"/aws/sagemaker/Endpoints/{name}"
    text = "\n".join(
        e["message"]
        for s in logs.describe_log_streams(logGroupName=group)["logStreams"]
        for e in logs.get_log_events(logGroupName=group, logStreamName=s["logStreamName"])["events"])
    assert "Please provide a model_fn implementation." in text
    assert "NotImplementedError" in text


# ---- in-process: hyperparameters, reasons, handlers ---------------------------------------------------------
def test_hyperparameters_become_arguments_and_env_as_the_toolkit_formats_them():
    raw = {"sagemaker_program": '"train.py"', "sagemaker_mpi_enabled": "true", "_tuning_objective_metric": '"acc"',
           "n-estimators": "50", "lr": "0.1", "flag": "true", "name": '"gini"', "raw": "not json",
           "d": '{"b": 2, "a": 1}', "x": "3", "layers": "[64, 32]"}
    framework, user = skf.split_hyperparameters(skf.decode_hyperparameters(raw))
    assert set(framework) == {"sagemaker_program", "sagemaker_mpi_enabled", "_tuning_objective_metric"}
    assert skf.to_cmd_args(user) == ["-d", "a=1,b=2", "--flag", "True", "--layers", "[64, 32]", "--lr", "0.1",
                                     "--n-estimators", "50", "--name", "gini", "--raw", "not json", "-x", "3"]
    env = skf.to_env_vars({"hp_n-estimators": 50, "hp_name": "gini", "hps": {"b": 1, "a": [1]}, "x": None})
    assert env == {"SM_HP_N-ESTIMATORS": "50", "SM_HP_NAME": "gini", "SM_HPS": '{"a":[1],"b":1}', "SM_X": ""}


def test_execute_user_script_error_starts_at_the_first_error_line():
    stderr = ["/venv/lib/python3.11/site-packages/x.py:1: UserWarning: noise", "Traceback (most recent call last):",
              '  File "train.py", line 9, in <module>', "    main()",
              "    raise KeyError('label')", "KeyError: 'label'"]
    # the warning line names no Python error, so the message starts at the raise
    msg = skf.execute_user_script_error(1, stderr, ["/usr/bin/python", "train.py", "--a", "1"])
    assert msg == ('ExecuteUserScriptError:\nExitCode 1\nErrorMessage "raise KeyError(\'label\')\nKeyError: \'label\'"'
                   '\nCommand "/usr/bin/python train.py --a 1"')
    long = ["ValueError: " + "x" * 2000]
    assert len(skf.error_message(long)) == skf.toolkit._ERROR_MESSAGE_CHARS + 3


def fitted_handler(iris: dict[str, np.ndarray], default_accept: str = "application/json") -> skf.Handler:
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(iris["X_train"], iris["y_train"])
    return skf.Handler(module=skf, model=model, input_fn=skf.default_input_fn, predict_fn=skf.default_predict_fn,
                       output_fn=skf.default_output_fn, transform_fn=None, default_accept=default_accept)


def test_default_handlers_decode_and_encode_the_containers_types(iris):
    h = fitted_handler(iris, default_accept="text/csv")
    X = iris["X_test"][:4]
    expected = h.model.predict(X.astype(np.float32)).tolist()
    body, ctype = skf.invoke(h, json.dumps(X.tolist()).encode(), "application/json", "application/json")
    assert (json.loads(body), ctype) == (expected, "application/json")
    csv_rows = "\n".join(",".join(str(v) for v in row) for row in X).encode()
    body, ctype = skf.invoke(h, csv_rows, "text/csv; charset=utf-8", "*/*")  # */* -> the model's default accept
    assert (body.decode(), ctype) == ("".join(f"{v}\n" for v in expected), "text/csv")
    buf = io.BytesIO()
    np.save(buf, X)
    body, ctype = skf.invoke(h, buf.getvalue(), "application/x-npy", "application/x-npy, application/json")
    assert np.load(io.BytesIO(body)).tolist() == expected and ctype == "application/x-npy"
    body, ctype = skf.invoke(h, csv_rows, "text/csv", "application/xml, application/json")
    assert ctype == "application/json"


@pytest.mark.parametrize("body,ctype,accept,status,text", [
    (b"{not json", "application/json", "application/json", 400, "not valid JSON"),
    (b"[[1, 2], [3]]", "application/json", "application/json", 400, "not an array"),
    (b'{"instances": [[1, 2, 3, 4]]}', "application/json", "application/json", 400, "not an array of numbers"),
    (b"1,2,3,4\n5,six,7,8", "text/csv", "text/csv", 400, "not a number"),
    (b"1,2,3,4\n5,6", "text/csv", "text/csv", 400, "error while decoding csv: ValueError"),
    (b'1,2,3,"4"x\n5,6,7,8', "text/csv", "text/csv", 400, "error while decoding csv: Error"),
    (b"\xff\xfe", "text/csv", "text/csv", 400, "not UTF-8"),
    (b"not npy", "application/x-npy", "application/json", 400, "not an NPY array"),
    (b"1,2,3,4", "application/x-www-form-urlencoded", "application/json", 415,
     "Content type application/x-www-form-urlencoded is not supported by this framework"),
    (b"[[1, 2, 3, 4], [1, 2, 3, 4]]", "application/json", "text/html", 406,
     "Content type text/html is not supported by this framework"),
    (b"[[1, 2, 3], [1, 2, 3]]", "application/json", "application/json", 500, "predict_fn: ValueError"),
])
def test_default_handler_errors(iris, body, ctype, accept, status, text):
    with pytest.raises(HttpError) as e:
        skf.invoke(fitted_handler(iris), body, ctype, accept)
    assert e.value.status == status and text in e.value.message


def _raise(exc: Exception) -> Any:
    def hook(*_args: Any) -> Any:
        raise exc

    return hook


@pytest.mark.parametrize("hook,exc,status,text", [
    ("input_fn", skf.UnsupportedFormatError("text/x"), 415, "Content type text/x is not supported"),
    ("input_fn", KeyError("features"), 400, "input_fn could not deserialize the request: KeyError: 'features'"),
    ("input_fn", RuntimeError("boom"), 500, "input_fn: RuntimeError: boom"),
    ("input_fn", HttpError(413, "too big"), 413, "too big"),
    ("predict_fn", KeyError("x"), 500, "predict_fn: KeyError: 'x'"),
    ("predict_fn", skf.UnsupportedFormatError("text/x"), 500, "predict_fn: UnsupportedFormatError: Content type"),
    ("output_fn", skf.UnsupportedFormatError("text/x"), 406, "Content type text/x is not supported"),
    ("output_fn", ValueError("bad"), 500, "output_fn: ValueError: bad"),
    ("output_fn", HttpError(418, "teapot"), 418, "teapot"),
    ("transform_fn", ValueError("bad"), 500, "transform_fn: ValueError: bad"),
    ("transform_fn", skf.UnsupportedFormatError("text/x"), 500, "transform_fn: UnsupportedFormatError: Content"),
    ("transform_fn", HttpError(400, "mine"), 400, "mine"),
])
def test_inference_hook_errors_become_http_answers(iris, hook, exc, status, text):
    h = fitted_handler(iris)
    setattr(h, hook, _raise(exc))
    with pytest.raises(HttpError) as e:
        skf.invoke(h, b"[[1, 2, 3, 4], [1, 2, 3, 4]]", "application/json", "application/json")
    assert e.value.status == status and text in e.value.message


def test_npy_object_arrays_are_refused(iris):
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(HttpError) as e:
        skf.invoke(fitted_handler(iris), buf.getvalue(), "application/x-npy", "application/json")
    assert e.value.status == 400 and "allow_pickle=False" in e.value.message


def write_model_tarball_dir(tmp_path: Path, iris: dict[str, np.ndarray], script: str) -> Path:
    """model.tar.gz as SKLearnModel repacks it: the model plus the inference code under code/."""
    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(iris["X_train"], iris["y_train"])
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "code" / script).write_text((SCRIPTS / script).read_text())
    return model_dir


def test_user_handlers_from_code_in_the_model_tarball(tmp_path, iris):
    model_dir = write_model_tarball_dir(tmp_path, iris, "inference_records.py")
    h = skf.load_handler(model_dir, "inference_records.py", "/opt/ml/model/code", tmp_path)
    record = dict(zip(["sepal_length", "sepal_width", "petal_length", "petal_width"], [6.7, 3.0, 5.2, 2.3], strict=True))
    body, ctype = skf.invoke(h, json.dumps([record, {**record, "petal_length": 1.4, "petal_width": 0.2}]).encode(),
                             "application/json", "application/json")
    out = json.loads(body)
    assert ctype == "application/json" and [o["species"] for o in out] == ["virginica", "setosa"]
    assert all(0.5 < o["probability"] <= 1 for o in out)
    # the user's input_fn rejecting a request is the client's error: 400, the script's own words
    with pytest.raises(HttpError) as e:
        skf.invoke(h, json.dumps([{"sepal_length": 1}]).encode(), "application/json", "application/json")
    assert e.value.status == 400 and "record 0 lacks sepal_width, petal_length, petal_width" in e.value.message
    with pytest.raises(HttpError) as e:
        skf.invoke(h, b"1,2,3,4", "text/csv", "application/json")
    assert e.value.status == 400 and "content type text/csv is not supported" in e.value.message
    # without SAGEMAKER_SUBMIT_DIRECTORY the code/ folder of model.tar.gz is used
    assert skf.load_handler(model_dir, "inference_records.py", None, tmp_path).model is not None


def test_missing_model_fn_and_transform_fn_conflicts_fail_to_load(tmp_path, iris):
    model_dir = write_model_tarball_dir(tmp_path, iris, "no_model_fn.py")
    with pytest.raises(NotImplementedError, match="Please provide a model_fn implementation"):
        skf.load_handler(model_dir, "no_model_fn.py", None, tmp_path)
    (model_dir / "code" / "both.py").write_text(
        "def model_fn(d):\n    return 1\n\ndef input_fn(b, c):\n    return b\n\ndef transform_fn(m, b, c, a):\n"
        "    return b, c\n")
    with pytest.raises(ClientError, match="Cannot use transform_fn implementation with input_fn"):
        skf.load_handler(model_dir, "both.py", None, tmp_path)
    with pytest.raises(ClientError, match="SAGEMAKER_PROGRAM is not set"):
        skf.load_handler(model_dir, None, None, tmp_path)
    with pytest.raises(ClientError, match="'missing.py' is not in"):
        skf.load_handler(model_dir, "missing.py", None, tmp_path)


def test_transform_fn_replaces_the_pipeline(tmp_path, iris):
    model_dir = write_model_tarball_dir(tmp_path, iris, "no_model_fn.py")
    (model_dir / "code" / "echo.py").write_text(
        "def model_fn(d):\n    return 'm'\n\ndef transform_fn(model, body, content_type, accept):\n"
        "    return model + ':' + body.upper(), 'text/plain'\n")
    h = skf.load_handler(model_dir, "echo.py", None, tmp_path)
    assert skf.invoke(h, b"abc", "text/csv", "text/plain") == (b"m:ABC", "text/plain")


def test_requirements_must_already_be_installed(tmp_path):
    (tmp_path / "requirements.txt").write_text("# deps\nnumpy\nscikit-learn>=1.0\npandas ; python_version < '3'\n")
    skf.check_requirements(tmp_path)  # all present: the job goes on
    (tmp_path / "requirements.txt").write_text("numpy\nscikit-learn<0.1\nlocalmaker-no-such-package==1.0\n")
    with pytest.raises(ClientError) as e:
        skf.check_requirements(tmp_path)
    msg = str(e.value)
    assert "localmaker-no-such-package==1.0 (not installed)" in msg
    assert "scikit-learn<0.1 (installed: scikit-learn==" in msg and "already installed: numpy==" in msg
    assert "does not install per-job packages" in msg


def test_code_comes_from_local_dirs_and_tarballs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print('hi')\n")
    skf.fetch_code(f"file://{src}", tmp_path / "a")
    assert (tmp_path / "a" / "train.py").read_text() == "print('hi')\n"
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "train.py", arcname="train.py")
    skf.fetch_code(str(archive), tmp_path / "b")
    assert (tmp_path / "b" / "train.py").exists()
    with pytest.raises(ClientError, match="does not exist"):
        skf.fetch_code(str(tmp_path / "nope.tar.gz"), tmp_path / "c")
    assert skf.build_command(tmp_path / "b", "train.py", ["--a", "1"]) == [sys.executable, "train.py", "--a", "1"]
