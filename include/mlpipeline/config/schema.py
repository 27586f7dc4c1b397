"""The configuration's schema: one frozen pydantic model per section, unknown keys refused.

Single-key rules live on the models (``field_validator`` / ``model_validator``); rules spanning
sections are in :mod:`.checks`. Imports only the stdlib and pydantic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: A SageMaker resource name (endpoint, variant, model package group).
NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
#: An ML instance type such as ``ml.m5.large``.
INSTANCE_TYPE_PATTERN = r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"
_ROLE_ARN_PATTERN = r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$"
_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
#: A config file's stem, which is also its model's name.
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_CRON_FIELD = r"[0-9*/,?LW#A-Za-z-]+"
_CRON_PATTERN = re.compile(rf"^{_CRON_FIELD}(\s+{_CRON_FIELD}){{4}}$")
_CRON_PRESETS = {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@continuous"}


def slug(name: str) -> str:
    """A name as SageMaker names allow it (``diabetes_dnn`` -> ``diabetes-dnn``)."""
    return re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower()


class Section(BaseModel):
    """Base for every config section: unknown keys are typos, and config never changes mid-run."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsConfig(Section):
    """Where the pipeline's resources live.

    Attributes:
        region: AWS region of SageMaker and the bucket.
        account_id: 12-digit account id, quoted in YAML (unquoted it would be read as a number).
        role_arn: SageMaker execution role; may use ``{account}``.
        bucket: bucket for data, artifacts, reports and data capture.
    """

    region: str = Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
    account_id: str = Field(pattern=r"^\d{12}$")
    role_arn: str = Field(pattern=_ROLE_ARN_PATTERN)
    bucket: str = Field(pattern=_BUCKET_PATTERN)

    @field_validator("account_id", mode="before")
    @classmethod
    def _account_id_is_quoted(cls, value: Any) -> Any:
        if isinstance(value, int):
            raise ValueError(
                "must be a quoted 12-digit string such as '000000000000' (YAML reads unquoted digits as a number)"
            )
        return value


class ColumnSpec(Section):
    """Schema of one input column; every row is checked against it before it reaches training.

    Attributes:
        type: ``float`` or ``int`` (an ``int`` column rejects ``2.5``).
        min: smallest allowed value (inclusive), or no lower bound.
        max: largest allowed value (inclusive), or no upper bound.
        nullable: whether an empty field is allowed.
        fill_value: written in place of an empty field of a nullable column; without it the
            field stays empty, which only algorithms that understand missing values accept.
    """

    type: Literal["float", "int"] = "float"
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    fill_value: float | None = None


class SplitConfig(Section):
    """Train/validation/test fractions and the seed of the deterministic per-row split."""

    train: float = Field(gt=0, le=1)
    validation: float = Field(ge=0, le=1)
    test: float = Field(ge=0, le=1)
    seed: int = Field(ge=0)


#: Repositories of SageMaker's built-in algorithm images: they define their own metrics (SageMaker
#: checks a tuning objective against them), so no ``metric_definitions`` are configured for them.
BUILTIN_REPOSITORIES = frozenset({
    "sagemaker-xgboost", "kmeans", "linear-learner", "pca", "image-classification", "factorization-machines",
    "knn", "randomcutforest", "ntm", "lda", "blazingtext", "object2vec", "ipinsights", "object-detection",
    "semantic-segmentation", "forecasting-deepar",
})


def is_builtin_image(image_uri: str) -> bool:
    """``382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1`` -> True."""
    repo = image_uri.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    return repo in BUILTIN_REPOSITORIES


def expand_braces(key: str) -> list[str]:
    """``a{0..2}`` -> ``a0 a1 a2``; several ranges multiply out left to right."""
    m = re.search(r"\{(\d+)\.\.(\d+)\}", key)
    if not m:
        return [key]
    lo, hi = int(m.group(1)), int(m.group(2))
    if hi < lo:
        raise ValueError(f"column range {m.group(0)} in {key!r} runs backwards")
    head, tail = key[: m.start()], key[m.end() :]
    return [name for i in range(lo, hi + 1) for name in expand_braces(f"{head}{i}{tail}")]


