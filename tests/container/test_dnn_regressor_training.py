"""Training end to end through the real ``train`` program, plus the pure parsing pieces."""

from __future__ import annotations

import gzip
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.container.dnn_regressor_support import (
    CONTAINER_DIR,
    FEATURES,
    TrainedModel,
    failure_text,
    make_job,
    make_rows,
    r_squared,
    run_train,
    write_csv,
)


def test_trained_model_learns_the_relationship_through_the_app(trained_model: TrainedModel) -> None:
    from dnn_regressor.predictor import create_app

    client = create_app(trained_model.model_dir).test_client()
    test = trained_model.test_rows
    body = "\n".join(",".join(f"{v:.6f}" for v in row[1:]) for row in test)
    response = client.post("/invocations", data=body, content_type="text/csv")
    assert response.status_code == 200, response.text
    predictions = np.array([float(line) for line in response.text.splitlines()])
    assert len(predictions) == len(test)
    assert r_squared(test[:, 0], predictions) > 0.9


def test_every_epoch_prints_metric_lines_the_regexes_read(trained_model: TrainedModel) -> None:
    from dnn_regressor.metrics import METRIC_DEFINITIONS

    lines = trained_model.stdout.splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch=")]
    metrics = trained_model.metadata["metrics"]
    assert len(epoch_lines) == metrics["epochs_run"] >= 2
    pattern = re.compile(
        r"^epoch=(\d+) train:loss=[0-9.eE+-]+ validation:loss=[0-9.eE+-]+ validation:rmse=[0-9.eE+-]+$"
    )
    assert [int(pattern.match(line).group(1)) for line in epoch_lines] == list(range(1, len(epoch_lines) + 1))
    for definition in METRIC_DEFINITIONS:
        values = [float(m) for m in re.findall(definition["Regex"], trained_model.stdout)]
        # One value per epoch plus the final summary, whose value is the saved (best) epoch's.
        assert len(values) == len(epoch_lines) + 1, definition["Name"]
        assert values[-1] == pytest.approx(metrics[definition["Name"]], rel=1e-5)
    loss, rmse = (
        float(re.search(rf"{k}=([0-9.eE+-]+)", epoch_lines[0]).group(1))
        for k in ("validation:loss", "validation:rmse")
    )
    assert rmse == pytest.approx(math.sqrt(loss), rel=1e-5)
    assert lines[-1].startswith(
        f"final: best_epoch={metrics['best_epoch']} epochs_run={metrics['epochs_run']} "
    )
    history = json.loads((trained_model.base / "output/data/history.json").read_text())
    best = min(history, key=lambda h: h["validation:loss"])
    assert best["epoch"] == metrics["best_epoch"]


def test_metric_definitions_file_matches_the_constant() -> None:
    from dnn_regressor.metrics import METRIC_DEFINITIONS

    on_disk = json.loads((CONTAINER_DIR / "metric_definitions.json").read_text())
    assert on_disk == METRIC_DEFINITIONS
    assert {d["Name"] for d in on_disk} == {"validation:rmse", "train:loss", "validation:loss"}
    assert re.search(on_disk[0]["Regex"], "epoch=3 validation:rmse=1.5e-05").group(1) == "1.5e-05"


def test_model_directory_holds_a_safe_keras_file_and_metadata(trained_model: TrainedModel) -> None:
    assert sorted(p.name for p in trained_model.model_dir.iterdir()) == [
        "inference.json",
        "inference.npz",
        "metadata.json",
        "model.keras",
    ]
    metadata = trained_model.metadata
    assert metadata["feature_names"] == FEATURES
    assert metadata["label"] == {"name": "y", "column_index": 0}
    assert metadata["n_train"] == 1500 and metadata["n_validation"] == 300
    assert metadata["hyperparameters"]["hidden_units"] == [32, 16]
    assert set(metadata["versions"]) >= {"python", "tensorflow", "keras"}
    assert metadata["metrics"]["validation:rmse"] < 3.0
    with zipfile.ZipFile(trained_model.model_dir / "model.keras") as archive:
        names = archive.namelist()
        config = archive.read("config.json").decode()
    assert not any(n.endswith((".pkl", ".pickle")) for n in names)
    classes = set(re.findall(r'"class_name": "(\w+)"', config))
    assert "Lambda" not in classes and {"Normalization", "Dense"} <= classes

    import keras

    model = keras.saving.load_model(trained_model.model_dir / "model.keras", safe_mode=True, compile=False)
    assert model.input_shape == (None, 3)


