"""The inference app through Flask's test client: every content type, accept type and status."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.container.dnn_regressor_support import FEATURES, TrainedModel


@pytest.fixture
def client(regressor: Any) -> Any:
    from dnn_regressor.predictor import ModelHolder, create_app

    return create_app(holder=ModelHolder.ready(regressor)).test_client()


def _csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(f"{v:.6f}" for v in row) for row in rows) + "\n"


@pytest.fixture
def rows(trained_model: TrainedModel) -> np.ndarray:
    return trained_model.test_rows[:5, 1:]


def _post(client: Any, body: str | bytes, content_type: str | None, accept: str | None = None) -> Any:
    headers = {"Accept": accept} if accept is not None else {}
    return client.post("/invocations", data=body, content_type=content_type, headers=headers)


# --- the model and its fast path ---------------------------------------------------------------


def _keras_model(model_dir: Path) -> Any:
    import keras

    return keras.saving.load_model(model_dir / "model.keras", safe_mode=True, compile=False)


def test_numpy_engine_matches_keras_on_random_rows(regressor: Any, trained_model: TrainedModel) -> None:
    # serving reads the exported numpy form only; Keras is loaded here just to compare
    assert regressor.engine == "numpy" and regressor.source == "inference.json" and regressor.keras_model is None
    rng = np.random.default_rng(5)
    rows = (
        trained_model.train_rows[:, 1:].mean(axis=0)
        + rng.normal(0, 1, (500, 3)) * trained_model.train_rows[:, 1:].std(axis=0) * 3
    )
    model = _keras_model(trained_model.model_dir)
    keras_out = np.asarray(model(rows.astype(np.float32), training=False)).reshape(-1)
    fast = regressor.predict(rows)
    np.testing.assert_allclose(fast, keras_out, rtol=1e-5, atol=1e-5)


def test_tensorflow_engine_gives_the_same_predictions(regressor: Any, trained_model: TrainedModel) -> None:
    from dnn_regressor.inference import load_regressor

    fallback = load_regressor(trained_model.model_dir, engine="tensorflow")
    assert fallback.engine == "tensorflow" and fallback.source == "model.keras"
    rows = trained_model.test_rows[:50, 1:]
    np.testing.assert_allclose(fallback.predict(rows), regressor.predict(rows), rtol=1e-5, atol=1e-5)


def test_many_rows_take_one_forward_pass(regressor: Any, trained_model: TrainedModel) -> None:
    from dnn_regressor.inference import Regressor
    from dnn_regressor.predictor import ModelHolder, create_app

    calls: list[int] = []

    def counting(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return regressor.forward(x)

    counted = Regressor(metadata=regressor.metadata, forward=counting, engine="numpy")
    client = create_app(holder=ModelHolder.ready(counted)).test_client()
    rows = np.tile(trained_model.test_rows[:, 1:], (3, 1))[:1000]
    response = _post(client, _csv(rows), "text/csv")
    assert response.status_code == 200
    assert calls == [1000]
    assert len(response.text.splitlines()) == 1000


# --- content types and accept types ------------------------------------------------------------


def test_csv_single_and_many_rows_default_to_csv(client: Any, regressor: Any, rows: np.ndarray) -> None:
    expected = regressor.predict(rows)
    one = _post(client, _csv(rows[:1]), "text/csv")
    assert one.status_code == 200 and one.mimetype == "text/csv"
    assert float(one.text) == pytest.approx(expected[0], rel=1e-6)
    many = _post(client, _csv(rows).replace("\n", "\r\n"), "text/csv; charset=utf-8")
    np.testing.assert_allclose([float(v) for v in many.text.splitlines()], expected, rtol=1e-6)


@pytest.mark.parametrize(
    "payload",
    [
        lambda r: {"instances": r.tolist()},
        lambda r: [dict(zip(FEATURES, row, strict=True)) for row in r.tolist()],
        lambda r: {"instances": [dict(zip(FEATURES, row, strict=True)) for row in r.tolist()]},
        lambda r: {"instances": [{"features": row} for row in r.tolist()]},
        lambda r: r.tolist(),
    ],
    ids=["instances-lists", "list-of-objects", "instances-objects", "features-objects", "bare-lists"],
)
def test_json_shapes(client: Any, regressor: Any, rows: np.ndarray, payload: Any) -> None:
    response = _post(client, json.dumps(payload(rows)), "application/json", accept="application/json")
    assert response.status_code == 200, response.text
    assert response.mimetype == "application/json"
    np.testing.assert_allclose(response.get_json()["predictions"], regressor.predict(rows), rtol=1e-6)


def test_json_single_object_and_flat_row(client: Any, regressor: Any, rows: np.ndarray) -> None:
    expected = regressor.predict(rows[:1])[0]
    single = _post(client, json.dumps(dict(zip(FEATURES, rows[0].tolist(), strict=True))), "application/json")
    assert single.status_code == 200 and float(single.text) == pytest.approx(expected, rel=1e-6)
    flat = _post(client, json.dumps({"instances": rows[0].tolist()}), "application/json")
    assert flat.status_code == 200 and float(flat.text) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("accept", "mimetype"),
    [
        (None, "text/csv"),
        ("", "text/csv"),
        ("*/*", "text/csv"),
        ("text/csv", "text/csv"),
        ("application/json", "application/json"),
        ("application/json; charset=utf-8", "application/json"),
        ("text/csv;q=0.5, application/json", "application/json"),
        ("application/*", "application/json"),
        ("application/json, */*", "application/json"),
        ("text/csv;q=0, */*", "application/json"),
        ("text/html, */*;q=0.8", "text/csv"),
    ],
)
def test_accept_negotiation(client: Any, rows: np.ndarray, accept: str | None, mimetype: str) -> None:
    response = _post(client, _csv(rows[:2]), "text/csv", accept=accept)
    assert response.status_code == 200 and response.mimetype == mimetype
    if mimetype == "text/csv":
        assert len(response.text.splitlines()) == 2
    else:
        assert len(response.get_json()["predictions"]) == 2


@pytest.mark.parametrize("accept", ["text/plain", "application/xml, text/html", "text/csv;q=0"])
def test_unsupported_accept_is_406(client: Any, rows: np.ndarray, accept: str) -> None:
    response = _post(client, _csv(rows[:1]), "text/csv", accept=accept)
    assert response.status_code == 406
    assert f"Accept {accept} is not supported" in response.text and "application/json" in response.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-recordio-protobuf", None])
def test_unsupported_content_type_is_415(client: Any, rows: np.ndarray, content_type: str | None) -> None:
    response = _post(client, _csv(rows[:1]), content_type)
    assert response.status_code == 415
    assert "is not supported; send text/csv or application/json" in response.text


def test_payload_over_6_mb_is_413(client: Any) -> None:
    body = ("1.0,2.0,3.0\n" * 600_000).encode()
    assert len(body) > 6 * 1024 * 1024
    response = _post(client, body, "text/csv")
    assert response.status_code == 413
    assert "6 MB" in response.text


# --- client errors name the row and the column -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "fragments"),
    [
        ("1,2,3\n4,5,6,7\n", "text/csv", ["row 2 has 4 values, expected 3 features", "label included"]),
        ("1,2\n", "text/csv", ["row 1 has 2 values, expected 3 features", "'x1', 'x2', 'x3'"]),
        ("1,2,3\n4,abc,6\n", "text/csv", ["row 2, column 2 ('x2'): 'abc' is not a number"]),
        ("1,2,3\n4,5,nan\n", "text/csv", ["row 2, column 3 ('x3') is 'nan'"]),
        ("1,2,3\n4,,6\n", "text/csv", ["row 2, column 2 ('x2') is empty"]),
        ("1,2,3\n\n4,5,6\n", "text/csv", ["row 2 is empty"]),
        ("x1,x2,x3\n1,2,3\n", "text/csv", ["row 1, column 1 ('x1'): 'x1' is not a number"]),
        ("", "text/csv", ["the CSV body is empty"]),
        (b"\xff\xfe1,2,3", "text/csv", ["not UTF-8"]),
        (
            '{"instances": [[1, 2, 3], [1, "2", 3]]}',
            "application/json",
            ["row 2, column 2 ('x2'): \"2\" is not a number"],
        ),
        ('{"instances": [[1, 2, 3], [1, null, 3]]}', "application/json", ["row 2, column 2 ('x2'): null"]),
        (
            '{"instances": [[1, true, 3]]}',
            "application/json",
            ["row 1, column 2 ('x2'): true is not a number"],
        ),
        ('{"instances": [[1, 2, 3, 4]]}', "application/json", ["row 1 has 4 values, expected 3"]),
        ('[{"x1": 1, "x2": 2}]', "application/json", ["row 1 is missing feature(s) ['x3']"]),
        ('[{"x1": 1, "x2": 2, "x3": 3, "y": 4}]', "application/json", ["row 1 has unknown key(s) ['y']"]),
        ('{"instances": []}', "application/json", ["instance list is empty"]),
        ('{"rows": [[1, 2, 3]]}', "application/json", ['needs an "instances" list']),
        ('{"instances": [[1, 2, 3]]', "application/json", ["not valid JSON"]),
        ('{"instances": [1, 2]}', "application/json", ["flat list of 2 numbers", "expects 3 features"]),
        ('"hello"', "application/json", ["must be an object or a list"]),
        ('{"instances": [[1, 2, 3], "x"]}', "application/json", ["row 2 is a JSON str"]),
    ],
)
def test_bad_rows_are_400_with_row_and_column(
    client: Any, body: str | bytes, content_type: str, fragments: list[str]
) -> None:
    response = _post(client, body, content_type)
    assert response.status_code == 400, response.text
    for fragment in fragments:
        assert fragment in response.text, response.text


def test_json_infinity_is_rejected(client: Any) -> None:
    response = _post(client, '{"instances": [[1, Infinity, 3]]}', "application/json")
    assert response.status_code == 400 and "row 1, column 2 ('x2') is inf" in response.text


def test_garbage_never_causes_a_500(client: Any) -> None:
    rng = np.random.default_rng(0)
    bodies = [bytes(rng.integers(0, 256, size=n, dtype=np.uint8)) for n in (1, 7, 64, 500)]
    bodies += [
        b",,,",
        b"\n\n",
        b"1,2,3,",
        b'"1","2","3"',
        b'"1,2,3',
        b"[]",
        b"{}",
        b"null",
        b"[[]]",
        b"[[1,2,3],[4,5]]",
    ]
    for body in bodies:
        for content_type in ("text/csv", "application/json"):
            response = _post(client, body, content_type)
            assert 200 <= response.status_code < 500, (
                body,
                content_type,
                response.status_code,
                response.text,
            )


# --- ping, loading and execution parameters ----------------------------------------------------


def test_ping_is_200_once_the_model_is_loaded(trained_model: TrainedModel) -> None:
    from dnn_regressor.predictor import create_app

    client = create_app(trained_model.model_dir, preload=True).test_client()
    for _ in range(60):
        response = client.get("/ping")
        if response.status_code == 200:
            break
        assert response.status_code == 503 and "still loading" in response.text
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("no-dir", "does not exist"),
        ("no-metadata", "metadata.json is missing"),
        ("corrupt-arrays", "inference.npz does not match the sha256 recorded in inference.json"),
        ("no-arrays", "inference.npz is missing"),
        ("corrupt-spec", "inference.json is unreadable or not JSON"),
        ("old-style-corrupt-model", "model.keras cannot be loaded"),
        ("old-style-no-model", "model.keras is missing"),
        ("wrong-width", "inference.json takes 3 inputs, but metadata.json lists 4 features"),
        ("old-style-wrong-width", "lists 4 features"),
    ],
)
def test_ping_is_503_with_the_reason_when_the_model_is_broken(
    trained_model: TrainedModel, tmp_path: Path, breakage: str, reason: str
) -> None:
    from dnn_regressor.predictor import create_app

    model_dir = tmp_path / "model"
    if breakage != "no-dir":
        shutil.copytree(trained_model.model_dir, model_dir)
    if breakage.startswith("old-style"):  # a model trained before the numpy export
        (model_dir / "inference.json").unlink()
        (model_dir / "inference.npz").unlink()
    if breakage == "no-metadata":
        (model_dir / "metadata.json").unlink()
    elif breakage == "corrupt-arrays":
        data = bytearray((model_dir / "inference.npz").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (model_dir / "inference.npz").write_bytes(bytes(data))
    elif breakage == "no-arrays":
        (model_dir / "inference.npz").unlink()
    elif breakage == "corrupt-spec":
        (model_dir / "inference.json").write_text("{not json")
    elif breakage == "old-style-corrupt-model":
        (model_dir / "model.keras").write_bytes(b"not a zip file")
    elif breakage == "old-style-no-model":
        (model_dir / "model.keras").unlink()
    elif breakage.endswith("wrong-width"):
        metadata = json.loads((model_dir / "metadata.json").read_text())
        metadata["feature_names"].append("extra")
        (model_dir / "metadata.json").write_text(json.dumps(metadata))
    client = create_app(model_dir).test_client()
    ping = client.get("/ping")
    assert ping.status_code == 503 and reason in ping.text, ping.text
    invocation = _post(client, "1,2,3\n", "text/csv")
    assert invocation.status_code == 503 and reason in invocation.text


def test_a_failed_load_is_retried_and_can_recover(regressor: Any) -> None:
    from dnn_regressor.model import ModelLoadError
    from dnn_regressor.predictor import ModelHolder, create_app

    attempts: list[Path] = []

    def flaky(path: Path) -> Any:
        attempts.append(path)
        if len(attempts) == 1:
            raise ModelLoadError("model.keras is missing")
        return regressor

    holder = ModelHolder(Path("/nowhere"), loader=flaky, retry_seconds=0.0)
    client = create_app(holder=holder).test_client()
    assert client.get("/ping").status_code == 503
    assert client.get("/ping").status_code == 200
    assert len(attempts) == 2


def test_ping_answers_while_a_slow_load_is_in_flight(regressor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import dnn_regressor.predictor as predictor

    release = threading.Event()

    def slow(_: Path) -> Any:
        release.wait(10)
        return regressor

    monkeypatch.setattr(predictor, "PING_WAIT_SECONDS", 0.05)
    client = predictor.create_app(
        holder=predictor.ModelHolder(Path("/slow"), loader=slow), preload=True
    ).test_client()
    response = client.get("/ping")
    assert response.status_code == 503 and "still loading" in response.text
    release.set()
    assert _post(client, "1,2,3\n", "text/csv").status_code == 200  # invocations wait for the load
    assert client.get("/ping").status_code == 200


def test_execution_parameters(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SERVER_WORKERS", "3")
    response = client.get("/execution-parameters")
    assert response.status_code == 200
    assert response.get_json() == {
        "MaxConcurrentTransforms": 3,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


def test_unknown_route_and_method(client: Any) -> None:
    assert client.get("/nope").status_code == 404
    response = client.get("/invocations")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


def test_response_headers_are_exact(client: Any, rows: np.ndarray) -> None:
    response = _post(client, _csv(rows), "text/csv")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert int(response.headers["Content-Length"]) == len(response.data) and response.data.count(b"\n") == len(rows)
    response = _post(client, _csv(rows), "text/csv", accept="application/json")
    assert response.headers["Content-Type"] == "application/json"
    error = _post(client, "1,2\n", "text/csv")
    assert error.headers["Content-Type"] == "text/plain; charset=utf-8" and error.text.endswith("\n")


def test_chunked_body_without_content_length(client: Any, rows: np.ndarray, regressor: Any) -> None:
    import io

    body = _csv(rows).encode()
    response = client.post("/invocations", input_stream=io.BytesIO(body), content_type="text/csv",
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 200, response.text
    assert [float(v) for v in response.text.split()] == pytest.approx(regressor.predict(rows).tolist(), rel=1e-6)
    big = io.BytesIO(b"1.0,2.0,3.0\n" * 600_000)
    response = client.post("/invocations", input_stream=big, content_type="text/csv",
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413 and "6 MB" in response.text


def test_bad_content_length_is_400(client: Any) -> None:
    response = client.post("/invocations", data=b"1,2,3\n", content_type="text/csv",
                           environ_overrides={"CONTENT_LENGTH": "lots"})
    assert response.status_code == 400 and "Content-Length 'lots' is not a number" in response.text


def test_a_bug_in_the_model_is_a_500_naming_it(regressor: Any, rows: np.ndarray) -> None:
    from dnn_regressor.predictor import ModelHolder, create_app

    class Broken:
        feature_names = regressor.feature_names

        def predict(self, x: np.ndarray) -> np.ndarray:
            raise RuntimeError("weights went missing")

    client = create_app(holder=ModelHolder.ready(Broken())).test_client()  # type: ignore[arg-type]
    response = _post(client, _csv(rows), "text/csv")
    assert response.status_code == 500
    assert response.text == "internal error: RuntimeError: weights went missing\n"