class ImageLayout(Section):
    """How a row of pixel columns becomes an image file (``data.format: image``).

    Attributes:
        source_shape: ``[height, width]`` of the pixel columns (row-major, greyscale).
        value_max: the pixel value that is white (16 for scikit-learn's digits, 255 for bytes).
        shape: ``[channels, height, width]`` written (the algorithm's ``image_shape``); greyscale
            is repeated over 3 channels.
    """

    source_shape: list[int] = Field(min_length=2, max_length=2)
    value_max: float = Field(gt=0)
    shape: list[int] = Field(default_factory=lambda: [3, 32, 32], min_length=3, max_length=3)


DataFormat = Literal["csv", "recordio-protobuf", "image"]


class DataConfig(Section):
    """Source, schema and split of a model's data set.

    Attributes:
        source_uri: ``file://`` (relative paths resolve against the project root), ``s3://``,
            ``http://`` or ``https://`` location of a CSV with a header row, or
            ``sklearn://<name>`` for a data set scikit-learn ships (``load_<name>``: digits,
            breast_cancer, iris, wine, diabetes), read as its ``frame`` with the label ``target``.
        format: what the training channels hold: ``csv`` (label first, no header),
            ``recordio-protobuf`` (features + label records) or ``image`` (PNG folders plus
            ``<channel>_lst`` .lst files, for image classification; needs ``image``). Evaluation and
            batch input stay CSV (``test_features``/``test_labels``), except images.
        image: pixel layout for ``format: image``.
        label_values: keep only rows whose label is one of these (a subset of the classes);
            other rows are left out, not quarantined.
        batch_source_uri: feature-only CSV scored by the batch transform DAG.
        batch_id_column: column of ``batch_source_uri`` identifying a row in the scores.
        label_column: the target; written first in the algorithm CSV.
        id_column: optional stable row key in ``source_uri`` (not a feature); when set the split
            hashes it, so a row keeps its channel even if its values are corrected later.
        columns: label and features in the order written for the algorithm.
        split: fractions and seed.
        max_bad_row_share: fail the ETL when more than this share of rows is quarantined.
        chunk_size: rows read per chunk; bounds ETL memory regardless of input size.
    """

    source_uri: str = Field(pattern=r"^(file|s3|https?|sklearn)://.+")
    batch_source_uri: str | None = Field(default=None, pattern=r"^(file|s3|https?|sklearn)://.+")
    batch_id_column: str | None = None
    label_column: str
    id_column: str | None = None
    columns: dict[str, ColumnSpec] = Field(min_length=2)
    split: SplitConfig
    max_bad_row_share: float = Field(ge=0, le=1)
    chunk_size: int = Field(ge=1)
    format: DataFormat = "csv"
    image: ImageLayout | None = None
    label_values: list[float] | None = Field(default=None, min_length=2)

    @field_validator("columns", mode="before")
    @classmethod
    def _expand_ranges(cls, value: Any) -> Any:
        """``pixel_{0..7}_{0..7}: {...}`` stands for 64 columns with one spec (row-major order)."""
        if not isinstance(value, Mapping):
            return value
        out: dict[str, Any] = {}
        for key, spec in value.items():
            for name in expand_braces(str(key)):
                out[name] = spec
        return out

    @model_validator(mode="after")
    def _image_layout(self) -> DataConfig:
        if self.format == "image":
            if self.image is None:
                raise ValueError("format 'image' needs data.image (source_shape, value_max, shape)")
            h, w = self.image.source_shape
            if h * w != len(self.feature_columns):
                raise ValueError(
                    f"data.image.source_shape {h}x{w} needs {h * w} pixel columns; "
                    f"data.columns has {len(self.feature_columns)} features"
                )
        return self

    @property
    def feature_columns(self) -> list[str]:
        """Feature names in algorithm order (every column but the label)."""
        return [c for c in self.columns if c != self.label_column]


