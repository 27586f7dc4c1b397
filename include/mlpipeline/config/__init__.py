"""Pipeline configuration: load, deep-merge and validate ``include/config``.

Config is data. Every instance type, count, hyperparameter, range, threshold, schedule and
endpoint name comes from four layers, later ones winning::

    base.yaml  <-  stages/<stage>.yaml  <-  models/<model>.yaml  <-  run overrides

The loader remembers which layer last set each key, so a validation error names the file to edit
and the dotted key in it, e.g. ``models/diabetes_dnn.yaml: training.instance_count: must be >= 1
(got 0)``.

Modules (imports go down this list, never up; none imports anything else of ``include``):

* ``params``   - trigger-form params / ``dag_run.conf`` -> overrides; the config of a run (and of a
  failed run, for clean-up and alerts)
* ``layers``   - the YAML layers: read, deep-merge with provenance, fill placeholders, validate
  (:func:`load_config`)
* ``checks``   - rules spanning several keys, reported against the key to change
* ``hyperparameters`` - hyperparameters and tuning ranges against ``training.hyperparameter_spec``
* ``messages`` - :class:`ConfigError` and pydantic errors -> ``file: dotted.key: message``, for any
  schema (BYOM's reuses it)
* ``schema``   - the pydantic models, one per section, and the name patterns

Every public name is importable from here (``from include.mlpipeline.config import load_config``).
DAG files call :func:`list_models` and :func:`load_config` at parse time, so this package imports
only the stdlib, pydantic and PyYAML.
"""

from __future__ import annotations

from .checks import cross_checks
from .hyperparameters import form_summary, hyperparameter_problems
from .layers import (
    CONFIG_DIR,
    OVERRIDES_SOURCE,
    PROJECT_ROOT,
    RESERVED_KEYS,
    STAGE_ENV_VAR,
    TEMPLATED_KEYS,
    deep_merge,
    default_stage,
    fill_template,
    fill_templates,
    list_models,
    list_stages,
    load_config,
    merge_layers,
    placeholders,
    read_yaml,
)
from .messages import ConfigError, KeyPath, source_for, validation_problems
from .params import (
    PARAM_KEYS,
    SELECTOR_PARAMS,
    config_for_failed_run,
    config_for_run,
    json_object_param,
    overrides_from_params,
)
from .schema import (
    BUILTIN_REPOSITORIES,
    INSTANCE_TYPE_PATTERN,
    JOB_KINDS,
    MODEL_NAME_PATTERN,
    NAME_PATTERN,
    TASK_METRICS,
    AirflowSettings,
    AlertsSettings,
    AwsConfig,
    CategoricalRange,
    ColumnSpec,
    ContinuousRange,
    DataCaptureSettings,
    DataConfig,
    DataFormat,
    DeploymentSettings,
    EndpointSettings,
    EvaluationSettings,
    HyperparameterSpec,
    HyperparameterValue,
    ImageInferenceSettings,
    ImageLayout,
    InferenceSettings,
    IntegerRange,
    JanitorSettings,
    MetricDefinition,
    MetricName,
    MonitoringSettings,
    Objective,
    ParameterRange,
    PipelineConfig,
    PoolSettings,
    PoolsSettings,
    RegistrySettings,
    RunSettings,
    Scaling,
    Schedules,
    Section,
    SplitConfig,
    TrainingConfig,
    TransformSettings,
    TuningConfig,
    expand_braces,
    is_builtin_image,
    slug,
)

__all__ = [
    "BUILTIN_REPOSITORIES",
    "CONFIG_DIR",
    "INSTANCE_TYPE_PATTERN",
    "MODEL_NAME_PATTERN",
    "NAME_PATTERN",
    "OVERRIDES_SOURCE",
    "PARAM_KEYS",
    "PROJECT_ROOT",
    "RESERVED_KEYS",
    "SELECTOR_PARAMS",
    "STAGE_ENV_VAR",
    "TASK_METRICS",
    "TEMPLATED_KEYS",
    "AirflowSettings",
    "JOB_KINDS",
    "PoolSettings",
    "PoolsSettings",
    "AlertsSettings",
    "AwsConfig",
    "CategoricalRange",
    "ColumnSpec",
    "ConfigError",
    "ContinuousRange",
    "DataCaptureSettings",
    "DataConfig",
    "DataFormat",
    "DeploymentSettings",
    "EndpointSettings",
    "EvaluationSettings",
    "HyperparameterSpec",
    "HyperparameterValue",
    "form_summary",
    "hyperparameter_problems",
    "ImageInferenceSettings",
    "ImageLayout",
    "InferenceSettings",
    "IntegerRange",
    "JanitorSettings",
    "KeyPath",
    "MetricDefinition",
    "MetricName",
    "MonitoringSettings",
    "Objective",
    "ParameterRange",
    "PipelineConfig",
    "RegistrySettings",
    "RunSettings",
    "Scaling",
    "Schedules",
    "Section",
    "SplitConfig",
    "TrainingConfig",
    "TransformSettings",
    "TuningConfig",
    "config_for_failed_run",
    "config_for_run",
    "cross_checks",
    "deep_merge",
    "default_stage",
    "expand_braces",
    "fill_template",
    "fill_templates",
    "is_builtin_image",
    "json_object_param",
    "list_models",
    "list_stages",
    "load_config",
    "merge_layers",
    "overrides_from_params",
    "placeholders",
    "read_yaml",
    "slug",
    "source_for",
    "validation_problems",
]
