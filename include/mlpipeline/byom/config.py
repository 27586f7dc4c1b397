"""The BYOM config: ``byom/<name>.yaml`` (:class:`ByomConfig`) and the stage sections a run reads
(:class:`StageSettings`), built on :mod:`include.mlpipeline.config` (its sections, name patterns,
layered loading and error messages), the trigger's overrides, and the failure alert's target."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from ..config import (
    CONFIG_DIR,
    INSTANCE_TYPE_PATTERN,
    MODEL_NAME_PATTERN,
    NAME_PATTERN,
    OVERRIDES_SOURCE,
    AirflowSettings,
    AlertsSettings,
    AwsConfig,
    ConfigError,
    Section,
    deep_merge,
    default_stage,
    fill_templates,
    json_object_param,
    list_stages,
    merge_layers,
    placeholders,
    read_yaml,
    slug,
    validation_problems,
)
from .common import (
    _CONTAINER_VERSION,
    BYOM_SUBDIR,
    OBJECTIVE,
    SKLEARN_DATASETS,
    STAGE_SECTIONS,
    STAGE_TEMPLATED_KEYS,
)


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



def failure_callback(name: str, conn_id: str = "aws_default") -> Callable[[Any], None]:
    """An ``on_failure_callback`` publishing the failed task to the stage's ``alerts.sns_topic_arn``:
    the pipeline's own (:func:`include.mlpipeline.notify.failure_callback`), told where a BYOM
    model's alerts go (its stage settings: a BYOM model has no ``models/`` config)."""
    from ..notify import failure_callback as notify_on_failure

    def alert_target(params: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
        stage = load_stage_settings(params.get("stage") or default_stage())
        return stage.stage, stage.alerts.sns_topic_arn, None

    return notify_on_failure(name, conn_id, target=alert_target, kind="byom")