class MetricDefinition(Section):
    """A metric SageMaker scrapes from the training log with ``regex`` (first group = value)."""

    name: str = Field(min_length=1, max_length=255)
    regex: str = Field(min_length=1, max_length=500)

    @field_validator("regex")
    @classmethod
    def _regex_compiles_with_one_group(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression: {exc}") from None
        if compiled.groups < 1:
            raise ValueError("needs a capturing group around the metric value")
        return value


HyperparameterValue = bool | int | float | str
Channel = Literal["train", "validation", "test"]


class HyperparameterSpec(Section):
    """What one hyperparameter accepts (``training.hyperparameter_spec.<name>``), so a run's
    overrides are refused before anything runs instead of by the training container.

    Attributes:
        type: ``int``, ``float``, ``str`` or ``bool``; a string holding a number of the right
            type counts (SageMaker passes every hyperparameter as a string).
        min / max: inclusive bounds of a number; ``min_exclusive`` / ``max_exclusive`` make them
            open.
        values: the only values allowed (any type).
        pattern: a regular expression a ``str`` value must match in full.
        required: the algorithm fails without it, so ``training.hyperparameters`` must set it.
        description: shown in the trigger form.
    """

    type: Literal["int", "float", "str", "bool"]
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    values: list[HyperparameterValue] | None = Field(default=None, min_length=1)
    pattern: str | None = None
    required: bool = False
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HyperparameterSpec:
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError(f"min/max apply to int and float only (type is {self.type})")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min must be <= max ({self.min:g} > {self.max:g})")
        if self.pattern is not None:
            if self.type != "str":
                raise ValueError(f"pattern applies to str only (type is {self.type})")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        return self


class TrainingConfig(Section):
    """One training job: image, resources, budget, hyperparameters and metrics.

    Attributes:
        image_uri: training (and inference) image; may use ``{account}`` and ``{region}``.
        instance_type / instance_count / volume_size_gb: ``ResourceConfig``. With more than one
            instance the train channel is sharded (``ShardedByS3Key``) into one file per host.
        max_runtime_seconds: ``StoppingCondition.MaxRuntimeInSeconds``.
        input_mode: ``File``, ``FastFile`` or ``Pipe``.
        content_type: content type of the train/validation channels.
        hyperparameters: passed to the job as strings.
        hyperparameter_spec: what each hyperparameter accepts (:class:`HyperparameterSpec`);
            when set, ``hyperparameters`` (a run's overrides included) may use only these names
            and values, and ``tuning.parameter_ranges`` only these names within these bounds.
        metric_definitions: regexes over the job log; kept equal to the image's own
            ``metric_definitions_file`` by a test, because Airflow deployments ship ``include/``
            but not ``container/``.
        metric_definitions_file: the image's list, relative to the project root (provenance).
        environment: extra environment variables for the training container.
        channels: the data channels the job gets (``train`` always; ``validation`` for early
            stopping; ``test`` for algorithms that score a test channel, such as k-means).
        source_dir / entry_point: framework script mode: ``source_dir`` (relative to the project
            root) is packaged as ``sourcedir.tar.gz`` in the run's prefix and ``entry_point`` runs in
            the framework image (``sagemaker_program`` / ``sagemaker_submit_directory``); the same
            code serves (``model_fn`` ...).
    """

    image_uri: str = Field(min_length=1, max_length=255)
    instance_type: str = Field(pattern=INSTANCE_TYPE_PATTERN)
    instance_count: int = Field(ge=1)
    volume_size_gb: int = Field(ge=1)
    max_runtime_seconds: int = Field(ge=1)
    input_mode: Literal["File", "FastFile", "Pipe"] = "File"
    content_type: str = "text/csv"
    hyperparameters: dict[str, HyperparameterValue] = Field(default_factory=dict)
    hyperparameter_spec: dict[str, HyperparameterSpec] = Field(default_factory=dict)
    metric_definitions: list[MetricDefinition] = Field(default_factory=list, max_length=40)
    metric_definitions_file: str | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    channels: list[Channel] = Field(default_factory=lambda: list[Channel](["train", "validation"]), min_length=1)
    source_dir: str | None = None
    entry_point: str | None = None

    @model_validator(mode="after")
    def _script_mode(self) -> TrainingConfig:
        if (self.source_dir is None) != (self.entry_point is None):
            raise ValueError("source_dir and entry_point go together (framework script mode)")
        if "train" not in self.channels:
            raise ValueError("channels must include 'train'")
        return self


Scaling = Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"]


class IntegerRange(Section):
    type: Literal["integer"]
    min: int
    max: int
    scaling: Scaling = "Auto"


class ContinuousRange(Section):
    type: Literal["continuous"]
    min: float
    max: float
    scaling: Scaling = "Auto"


class CategoricalRange(Section):
    type: Literal["categorical"]
    values: list[HyperparameterValue] = Field(min_length=1, max_length=30)


ParameterRange = Annotated[IntegerRange | ContinuousRange | CategoricalRange, Field(discriminator="type")]


class Objective(Section):
    metric: str
    type: Literal["Minimize", "Maximize"]


class TuningConfig(Section):
    """Hyperparameter tuning: when enabled the DAG runs a tuning job instead of one training job.

    Attributes:
        strategy: ``Bayesian``, ``Random`` or ``Grid`` (Grid takes categorical ranges only and no
            job budget: SageMaker enumerates the grid).
        max_jobs / max_parallel_jobs: ``ResourceLimits``.
        objective: a metric from ``training.metric_definitions`` and its direction.
        early_stopping: ``Off`` or ``Auto`` (quote ``"Off"``: YAML reads bare Off as false).
        parameter_ranges: name -> integer / continuous (with scaling) / categorical range.
    """

    enabled: bool = False
    strategy: Literal["Bayesian", "Random", "Grid"] = "Bayesian"
    max_jobs: int = Field(ge=1, le=750)
    max_parallel_jobs: int = Field(ge=1, le=100)
    objective: Objective | None = None
    early_stopping: Literal["Off", "Auto"] = "Off"
    parameter_ranges: dict[str, ParameterRange] = Field(default_factory=dict)

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _yaml_off_is_false(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "Auto" if value else "Off"
        return value


class DataCaptureSettings(Section):
    """Endpoint data capture, the input of model monitoring."""

    enabled: bool = True
    sampling_percentage: int = Field(ge=0, le=100)
    destination_s3_uri: str = Field(pattern=r"^s3://[^/]+(/.*)?$")
    csv_content_types: list[str] = Field(default_factory=lambda: ["text/csv"], min_length=1)
    json_content_types: list[str] = Field(default_factory=lambda: ["application/json"], min_length=1)


class DeploymentSettings(Section):
    """Blue/green update of an endpoint that already serves traffic.

    Attributes:
        traffic_routing: ``AllAtOnce``, ``Canary`` or ``Linear`` shift to the new fleet.
        canary_percent / linear_step_percent: traffic share of the first step / of every step.
        wait_seconds: bake time between steps (watching ``rollback_alarms``).
        termination_wait_seconds: how long the old fleet stays up after the shift.
        rollback_alarms: CloudWatch alarm names that roll the update back.
    """

    traffic_routing: Literal["AllAtOnce", "Canary", "Linear"] = "AllAtOnce"
    canary_percent: int = Field(default=10, ge=1, le=99)
    linear_step_percent: int = Field(default=25, ge=1, le=99)
    wait_seconds: int = Field(default=300, ge=0, le=3600)
    termination_wait_seconds: int = Field(default=0, ge=0, le=3600)
    rollback_alarms: list[str] = Field(default_factory=list, max_length=10)


class EndpointSettings(Section):
    """Real-time endpoints: a dev/QA one for smoke tests and the production one."""

    dev_name: str = Field(pattern=NAME_PATTERN)
    prod_name: str = Field(pattern=NAME_PATTERN)
    variant_name: str = Field(default="AllTraffic", pattern=NAME_PATTERN)
    instance_type: str = Field(pattern=INSTANCE_TYPE_PATTERN)
    initial_instance_count: int = Field(ge=1)
    data_capture: DataCaptureSettings
    deployment: DeploymentSettings | None = None
    smoke_test_rows: int = Field(default=20, ge=1, le=1000)
    smoke_test_max_latency_ms: float = Field(default=2000.0, gt=0)


class TransformSettings(Section):
    """Batch transform resources and batching."""

    instance_type: str = Field(pattern=INSTANCE_TYPE_PATTERN)
    instance_count: int = Field(ge=1)
    max_payload_mb: int = Field(default=6, ge=0, le=100)
    max_concurrent_transforms: int | None = Field(default=None, ge=0)
    batch_strategy: Literal["MultiRecord", "SingleRecord"] = "MultiRecord"


MetricName = Literal["rmse", "mae", "mse", "r2", "accuracy", "f1", "auc", "purity"]
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "regression": ("rmse", "mae", "mse", "r2"),
    "binary": ("accuracy", "f1", "auc"),
    "multiclass": ("accuracy", "f1"),
    "clustering": ("purity",),
}


class InferenceSettings(Section):
    """How evaluation, the smoke test and batch scoring talk to the model.

    Attributes:
        content_type: what requests carry (``text/csv`` rows; ``application/x-image`` for image models).
        accept: the response type asked for.
        prediction_field: for JSON responses, the field of each prediction to read
            (``closest_cluster``, ``predicted_label``, ``score``); null: the value itself, and for a
            list of class probabilities (image classification) the most probable class.
    """

    content_type: str = "text/csv"
    accept: str = "text/csv"
    prediction_field: str | None = None


class EvaluationSettings(Section):
    """The quality gate.

    Attributes:
        primary_metric: the metric reports and comparisons lead with.
        metrics: metrics computed and recorded on the model package.
        thresholds: ``max_<metric>`` / ``min_<metric>`` absolute bounds.
        compare_metrics: metrics on which the candidate must not be worse than the champion.
        champion_tolerance: relative slack of that comparison (0.02 = may be 2 % worse).
    """

    task: Literal["regression", "binary", "multiclass", "clustering"] = "regression"
    primary_metric: MetricName = "rmse"
    metrics: list[MetricName] = Field(default_factory=lambda: list[MetricName](["rmse", "mae", "r2"]), min_length=1)
    thresholds: dict[str, float] = Field(default_factory=dict)
    compare_metrics: list[MetricName] = Field(default_factory=lambda: list[MetricName](["rmse"]))
    champion_tolerance: float = Field(default=0.0, ge=0, le=1)

    @field_validator("thresholds")
    @classmethod
    def _threshold_keys(cls, value: dict[str, float]) -> dict[str, float]:
        for key in value:
            if not re.fullmatch(r"(min|max)_(rmse|mae|mse|r2|accuracy|f1|auc|purity)", key):
                raise ValueError(
                    f"unknown threshold {key!r}: use max_rmse, min_r2, min_accuracy, min_f1, min_auc, min_purity, ..."
                )
        return value

    @model_validator(mode="after")
    def _metrics_fit_task(self) -> EvaluationSettings:
        allowed = TASK_METRICS[self.task]
        used: set[str] = {self.primary_metric, *self.metrics, *self.compare_metrics}
        used |= {k.split("_", 1)[1] for k in self.thresholds}
        wrong = sorted(used - set(allowed))
        if wrong:
            raise ValueError(f"metrics {wrong} do not apply to task {self.task!r}; it has {list(allowed)}")
        return self


class Schedules(Section):
    """Cron expressions (or presets such as ``@daily``); null disables the schedule."""

    training: str | None = None
    batch_transform: str | None = None
    monitoring: str | None = None

    @field_validator("training", "batch_transform", "monitoring")
    @classmethod
    def _is_cron(cls, value: str | None) -> str | None:
        if value is None or value in _CRON_PRESETS or _CRON_PATTERN.match(value.strip()):
            return value
        raise ValueError(
            f"must be a 5-field cron expression or one of {sorted(_CRON_PRESETS)} (got {value!r})"
        )


class RegistrySettings(Section):
    """Model registry: the package group every approved version of this model goes to."""

    model_package_group_name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=1024)


