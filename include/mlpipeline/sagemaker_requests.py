"""boto3 ``Create*`` request dicts for SageMaker, built from config + run context.

Pure functions: no client, no clock, no randomness. The dict a builder returns is exactly what
``boto3.client("sagemaker").create_...(**request)`` takes and what the Amazon provider's
operators take as ``config``, so the same request goes to AWS or to localmaker unchanged.

Names come from the run (``{model}-{stage}-{ts_nodash}``, see :func:`run.sagemaker_name`): a
retried task rebuilds the same request and finds the job its first try started.

Stdlib only (plus the config models): DAG files import this at parse time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .config import CategoricalRange, ContinuousRange, IntegerRange, PipelineConfig
from .run import MAX_TUNING_JOB_NAME_LEN, RunContext, s3_uri, sagemaker_name

CSV = "text/csv"
JSON = "application/json"

#: Batch scoring of ``id,features...`` lines: drop the id going in, emit ``id,prediction``.
BATCH_DATA_PROCESSING: dict[str, str] = {
    "InputFilter": "$[1:]",
    "JoinSource": "Input",
    "OutputFilter": "$[0,-1]",
}
#: Scoring the labelled ``test`` channel: drop the label going in, emit ``label,prediction``.
EVALUATION_DATA_PROCESSING: dict[str, str] = {
    "InputFilter": "$[1:]",
    "JoinSource": "Input",
    "OutputFilter": "$[0,-1]",
}

#: Prefix of the metric keys in a model package's ``CustomerMetadataProperties``.
METRIC_PROPERTY_PREFIX = "metric."

EndpointTarget = Literal["dev", "prod"]


# --------------------------------------------------------------------------------------- names


def _check(cfg: PipelineConfig, ctx: RunContext) -> None:
    if (ctx.model, ctx.stage) != (cfg.model, cfg.stage):
        raise ValueError(
            f"run context is for {ctx.model}/{ctx.stage} but config is for {cfg.model}/{cfg.stage}"
        )


def training_job_name(cfg: PipelineConfig, ctx: RunContext) -> str:
    return sagemaker_name(cfg.model_slug, cfg.stage, ctx.ts_nodash)


def tuning_job_name(cfg: PipelineConfig, ctx: RunContext) -> str:
    """At most 32 characters, SageMaker's limit for tuning jobs (hash-shortened if needed)."""
    return sagemaker_name(cfg.model_slug, cfg.stage, ctx.ts_nodash, max_len=MAX_TUNING_JOB_NAME_LEN)


def model_name(cfg: PipelineConfig, ctx: RunContext) -> str:
    return sagemaker_name(cfg.model_slug, cfg.stage, ctx.ts_nodash)


def endpoint_config_name(cfg: PipelineConfig, ctx: RunContext, target: EndpointTarget) -> str:
    """One endpoint config per run and target: configs are immutable, updates need a new one."""
    return sagemaker_name(cfg.model_slug, cfg.stage, target, ctx.ts_nodash)


def endpoint_name(cfg: PipelineConfig, target: EndpointTarget) -> str:
    """Endpoint names are stable across runs (clients call them); they come from config."""
    return cfg.endpoint.dev_name if target == "dev" else cfg.endpoint.prod_name


def transform_job_name(cfg: PipelineConfig, ctx: RunContext, purpose: str = "batch") -> str:
    return sagemaker_name(cfg.model_slug, cfg.stage, purpose, ctx.ts_nodash)


# ------------------------------------------------------------------------------------ locations


def run_prefix(cfg: PipelineConfig, ctx: RunContext) -> str:
    """``s3://{bucket}/{model}/{run_key}/``; the same prefix ETL writes under."""
    return s3_uri(cfg.aws.bucket, cfg.model, ctx.run_key, trailing_slash=True)


def channel_uri(cfg: PipelineConfig, ctx: RunContext, channel: str) -> str:
    """The S3 prefix of a data channel: ETL's reported URI if the context carries it, else the
    standard layout ETL writes (so a builder never needs ETL's XCom to be right)."""
    return ctx.data_uris.get(channel) or f"{run_prefix(cfg, ctx)}{channel}/"


