"""The pipeline library's support for built-in algorithms and script mode: config, ETL formats,
request builders, evaluation per task, smoke-test response reading and source packaging."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from include.mlpipeline import sagemaker_requests as rq
from include.mlpipeline.config import ConfigError, expand_braces, is_builtin_image, load_config
from include.mlpipeline.etl import run_etl
from include.mlpipeline.evaluate import (
    classification_metrics,
    clustering_metrics,
    evaluation_pairs,
    prediction_value,
)
from include.mlpipeline.formats.imagelist import read_lst
from include.mlpipeline.formats.recordio import from_recordio_protobuf
from include.mlpipeline.run import RunContext
from include.mlpipeline.smoke import SmokeTestError, read_predictions
from include.mlpipeline.sourcedir import package_source_dir

from .conftest import RUN_ID, TS_NODASH


def ctx(model: str) -> RunContext:
    return RunContext(model=model, stage="dev", run_id=RUN_ID, ts_nodash=TS_NODASH)


def _objects(s3: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {
        o["Key"][len(prefix):]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for page in pages for o in page.get("Contents", [])
    }


# ---------------------------------------------------------------------------------------- config
def test_brace_ranges_expand_row_major() -> None:
    assert expand_braces("p_{0..1}_{0..2}") == ["p_0_0", "p_0_1", "p_0_2", "p_1_0", "p_1_1", "p_1_2"]
    assert expand_braces("plain") == ["plain"]
    with pytest.raises(ValueError, match="backwards"):
        expand_braces("p{3..1}")
    cfg = load_config("digits_kmeans", "dev")
    assert len(cfg.data.feature_columns) == 64 and cfg.data.feature_columns[:2] == ["pixel_0_0", "pixel_0_1"]


def test_builtin_images_are_recognised() -> None:
    assert is_builtin_image("382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1")
    assert is_builtin_image("141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1")
    assert not is_builtin_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/dnn-regressor:latest")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"evaluation": {"thresholds": {"min_rmse": 1.0}}}, "do not apply to task 'clustering'"),
        ({"training": {"entry_point": "train.py"}}, "source_dir and entry_point go together"),
        ({"training": {"channels": ["test"]}}, "must include 'train'"),
        ({"data": {"format": "image"}}, "format 'image' needs data.image"),
        ({"data": {"format": "image", "image": {"source_shape": [4, 4], "value_max": 16}}}, "needs 16 pixel columns"),
    ],
)
def test_inconsistent_algorithm_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("digits_kmeans", "dev", overrides)


def test_tuning_a_builtin_needs_no_metric_definitions() -> None:
    cfg = load_config("breast_cancer_xgboost", "dev")
    assert cfg.tuning.enabled and not cfg.training.metric_definitions
    with pytest.raises(ConfigError, match="is not in training.metric_definitions"):
        load_config("diabetes_dnn", "dev", {"tuning": {"objective": {"metric": "validation:auc", "type": "Maximize"}}})


# ------------------------------------------------------------------------------------------- ETL
def test_sklearn_source_to_recordio_channels_with_csv_copies(s3: Any) -> None:
    cfg = load_config("digits_kmeans", "dev")
    result = run_etl(cfg, ctx("digits_kmeans"), s3_client=s3)
    assert result.total_rows == 1797 and result.bad_rows == 0
    prefix = result.prefix.split("mlpipeline-dev/", 1)[1]
    objects = _objects(s3, "mlpipeline-dev", prefix)
    records = from_recordio_protobuf(objects["train/data.rec"])
    assert len(records) == result.rows["train"]
    assert len(records[0].features) == 64 and records[0].label is not None and 0 <= records[0].label[0] <= 9
    # the CSV copy for the baseline has the same rows, label first
    csv_rows = np.loadtxt(io.BytesIO(objects["train_csv/data.csv"]), delimiter=",", ndmin=2)
    np.testing.assert_allclose(csv_rows[:, 1:], np.array([r.features for r in records]), rtol=1e-6)
    np.testing.assert_allclose(csv_rows[:, 0], [r.label[0] for r in records])
    assert "test_features/data.csv" in objects and "test_labels/data.csv" in objects
    assert result.channels["baseline"].endswith("train_csv/")


def test_image_format_writes_pngs_and_lst_files_for_a_subset_of_classes(s3: Any, tmp_path: Path) -> None:
    from PIL import Image

    cfg = load_config("image_classifier", "dev")
    result = run_etl(cfg, ctx("image_classifier"), s3_client=s3)
    assert sum(result.rows.values()) < 600  # 3 of 10 classes (~540 images)
    prefix = result.prefix.split("mlpipeline-dev/", 1)[1]
    objects = _objects(s3, "mlpipeline-dev", prefix)
    pngs = [k for k in objects if k.startswith("train/") and k.endswith(".png")]
    assert len(pngs) == result.rows["train"]
    image = Image.open(io.BytesIO(objects[pngs[0]]))
    assert image.size == (32, 32) and image.mode == "RGB"
    lst_path = tmp_path / "train.lst"
    lst_path.write_bytes(objects["train_lst/train.lst"])
    entries = read_lst(lst_path)
    assert {e.label for e in entries} == {0, 1, 2}
    assert {f"train/{e.path}" for e in entries} == set(pngs)
    test_labels = objects["test_labels/data.csv"].decode().split()
    assert len(test_labels) == len([k for k in objects if k.startswith("test/")])


# -------------------------------------------------------------------------------------- requests
def test_image_jobs_get_lst_channels_and_data_dependent_hyperparameters() -> None:
    cfg = load_config("image_classifier", "dev")
    c = ctx("image_classifier")
    params = rq.data_hyperparameters(cfg.training.hyperparameters, {"train": 321, "validation": 100})
    request = rq.training_job_request(cfg, c, hyperparameters=params)
    assert [ch["ChannelName"] for ch in request["InputDataConfig"]] == ["train", "train_lst", "validation", "validation_lst"]
    assert {ch["ContentType"] for ch in request["InputDataConfig"]} == {"application/x-image"}
    assert request["HyperParameters"]["num_training_samples"] == "321"
    with pytest.raises(ValueError, match="names no channel"):
        rq.data_hyperparameters({"n": "{rows.nope}"}, {"train": 1})
    transform = rq.evaluation_transform_request(cfg, c, model="m")
    assert transform["TransformInput"]["SplitType"] == "None"
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("/test/")


def test_kmeans_gets_its_test_channel_and_csv_evaluation() -> None:
    cfg = load_config("digits_kmeans", "dev")
    request = rq.training_job_request(cfg, ctx("digits_kmeans"))
    assert [ch["ChannelName"] for ch in request["InputDataConfig"]] == ["train", "test"]
    assert "MetricDefinitions" not in request["AlgorithmSpecification"]  # the built-in's own
    transform = rq.evaluation_transform_request(cfg, ctx("digits_kmeans"), model="m")
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].endswith("/test_features/")
    assert transform["TransformOutput"]["Accept"] == "application/jsonlines"


def test_script_mode_requests_point_at_the_packaged_source() -> None:
    cfg = load_config("iris_sklearn", "dev")
    c = ctx("iris_sklearn")
    uri = rq.sourcedir_uri(cfg, c)
    hps = rq.training_job_request(cfg, c)["HyperParameters"]
    assert json.loads(hps["sagemaker_program"]) == "train.py"
    assert json.loads(hps["sagemaker_submit_directory"]) == uri
    assert hps["n-estimators"] == "100"
    container = rq.model_request(cfg, c, "s3://b/model.tar.gz")["PrimaryContainer"]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "train.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == uri
    package = rq.model_package_request(cfg, c, model_data_url="s3://b/m.tar.gz", metrics={"accuracy": 1.0})
    assert package["InferenceSpecification"]["Containers"][0]["Environment"]["SAGEMAKER_PROGRAM"] == "train.py"


def test_source_dir_archive_is_reproducible_and_clean(tmp_path: Path) -> None:
    (tmp_path / "src" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "train.py").write_text("print('hi')\n")
    (tmp_path / "src" / "lib.py").write_text("X = 1\n")
    (tmp_path / "src" / "__pycache__" / "lib.cpython-311.pyc").write_bytes(b"junk")
    a = package_source_dir(tmp_path / "src", "train.py")
    assert a == package_source_dir(tmp_path / "src", "train.py")
    with tarfile.open(fileobj=io.BytesIO(a)) as tar:
        assert tar.getnames() == ["lib.py", "train.py"]
    with pytest.raises(FileNotFoundError, match="entry_point main.py"):
        package_source_dir(tmp_path / "src", "main.py")


# ------------------------------------------------------------------------------------ evaluation
def test_prediction_values_from_every_response_shape() -> None:
    assert prediction_value("0.25") == 0.25
    assert prediction_value('{"closest_cluster": 3.0, "distance_to_cluster": 1.2}', "closest_cluster") == 3.0
    assert prediction_value('{"predictions": [{"score": 0.9, "predicted_label": 1}]}', "predicted_label") == 1.0
    assert prediction_value("[0.1, 0.7, 0.2]") == 1.0  # class probabilities -> most probable class
    with pytest.raises(ValueError, match="prediction field 'label'"):
        prediction_value('{"score": 1}', "label")


def test_classification_and_clustering_metrics_by_hand() -> None:
    m = classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9], binary=True)
    assert m["accuracy"] == 0.75 and m["auc"] == 1.0
    assert classification_metrics([0, 1, 2, 2], [0, 1, 2, 1], binary=False)["accuracy"] == 0.75
    # clusters 5 -> {0, 0, 1}, 7 -> {1}: 3 of 4 rows carry their cluster's majority label
    assert clustering_metrics([0, 0, 1, 1], [5, 5, 5, 7])["purity"] == 0.75


def test_evaluation_pairs_read_jsonlines_against_labels(s3: Any) -> None:
    s3.put_object(Bucket="mlpipeline-dev", Key="r/out/data.csv.out",
                  Body=b'{"closest_cluster": 1.0}\n{"closest_cluster": 4.0}\n')
    s3.put_object(Bucket="mlpipeline-dev", Key="r/labels/data.csv", Body=b"7\n8\n")
    assert evaluation_pairs(s3, "s3://mlpipeline-dev/r/out/", "s3://mlpipeline-dev/r/labels/", "closest_cluster") == (
        [7.0, 8.0], [1.0, 4.0])


def test_smoke_test_reads_each_accept_type() -> None:
    assert read_predictions(b"0.1\n0.2\n", "text/csv", None, "x") == [0.1, 0.2]
    assert read_predictions(b'{"predictions": [{"closest_cluster": 2}]}', "application/json", "closest_cluster", "x") == [2.0]
    assert read_predictions(b"[0.2, 0.8]", "application/json", None, "x") == [1.0]
    # XGBoost's real-time CSV answer to 3 rows is one comma-joined line
    assert read_predictions(b"0.1,0.9,0.5\n", "text/csv", None, "x", expected=3) == [0.1, 0.9, 0.5]
    assert read_predictions(b"7,0.5\n", "text/csv", None, "x") == [0.5]  # a joined id,prediction line
    with pytest.raises(SmokeTestError, match="cannot read a prediction"):
        read_predictions(b"<html>", "text/csv", None, "x")


def test_batch_scoring_joins_csv_answers_and_pairs_json_answers_by_position() -> None:
    kmeans = rq.batch_transform_request(
        load_config("digits_kmeans", "dev"), ctx("digits_kmeans"), model="m", input_uri="s3://b/in/", output_path="s3://b/out/"
    )
    assert kmeans["DataProcessing"] == {"InputFilter": "$[1:]"}  # ids cannot be joined into JSON Lines
    assert kmeans["TransformOutput"]["Accept"] == "application/jsonlines"
    dnn = rq.batch_transform_request(
        load_config("diabetes_dnn", "dev"), ctx("diabetes_dnn"), model="m", input_uri="s3://b/in/", output_path="s3://b/out/"
    )
    assert dnn["DataProcessing"] == rq.BATCH_DATA_PROCESSING


def test_sklearn_sources_carry_a_row_id() -> None:
    from include.mlpipeline.etl import open_source

    with open_source("sklearn://iris") as stream:
        header, first = stream.read().decode().splitlines()[:2]
    assert header.startswith("row_id,sepal length (cm)") and header.endswith(",target")
    assert first.startswith("0,5.1,")
    with pytest.raises(ValueError, match="unknown scikit-learn data set"):
        with open_source("sklearn://mnist"):
            pass


def test_the_iris_script_decodes_one_row_requests_as_two_dimensional() -> None:
    import importlib.util

    from include.mlpipeline.config import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("iris_train", PROJECT_ROOT / "include/scripts/iris_sklearn/train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.input_fn(b"5.1,3.5,1.4,0.2", "text/csv").shape == (1, 4)
    assert module.input_fn('{"instances": [[5.1, 3.5, 1.4, 0.2], [6, 3, 4, 1]]}', "application/json").shape == (2, 4)
    with pytest.raises(ValueError, match="expected 4 features"):
        module.input_fn(b"1,2", "text/csv")
