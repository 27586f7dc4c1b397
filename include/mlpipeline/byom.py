"""Bring your own model: an XGBoost model trained *outside* SageMaker, served by SageMaker's built-in
XGBoost container.

The ``<name>_byom`` DAG (``dags/byom_pipeline.py``) trains a booster inside an Airflow task, packages it
the way the built-in container loads models, uploads the tarball and deploys it with the real image
(``sagemaker.core.image_uris.retrieve("xgboost", region, version)``); then it asks the endpoint to score
the held-out rows and fails unless the answers equal the in-task booster's. On AWS that image is AWS's
container; on localmaker the same URI resolves to ``localmaker/builtins/xgboost_algo.py``. Nothing here
knows which.

Config: one file per model under ``include/config/byom/<name>.yaml`` (schema: :class:`ByomConfig`),
plus the stage's ``aws`` / ``tags`` / ``alerts`` / ``airflow`` sections from ``base.yaml`` <- ``stages/<stage>.yaml``
(validated with the pipeline's own :class:`~include.mlpipeline.config.AwsConfig`,
:class:`~include.mlpipeline.config.AlertsSettings` and :class:`~include.mlpipeline.config.AirflowSettings`). A separate directory because a BYOM model has no
SageMaker training job, no ETL schema and no registry gate: ``models/*.yaml`` would need schema changes
to express it, and every other DAG builds one DAG per file there.

What the built-in container accepts (aws/sagemaker-xgboost-container,
``algorithm_mode/serve_utils.py::get_loaded_booster``): it loads *every regular file at the top of the
model directory*, each with ``pickle.load`` and, failing that, ``xgboost.Booster().load_model``, and
averages the predictions of all of them. So the tarball holds exactly one file, ``xgboost-model``,
written by ``Booster.save_model`` in XGBoost's JSON format (the version-stable format; the container's
loader detects JSON by content, whatever the file name). Pickles are not used: they are tied to the
XGBoost and Python versions of the writer.

The container's XGBoost must be at least as new as the one that trained the model: XGBoost guarantees
only backward compatibility of saved models. Measured, not assumed: a binary:logistic model saved by
XGBoost 3.2 stores ``base_score`` as ``"[6.27E-1]"``; XGBoost 1.7.6 (``sagemaker-xgboost:1.7-1``) loads
the file without complaint, reads the base score as 0.5 and predicts up to 0.03 off. Hence
:func:`check_container_compatibility`, run before training.

Importing this module is cheap (stdlib, pydantic, PyYAML): DAG files import it at parse time. numpy,
scikit-learn, xgboost and the SageMaker SDK load inside the functions that need them.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from .config import (
    CONFIG_DIR,
    INSTANCE_TYPE_PATTERN,
    MODEL_NAME_PATTERN,
    NAME_PATTERN,
    OVERRIDES_SOURCE,
    PROJECT_ROOT,
    AirflowSettings,
    AlertsSettings,
    AwsConfig,
    ConfigError,
    Section,
    deep_merge,
    default_stage,
    fill_template,
    fill_templates,
    json_object_param,
    list_stages,
    merge_layers,
    placeholders,
    read_yaml,
    slug,
    validation_problems,
)
from .run import RunContext, s3_uri, sagemaker_name, split_s3_uri

#: Where the BYOM model files live (one per model).
BYOM_SUBDIR = "byom"
#: The file the built-in container loads; the only member of ``model.tar.gz``.
MODEL_FILE = "xgboost-model"
#: The tarball's name, as a SageMaker training job would write it.
MODEL_TARBALL = "model.tar.gz"
#: The only objective this pipeline's accuracy/AUC check understands.
OBJECTIVE = "binary:logistic"
#: scikit-learn's bundled tabular data sets (``sklearn.datasets.load_<name>``): nothing is downloaded.
SKLEARN_DATASETS = ("breast_cancer", "diabetes", "digits", "iris", "wine")
#: What the endpoint is sent and asked for.
CSV = "text/csv"
#: The sections of ``base.yaml`` <- ``stages/<stage>.yaml`` a BYOM run reads (:class:`StageSettings`).
STAGE_SECTIONS = ("aws", "tags", "alerts", "airflow")
#: Keys of those sections that may use ``{account}`` and ``{region}``, as in the pipeline config.
STAGE_TEMPLATED_KEYS = ("aws.role_arn", "alerts.sns_topic_arn")

_CONTAINER_VERSION = re.compile(r"^(\d+)\.(\d+)-(\d+)$")


class BringYourOwnModelError(RuntimeError):
    """The run cannot go on: its data, model or endpoint is not what the pipeline promised."""


class EndpointCheckError(BringYourOwnModelError):
    """The endpoint answered, but not what the booster trained in the task predicts."""


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


class DataSettings(Section):
    """The tabular data set and its deterministic train/test split.

    Attributes:
        source: ``sklearn://<name>`` (one of :data:`SKLEARN_DATASETS`, bundled with scikit-learn) or
            ``file://<csv>`` (header row, numbers only; relative paths resolve against the project root).
        label_column: the 0/1 label column of a ``file://`` CSV (``sklearn://`` sets use their target).
        test_fraction: share of rows held out for the model's and the endpoint's evaluation.
        seed: seed of the stratified split: the same rows land in the same split on every run.
    """

    source: str = Field(pattern=r"^(sklearn|file)://.+")
    label_column: str = Field(default="target", min_length=1)
    test_fraction: float = Field(default=0.25, gt=0, lt=1)
    seed: int = Field(default=42, ge=0)

    @field_validator("source")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        if value.startswith("sklearn://") and value[len("sklearn://") :] not in SKLEARN_DATASETS:
            raise ValueError(
                f"unknown scikit-learn data set {value[len('sklearn://'):]!r} "
                f"(bundled: {', '.join(SKLEARN_DATASETS)})"
            )
        return value


XGBoostParam = bool | int | float | str | list[str]


class TrainingSettings(Section):
    """The booster trained inside the Airflow task (``xgboost.train``), and its quality bar.

    Attributes:
        num_boost_round: boosting rounds.
        params: ``xgboost.train`` parameters; ``objective`` must be ``binary:logistic``.
        min_test_accuracy / min_test_auc: the run stops before anything is deployed below these.
    """

    num_boost_round: int = Field(ge=1, le=10000)
    params: dict[str, XGBoostParam] = Field(default_factory=dict)
    min_test_accuracy: float = Field(default=0.0, ge=0, le=1)
    min_test_auc: float = Field(default=0.0, ge=0, le=1)

    @field_validator("params")
    @classmethod
    def _binary_logistic(cls, value: dict[str, XGBoostParam]) -> dict[str, XGBoostParam]:
        objective = value.get("objective", OBJECTIVE)
        if objective != OBJECTIVE:
            raise ValueError(
                f"objective must be {OBJECTIVE!r} (got {objective!r}): the endpoint check measures "
                "binary-classification accuracy"
            )
        return value


class ServingSettings(Section):
    """The built-in XGBoost container and the endpoint serving the model.

    Attributes:
        xgboost_version: the built-in container's version (``3.2-0``, ``1.7-1``...), as
            ``sagemaker.core.image_uris.retrieve("xgboost", region, version)`` takes it.
        image_uri: use this image instead of resolving one (a private mirror of the same container);
            may use ``{region}`` and ``{account}``.
        endpoint_name: stable across runs (clients call it); may use ``{name}``, ``{name_slug}``, ``{stage}``.
        variant_name / instance_type / instance_count: the production variant.
    """

    xgboost_version: str = Field(pattern=_CONTAINER_VERSION.pattern)
    image_uri: str | None = Field(default=None, min_length=1, max_length=255)
    endpoint_name: str = Field(default="{name_slug}-byom-{stage}", min_length=1)
    variant_name: str = Field(default="AllTraffic", pattern=NAME_PATTERN)
    instance_type: str = Field(default="ml.m5.large", pattern=INSTANCE_TYPE_PATTERN)
    instance_count: int = Field(default=1, ge=1)

    @field_validator("endpoint_name")
    @classmethod
    def _endpoint_placeholders(cls, value: str) -> str:
        placeholders(value, ("name", "name_slug", "stage"))
        return value

    @field_validator("image_uri")
    @classmethod
    def _image_placeholders(cls, value: str | None) -> str | None:
        if value is not None:
            placeholders(value, ("account", "region"))
        return value


class CheckSettings(Section):
    """The deployed endpoint's acceptance test on the held-out rows.

    Attributes:
        max_abs_diff: largest allowed difference between an endpoint answer and the in-task booster's
            prediction for the same row.
        min_accuracy: accuracy (threshold 0.5) the endpoint's answers must reach.
        batch_rows: rows per ``InvokeEndpoint`` request (real-time payloads are limited to 6 MB).
    """

    max_abs_diff: float = Field(default=1e-5, gt=0, le=1)
    min_accuracy: float = Field(default=0.0, ge=0, le=1)
    batch_rows: int = Field(default=100, ge=1, le=10000)


class ByomConfig(Section):
    """One ``include/config/byom/<name>.yaml``."""

    name: str
    description: str = Field(default="", max_length=1024)
    data: DataSettings
    training: TrainingSettings
    serving: ServingSettings
    check: CheckSettings = Field(default_factory=CheckSettings)

    @property
    def slug(self) -> str:
        """The name as SageMaker names allow it (``breast_cancer_xgb`` -> ``breast-cancer-xgb``)."""
        return slug(self.name)


class StageSettings(Section):
    """The parts of ``base.yaml`` <- ``stages/<stage>.yaml`` a BYOM run uses: account, bucket, tags,
    alerts and how the endpoint operator waits."""

    stage: str
    aws: AwsConfig
    tags: dict[str, str] = Field(default_factory=dict)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def byom_dir(config_dir: Path | None = None) -> Path:
    return (config_dir or CONFIG_DIR) / BYOM_SUBDIR


def list_byom_models(config_dir: Path | None = None) -> list[str]:
    """Names of the BYOM models (``byom/*.yaml``), for the one-DAG-per-model file."""
    return sorted(p.stem for p in byom_dir(config_dir).glob("*.yaml"))


def load_byom_config(
    name: str, overrides: Mapping[str, Any] | None = None, config_dir: Path | None = None
) -> ByomConfig:
    """Read and validate ``byom/<name>.yaml`` (with ``overrides`` merged over it).

    Raises:
        ConfigError: unknown name (listing the known ones), unreadable YAML or invalid values; each
            problem reads ``byom/<name>.yaml: dotted.key: message`` (or ``run overrides: ...``).
    """
    available = list_byom_models(config_dir)
    if name not in available:
        raise ConfigError(
            [f"{BYOM_SUBDIR}/{name}.yaml: unknown BYOM model {name!r} (available: {', '.join(available) or 'none'})"]
        )
    if not MODEL_NAME_PATTERN.match(name):
        raise ConfigError([f"{BYOM_SUBDIR}/{name}.yaml: the file name must be letters, digits, '_' or '-'"])
    relative = f"{BYOM_SUBDIR}/{name}.yaml"
    raw = read_yaml(config_dir or CONFIG_DIR, relative)
    if "name" in raw:
        raise ConfigError([f"{relative}: name: not a key: the file name ({name}) is the model's name"])
    merged, sources = merge_layers([(relative, raw), (OVERRIDES_SOURCE, overrides or {})])
    try:
        return ByomConfig.model_validate({**merged, "name": name})
    except ValidationError as exc:
        raise validation_problems(exc, merged, sources, relative, root=ByomConfig, reserved=("name",)) from None


def load_stage_settings(stage: str, config_dir: Path | None = None) -> StageSettings:
    """:data:`STAGE_SECTIONS` of ``base.yaml`` <- ``stages/<stage>.yaml``, placeholders filled.

    ``aws.role_arn`` and ``alerts.sns_topic_arn`` may use ``{account}`` and ``{region}`` (as the
    pipeline config allows); a problem names the stage file if it set the key, else ``base.yaml``.
    """
    config_dir = config_dir or CONFIG_DIR
    stages = list_stages(config_dir)
    if stage not in stages:
        raise ConfigError([f"stages/{stage}.yaml: unknown stage {stage!r} (available: {', '.join(stages)})"])
    stage_file = f"stages/{stage}.yaml"
    merged, sources = merge_layers(
        [("base.yaml", read_yaml(config_dir, "base.yaml")), (stage_file, read_yaml(config_dir, stage_file))]
    )
    section = {k: merged[k] for k in STAGE_SECTIONS if k in merged}
    aws = section["aws"] if isinstance(section.get("aws"), Mapping) else {}
    variables = {"account": str(aws.get("account_id", "")), "region": str(aws.get("region", ""))}
    fill_templates(section, sources, STAGE_TEMPLATED_KEYS, variables, "base.yaml")
    try:
        return StageSettings.model_validate({**section, "stage": stage})
    except ValidationError as exc:
        raise validation_problems(exc, section, sources, "base.yaml", root=StageSettings, reserved=("stage",)) from None


def config_for_run(name: str, params: Mapping[str, Any] | None = None) -> tuple[ByomConfig, StageSettings]:
    """The model config with the trigger's overrides, and the stage it runs in (``params["stage"]``)."""
    params = dict(params or {})
    overrides: dict[str, Any] = {}
    if params.get("num_boost_round") is not None:
        overrides = deep_merge(overrides, {"training": {"num_boost_round": params["num_boost_round"]}})
    if params.get("xgboost_params"):
        xgboost_params = json_object_param("xgboost_params", params["xgboost_params"])
        overrides = deep_merge(overrides, {"training": {"params": xgboost_params}})
    return load_byom_config(name, overrides), load_stage_settings(params.get("stage") or default_stage())


# --------------------------------------------------------------------------------------------
# Names, locations, requests (pure: what boto3 / the provider's operators take)
# --------------------------------------------------------------------------------------------


def endpoint_name(cfg: ByomConfig, stage: StageSettings) -> str:
    name = fill_template(cfg.serving.endpoint_name, {"name": cfg.name, "name_slug": cfg.slug, "stage": stage.stage})
    if not re.match(NAME_PATTERN, name):
        raise ConfigError(
            [f"{BYOM_SUBDIR}/{cfg.name}.yaml: serving.endpoint_name: {name!r} is not a valid SageMaker name"]
        )
    return name


def model_name(cfg: ByomConfig, stage: StageSettings, ctx: RunContext) -> str:
    """Per run (a retry rebuilds the same name and finds what its first try created)."""
    return sagemaker_name(cfg.slug, "byom", stage.stage, ctx.ts_nodash)


def endpoint_config_name(cfg: ByomConfig, stage: StageSettings, ctx: RunContext) -> str:
    return sagemaker_name(cfg.slug, "byom", stage.stage, ctx.ts_nodash)


def run_prefix(cfg: ByomConfig, stage: StageSettings, ctx: RunContext) -> str:
    """``s3://{bucket}/byom/{name}/{run_key}/``: everything one run writes."""
    return s3_uri(stage.aws.bucket, BYOM_SUBDIR, cfg.name, ctx.run_key, trailing_slash=True)


def run_uri(cfg: ByomConfig, stage: StageSettings, ctx: RunContext, what: str) -> str:
    return run_prefix(cfg, stage, ctx) + what.strip("/")


def model_data_uri(cfg: ByomConfig, stage: StageSettings, ctx: RunContext) -> str:
    return run_uri(cfg, stage, ctx, f"model/{MODEL_TARBALL}")


def image_uri(cfg: ByomConfig, stage: StageSettings) -> str:
    """The built-in XGBoost image of the stage's region, as the SageMaker SDK knows it (each region has
    its own registry account), or the configured ``serving.image_uri``."""
    if cfg.serving.image_uri:
        return fill_template(cfg.serving.image_uri, {"region": stage.aws.region, "account": stage.aws.account_id})
    from sagemaker.core import image_uris

    return image_uris.retrieve("xgboost", stage.aws.region, cfg.serving.xgboost_version)


def _tags(cfg: ByomConfig, stage: StageSettings, ctx: RunContext) -> list[dict[str, str]]:
    tags = {**stage.tags, "model": cfg.name, "stage": stage.stage, "airflow_run_id": ctx.run_id[:256]}
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def deploy_request(
    cfg: ByomConfig, stage: StageSettings, ctx: RunContext, *, model_data_url: str, image: str
) -> dict[str, Any]:
    """``{"Model", "EndpointConfig", "Endpoint"}`` as ``SageMakerEndpointOperator`` takes it.

    The model is the built-in image plus the uploaded tarball: no training job, no inference code.
    """
    if not model_data_url.startswith("s3://") or not model_data_url.endswith(".tar.gz"):
        raise ValueError(f"ModelDataUrl must be an s3:// URI of a .tar.gz (got {model_data_url!r})")
    model = model_name(cfg, stage, ctx)
    tags = _tags(cfg, stage, ctx)
    return {
        "Model": {
            "ModelName": model,
            "PrimaryContainer": {"Image": image, "ModelDataUrl": model_data_url},
            "ExecutionRoleArn": stage.aws.role_arn,
            "Tags": tags,
        },
        "EndpointConfig": {
            "EndpointConfigName": endpoint_config_name(cfg, stage, ctx),
            "ProductionVariants": [
                {
                    "VariantName": cfg.serving.variant_name,
                    "ModelName": model,
                    "InstanceType": cfg.serving.instance_type,
                    "InitialInstanceCount": cfg.serving.instance_count,
                    "InitialVariantWeight": 1.0,
                }
            ],
            "Tags": tags,
        },
        "Endpoint": {
            "EndpointName": endpoint_name(cfg, stage),
            "EndpointConfigName": endpoint_config_name(cfg, stage, ctx),
            "Tags": tags,
        },
    }


# --------------------------------------------------------------------------------------------
# Compatibility of the model file with the container
# --------------------------------------------------------------------------------------------


def container_xgboost_version(container_version: str) -> tuple[int, int]:
    """``"1.7-1"`` -> ``(1, 7)``: the XGBoost release the built-in container ships."""
    match = _CONTAINER_VERSION.match(container_version)
    if not match:
        raise ValueError(f"not a built-in XGBoost container version such as '3.2-0': {container_version!r}")
    return int(match.group(1)), int(match.group(2))


def check_container_compatibility(library_version: str, container_version: str) -> None:
    """Refuse a container older than the XGBoost that trains the model.

    Saved models are backward compatible only; forward compatibility fails *silently* (see the
    module doc: 1.7 reads a 3.x model's base score as 0.5).
    """
    match = re.match(r"^(\d+)\.(\d+)", library_version)
    if not match:
        raise ValueError(f"cannot read an XGBoost version from {library_version!r}")
    trained = int(match.group(1)), int(match.group(2))
    served = container_xgboost_version(container_version)
    if served < trained:
        raise BringYourOwnModelError(
            f"the model is trained with XGBoost {library_version} but serving.xgboost_version "
            f"{container_version!r} runs XGBoost {served[0]}.{served[1]}: XGBoost loads models only from "
            f"its own or older releases (a 3.x model loads in 1.7 with a wrong base score). Set "
            f"serving.xgboost_version to {trained[0]}.{trained[1]}-x or newer, or train with "
            f"xgboost=={served[0]}.{served[1]}.*"
        )


# --------------------------------------------------------------------------------------------
# Data, training, packaging (numpy / scikit-learn / xgboost inside)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """Features (float64 rows), 0/1 labels and feature names."""

    features: Any
    labels: Any
    feature_names: list[str]

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])


def load_dataset(data: DataSettings) -> Dataset:
    """Read the configured source; labels must be 0/1 (binary:logistic's contract)."""
    import numpy as np

    scheme, _, rest = data.source.partition("://")
    if scheme == "sklearn":
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{rest}")()
        features = np.asarray(bunch.data, dtype=np.float64)
        labels = np.asarray(bunch.target, dtype=np.float64)
        names = [str(n) for n in getattr(bunch, "feature_names", [])] or [f"f{i}" for i in range(features.shape[1])]
    else:
        path = Path(rest)
        path = path if path.is_absolute() else PROJECT_ROOT / path
        features, labels, names = _read_labelled_csv(path, data.label_column)
    values = set(np.unique(labels).tolist())
    if not values <= {0.0, 1.0} or len(values) != 2:
        shown = sorted(values)[:10]
        raise BringYourOwnModelError(
            f"{data.source}: binary:logistic needs labels 0 and 1, the data has {shown}"
            + (" ..." if len(values) > 10 else "")
        )
    if not np.isfinite(features).all():
        raise BringYourOwnModelError(f"{data.source}: features contain NaN or infinite values")
    return Dataset(features=features, labels=labels, feature_names=names)


def _read_labelled_csv(path: Path, label_column: str) -> tuple[Any, Any, list[str]]:
    import numpy as np

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BringYourOwnModelError(f"file://{path}: cannot read: {exc.strerror or exc}") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or label_column not in header:
        raise BringYourOwnModelError(f"file://{path}: no {label_column!r} column in the header {header}")
    label_at = header.index(label_column)
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            rows.append([float(v) for v in row])
        except ValueError:
            raise BringYourOwnModelError(f"file://{path}: line {line}: not all numbers: {row[:5]}") from None
        if len(row) != len(header):
            raise BringYourOwnModelError(f"file://{path}: line {line}: {len(row)} fields, header has {len(header)}")
    table = np.asarray(rows, dtype=np.float64)
    names = [n for i, n in enumerate(header) if i != label_at]
    return np.delete(table, label_at, axis=1), table[:, label_at], names


def split_dataset(dataset: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Stratified and seeded: the same rows are held out on every run (and every retry)."""
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features, dataset.labels, test_size=test_fraction, random_state=seed, stratify=dataset.labels
    )
    return (
        Dataset(x_train, y_train, dataset.feature_names),
        Dataset(x_test, y_test, dataset.feature_names),
    )


def to_labelled_csv(dataset: Dataset) -> str:
    """``label,f1,...`` lines without a header; ``repr`` floats so the exact values round-trip."""
    return "".join(
        f"{int(label)}," + ",".join(repr(float(v)) for v in row) + "\n"
        for label, row in zip(dataset.labels, dataset.features, strict=True)
    )


def from_labelled_csv(text: str, feature_names: Sequence[str] | None = None) -> Dataset:
    import numpy as np

    table = np.asarray([[float(v) for v in line.split(",")] for line in text.splitlines() if line.strip()])
    if table.size == 0:
        raise BringYourOwnModelError("the CSV has no rows")
    names = list(feature_names or [f"f{i}" for i in range(table.shape[1] - 1)])
    return Dataset(features=table[:, 1:], labels=table[:, 0], feature_names=names)


def feature_rows_csv(features: Any) -> list[str]:
    """One ``text/csv`` line per row, features only: what the built-in container scores."""
    return [",".join(repr(float(v)) for v in row) for row in features]


def train_booster(training: TrainingSettings, train: Dataset, test: Dataset) -> tuple[Any, dict[str, Any]]:
    """``xgboost.train`` on ``train``, watching ``test``; returns the booster and its eval log."""
    import xgboost as xgb

    params = {"objective": OBJECTIVE, **training.params}
    dtrain = xgb.DMatrix(train.features, label=train.labels)
    dtest = xgb.DMatrix(test.features, label=test.labels)
    history: dict[str, Any] = {}
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=training.num_boost_round,
        evals=[(dtrain, "train"), (dtest, "test")],
        evals_result=history,
        verbose_eval=False,
    )
    return booster, history


def predict(booster: Any, features: Any) -> list[float]:
    """Probabilities of class 1, as the container computes them (a plain DMatrix of the rows)."""
    import xgboost as xgb

    return [float(p) for p in booster.predict(xgb.DMatrix(features))]


def classification_metrics(labels: Sequence[float], probabilities: Sequence[float]) -> dict[str, float]:
    """Accuracy at 0.5, ROC AUC and log loss (computed here, not taken from XGBoost's eval log)."""
    from sklearn.metrics import log_loss, roc_auc_score

    y = [int(v) for v in labels]
    p = [float(v) for v in probabilities]
    if len(y) != len(p) or not y:
        raise ValueError(f"{len(y)} labels but {len(p)} predictions")
    correct = sum(int(pi > 0.5) == yi for yi, pi in zip(y, p, strict=True))
    return {
        "accuracy": correct / len(y),
        "auc": float(roc_auc_score(y, p)),
        "logloss": float(log_loss(y, p, labels=[0, 1])),
        "rows": float(len(y)),
    }


def check_training_quality(training: TrainingSettings, metrics: Mapping[str, float]) -> list[str]:
    """Reasons the model is not good enough to deploy (empty when it is)."""
    reasons = []
    if metrics["accuracy"] < training.min_test_accuracy:
        reasons.append(f"test accuracy {metrics['accuracy']:.4f} < training.min_test_accuracy {training.min_test_accuracy}")
    if metrics["auc"] < training.min_test_auc:
        reasons.append(f"test AUC {metrics['auc']:.4f} < training.min_test_auc {training.min_test_auc}")
    return reasons


def package_model(booster: Any, target: Path) -> Path:
    """Write ``model.tar.gz`` holding one top-level file, :data:`MODEL_FILE`, in XGBoost's JSON format.

    ``Booster.save_model`` picks the format from the extension, so it writes ``*.json`` and the file is
    renamed: the container's loader sniffs the content, not the name. Nothing else goes in the archive:
    the container would try to load any other top-level file as a model too.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / f"{MODEL_FILE}.json"
        booster.save_model(str(saved))
        with tarfile.open(target, "w:gz") as tar:
            info = tar.gettarinfo(str(saved), arcname=MODEL_FILE)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with saved.open("rb") as fh:
                tar.addfile(info, fh)
    return target


def tarball_members(path: Path) -> list[tuple[str, str, int]]:
    """``(name, kind, size)`` of every member: what a reviewer (or a test) checks the layout with."""
    kinds = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink"}
    with tarfile.open(path, "r:gz") as tar:
        return [(m.name, kinds.get(m.type, "other"), m.size) for m in tar.getmembers()]


def load_packaged_model(path: Path) -> list[Any]:
    """Load the tarball the way the built-in container does: extract it, then every regular top-level
    file with ``Booster.load_model`` (pickles are not accepted here: :func:`package_model` writes none)."""
    import xgboost as xgb

    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        boosters = []
        for entry in sorted(os.listdir(tmp)):
            file = Path(tmp) / entry
            if file.is_file():
                booster = xgb.Booster()
                with warnings.catch_warnings():  # XGBoost >= 2.1 notes it guesses JSON for a name without extension
                    warnings.filterwarnings("ignore", message=".*Unknown file format.*")
                    booster.load_model(str(file))
                boosters.append(booster)
    if not boosters:
        raise BringYourOwnModelError(f"{path}: no model file at the top of the archive")
    return boosters


def verify_package(path: Path, features: Any, expected: Sequence[float], tolerance: float) -> float:
    """Reload the tarball as the container would and require the same predictions; returns the
    largest difference. Catches a wrong layout or format before anything is uploaded."""
    members = tarball_members(path)
    if [(name, kind) for name, kind, _ in members] != [(MODEL_FILE, "file")]:
        raise BringYourOwnModelError(f"{path}: expected exactly one file {MODEL_FILE!r}, found {members}")
    [booster] = load_packaged_model(path)
    reloaded = predict(booster, features)
    worst = max_abs_diff(reloaded, expected)
    if worst > tolerance:
        raise BringYourOwnModelError(f"{path}: the reloaded model predicts up to {worst:g} off the trained one")
    return worst


def max_abs_diff(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} values vs {len(b)}")
    return max((abs(float(x) - float(y)) for x, y in zip(a, b, strict=True)), default=0.0)


# --------------------------------------------------------------------------------------------
# The endpoint check
# --------------------------------------------------------------------------------------------


def parse_predictions(body: bytes) -> list[float]:
    """The built-in container's ``text/csv`` answer for binary:logistic: one probability per row, joined
    by commas (real-time) or newlines (batch transform); both are read. Non-finite values are refused."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return []
    values = []
    for token in re.split(r"[,\n]", text):
        token = token.strip()
        if not token:
            continue
        try:
            value = float(token)
        except ValueError:
            raise EndpointCheckError(f"the endpoint answered a non-number: {token[:100]!r} in {text[:200]!r}") from None
        if not math.isfinite(value):
            raise EndpointCheckError(f"the endpoint answered {value}")
        values.append(value)
    return values


def batches(rows: Sequence[str], size: int) -> list[list[str]]:
    return [list(rows[i : i + size]) for i in range(0, len(rows), size)]


def invoke_rows(runtime_client: Any, endpoint: str, rows: Sequence[str], batch_rows: int) -> list[float]:
    """Score ``rows`` (feature-only CSV lines) in requests of ``batch_rows``; one answer per row or an error."""
    answers: list[float] = []
    for i, batch in enumerate(batches(rows, batch_rows), start=1):
        response = runtime_client.invoke_endpoint(
            EndpointName=endpoint, Body=("\n".join(batch) + "\n").encode(), ContentType=CSV, Accept=CSV
        )
        values = parse_predictions(response["Body"].read())
        if len(values) != len(batch):
            raise EndpointCheckError(
                f"{endpoint}: request {i} of {len(batch)} rows answered {len(values)} predictions"
            )
        answers.extend(values)
    return answers


@dataclass(frozen=True)
class CheckResult:
    endpoint: str
    rows: int
    max_abs_diff: float
    accuracy: float
    auc: float
    passed: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_with_reference(
    check: CheckSettings,
    endpoint: str,
    answers: Sequence[float],
    reference: Sequence[float],
    labels: Sequence[float],
) -> CheckResult:
    """The endpoint's answers against the in-task booster's predictions and the true labels."""
    reasons = []
    if len(answers) != len(reference):
        raise EndpointCheckError(f"{endpoint}: {len(answers)} answers for {len(reference)} rows")
    worst = max_abs_diff(answers, reference)
    if worst > check.max_abs_diff:
        at = max(range(len(answers)), key=lambda i: abs(answers[i] - reference[i]))
        reasons.append(
            f"endpoint and in-task booster differ by up to {worst:.3g} (row {at}: {answers[at]!r} vs "
            f"{reference[at]!r}) > check.max_abs_diff {check.max_abs_diff:g}"
        )
    metrics = classification_metrics(labels, answers)
    if metrics["accuracy"] < check.min_accuracy:
        reasons.append(f"endpoint accuracy {metrics['accuracy']:.4f} < check.min_accuracy {check.min_accuracy}")
    return CheckResult(
        endpoint=endpoint,
        rows=len(answers),
        max_abs_diff=worst,
        accuracy=metrics["accuracy"],
        auc=metrics["auc"],
        passed=not reasons,
        reasons=reasons,
    )


# --------------------------------------------------------------------------------------------
# S3 helpers for the DAG's tasks
# --------------------------------------------------------------------------------------------


def put_text(s3_client: Any, uri: str, text: str, content_type: str = CSV) -> str:
    bucket, key = split_s3_uri(uri)
    s3_client.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType=content_type)
    return uri


def get_text(s3_client: Any, uri: str) -> str:
    bucket, key = split_s3_uri(uri)
    return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def upload_file(s3_client: Any, path: Path, uri: str) -> str:
    bucket, key = split_s3_uri(uri)
    s3_client.upload_file(str(path), bucket, key)
    return uri


def failure_callback(name: str, conn_id: str = "aws_default") -> Callable[[Any], None]:
    """An ``on_failure_callback`` publishing the failed task to the stage's ``alerts.sns_topic_arn``:
    the pipeline's own (:func:`include.mlpipeline.notify.failure_callback`), told where a BYOM
    model's alerts go (its stage settings: a BYOM model has no ``models/`` config)."""
    from .notify import failure_callback as notify_on_failure

    def alert_target(params: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
        stage = load_stage_settings(params.get("stage") or default_stage())
        return stage.stage, stage.alerts.sns_topic_arn, None

    return notify_on_failure(name, conn_id, target=alert_target, kind="byom")