def run_output_uri(cfg: PipelineConfig, ctx: RunContext, what: str) -> str:
    return f"{run_prefix(cfg, ctx)}{what.strip('/')}/"


def model_artifact_uri(cfg: PipelineConfig, ctx: RunContext, training_job: str | None = None) -> str:
    """Where SageMaker puts ``model.tar.gz`` of this run's training job (or of ``training_job``,
    e.g. a tuning job's best one)."""
    job = training_job or training_job_name(cfg, ctx)
    return f"{run_output_uri(cfg, ctx, 'model')}{job}/output/model.tar.gz"


# -------------------------------------------------------------------------------------- helpers


def hyperparameter_value(value: Any) -> str:
    """SageMaker passes hyperparameters as strings; booleans as ``true``/``false`` (not Python's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tags(cfg: PipelineConfig, ctx: RunContext) -> list[dict[str, str]]:
    """Config tags plus model, stage and the Airflow run that created the resource."""
    tags = {**cfg.tags, "model": cfg.model, "stage": cfg.stage, "airflow_run_id": ctx.run_id[:256]}
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _algorithm(cfg: PipelineConfig) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "TrainingImage": cfg.training.image_uri,
        "TrainingInputMode": cfg.training.input_mode,
    }
    if cfg.training.metric_definitions:
        spec["MetricDefinitions"] = [
            {"Name": m.name, "Regex": m.regex} for m in cfg.training.metric_definitions
        ]
    return spec


def sourcedir_uri(cfg: PipelineConfig, ctx: RunContext) -> str:
    """Where script mode's packaged ``source_dir`` lives for this run (see :mod:`.sourcedir`)."""
    return f"{run_output_uri(cfg, ctx, 'code')}sourcedir.tar.gz"


def script_mode_hyperparameters(cfg: PipelineConfig, ctx: RunContext) -> dict[str, str]:
    """The framework toolkit's ``sagemaker_*`` hyperparameters, JSON-encoded as the SDK sends them."""
    if not cfg.training.entry_point:
        return {}
    import json

    return {
        "sagemaker_program": json.dumps(cfg.training.entry_point),
        "sagemaker_submit_directory": json.dumps(sourcedir_uri(cfg, ctx)),
        "sagemaker_region": json.dumps(cfg.aws.region),
        "sagemaker_container_log_level": "20",
    }


def serving_environment(cfg: PipelineConfig, ctx: RunContext) -> dict[str, str]:
    """What a framework container needs to find the user's inference code (script mode)."""
    if not cfg.training.entry_point:
        return {}
    return {
        "SAGEMAKER_PROGRAM": cfg.training.entry_point,
        "SAGEMAKER_SUBMIT_DIRECTORY": sourcedir_uri(cfg, ctx),
        "SAGEMAKER_REGION": cfg.aws.region,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    }


def data_hyperparameters(params: Mapping[str, Any], rows: Mapping[str, int]) -> dict[str, Any]:
    """Fill ``{rows.train}``-style placeholders with ETL's row counts (image classification's
    ``num_training_samples`` must equal the training set size)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("{rows.") and value.endswith("}"):
            channel = value[len("{rows.") : -1]
            if channel not in rows:
                raise ValueError(f"hyperparameter {key}: {value} names no channel (have {sorted(rows)})")
            value = rows[channel]
        out[key] = value
    return out


def _channel(name: str, uri: str, content_type: str, *, sharded: bool) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "ShardedByS3Key" if sharded else "FullyReplicated",
            }
        },
        "ContentType": content_type,
        "CompressionType": "None",
    }


def _input_channels(cfg: PipelineConfig, ctx: RunContext) -> list[dict[str, Any]]:
    """The configured channels: train sharded across hosts when there are several, the others
    whole on every host; image data adds each channel's ``<channel>_lst`` list."""
    sharded = cfg.training.instance_count > 1
    ctype = cfg.training.content_type
    out = []
    for name in cfg.training.channels:
        out.append(_channel(name, channel_uri(cfg, ctx, name), ctype, sharded=sharded and name == "train"))
        if cfg.data.format == "image":
            lst = f"{name}_lst"
            out.append(_channel(lst, channel_uri(cfg, ctx, lst), ctype, sharded=False))
    return out