class RunSettings(Section):
    """Per-run switches, usually set from the trigger form.

    Attributes:
        approval_timeout_hours: how long the training DAG's ``approve`` request waits for an answer;
            unanswered, it counts as Reject (prod is left as it is). Read when the DAG file is parsed.
    """

    deploy: bool = True
    auto_approve: bool = False
    approval_timeout_hours: float = Field(default=12, gt=0, le=24 * 30)


class AlertsSettings(Section):
    """Where failures and monitoring violations are announced.

    Attributes:
        sns_topic_arn: SNS topic for failure and drift notifications; ``None`` turns them off.
        retrain_on_drift: a drift violation also requests retraining (an Asset event).
    """

    sns_topic_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
    retrain_on_drift: bool = True


class MonitoringSettings(Section):
    """Scheduled data-quality checks of captured traffic (our Model Monitor-compatible image).

    Attributes:
        enabled: baseline the champion's training data and build ``<model>_monitoring`` (off for
            models whose requests are not tabular, such as images).
        image_uri: the model-monitor processing image.
        drift_threshold: distance between baseline and current distributions that is a violation.
        window_hours: captured traffic analysed per run; keep equal to ``schedules.monitoring``'s period.
    """

    enabled: bool = True
    image_uri: str = Field(default="{account}.dkr.ecr.{region}.amazonaws.com/model-monitor:latest", min_length=1, max_length=255)
    instance_type: str = Field(default="ml.m5.large", pattern=INSTANCE_TYPE_PATTERN)
    volume_size_gb: int = Field(default=20, ge=1)
    max_runtime_seconds: int = Field(default=3600, ge=1)
    drift_threshold: float = Field(default=0.1, gt=0, le=1)
    window_hours: float = Field(default=1.0, gt=0, le=168)


