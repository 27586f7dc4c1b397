"""The container-contract pieces every built-in program shares: hyperparameter validation with the
first-party wording, the failure file, request codecs and the WSGI app."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from localmaker.builtins import runtime, serving
from localmaker.builtins.runtime import (
    HP,
    ClientError,
    boolean,
    float_in,
    int_in,
    one_of,
    parse_hyperparameters,
)
from smformats.recordio import decode_label_map, iter_recordio, to_recordio_protobuf


def test_missing_required_hyperparameters_are_named_together_in_aws_wording() -> None:
    spec = {"k": HP(int_in(1), required=True), "feature_dim": HP(int_in(1), required=True), "epochs": HP(int_in(1), 1)}
    with pytest.raises(ClientError) as err:
        parse_hyperparameters({"epochs": "2"}, spec)
    assert str(err.value) == (
        "No value(s) were specified for 'k', 'feature_dim' which are required hyperparameter(s) "
        "(caused by ValidationError)"
    )
    assert parse_hyperparameters({"k": "10", "feature_dim": "64", "_tuning_objective_metric": "x"}, spec) == {
        "k": 10, "feature_dim": 64, "epochs": 1}
    with pytest.raises(ClientError, match=r"\('kk' were unexpected\)"):
        parse_hyperparameters({"k": "1", "feature_dim": "1", "kk": "3"}, spec)
    with pytest.raises(ClientError, match="Hyperparameter 'k': value '0' is not valid: must be >= 1"):
        parse_hyperparameters({"k": "0", "feature_dim": "1"}, spec)


def test_value_parsers() -> None:
    assert int_in(0, 5)("3.0") == 3
    with pytest.raises(ValueError, match="integer"):
        int_in()("2.5")
    assert float_in(0, 1)("0.5") == 0.5
    with pytest.raises(ValueError, match="a number"):
        float_in()("nan")
    assert isinstance(int_in(0, 5)("5"), int) and float_in(0, 1)("1") == 1.0
    for parse, value, message in ((int_in(0, 5), "6", "must be <= 5"), (int_in(0, 5), "-1", "must be >= 0"),
                                  (float_in(0, 1), "1.5", "must be <= 1"), (float_in(0.5), "0.25", "must be >= 0.5")):
        with pytest.raises(ValueError, match=f"^{message}$"):
            parse(value)
    assert one_of("a", "b")("b") == "b"
    with pytest.raises(ValueError, match="one of"):
        one_of("a")("c")
    assert boolean("True") is True and boolean("0") is False
    with pytest.raises(ValueError):
        boolean("maybe")


def _train_env(tmp_path: Path, channels: list[str], host: str = "algo-1") -> runtime.TrainingEnv:
    return runtime.TrainingEnv(base=tmp_path, hyperparameters={}, channels={c: {} for c in channels},
                               hosts=["algo-2", "algo-1"], current_host=host)


@pytest.mark.parametrize(("module", "algorithm", "worker_says"), [
    ("knn", "k-NN", "algo-2: the index is built on algo-1; nothing to do on this host."),
    ("factorization_machines", "Factorization Machines",
     "algo-2: the model is trained on algo-1; nothing to do on this host."),
    ("linear_learner", "Linear Learner", None),
])
def test_supervised_builtins_check_channels_and_leave_the_work_to_the_leader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], module: str, algorithm: str, worker_says: str | None
) -> None:
    import importlib

    algo = importlib.import_module(f"localmaker.builtins.{module}")
    hps = {"knn": {"feature_dim": "2", "k": "1", "predictor_type": "classifier", "sample_size": "10"},
           "factorization_machines": {"feature_dim": "2", "num_factors": "2", "predictor_type": "regressor"},
           "linear_learner": {"predictor_type": "regressor"}}[module]
    reads = "'train', 'validation' and 'test'" if module == "linear_learner" else "'train' and optionally 'test'"
    env = _train_env(tmp_path, ["train", "extra"])
    env.hyperparameters = hps
    with pytest.raises(ClientError) as err:
        algo.train(env)
    assert str(err.value) == f"Unsupported channel(s) ['extra']: {algorithm} reads {reads}."
    env.channels = {"test": {}}
    with pytest.raises(ClientError) as err:
        algo.train(env)
    assert str(err.value) == f"The 'train' channel is required: {algorithm} needs labelled training data."
    if worker_says:  # a non-leader host returns before reading any data and writes no model
        worker = _train_env(tmp_path, ["train"], host="algo-2")
        worker.hyperparameters = hps
        algo.train(worker)
        assert worker_says in capsys.readouterr().out
        assert not worker.model_dir.exists()


def test_main_writes_the_failure_file_with_aws_prefixes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    cfg = tmp_path / "input" / "config"
    cfg.mkdir(parents=True)
    (cfg / "hyperparameters.json").write_text(json.dumps({"k": 3}))
    (cfg / "inputdataconfig.json").write_text(json.dumps({"train": {"ContentType": "text/csv;label_size=1"}}))
    seen: dict[str, Any] = {}

    def bad_input(env: runtime.TrainingEnv) -> None:
        seen["hps"], seen["ct"] = env.hyperparameters, env.content_type("train", "x")
        seen["params"] = env.content_type_params("train")
        raise ClientError("Channel 'train' is empty.")

    assert runtime.main(bad_input, lambda: None, ["train"]) == 1
    assert (tmp_path / "output" / "failure").read_text() == "ClientError: Channel 'train' is empty."
    assert seen == {"hps": {"k": "3"}, "ct": "text/csv", "params": {"label_size": "1"}}

    def bug(env: runtime.TrainingEnv) -> None:
        raise ZeroDivisionError("division by zero")

    assert runtime.main(bug, lambda: None, ["train"]) == 1
    assert (tmp_path / "output" / "failure").read_text() == "AlgorithmError: ZeroDivisionError: division by zero"
    assert runtime.main(bug, lambda: None, ["fit"]) == 2


def test_dense_decoders_name_the_row_and_column() -> None:
    np.testing.assert_array_equal(serving.decode_csv(b"1,2\n3,4\n"), [[1, 2], [3, 4]])
    for body, message in [(b"1,x\n", "row 1, column 2: 'x'"), (b"1,2\n3\n", "row 2 has 1 columns"),
                          (b"", "no rows"), (b"nan,1\n", "NaN")]:
        with pytest.raises(serving.HttpError, match=message) as err:
            serving.decode_csv(body)
        assert err.value.status == 400
    with pytest.raises(serving.HttpError, match="the model expects 3"):
        serving.decode_csv(b"1,2\n", expect=3)
    shapes = [b'{"instances": [{"features": [1, 2]}]}', b'{"instances": [[1, 2]]}', b'{"features": [1, 2]}',
              b'{"instances": [{"data": {"features": {"values": [1, 2]}}}]}']
    for body in shapes:
        np.testing.assert_array_equal(serving.decode_json(body), [[1, 2]])
    np.testing.assert_array_equal(serving.decode_jsonlines(b'{"features": [1, 2]}\n[3, 4]\n'), [[1, 2], [3, 4]])
    body = to_recordio_protobuf(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(serving.decode_dense(body, "application/x-recordio-protobuf"), [[1, 2], [3, 4]])
    with pytest.raises(serving.HttpError) as err:
        serving.decode_dense(b"1", "text/plain")
    assert err.value.status == 415


def test_accept_negotiation_and_response_records() -> None:
    assert serving.negotiate(None, [serving.JSON], serving.JSON) == serving.JSON
    assert serving.negotiate("text/html, application/jsonlines", [serving.JSON, serving.JSONLINES], serving.JSON) == (
        serving.JSONLINES)
    with pytest.raises(serving.HttpError) as err:
        serving.negotiate("text/html", [serving.JSON], serving.JSON)
    assert err.value.status == 406
    records = [{"score": 0.5, "predicted_label": 1}]
    assert json.loads(serving.encode_records(records, serving.JSON)[0]) == {"predictions": records}
    assert serving.encode_records(records, serving.JSONLINES)[0] == b'{"score": 0.5, "predicted_label": 1}\n'
    body, ctype = serving.encode_records(records, serving.RECORDIO)
    assert ctype == serving.RECORDIO
    assert [decode_label_map(p) for p in iter_recordio(io.BytesIO(body))] == [{"score": [0.5], "predicted_label": [1.0]}]


def _call(app: serving.App, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[str, bytes]:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), **headers}
    seen: dict[str, str] = {}
    out = b"".join(app(environ, lambda status, hdrs: seen.update(status=status)))
    return seen["status"], out


def test_app_pings_after_load_and_maps_errors_to_4xx(tmp_path: Path) -> None:
    def invoke(model: Any, body: bytes, ctype: str, accept: str) -> tuple[bytes, str]:
        rows = serving.decode_dense(body, ctype, expect=2)
        return json.dumps({"sums": (rows.sum(axis=1) * model).tolist()}).encode(), serving.JSON

    app = serving.App(lambda model_dir: 10, invoke, model_dir=tmp_path)
    assert _call(app, "GET", "/ping")[0].startswith("503")
    app.load_now()
    assert _call(app, "GET", "/ping")[0].startswith("200")
    status, out = _call(app, "POST", "/invocations", b"1,2\n", CONTENT_TYPE="text/csv")
    assert status.startswith("200") and json.loads(out) == {"sums": [30.0]}
    status, out = _call(app, "POST", "/invocations", b"1,2,3\n", CONTENT_TYPE="text/csv")
    assert status.startswith("400") and b"expects 2" in out
    big = {"CONTENT_LENGTH": str(serving.MAX_PAYLOAD + 1)}
    assert _call(app, "POST", "/invocations", b"", CONTENT_TYPE="text/csv")[0].startswith("400")  # no rows
    status, _ = _call(app, "POST", "/invocations", b"x", CONTENT_TYPE="text/csv", **big)
    assert status.startswith("413")
    params = json.loads(_call(app, "GET", "/execution-parameters")[1])
    assert params["BatchStrategy"] == "MULTI_RECORD" and params["MaxPayloadInMB"] == 6
    assert _call(app, "GET", "/nope")[0].startswith("404")

    broken = serving.App(lambda model_dir: 1 / 0, invoke, model_dir=tmp_path)
    broken.load_now()
    status, out = _call(broken, "GET", "/ping")
    assert status.startswith("503") and b"ZeroDivisionError" in out