def _resources(cfg: PipelineConfig) -> dict[str, Any]:
    return {
        "InstanceType": cfg.training.instance_type,
        "InstanceCount": cfg.training.instance_count,
        "VolumeSizeInGB": cfg.training.volume_size_gb,
    }


# ------------------------------------------------------------------------------------- training


def training_job_request(
    cfg: PipelineConfig,
    ctx: RunContext,
    *,
    hyperparameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``CreateTrainingJob``; ``hyperparameters`` are merged over the configured ones."""
    _check(cfg, ctx)
    return {
        "TrainingJobName": training_job_name(cfg, ctx),
        **_job_definition(cfg, ctx),
        "HyperParameters": _hyperparameters(cfg, ctx, hyperparameters),
        "Tags": _tags(cfg, ctx),
    }


def _hyperparameters(
    cfg: PipelineConfig, ctx: RunContext, overrides: Mapping[str, Any] | None, *, leave_out: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Configured, then the run's, then script mode's hyperparameters, as the strings SageMaker takes."""
    merged = {**cfg.training.hyperparameters, **(overrides or {}), **script_mode_hyperparameters(cfg, ctx)}
    return {k: hyperparameter_value(v) for k, v in merged.items() if k not in leave_out}


def _job_definition(cfg: PipelineConfig, ctx: RunContext) -> dict[str, Any]:
    """What a training job and a tuning job's ``TrainingJobDefinition`` share."""
    definition: dict[str, Any] = {
        "AlgorithmSpecification": _algorithm(cfg),
        "RoleArn": cfg.aws.role_arn,
        "InputDataConfig": _input_channels(cfg, ctx),
        "OutputDataConfig": {"S3OutputPath": run_output_uri(cfg, ctx, "model")},
        "ResourceConfig": _resources(cfg),
        "StoppingCondition": {"MaxRuntimeInSeconds": cfg.training.max_runtime_seconds},
    }
    if cfg.training.environment:
        definition["Environment"] = dict(cfg.training.environment)
    return definition


def _parameter_ranges(cfg: PipelineConfig) -> dict[str, list[dict[str, Any]]]:
    integer: list[dict[str, Any]] = []
    continuous: list[dict[str, Any]] = []
    categorical: list[dict[str, Any]] = []
    for name, rng in cfg.tuning.parameter_ranges.items():
        if isinstance(rng, IntegerRange):
            integer.append(
                {"Name": name, "MinValue": str(rng.min), "MaxValue": str(rng.max), "ScalingType": rng.scaling}
            )
        elif isinstance(rng, ContinuousRange):
            continuous.append(
                {"Name": name, "MinValue": str(rng.min), "MaxValue": str(rng.max), "ScalingType": rng.scaling}
            )
        elif isinstance(rng, CategoricalRange):
            categorical.append({"Name": name, "Values": [hyperparameter_value(v) for v in rng.values]})
    return {
        "IntegerParameterRanges": integer,
        "ContinuousParameterRanges": continuous,
        "CategoricalParameterRanges": categorical,
    }


def tuning_job_request(
    cfg: PipelineConfig, ctx: RunContext, *, hyperparameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``CreateHyperParameterTuningJob``: ranges from ``tuning``, every other hyperparameter static.

    Tuned names are removed from ``StaticHyperParameters`` (SageMaker rejects a name in both).
    Grid search takes no job budget (it enumerates the grid), so ``MaxNumberOfTrainingJobs`` is
    left out for it.
    """
    _check(cfg, ctx)
    tuning = cfg.tuning
    if tuning.objective is None:
        raise ValueError(f"{cfg.model}: tuning.objective is not configured")
    tuned = frozenset(tuning.parameter_ranges)
    limits: dict[str, Any] = {"MaxParallelTrainingJobs": tuning.max_parallel_jobs}
    if tuning.strategy != "Grid":
        limits["MaxNumberOfTrainingJobs"] = tuning.max_jobs
    job_config: dict[str, Any] = {
        "Strategy": tuning.strategy,
        "HyperParameterTuningJobObjective": {
            "Type": tuning.objective.type,
            "MetricName": tuning.objective.metric,
        },
        "ResourceLimits": limits,
        "ParameterRanges": _parameter_ranges(cfg),
        "TrainingJobEarlyStoppingType": tuning.early_stopping,
    }
    definition: dict[str, Any] = {
        "StaticHyperParameters": _hyperparameters(cfg, ctx, hyperparameters, leave_out=tuned),
        **_job_definition(cfg, ctx),
    }
    return {
        "HyperParameterTuningJobName": tuning_job_name(cfg, ctx),
        "HyperParameterTuningJobConfig": job_config,
        "TrainingJobDefinition": definition,
        "Tags": _tags(cfg, ctx),
    }


# -------------------------------------------------------------------------------------- hosting


def model_request(
    cfg: PipelineConfig,
    ctx: RunContext,
    model_data_url: str,
    *,
    image_uri: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``CreateModel`` from a training job's ``model.tar.gz``; the training image serves it."""
    _check(cfg, ctx)
    container: dict[str, Any] = {"Image": image_uri or cfg.training.image_uri, "ModelDataUrl": model_data_url}
    env = {**serving_environment(cfg, ctx), **(environment or {})}
    if env:
        container["Environment"] = env
    return {
        "ModelName": model_name(cfg, ctx),
        "PrimaryContainer": container,
        "ExecutionRoleArn": cfg.aws.role_arn,
        "Tags": _tags(cfg, ctx),
    }


def data_capture_config(cfg: PipelineConfig) -> dict[str, Any]:
    """``DataCaptureConfig``: request and response, CSV and JSON payloads, Model Monitor's input."""
    capture = cfg.endpoint.data_capture
    return {
        "EnableCapture": capture.enabled,
        "InitialSamplingPercentage": capture.sampling_percentage,
        "DestinationS3Uri": capture.destination_s3_uri,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": list(capture.csv_content_types),
            "JsonContentTypes": list(capture.json_content_types),
        },
    }


def endpoint_config_request(
    cfg: PipelineConfig,
    ctx: RunContext,
    model: str,
    *,
    target: EndpointTarget = "dev",
) -> dict[str, Any]:
    """``CreateEndpointConfig`` for ``target`` serving SageMaker model ``model``, capture on."""
    _check(cfg, ctx)
    ep = cfg.endpoint
    return {
        "EndpointConfigName": endpoint_config_name(cfg, ctx, target),
        "ProductionVariants": [
            {
                "VariantName": ep.variant_name,
                "ModelName": model,
                "InstanceType": ep.instance_type,
                "InitialInstanceCount": ep.initial_instance_count,
                "InitialVariantWeight": 1.0,
            }
        ],
        "DataCaptureConfig": data_capture_config(cfg),
        "Tags": _tags(cfg, ctx),
    }


def deployment_config(cfg: PipelineConfig) -> dict[str, Any] | None:
    """``DeploymentConfig`` for a blue/green update, or ``None`` when the stage configures none."""
    dep = cfg.endpoint.deployment
    if dep is None:
        return None
    routing: dict[str, Any] = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": dep.wait_seconds}
    if dep.traffic_routing == "Canary":
        routing = {
            "Type": "CANARY",
            "WaitIntervalInSeconds": dep.wait_seconds,
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": dep.canary_percent},
        }
    elif dep.traffic_routing == "Linear":
        routing = {
            "Type": "LINEAR",
            "WaitIntervalInSeconds": dep.wait_seconds,
            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": dep.linear_step_percent},
        }
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": dep.termination_wait_seconds,
        }
    }
    if dep.rollback_alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in dep.rollback_alarms]}
    return config