class JanitorSettings(Section):
    """What ``sagemaker_janitor`` may delete: dev endpoints older than the TTL, unused models and
    endpoint configs beyond the newest ``keep_last`` per model. Prod is never touched."""

    dev_endpoint_ttl_hours: float = Field(default=24.0, ge=0)
    keep_last: int = Field(default=3, ge=1)


class ImageInferenceSettings(Section):
    """The image inference workflow (``<model>_image_inference``): new images under ``input_prefix``
    are classified by the endpoint; predictions at or above ``confidence_threshold`` are kept under
    ``accepted_prefix``, the rest are copied to ``review_prefix`` for a person to label.

    Attributes:
        input_prefix / accepted_prefix / review_prefix: S3 prefixes in ``aws.bucket`` (placeholders allowed).
        confidence_threshold: the top class probability a prediction needs to be accepted.
        endpoint: which configured endpoint classifies (``prod`` or ``dev``).
        class_names: label index -> name, for reports (optional).
        schedule: cron/preset for the workflow, or null (triggered only).
    """

    input_prefix: str = Field(default="{model}/inference/incoming/", min_length=1)
    accepted_prefix: str = Field(default="{model}/inference/accepted/", min_length=1)
    review_prefix: str = Field(default="{model}/inference/review/", min_length=1)
    confidence_threshold: float = Field(default=0.8, gt=0, le=1)
    endpoint: Literal["prod", "dev"] = "prod"
    class_names: list[str] = Field(default_factory=list)
    schedule: str | None = None

    @field_validator("schedule")
    @classmethod
    def _is_cron(cls, value: str | None) -> str | None:
        return Schedules._is_cron(value)


