"""Bring-your-own-model library (include/mlpipeline/byom.py), without a server.

Packaging is checked the way the built-in XGBoost container consumes it (every top-level file of the
extracted tarball loaded as a model); config errors must name the file and the dotted key; requests
must be exactly what boto3's CreateModel / CreateEndpointConfig / CreateEndpoint take.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from include.mlpipeline import byom
from include.mlpipeline.config import CONFIG_DIR, ConfigError
from include.mlpipeline.run import SAGEMAKER_NAME_PATTERN, RunContext

NAME = "breast_cancer_xgb"
RUN_ID = "manual__2026-02-03T04:05:06+00:00"
CTX = RunContext(model=NAME, stage="dev", run_id=RUN_ID, ts_nodash="20260203T040506")


@pytest.fixture(scope="module")
def cfg() -> byom.ByomConfig:
    return byom.load_byom_config(NAME)


@pytest.fixture(scope="module")
def dev() -> byom.StageSettings:
    return byom.load_stage_settings("dev")


@pytest.fixture(scope="module")
def trained(cfg: byom.ByomConfig) -> dict[str, Any]:
    """The configured model trained once for the module (about a second on one thread)."""
    data = byom.load_dataset(cfg.data)
    train, test = byom.split_dataset(data, cfg.data.test_fraction, cfg.data.seed)
    booster, history = byom.train_booster(cfg.training, train, test)
    return {"data": data, "train": train, "test": test, "booster": booster, "history": history,
            "reference": byom.predict(booster, test.features)}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    return target


def write_byom(config_dir: Path, text: str, name: str = "m") -> str:
    (config_dir / "byom" / f"{name}.yaml").write_text(text)
    return name


VALID = """
data: {source: "sklearn://breast_cancer"}
training: {num_boost_round: 5, params: {objective: "binary:logistic"}}
serving: {xgboost_version: "3.2-0"}
"""


# ------------------------------------------------------------------------------------ config


def test_the_shipped_config_loads_with_its_documented_values(cfg, dev):
    assert cfg.name == NAME and cfg.slug == "breast-cancer-xgb"
    assert cfg.data.source == "sklearn://breast_cancer"
    assert cfg.training.params["objective"] == "binary:logistic"
    assert cfg.serving.xgboost_version == "3.2-0"
    assert byom.endpoint_name(cfg, dev) == "breast-cancer-xgb-byom-dev"
    assert NAME in byom.list_byom_models()


def test_stage_settings_come_from_base_and_the_stage_file_with_placeholders_filled():
    dev, prod = byom.load_stage_settings("dev"), byom.load_stage_settings("prod")
    assert (dev.aws.bucket, prod.aws.bucket) == ("mlpipeline-dev", "mlpipeline-prod")
    assert dev.aws.role_arn == "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
    assert dev.alerts.sns_topic_arn == "arn:aws:sns:us-east-1:123456789012:mlpipeline-alerts"
    assert dev.tags == {"project": "mlpipeline"}


def test_defaults_apply_to_a_minimal_file(config_dir):
    cfg = byom.load_byom_config(write_byom(config_dir, VALID), config_dir=config_dir)
    assert cfg.data.test_fraction == 0.25 and cfg.data.seed == 42
    assert cfg.check.max_abs_diff == 1e-5 and cfg.check.batch_rows == 100
    assert cfg.serving.endpoint_name == "{name_slug}-byom-{stage}" and cfg.serving.instance_count == 1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"training": {"num_boost_round": 0}}, "byom/m.yaml: training.num_boost_round: must be >= 1 (got 0)"),
        ({"training": {"params": {"objective": "reg:squarederror"}}},
         "byom/m.yaml: training.params: objective must be 'binary:logistic' (got 'reg:squarederror')"),
        ({"data": {"source": "sklearn://titanic"}}, "byom/m.yaml: data.source: unknown scikit-learn data set 'titanic'"),
        ({"data": {"source": "s3://bucket/data.csv"}}, "byom/m.yaml: data.source: must match ^(sklearn|file)://.+"),
        ({"data": {"test_fraction": 1.0}}, "byom/m.yaml: data.test_fraction: must be < 1.0 (got 1.0)"),
        ({"serving": {"xgboost_version": "latest"}}, "byom/m.yaml: serving.xgboost_version: must match"),
        ({"serving": {"instance_type": "m5.large"}}, "byom/m.yaml: serving.instance_type: must match"),
        ({"serving": {"endpoint_name": "{model}-x"}},
         "byom/m.yaml: serving.endpoint_name: unknown placeholder {model} (known: name, name_slug, stage)"),
        ({"serving": {"image_uri": "{acount}.dkr.ecr.{region}.amazonaws.com/x:1"}},
         "byom/m.yaml: serving.image_uri: unknown placeholder {acount} (known: account, region)"),
        ({"serving": {"xgboost_verison": "3.2-0"}},
         "byom/m.yaml: serving.xgboost_verison: unknown key (did you mean 'xgboost_version'?); allowed here: "),
        ({"check": {"max_abs_diff": 0}}, "byom/m.yaml: check.max_abs_diff: must be > 0.0 (got 0)"),
    ],
)
def test_config_errors_name_the_file_and_the_key(config_dir, edit, message):
    import yaml

    from include.mlpipeline.config import deep_merge

    raw = deep_merge(yaml.safe_load(VALID), edit)
    name = write_byom(config_dir, yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        byom.load_byom_config(name, config_dir=config_dir)
    assert any(p.startswith(message) for p in err.value.problems), err.value.problems


def test_missing_sections_and_unknown_models_and_bad_yaml_are_reported(config_dir):
    with pytest.raises(ConfigError) as err:
        byom.load_byom_config(write_byom(config_dir, "data: {source: 'sklearn://iris'}\n"), config_dir=config_dir)
    assert sorted(err.value.problems) == [
        "byom/m.yaml: serving: required key is missing",
        "byom/m.yaml: training: required key is missing",
    ]
    with pytest.raises(ConfigError, match=r"byom/nope.yaml: unknown BYOM model 'nope' \(available: breast_cancer_xgb, m\)"):
        byom.load_byom_config("nope", config_dir=config_dir)
    with pytest.raises(ConfigError, match=r"byom/m.yaml: invalid YAML \(line \d+, column \d+\): expected ',' or ']'"):
        byom.load_byom_config(write_byom(config_dir, "data:\n  - [unclosed\n"), config_dir=config_dir)
    with pytest.raises(ConfigError, match="name: not a key: the file name"):
        byom.load_byom_config(write_byom(config_dir, "name: other\n" + VALID), config_dir=config_dir)


def test_stage_errors_name_the_stage_file_that_set_the_key(config_dir):
    stage = config_dir / "stages" / "dev.yaml"
    stage.write_text(stage.read_text().replace("bucket: mlpipeline-dev", "bucket: Not_A_Bucket"))
    with pytest.raises(ConfigError, match=r"^stages/dev.yaml: aws.bucket: must match"):
        byom.load_stage_settings("dev", config_dir=config_dir)
    with pytest.raises(ConfigError, match=r"stages/qa.yaml: unknown stage 'qa' \(available: dev, prod\)"):
        byom.load_stage_settings("qa", config_dir=config_dir)
    base = config_dir / "base.yaml"
    base.write_text(base.read_text().replace("role/SageMakerExecutionRole", "role/{acct}"))
    with pytest.raises(ConfigError, match=r"base.yaml: aws.role_arn: unknown placeholder \{acct\}"):
        byom.load_stage_settings("prod", config_dir=config_dir)


def test_trigger_params_override_the_file_and_bad_ones_are_blamed_on_the_run():
    cfg, stage = byom.config_for_run(NAME, {"stage": "prod", "num_boost_round": 7,
                                            "xgboost_params": '{"max_depth": 2}'})
    assert stage.stage == "prod" and stage.aws.bucket == "mlpipeline-prod"
    assert cfg.training.num_boost_round == 7
    assert cfg.training.params["max_depth"] == 2 and cfg.training.params["eta"] == 0.2  # merged, not replaced
    with pytest.raises(ConfigError, match=r"^run overrides: training.num_boost_round: must be >= 1 \(got 0\)"):
        byom.config_for_run(NAME, {"num_boost_round": 0})
    with pytest.raises(ConfigError, match="run overrides: xgboost_params: not a JSON object"):
        byom.config_for_run(NAME, {"xgboost_params": "{max_depth: 2"})
    with pytest.raises(ConfigError, match=r"run overrides: xgboost_params: must be a JSON object \(got list\)"):
        byom.config_for_run(NAME, {"xgboost_params": "[2]"})


def test_a_failed_task_is_alerted_on_the_stage_topic(aws, monkeypatch):
    """The pipeline's failure callback, pointed at the BYOM run's stage settings: one SNS message."""
    from types import SimpleNamespace

    import boto3
    from moto.sns.models import sns_backends

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws", "extra": {"region_name": "us-east-1"}}')
    prod = byom.load_stage_settings("prod")
    topic = prod.alerts.sns_topic_arn
    assert boto3.client("sns", region_name="us-east-1").create_topic(Name=topic.rsplit(":", 1)[1])["TopicArn"] == topic
    ti = SimpleNamespace(task_id="train", dag_id=f"{NAME}_byom", try_number=2)

    byom.failure_callback(NAME)({"params": {"stage": "prod"}, "run_id": RUN_ID, "ti": ti,
                                 "exception": RuntimeError("boom")})

    sent = sns_backends[prod.aws.account_id]["us-east-1"].topics[topic].sent_notifications
    assert len(sent) == 1, "no alert was published"
    _, message, subject, *_ = sent[0]
    assert subject == f"[prod] {NAME} (byom): task train failed"
    assert json.loads(message)["default"] == f"DAG {NAME}_byom run {RUN_ID} task train try 2 failed: boom"


# ----------------------------------------------------------------------------- compatibility


def test_a_container_older_than_the_training_xgboost_is_refused():
    with pytest.raises(byom.BringYourOwnModelError) as err:
        byom.check_container_compatibility("3.2.0", "1.7-1")
    assert "trained with XGBoost 3.2.0 but serving.xgboost_version '1.7-1' runs XGBoost 1.7" in str(err.value)
    assert "Set serving.xgboost_version to 3.2-x or newer" in str(err.value)
    byom.check_container_compatibility("3.2.0", "3.2-0")  # same release
    byom.check_container_compatibility("1.7.6", "3.2-0")  # newer container reads older models
    with pytest.raises(ValueError, match="not a built-in XGBoost container version"):
        byom.check_container_compatibility("3.2.0", "3.2")
    assert byom.container_xgboost_version("1.7-1") == (1, 7)


# ---------------------------------------------------------------------------- data, training


def test_the_split_is_deterministic_stratified_and_disjoint(cfg, trained):
    data, train, test = trained["data"], trained["train"], trained["test"]
    assert (data.rows, train.rows, test.rows) == (569, 426, 143)
    again_train, again_test = byom.split_dataset(data, cfg.data.test_fraction, cfg.data.seed)
    assert (again_test.features == test.features).all() and (again_train.labels == train.labels).all()
    share = data.labels.mean()
    assert abs(test.labels.mean() - share) < 0.01 and abs(train.labels.mean() - share) < 0.01
    train_rows = {tuple(r) for r in train.features}
    assert not any(tuple(r) in train_rows for r in test.features)
    assert len(data.feature_names) == 30 and data.feature_names[0] == "mean radius"


def test_labelled_csv_round_trips_every_value_exactly(trained):
    test = trained["test"]
    text = byom.to_labelled_csv(test)
    assert text.count("\n") == test.rows and text.split(",", 1)[0] in ("0", "1")
    back = byom.from_labelled_csv(text, test.feature_names)
    assert (back.features == test.features).all() and (back.labels == test.labels).all()
    assert byom.feature_rows_csv(test.features[:1])[0] == text.splitlines()[0].split(",", 1)[1]


def test_the_model_trained_in_the_task_is_good_and_its_metrics_are_right(cfg, trained):
    test, reference = trained["test"], trained["reference"]
    metrics = byom.classification_metrics(test.labels, reference)
    hand_accuracy = sum(int(p > 0.5) == int(y) for p, y in zip(reference, test.labels, strict=True)) / test.rows
    assert metrics["accuracy"] == pytest.approx(hand_accuracy)
    assert metrics["accuracy"] >= 0.93 and metrics["auc"] >= 0.97 and metrics["rows"] == 143
    assert byom.check_training_quality(cfg.training, metrics) == []
    assert trained["history"]["test"]["auc"][-1] == pytest.approx(metrics["auc"], abs=1e-6)
    strict = cfg.training.model_copy(update={"min_test_auc": 0.9999})
    assert byom.check_training_quality(strict, metrics) == [
        f"test AUC {metrics['auc']:.4f} < training.min_test_auc 0.9999"
    ]


def test_file_sources_and_non_binary_labels(tmp_path):
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("a,label,b\n1.5,0,2\n2.5,1,3\n3.5,1,4\n")
    data = byom.load_dataset(byom.DataSettings(source=f"file://{csv_file}", label_column="label"))
    assert data.feature_names == ["a", "b"] and data.features.tolist() == [[1.5, 2], [2.5, 3], [3.5, 4]]
    assert data.labels.tolist() == [0, 1, 1]
    with pytest.raises(byom.BringYourOwnModelError, match=r"no 'target' column in the header \['a', 'label', 'b'\]"):
        byom.load_dataset(byom.DataSettings(source=f"file://{csv_file}"))
    with pytest.raises(byom.BringYourOwnModelError, match=r"sklearn://iris: binary:logistic needs labels 0 and 1, the data has \[0.0, 1.0, 2.0\]"):
        byom.load_dataset(byom.DataSettings(source="sklearn://iris"))


# ---------------------------------------------------------------------------------- packaging


def test_the_tarball_holds_only_xgboost_model_in_json(trained, tmp_path):
    path = byom.package_model(trained["booster"], tmp_path / "out" / "model.tar.gz")
    [(name, kind, size)] = byom.tarball_members(path)
    assert (name, kind) == ("xgboost-model", "file") and size > 1000
    with tarfile.open(path, "r:gz") as tar:
        member = tar.getmember("xgboost-model")
        raw = tar.extractfile(member).read()
    assert (member.uid, member.mode) == (0, 0o644)
    model = json.loads(raw)  # JSON text: the version-stable format every XGBoost >= 1.0 reads
    assert model["learner"]["objective"]["name"] == "binary:logistic"
    assert int(model["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"]) == 60


def test_the_packaged_model_loads_back_like_the_container_does_and_predicts_the_same(trained, tmp_path):
    path = byom.package_model(trained["booster"], tmp_path / "model.tar.gz")
    [booster] = byom.load_packaged_model(path)
    test = trained["test"]
    assert byom.predict(booster, test.features) == trained["reference"]  # bit for bit
    assert byom.verify_package(path, test.features, trained["reference"], tolerance=0.0) == 0.0
    assert 0.0 < min(trained["reference"]) and max(trained["reference"]) < 1.0  # probabilities


def test_verify_package_refuses_an_archive_the_container_would_misread(trained, tmp_path):
    good = byom.package_model(trained["booster"], tmp_path / "good.tar.gz")
    with tarfile.open(good, "r:gz") as tar:
        model_bytes = tar.extractfile("xgboost-model").read()
    extra = tmp_path / "extra.tar.gz"
    with tarfile.open(extra, "w:gz") as tar:  # a second top-level file would be loaded as a model too
        for name, data in (("xgboost-model", model_bytes), ("metrics.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(byom.BringYourOwnModelError, match="expected exactly one file 'xgboost-model'"):
        byom.verify_package(extra, trained["test"].features, trained["reference"], tolerance=0.0)
    other, _ = byom.train_booster(
        trained_cfg_rounds(3), trained["train"], trained["test"]
    )
    wrong = byom.package_model(other, tmp_path / "wrong.tar.gz")
    with pytest.raises(byom.BringYourOwnModelError, match="the reloaded model predicts up to"):
        byom.verify_package(wrong, trained["test"].features, trained["reference"], tolerance=1e-6)


def trained_cfg_rounds(rounds: int) -> byom.TrainingSettings:
    return byom.TrainingSettings(num_boost_round=rounds, params={"objective": "binary:logistic", "nthread": 1})


# ----------------------------------------------------------------------------------- requests


def test_deploy_request_is_the_built_in_image_plus_the_tarball(cfg, dev):
    url = byom.model_data_uri(cfg, dev, CTX)
    assert url == "s3://mlpipeline-dev/byom/breast_cancer_xgb/manual__2026-02-03T04-05-06-00-00/model/model.tar.gz"
    image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"
    request = byom.deploy_request(cfg, dev, CTX, model_data_url=url, image=image)
    tags = [{"Key": "project", "Value": "mlpipeline"}, {"Key": "model", "Value": NAME},
            {"Key": "stage", "Value": "dev"}, {"Key": "airflow_run_id", "Value": RUN_ID}]
    name = "breast-cancer-xgb-byom-dev-20260203t040506"
    assert request == {
        "Model": {
            "ModelName": name,
            "PrimaryContainer": {"Image": image, "ModelDataUrl": url},
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/SageMakerExecutionRole",
            "Tags": tags,
        },
        "EndpointConfig": {
            "EndpointConfigName": name,
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large",
                                    "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}],
            "Tags": tags,
        },
        "Endpoint": {"EndpointName": "breast-cancer-xgb-byom-dev", "EndpointConfigName": name, "Tags": tags},
    }
    assert SAGEMAKER_NAME_PATTERN.match(name)
    assert byom.deploy_request(cfg, dev, CTX, model_data_url=url, image=image) == request  # a retry: same names
    with pytest.raises(ValueError, match="ModelDataUrl must be an s3:// URI of a .tar.gz"):
        byom.deploy_request(cfg, dev, CTX, model_data_url="s3://b/k/xgboost-model", image=image)


def test_the_image_is_the_real_built_in_one_of_the_stage_region(cfg, dev):
    assert byom.image_uri(cfg, dev) == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"
    frankfurt = dev.model_copy(update={"aws": dev.aws.model_copy(update={"region": "eu-central-1"})})
    assert byom.image_uri(cfg, frankfurt) == "492215442770.dkr.ecr.eu-central-1.amazonaws.com/sagemaker-xgboost:3.2-0"
    old = cfg.model_copy(update={"serving": cfg.serving.model_copy(update={"xgboost_version": "1.7-1"})})
    assert byom.image_uri(old, dev) == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    mirror = cfg.model_copy(update={"serving": cfg.serving.model_copy(
        update={"image_uri": "{account}.dkr.ecr.{region}.amazonaws.com/mirror/sagemaker-xgboost:3.2-0"})})
    assert byom.image_uri(mirror, dev) == "123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/sagemaker-xgboost:3.2-0"


# ------------------------------------------------------------------------------ endpoint check


def test_predictions_are_read_in_both_of_the_containers_csv_shapes():
    assert byom.parse_predictions(b"0.25,0.5,1e-3") == [0.25, 0.5, 0.001]  # real-time: one line
    assert byom.parse_predictions(b"0.25\n0.5\n") == [0.25, 0.5]  # batch transform: one a line
    assert byom.parse_predictions(b"") == []
    with pytest.raises(byom.EndpointCheckError, match=r"non-number: '\{\"predictions\": \[0.1\]\}'"):
        byom.parse_predictions(b'{"predictions": [0.1]}')
    with pytest.raises(byom.EndpointCheckError, match="answered nan"):
        byom.parse_predictions(b"0.1,nan")


class ScoringRuntime:
    """sagemaker-runtime stand-in that really scores each request with a booster and answers like the
    built-in container (comma-joined CSV), so batching and parsing are exercised on true numbers."""

    def __init__(self, booster: Any, drop_last: bool = False) -> None:
        self.booster, self.drop_last, self.requests = booster, drop_last, []

    def invoke_endpoint(self, **kw: Any) -> dict[str, Any]:
        import numpy as np

        assert (kw["ContentType"], kw["Accept"]) == ("text/csv", "text/csv")
        rows = [[float(v) for v in line.split(",")] for line in kw["Body"].decode().splitlines()]
        self.requests.append(len(rows))
        preds = byom.predict(self.booster, np.asarray(rows))
        if self.drop_last:
            preds = preds[:-1]
        return {"Body": io.BytesIO(",".join(map(str, preds)).encode())}


def test_invoke_rows_batches_and_keeps_row_order(trained):
    test = trained["test"]
    runtime = ScoringRuntime(trained["booster"])
    answers = byom.invoke_rows(runtime, "ep", byom.feature_rows_csv(test.features), batch_rows=50)
    assert runtime.requests == [50, 50, 43]
    assert byom.max_abs_diff(answers, trained["reference"]) == 0.0
    with pytest.raises(byom.EndpointCheckError, match="ep: request 1 of 50 rows answered 49 predictions"):
        byom.invoke_rows(ScoringRuntime(trained["booster"], drop_last=True), "ep",
                         byom.feature_rows_csv(test.features), batch_rows=50)


def test_the_check_passes_identical_answers_and_fails_drift_or_poor_accuracy(cfg, trained):
    test, reference = trained["test"], trained["reference"]
    ok = byom.compare_with_reference(cfg.check, "ep", reference, reference, test.labels)
    assert ok.passed and ok.reasons == [] and ok.max_abs_diff == 0.0 and ok.rows == 143 and ok.accuracy >= 0.93
    drifted = list(reference)
    drifted[7] += 1e-4
    bad = byom.compare_with_reference(cfg.check, "ep", drifted, reference, test.labels)
    assert not bad.passed
    assert bad.reasons[0].startswith("endpoint and in-task booster differ by up to 0.0001 (row 7:")
    assert bad.reasons[0].endswith("> check.max_abs_diff 1e-05")
    flipped = [1.0 - p for p in reference]
    poor = byom.compare_with_reference(cfg.check, "ep", flipped, flipped, test.labels)
    assert poor.reasons == [f"endpoint accuracy {poor.accuracy:.4f} < check.min_accuracy 0.93"]
    with pytest.raises(byom.EndpointCheckError, match="142 answers for 143 rows"):
        byom.compare_with_reference(cfg.check, "ep", reference[:-1], reference, test.labels)