def endpoint_request(
    cfg: PipelineConfig,
    ctx: RunContext,
    *,
    target: EndpointTarget = "dev",
    endpoint_config: str | None = None,
) -> dict[str, Any]:
    """``CreateEndpoint`` (also valid for ``UpdateEndpoint`` minus ``Tags``, which is how the
    provider's operator retries an existing endpoint), with the stage's blue/green policy."""
    _check(cfg, ctx)
    request: dict[str, Any] = {
        "EndpointName": endpoint_name(cfg, target),
        "EndpointConfigName": endpoint_config or endpoint_config_name(cfg, ctx, target),
        "Tags": _tags(cfg, ctx),
    }
    deployment = deployment_config(cfg)
    if deployment is not None:
        request["DeploymentConfig"] = deployment
    return request


def deploy_request(
    cfg: PipelineConfig,
    ctx: RunContext,
    model_data_url: str,
    *,
    target: EndpointTarget = "dev",
    include_model: bool = True,
) -> dict[str, Any]:
    """The ``{"Model", "EndpointConfig", "Endpoint"}`` config ``SageMakerEndpointOperator`` takes.

    The SageMaker model is per run, shared by both targets: deploying to ``prod`` after ``dev``
    in the same run passes ``include_model=False`` (CreateModel refuses an existing name).
    """
    model = model_request(cfg, ctx, model_data_url)
    config: dict[str, Any] = {
        "EndpointConfig": endpoint_config_request(cfg, ctx, model["ModelName"], target=target),
        "Endpoint": endpoint_request(cfg, ctx, target=target),
    }
    if include_model:
        config = {"Model": model, **config}
    return config