def test_normalisation_statistics_come_from_train_only(tmp_path: Path) -> None:
    """Validation on a wildly different scale must not move the saved statistics.

    Also covers: label as the last column by index, no header, several train files in
    subfolders (one gzipped), marker files skipped.
    """
    base = make_job(
        tmp_path / "ml",
        hyperparameters={
            "hidden_units": "8",
            "epochs": "2",
            "header": "false",
            "label": "-1",
            "learning_rate": "0.01",
        },
    )
    train = make_rows(600, seed=11)
    train = np.column_stack([train[:, 1:], train[:, 0]])  # label last
    validation = make_rows(200, seed=12, scale=100.0, shift=5000.0)
    validation = np.column_stack([validation[:, 1:], validation[:, 0]])
    write_csv(base / "input/data/train/a/part-0.csv", train[:250], header=None)
    gz = base / "input/data/train/b/part-1.csv.gz"
    gz.parent.mkdir(parents=True)
    gz.write_bytes(gzip.compress("\n".join(",".join(map(str, r)) for r in train[250:]).encode()))
    (base / "input/data/train/_SUCCESS").write_text("")
    write_csv(base / "input/data/validation/v.csv", validation, header=None)

    result = run_train(base)
    assert result.returncode == 0, result.stdout + result.stderr
    metadata = json.loads((base / "model/metadata.json").read_text())
    norm = metadata["normalization"]
    assert norm["fitted_on"] == "train" and norm["rows"] == 600 == metadata["n_train"]
    np.testing.assert_allclose(norm["feature_mean"], train[:, :3].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(norm["feature_std"], train[:, :3].std(axis=0), rtol=1e-6)
    assert norm["label_mean"] == pytest.approx(train[:, 3].mean(), rel=1e-6)
    assert norm["label_std"] == pytest.approx(train[:, 3].std(), rel=1e-6)
    assert metadata["feature_names"] == ["feature_0", "feature_1", "feature_2"]
    assert metadata["label"] == {"name": "label", "column_index": 3}

    import keras

    model = keras.saving.load_model(base / "model/model.keras", safe_mode=True, compile=False)
    layers = {layer.name: layer for layer in model.layers}
    np.testing.assert_allclose(np.ravel(layers["standardize"].mean), train[:, :3].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(np.ravel(layers["standardize"].variance), train[:, :3].var(axis=0), rtol=1e-4)
    np.testing.assert_allclose(np.ravel(layers["unstandardize"].mean), [train[:, 3].mean()], rtol=1e-5)
    assert failure_text(base) is None


class TestHyperparameters:
    def test_defaults_and_strings_as_sagemaker_passes_them(self) -> None:
        from dnn_regressor.hyperparameters import Hyperparameters, parse_hyperparameters

        assert parse_hyperparameters({}) == Hyperparameters()
        hp = parse_hyperparameters(
            {
                "hidden_units": "[128, 64, 8]",
                "learning_rate": "3e-4",
                "epochs": "12.0",
                "dropout": "0.25",
                "header": "TRUE",
                "label": "price",
                "_tuning_objective_metric": "validation:rmse",
                "sagemaker_region": "eu-west-1",
            }
        )
        assert hp.hidden_units == (128, 64, 8) and hp.learning_rate == 3e-4 and hp.epochs == 12
        assert hp.dropout == 0.25 and hp.header == "true" and hp.label == "price"

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("hidden_units", "64,-1"),
            ("hidden_units", ""),
            ("hidden_units", "64,abc"),
            ("learning_rate", "abc"),
            ("learning_rate", "0"),
            ("learning_rate", "nan"),
            ("epochs", "0"),
            ("epochs", "2.5"),
            ("batch_size", "-3"),
            ("dropout", "1"),
            ("early_stopping_patience", "-1"),
            ("seed", "x"),
            ("header", "maybe"),
            ("label", " "),
        ],
    )
    def test_bad_values_name_the_hyperparameter_and_value(self, name: str, value: str) -> None:
        from dnn_regressor.errors import ClientError
        from dnn_regressor.hyperparameters import parse_hyperparameters

        with pytest.raises(ClientError, match=rf"hyperparameter '{name}' must be .*got '{re.escape(value)}'"):
            parse_hyperparameters({name: value})

    def test_unknown_names_are_listed_with_the_accepted_ones(self) -> None:
        from dnn_regressor.errors import ClientError
        from dnn_regressor.hyperparameters import parse_hyperparameters

        with pytest.raises(
            ClientError, match=r"unknown hyperparameter\(s\) 'epoch', 'lr'; .*accepts.*epochs"
        ):
            parse_hyperparameters({"lr": "0.1", "epoch": "3"})


class TestCsvReading:
    def test_header_auto_detection(self, tmp_path: Path) -> None:
        from dnn_regressor.dataset import read_csv_file

        with_header = tmp_path / "h.csv"
        with_header.write_text("\ufeffy, a ,b\n1,2,3\n\n4,5,6\n")
        parsed = read_csv_file(with_header, "train/h.csv", "auto")
        assert parsed.header == ["y", "a", "b"]
        np.testing.assert_array_equal(parsed.values, [[1, 2, 3], [4, 5, 6]])
        without = tmp_path / "n.csv"
        without.write_text("1,2,3\n4,5,6\n")
        assert read_csv_file(without, "train/n.csv", "auto").header is None

    def test_a_first_row_mixing_text_and_numbers_asks_for_the_header_setting(self, tmp_path: Path) -> None:
        from dnn_regressor.dataset import read_csv_file
        from dnn_regressor.errors import ClientError

        path = tmp_path / "m.csv"
        path.write_text("y,2,3\n1,2,3\n")
        with pytest.raises(ClientError, match=r"train/m.csv row 1 mixes numbers and text.*header"):
            read_csv_file(path, "train/m.csv", "auto")

    def test_label_by_name_and_channel_consistency(self, tmp_path: Path) -> None:
        from dnn_regressor.dataset import build_dataset, load_channel
        from dnn_regressor.errors import ClientError

        write_csv(tmp_path / "train/t.csv", make_rows(5, 1))
        write_csv(tmp_path / "validation/v.csv", make_rows(5, 2))
        train = load_channel("train", tmp_path / "train", "auto")
        validation = load_channel("validation", tmp_path / "validation", "auto")
        data = build_dataset(train, validation, "x2")
        assert data.feature_names == ["y", "x1", "x3"] and data.label_index == 2
        np.testing.assert_array_equal(data.y_train, train.values[:, 2])
        with pytest.raises(ClientError, match=r"label='nope' is not a column of channel 'train'"):
            build_dataset(train, validation, "nope")
        with pytest.raises(ClientError, match=r"label=4 is out of range.*4 columns"):
            build_dataset(train, validation, "4")