#: The SageMaker job kinds that each run in their own Airflow pool (``airflow.pools.<kind>``).
JOB_KINDS = ("training", "tuning", "processing", "transform", "endpoint")


class PoolSettings(Section):
    """One Airflow pool: at most ``slots`` tasks that start SageMaker work of one kind at a time.

    Deferred tasks (waiting in the triggerer) count against it, so the number of running jobs of
    that kind never exceeds ``slots``, whatever a backfill or several DAGs ask for. Size it from the
    account's SageMaker quotas (e.g. "ml.m5.large for training job usage").
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,256}$")
    slots: int = Field(ge=1, le=10000)


class PoolsSettings(Section):
    """An Airflow pool per SageMaker job kind (:data:`JOB_KINDS`)."""

    training: PoolSettings = PoolSettings(name="sagemaker_training", slots=2)
    tuning: PoolSettings = PoolSettings(name="sagemaker_tuning", slots=1)
    processing: PoolSettings = PoolSettings(name="sagemaker_processing", slots=2)
    transform: PoolSettings = PoolSettings(name="sagemaker_transform", slots=2)
    endpoint: PoolSettings = PoolSettings(name="sagemaker_endpoint", slots=2)

    @model_validator(mode="after")
    def _distinct_names(self) -> PoolsSettings:
        names = [getattr(self, kind).name for kind in JOB_KINDS]
        if len(set(names)) != len(names):
            raise ValueError(f"each job kind needs its own pool name (got {names})")
        return self

    def names(self) -> dict[str, str]:
        """``{job kind: pool name}``."""
        return {kind: getattr(self, kind).name for kind in JOB_KINDS}


class AirflowSettings(Section):
    """How the provider's SageMaker operators wait for the jobs and endpoints they start.

    Attributes:
        deferrable: wait in the triggerer (asyncio + aiobotocore) instead of in the task: the worker
            slot is free while SageMaker works. Off, the task polls from its worker slot.
        poll_interval_seconds: between two status checks, either way (the provider's
            ``check_interval`` / the trigger's ``waiter_delay``).
        max_wait_seconds: how long one wait may last before the task fails (the job or endpoint
            itself keeps its own limits, such as ``training.max_runtime_seconds``); it also sets the
            trigger's attempt count, whose provider default would give up after 60 polls.
        retries: retries of a task that failed transiently (throttling, a dropped connection, a
            5xx); errors that cannot succeed (config, validation, data, an algorithm's
            ``ClientError:``) fail at once whatever this says.
        retry_delay_seconds: the first retry's delay; each later one doubles it, with jitter.
        max_retry_delay_seconds: the cap of that growing delay.
        task_timeout_seconds: a task's ``execution_timeout``, deferred time included; at least
            ``max_wait_seconds`` so that a wait ends by its own limit first.
        pools: the Airflow pool of each SageMaker job kind and its size (:class:`PoolsSettings`).
            Pools belong to the whole Airflow deployment, so they come from ``base.yaml`` and the
            stage file the deployment runs as (``MLPIPELINE_STAGE``); the DAG file's parse-time
            value is the one the scheduler uses.
    """

    deferrable: bool = True
    poll_interval_seconds: int = Field(default=2, ge=1, le=3600)
    max_wait_seconds: int = Field(default=172800, ge=60)
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_seconds: int = Field(default=30, ge=1)
    max_retry_delay_seconds: int = Field(default=600, ge=1)
    task_timeout_seconds: int = Field(default=176400, ge=60)
    pools: PoolsSettings = Field(default_factory=PoolsSettings)

    @model_validator(mode="after")
    def _timeout_covers_the_wait(self) -> AirflowSettings:
        if self.task_timeout_seconds < self.max_wait_seconds:
            raise ValueError(
                f"task_timeout_seconds ({self.task_timeout_seconds}) must be at least max_wait_seconds "
                f"({self.max_wait_seconds}): the task would be killed before its wait ends"
            )
        if self.max_retry_delay_seconds < self.retry_delay_seconds:
            raise ValueError("max_retry_delay_seconds must be at least retry_delay_seconds")
        return self

    @property
    def max_attempts(self) -> int:
        """Status checks that fit in ``max_wait_seconds``."""
        return -(-self.max_wait_seconds // self.poll_interval_seconds)


class PipelineConfig(Section):
    """The merged, validated configuration of one model in one stage."""

    model: str
    stage: str
    aws: AwsConfig
    tags: dict[str, str] = Field(default_factory=dict)
    data: DataConfig
    training: TrainingConfig
    tuning: TuningConfig
    endpoint: EndpointSettings
    transform: TransformSettings
    evaluation: EvaluationSettings
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    schedules: Schedules
    registry: RegistrySettings
    run: RunSettings = Field(default_factory=RunSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    janitor: JanitorSettings = Field(default_factory=JanitorSettings)
    image_inference: ImageInferenceSettings | None = None
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)

    @model_validator(mode="after")
    def _default_prefixes(self) -> PipelineConfig:
        """Defaults of ``image_inference`` prefixes name the model too (templating saw only the files)."""
        inf = self.image_inference
        if inf is not None:
            keys = ("input_prefix", "accepted_prefix", "review_prefix")
            filled = {k: getattr(inf, k).replace("{model}", self.model) for k in keys}
            object.__setattr__(self, "image_inference", inf.model_copy(update=filled))
        return self

    @property
    def model_slug(self) -> str:
        """The model name as SageMaker names allow it (``diabetes_dnn`` -> ``diabetes-dnn``)."""
        return slug(self.model)