# ------------------------------------------------------------------------------------ transform


def transform_job_request(
    cfg: PipelineConfig,
    ctx: RunContext,
    *,
    model: str,
    input_uri: str,
    output_path: str | None = None,
    purpose: str = "batch",
    data_processing: Mapping[str, str] | None = None,
    content_type: str = CSV,
    accept: str = CSV,
    split_type: Literal["Line", "None", "RecordIO"] = "Line",
) -> dict[str, Any]:
    """``CreateTransformJob`` scoring every object under ``input_uri`` line by line (or, with
    ``split_type="None"``, each object as one record: images).

    ``purpose`` names the job and its output prefix (``batch``, ``eval``...). Pass
    :data:`BATCH_DATA_PROCESSING` or :data:`EVALUATION_DATA_PROCESSING` to carry the id or the label
    through to the output next to each prediction.
    """
    _check(cfg, ctx)
    tr = cfg.transform
    request: dict[str, Any] = {
        "TransformJobName": transform_job_name(cfg, ctx, purpose),
        "ModelName": model,
        "BatchStrategy": tr.batch_strategy,
        "MaxPayloadInMB": tr.max_payload_mb,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": content_type,
            "CompressionType": "None",
            "SplitType": split_type,
        },
        "TransformOutput": {
            "S3OutputPath": output_path or run_output_uri(cfg, ctx, f"transform/{purpose}"),
            "Accept": accept,
            "AssembleWith": "Line" if split_type != "None" else "None",
        },
        "TransformResources": {"InstanceType": tr.instance_type, "InstanceCount": tr.instance_count},
        "Tags": _tags(cfg, ctx),
    }
    if tr.max_concurrent_transforms is not None:
        request["MaxConcurrentTransforms"] = tr.max_concurrent_transforms
    if data_processing:
        request["DataProcessing"] = dict(data_processing)
    return request


#: Batch scoring for models that answer JSON (k-means, linear learner...): the id cannot be
#: joined into a CSV line, so it is dropped going in and paired with the output by position.
BATCH_UNJOINED_DATA_PROCESSING: dict[str, str] = {"InputFilter": "$[1:]"}


def batch_transform_request(
    cfg: PipelineConfig, ctx: RunContext, *, model: str, input_uri: str, output_path: str
) -> dict[str, Any]:
    """Scoring ``id,features...`` lines with the champion: ``id,prediction`` lines when the model
    answers CSV; otherwise one answer a line in input order (see :data:`BATCH_UNJOINED_DATA_PROCESSING`)."""
    inf = cfg.inference
    joined = inf.accept == CSV
    return transform_job_request(
        cfg, ctx, model=model, input_uri=input_uri, output_path=output_path, purpose="batch",
        data_processing=BATCH_DATA_PROCESSING if joined else BATCH_UNJOINED_DATA_PROCESSING,
        content_type=inf.content_type, accept=inf.accept,
    )


