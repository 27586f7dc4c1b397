"""The numpy inference form training exports, and ``serve`` running from it without TensorFlow.

``train`` writes ``inference.npz`` + ``inference.json`` next to ``model.keras`` and checks them
against Keras on probe rows; ``serve`` reads only those files and numpy. Here the real ``serve``
runs with an import hook that makes ``import tensorflow``/``keras`` raise (and records the try),
on a model directory without ``model.keras`` at all, and must answer what Keras answers. A model
directory from before the export still serves, through Keras.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.container.dnn_regressor_support import SERVE, TrainedModel, clean_env, free_port
from tests.container.test_dnn_regressor_serve import _request, _stop, _wait_for_ping

#: Installed through PYTHONPATH into every process serve starts (gunicorn master and workers).
BLOCKER = '''
import os, sys

_BLOCKED = ("tensorflow", "keras", "tf_keras")


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            log = os.environ.get("BLOCKED_IMPORT_LOG")
            if log:
                with open(log, "a") as handle:
                    handle.write(f"{os.getpid()} {name}\\n")
            raise ImportError(f"import of {name} blocked: serve must not import TensorFlow")
        return None


sys.meta_path.insert(0, _Blocker())
'''


@pytest.fixture(scope="module")
def blocker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("no-tensorflow")
    (root / "sitecustomize.py").write_text(BLOCKER)
    return root


def _keras_predictions(model_dir: Path, rows: np.ndarray) -> np.ndarray:
    import keras

    model = keras.saving.load_model(model_dir / "model.keras", safe_mode=True, compile=False)
    return np.asarray(model(rows.astype(np.float32), training=False), dtype=np.float64).reshape(-1)


def _serve(model_dir: Path, port: int, **env: str) -> subprocess.Popen[str]:
    settings = {"SERVE_WITH_NGINX": "false", "MODEL_SERVER_WORKERS": "2", **env}
    environment = clean_env(
        SAGEMAKER_BIND_TO_PORT=str(port), SAGEMAKER_BIND_TO_HOST="127.0.0.1", SM_MODEL_DIR=str(model_dir), **settings
    )
    return subprocess.Popen(
        [sys.executable, str(SERVE)], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows) + "\n"


def test_the_blocker_really_blocks_tensorflow(blocker: Path, tmp_path: Path) -> None:
    """Guards the test below: with the hook installed, importing TensorFlow fails and is logged."""
    log = tmp_path / "imports.log"
    result = subprocess.run(
        [sys.executable, "-c", "import tensorflow"],
        env=clean_env(PYTHONPATH=str(blocker), BLOCKED_IMPORT_LOG=str(log)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "serve must not import TensorFlow" in result.stderr
    assert log.read_text().split()[1] == "tensorflow"


def test_serve_answers_like_keras_from_the_exported_form_with_tensorflow_unimportable(
    trained_model: TrainedModel, blocker: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in ("inference.json", "inference.npz", "metadata.json"):  # no model.keras at all
        shutil.copy(trained_model.model_dir / name, model_dir / name)
    log = tmp_path / "imports.log"
    rows = trained_model.test_rows[:200, 1:]
    expected = _keras_predictions(trained_model.model_dir, rows)

    port = free_port()
    started = time.monotonic()
    proc = _serve(model_dir, port, PYTHONPATH=str(blocker), BLOCKED_IMPORT_LOG=str(log))
    try:
        _wait_for_ping(proc, port, 200, timeout=60)
        ready = time.monotonic() - started
        status, ctype, body = _request(port, "POST", "/invocations", _csv(rows), {"Content-Type": "text/csv"})
        assert status == 200 and ctype.startswith("text/csv"), body
        np.testing.assert_allclose(np.array(body.split(), dtype=np.float64), expected, rtol=1e-5, atol=1e-5)
        status, _, body = _request(
            port,
            "POST",
            "/invocations",
            json.dumps({"instances": rows[:5].tolist()}),
            {"Content-Type": "application/json", "Accept": "application/json"},
        )
        assert status == 200
        np.testing.assert_allclose(json.loads(body)["predictions"], expected[:5], rtol=1e-5, atol=1e-5)
    finally:
        _stop(proc)
    output = proc.stdout.read()
    assert not log.exists(), f"serve tried to import: {log.read_text()}"
    assert "(inference.json): 3 features, engine numpy" in output, output
    print(f"serve start -> /ping 200 from the exported form: {ready:.2f} s")


def test_a_model_trained_before_the_export_still_serves(trained_model: TrainedModel, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model.model_dir, model_dir)
    (model_dir / "inference.json").unlink()
    (model_dir / "inference.npz").unlink()
    metadata = json.loads((model_dir / "metadata.json").read_text())
    del metadata["inference"]
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    rows = trained_model.test_rows[:50, 1:]
    expected = _keras_predictions(trained_model.model_dir, rows)

    port = free_port()
    proc = _serve(model_dir, port, MODEL_SERVER_WORKERS="1")
    try:
        _wait_for_ping(proc, port, 200, timeout=120)
        status, _, body = _request(port, "POST", "/invocations", _csv(rows), {"Content-Type": "text/csv"})
        assert status == 200, body
        np.testing.assert_allclose(np.array(body.split(), dtype=np.float64), expected, rtol=1e-5, atol=1e-5)
    finally:
        _stop(proc)
    assert "(model.keras): 3 features, engine numpy" in proc.stdout.read()


# --- the exported files ------------------------------------------------------------------------


def test_training_records_the_export_and_its_probe_check(trained_model: TrainedModel) -> None:
    spec = json.loads((trained_model.model_dir / "inference.json").read_text())
    assert [layer["op"] for layer in spec["layers"]] == ["standardize", "dense", "dense", "dense", "unstandardize"]
    assert [layer.get("activation") for layer in spec["layers"][1:4]] == ["relu", "relu", "linear"]
    arrays_sha = hashlib.sha256((trained_model.model_dir / "inference.npz").read_bytes()).hexdigest()
    assert spec["arrays_sha256"] == arrays_sha
    with np.load(trained_model.model_dir / "inference.npz", allow_pickle=False) as npz:
        probe_inputs, probe_outputs = npz["probe_inputs"], npz["probe_outputs"]
    assert probe_inputs.shape == (256 + 256 + 256, 3) == (spec["probe"]["rows"], 3)
    # the recorded outputs are Keras' own, and the numpy form reproduces them
    np.testing.assert_allclose(
        probe_outputs, _keras_predictions(trained_model.model_dir, probe_inputs), rtol=1e-6, atol=1e-6
    )
    inference = trained_model.metadata["inference"]
    assert inference["probe_rows"] == 768 and inference["max_abs_diff_vs_keras"] < 1e-3
    assert "exported the numpy inference form" in trained_model.stdout
    # the task log (CloudWatch, printed by the operator) names the files, not a host path
    assert "saved the model (inference.json, inference.npz" in trained_model.stdout
    assert str(trained_model.model_dir) not in trained_model.stdout


def _rewrite_probe_outputs(model_dir: Path, change: Any) -> None:
    """Alter the recorded Keras outputs and re-sign the npz, as if numpy here computed differently."""
    with np.load(model_dir / "inference.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["probe_outputs"] = change(arrays["probe_outputs"])
    with (model_dir / "inference.npz").open("wb") as handle:
        np.savez(handle, **arrays)
    spec = json.loads((model_dir / "inference.json").read_text())
    spec["arrays_sha256"] = hashlib.sha256((model_dir / "inference.npz").read_bytes()).hexdigest()
    (model_dir / "inference.json").write_text(json.dumps(spec))


def test_a_probe_mismatch_at_load_falls_back_to_keras_or_fails_the_numpy_engine(
    trained_model: TrainedModel, tmp_path: Path
) -> None:
    from dnn_regressor.inference import load_regressor
    from dnn_regressor.model import ModelLoadError

    model_dir = tmp_path / "model"
    shutil.copytree(trained_model.model_dir, model_dir)
    _rewrite_probe_outputs(model_dir, lambda out: out + 1.0)
    fallback = load_regressor(model_dir)
    assert fallback.source == "model.keras" and fallback.engine == "numpy"
    with pytest.raises(ModelLoadError, match=r"differs from Keras at training by 1 on its probe rows"):
        load_regressor(model_dir, engine="numpy")


def test_export_refuses_a_form_that_does_not_reproduce_keras(tmp_path: Path) -> None:
    import keras
    from dnn_regressor.inference import ExportError, export_inference
    from dnn_regressor.model import Standardisation, build_model

    stats = Standardisation(np.array([1.0, 2.0]), np.array([3.0, 4.0]), 10.0, 5.0, 100)
    model = build_model(2, [4], 0.1, stats)
    probe = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    reference = np.asarray(model(probe, training=False)).reshape(-1)

    summary = export_inference(model, tmp_path, probe, reference)
    assert summary["probe_rows"] == 20 and summary["max_abs_diff_vs_keras"] < 1e-5
    assert {p.name for p in tmp_path.iterdir()} == {"inference.json", "inference.npz"}

    wrong = reference.copy()
    wrong[7] += 0.5  # as if the numpy form computed something else than Keras
    with pytest.raises(ExportError, match=r"does not reproduce the Keras model: on probe row 8 of 20"):
        export_inference(model, tmp_path, probe, wrong)
    assert not list(tmp_path.iterdir()), "a refused export must not leave files behind"

    inputs = keras.Input(shape=(2,))
    odd = keras.Model(inputs, keras.layers.Dense(1, activation="softplus", name="out")(inputs))
    with pytest.raises(ExportError, match=r"layer 'out' uses activation 'softplus'"):
        export_inference(odd, tmp_path, probe, np.zeros(20))