def evaluation_transform_request(cfg: PipelineConfig, ctx: RunContext, *, model: str) -> dict[str, Any]:
    """Scoring the held-out test set on SageMaker: ETL's ``test_features`` CSV rows (every tabular
    format; the built-ins read CSV at inference) or the test images one by one. Predictions come
    back in order and are scored against ``test_labels``."""
    inf = cfg.inference
    if cfg.data.format == "image":
        return transform_job_request(
            cfg, ctx, model=model, input_uri=channel_uri(cfg, ctx, "test"), purpose="eval",
            content_type=inf.content_type, accept=inf.accept, split_type="None",
        )
    return transform_job_request(
        cfg, ctx, model=model, input_uri=channel_uri(cfg, ctx, "test_features"), purpose="eval",
        content_type=inf.content_type, accept=inf.accept,
    )


# ------------------------------------------------------------------------------------- registry


def model_package_group_request(cfg: PipelineConfig) -> dict[str, Any]:
    """``CreateModelPackageGroup``: one group per model, shared by every run and stage account."""
    request: dict[str, Any] = {"ModelPackageGroupName": cfg.registry.model_package_group_name}
    if cfg.registry.description:
        request["ModelPackageGroupDescription"] = cfg.registry.description
    request["Tags"] = [{"Key": k, "Value": v} for k, v in {**cfg.tags, "model": cfg.model}.items()]
    return request


def metric_properties(metrics: Mapping[str, float]) -> dict[str, str]:
    """Metrics as ``CustomerMetadataProperties`` (``metric.rmse`` -> ``"53.21"``); read back by
    :func:`include.mlpipeline.evaluate.champion_metrics`."""
    return {f"{METRIC_PROPERTY_PREFIX}{k}": repr(float(v)) for k, v in metrics.items()}


def model_package_request(
    cfg: PipelineConfig,
    ctx: RunContext,
    *,
    model_data_url: str,
    metrics: Mapping[str, float],
    metrics_report_uri: str | None = None,
    training_job: str | None = None,
    approval_status: Literal["Approved", "Rejected", "PendingManualApproval"] | None = None,
    image_uri: str | None = None,
) -> dict[str, Any]:
    """``CreateModelPackage``: a version in the model's group with its evaluation metrics.

    Metrics go to ``CustomerMetadataProperties`` (where the champion lookup reads them; no S3
    round trip) and, when ``metrics_report_uri`` is given, to ``ModelMetrics.ModelQuality`` so the
    registry UI shows the report. Approval defaults to ``PendingManualApproval`` unless the run
    says ``auto_approve``.
    """
    _check(cfg, ctx)
    status = approval_status or ("Approved" if cfg.run.auto_approve else "PendingManualApproval")
    properties = {
        **metric_properties(metrics),
        "run_id": ctx.run_id,
        "stage": cfg.stage,
        "training_job": training_job or training_job_name(cfg, ctx),
    }
    request: dict[str, Any] = {
        "ModelPackageGroupName": cfg.registry.model_package_group_name,
        "ModelPackageDescription": f"{cfg.model} {cfg.stage} run {ctx.run_id}",
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": image_uri or cfg.training.image_uri,
                    "ModelDataUrl": model_data_url,
                    **({"Environment": serving_environment(cfg, ctx)} if cfg.training.entry_point else {}),
                }
            ],
            "SupportedContentTypes": [cfg.inference.content_type],
            "SupportedResponseMIMETypes": sorted({cfg.inference.accept, JSON}),
            "SupportedRealtimeInferenceInstanceTypes": sorted({cfg.endpoint.instance_type}),
            "SupportedTransformInstanceTypes": sorted({cfg.transform.instance_type}),
        },
        "ModelApprovalStatus": status,
        "CustomerMetadataProperties": properties,
        "Tags": _tags(cfg, ctx),
    }
    if metrics_report_uri:
        request["ModelMetrics"] = {
            "ModelQuality": {"Statistics": {"ContentType": JSON, "S3Uri": metrics_report_uri}}
        }
    return request
