"""include/mlpipeline/sagemaker_requests.py: every request is valid for botocore's SageMaker model.

botocore's ParamValidator checks types, required members and minimum sizes but not string
``pattern``s, maximum lengths or enums, so :func:`assert_valid` walks the shape itself as well;
patterns are matched with the ``regex`` package because AWS writes them with ``\\p{L}`` classes.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from include.mlpipeline.config import PipelineConfig, load_config
from include.mlpipeline.run import RunContext
from include.mlpipeline.sagemaker_requests import (
    BATCH_DATA_PROCESSING,
    EVALUATION_DATA_PROCESSING,
    channel_uri,
    deploy_request,
    endpoint_config_request,
    endpoint_request,
    model_artifact_uri,
    model_package_group_request,
    model_package_request,
    model_request,
    training_job_request,
    transform_job_request,
    tuning_job_request,
)

regex = pytest.importorskip("regex")


@functools.cache
def _service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def constraint_violations(value: Any, shape: Any, path: str = "") -> list[str]:
    """Pattern, enum, length and range violations that ParamValidator does not report."""
    problems: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member_value in value.items():
            if name in shape.members:
                problems += constraint_violations(member_value, shape.members[name], f"{path}.{name}")
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} items > max {meta['max']}")
        for i, item in enumerate(value):
            problems += constraint_violations(item, shape.member, f"{path}[{i}]")
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            problems += constraint_violations(key, shape.key, f"{path}<key {key}>")
            problems += constraint_violations(item, shape.value, f"{path}[{key}]")
    elif kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not in enum {shape.name}")
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: length {len(value)} > max {meta['max']}")
        if "min" in meta and len(value) < meta["min"]:
            problems.append(f"{path}: length {len(value)} < min {meta['min']}")
        if "pattern" in meta and not regex.fullmatch(meta["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {meta['pattern']}")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
        if "min" in meta and value < meta["min"]:
            problems.append(f"{path}: {value} < min {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"{path}: {value} > max {meta['max']}")
    return problems


def assert_valid(operation: str, request: dict[str, Any]) -> None:
    from botocore.validate import ParamValidator

    shape = _service_model().operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert constraint_violations(request, shape, operation) == []


# ----------------------------------------------------------------------------- the helper


def test_helper_catches_what_paramvalidator_skips(dev_cfg: PipelineConfig, dev_ctx: RunContext) -> None:
    request = training_job_request(dev_cfg, dev_ctx)
    request["TrainingJobName"] = "bad_name_with_underscores"
    request["ResourceConfig"]["InstanceType"] = "ml.m5.huge"
    shape = _service_model().operation_model("CreateTrainingJob").input_shape
    problems = constraint_violations(request, shape)
    assert any(".TrainingJobName" in p and "does not match" in p for p in problems)
    assert any(".ResourceConfig.InstanceType" in p and "not in enum" in p for p in problems)


# ------------------------------------------------------------------------------- training


def test_training_request_dev(dev_cfg: PipelineConfig, dev_ctx: RunContext) -> None:
    request = training_job_request(dev_cfg, dev_ctx)
    assert_valid("CreateTrainingJob", request)
    assert request["TrainingJobName"] == "diabetes-dnn-dev-20240601t020000"
    assert request["AlgorithmSpecification"]["TrainingImage"] == dev_cfg.training.image_uri
    assert request["AlgorithmSpecification"]["MetricDefinitions"][0] == {
        "Name": "validation:rmse",
        "Regex": "validation:rmse=([0-9.eE+-]+)",
    }
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 1,
        "VolumeSizeInGB": 10,
    }
    assert request["HyperParameters"] == {
        "epochs": "200",
        "early_stopping_patience": "20",
        "batch_size": "32",
        "learning_rate": "0.005",
        "hidden_units": "64,32",
        "dropout": "0.1",
        "seed": "42",
        "header": "false",
    }
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    prefix = "s3://mlpipeline-dev/diabetes_dnn/manual__2024-06-01T02-00-00-00-00/"
    assert channels["train"]["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": prefix + "train/",
        "S3DataDistributionType": "FullyReplicated",
    }
    assert channels["validation"]["ContentType"] == "text/csv"
    assert request["OutputDataConfig"]["S3OutputPath"] == prefix + "model/"
    assert {"Key": "stage", "Value": "dev"} in request["Tags"]
    assert {"Key": "airflow_run_id", "Value": "manual__2024-06-01T02:00:00+00:00"} in request["Tags"]


def test_training_request_prod_shards_the_train_channel(
    prod_cfg: PipelineConfig, prod_ctx: RunContext
) -> None:
    request = training_job_request(prod_cfg, prod_ctx, hyperparameters={"epochs": 1, "early_stop": True})
    assert_valid("CreateTrainingJob", request)
    sources = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in request["InputDataConfig"]}
    assert sources["train"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert sources["validation"]["S3DataDistributionType"] == "FullyReplicated"
    assert request["ResourceConfig"]["InstanceCount"] == 2
    assert request["HyperParameters"]["epochs"] == "1" and request["HyperParameters"]["early_stop"] == "true"
    assert request["HyperParameters"]["batch_size"] == "32"


def test_training_request_uses_etl_uris_when_the_context_has_them(
    dev_cfg: PipelineConfig, dev_ctx: RunContext
) -> None:
    ctx = dev_ctx.with_data({"train": "s3://elsewhere/train/", "validation": "s3://elsewhere/validation/"})
    request = training_job_request(dev_cfg, ctx)
    assert [c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]] == [
        "s3://elsewhere/train/",
        "s3://elsewhere/validation/",
    ]
    assert channel_uri(dev_cfg, dev_ctx, "test").endswith("/test/")


def test_names_are_deterministic_per_run(dev_cfg: PipelineConfig, dev_ctx: RunContext) -> None:
    again = RunContext("diabetes_dnn", "dev", dev_ctx.run_id, dev_ctx.ts_nodash)
    later = RunContext("diabetes_dnn", "dev", "scheduled__next", "20240602T020000")
    assert training_job_request(dev_cfg, dev_ctx) == training_job_request(dev_cfg, again)
    assert (
        training_job_request(dev_cfg, later)["TrainingJobName"]
        != training_job_request(dev_cfg, dev_ctx)["TrainingJobName"]
    )


def test_mismatched_context_is_refused(dev_cfg: PipelineConfig, prod_ctx: RunContext) -> None:
    with pytest.raises(
        ValueError, match="run context is for diabetes_dnn/prod but config is for diabetes_dnn/dev"
    ):
        training_job_request(dev_cfg, prod_ctx)


# --------------------------------------------------------------------------------- tuning


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_tuning_request(stage: str, dev_ctx: RunContext) -> None:
    cfg = load_config("diabetes_dnn", stage, {"tuning": {"enabled": True}})
    ctx = RunContext("diabetes_dnn", stage, dev_ctx.run_id, dev_ctx.ts_nodash)
    request = tuning_job_request(cfg, ctx)
    assert_valid("CreateHyperParameterTuningJob", request)
    job = request["HyperParameterTuningJobConfig"]
    assert len(request["HyperParameterTuningJobName"]) <= 32
    assert job["Strategy"] == "Bayesian"
    assert job["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "validation:rmse"}
    assert job["ResourceLimits"] == {
        "MaxParallelTrainingJobs": cfg.tuning.max_parallel_jobs,
        "MaxNumberOfTrainingJobs": cfg.tuning.max_jobs,
    }
    ranges = job["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"][0] == {
        "Name": "learning_rate",
        "MinValue": "0.0005",
        "MaxValue": "0.05",
        "ScalingType": "Logarithmic",
    }
    assert ranges["IntegerParameterRanges"] == [
        {"Name": "batch_size", "MinValue": "16", "MaxValue": "128", "ScalingType": "Auto"}
    ]
    assert ranges["CategoricalParameterRanges"] == [
        {"Name": "hidden_units", "Values": ["32", "64,32", "128,64"]}
    ]
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static == {
        "epochs": "200",
        "early_stopping_patience": "20",
        "seed": "42",
        "header": "false",
    }  # tuned names are not static
    train = request["TrainingJobDefinition"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert train["S3DataDistributionType"] == ("ShardedByS3Key" if stage == "prod" else "FullyReplicated")


def test_grid_tuning_has_no_job_budget(dev_ctx: RunContext) -> None:
    categorical = {"type": "categorical", "values": [0.001, 0.01]}
    cfg = load_config(
        "diabetes_dnn",
        "dev",
        {
            "tuning": {
                "strategy": "Grid",
                "parameter_ranges": {  # a range switching type replaces the configured one
                    "learning_rate": categorical,
                    "batch_size": {"type": "categorical", "values": [32, 64]},
                    "dropout": {"type": "categorical", "values": [0.0]},
                },
            }
        },
    )
    request = tuning_job_request(cfg, dev_ctx)
    assert_valid("CreateHyperParameterTuningJob", request)
    job = request["HyperParameterTuningJobConfig"]
    assert job["ResourceLimits"] == {"MaxParallelTrainingJobs": 2}
    assert job["ParameterRanges"]["CategoricalParameterRanges"][0] == {
        "Name": "learning_rate",
        "Values": ["0.001", "0.01"],
    }
    assert job["ParameterRanges"]["ContinuousParameterRanges"] == []
    assert set(request["TrainingJobDefinition"]["StaticHyperParameters"]) == {
        "epochs",
        "early_stopping_patience",
        "seed",
        "header",
    }


# -------------------------------------------------------------------------------- hosting


def test_model_request(dev_cfg: PipelineConfig, dev_ctx: RunContext) -> None:
    artifact = model_artifact_uri(dev_cfg, dev_ctx)
    assert artifact.endswith("/model/diabetes-dnn-dev-20240601t020000/output/model.tar.gz")
    request = model_request(dev_cfg, dev_ctx, artifact)
    assert_valid("CreateModel", request)
    assert request["PrimaryContainer"] == {"Image": dev_cfg.training.image_uri, "ModelDataUrl": artifact}
    assert request["ExecutionRoleArn"] == dev_cfg.aws.role_arn


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_endpoint_config_request_captures_data(
    dev_cfg: PipelineConfig, dev_ctx: RunContext, target: str
) -> None:
    request = endpoint_config_request(dev_cfg, dev_ctx, "my-model", target=target)  # type: ignore[arg-type]
    assert_valid("CreateEndpointConfig", request)
    assert request["EndpointConfigName"] == f"diabetes-dnn-dev-{target}-20240601t020000"
    assert request["ProductionVariants"][0]["ModelName"] == "my-model"
    assert request["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": "s3://mlpipeline-dev/diabetes_dnn/data-capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json"],
        },
    }


def test_endpoint_request_dev_and_prod(
    dev_cfg: PipelineConfig, dev_ctx: RunContext, prod_cfg: PipelineConfig, prod_ctx: RunContext
) -> None:
    dev = endpoint_request(dev_cfg, dev_ctx, target="dev")
    assert_valid("CreateEndpoint", dev)
    assert dev["EndpointName"] == "diabetes-dnn-dev" and "DeploymentConfig" not in dev

    prod = endpoint_request(prod_cfg, prod_ctx, target="prod")
    assert_valid("CreateEndpoint", prod)
    assert prod["EndpointName"] == "diabetes-dnn-prod"
    routing = prod["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": 300,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
    }
    # the provider's operator retries an existing endpoint with UpdateEndpoint minus Tags
    update = {k: v for k, v in prod.items() if k != "Tags"}
    assert_valid("UpdateEndpoint", update)


def test_linear_deployment_with_rollback_alarms(prod_ctx: RunContext) -> None:
    cfg = load_config(
        "diabetes_dnn",
        "prod",
        {
            "endpoint": {
                "deployment": {
                    "traffic_routing": "Linear",
                    "linear_step_percent": 25,
                    "rollback_alarms": ["p99-latency"],
                }
            }
        },
    )
    request = endpoint_request(cfg, prod_ctx, target="prod")
    assert_valid("CreateEndpoint", request)
    assert request["DeploymentConfig"]["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": "p99-latency"}]
    }
    assert (
        request["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"]
        == "LINEAR"
    )


def test_deploy_request_is_what_the_endpoint_operator_takes(
    dev_cfg: PipelineConfig, dev_ctx: RunContext
) -> None:
    config = deploy_request(dev_cfg, dev_ctx, model_artifact_uri(dev_cfg, dev_ctx), target="dev")
    assert_valid("CreateModel", config["Model"])
    assert_valid("CreateEndpointConfig", config["EndpointConfig"])
    assert_valid("CreateEndpoint", config["Endpoint"])
    assert config["EndpointConfig"]["ProductionVariants"][0]["ModelName"] == config["Model"]["ModelName"]
    assert config["Endpoint"]["EndpointConfigName"] == config["EndpointConfig"]["EndpointConfigName"]
    prod = deploy_request(
        dev_cfg, dev_ctx, model_artifact_uri(dev_cfg, dev_ctx), target="prod", include_model=False
    )
    assert set(prod) == {"EndpointConfig", "Endpoint"}
    assert prod["EndpointConfig"]["ProductionVariants"][0]["ModelName"] == config["Model"]["ModelName"]
    assert prod["Endpoint"]["EndpointName"] == "diabetes-dnn-prod"


# ------------------------------------------------------------------------------ transform


def test_transform_request_plain(dev_cfg: PipelineConfig, dev_ctx: RunContext) -> None:
    request = transform_job_request(
        dev_cfg, dev_ctx, model="m", input_uri=channel_uri(dev_cfg, dev_ctx, "test_features"), purpose="eval"
    )
    assert_valid("CreateTransformJob", request)
    assert request["TransformJobName"] == "diabetes-dnn-dev-eval-20240601t020000"
    assert request["TransformInput"]["ContentType"] == "text/csv"
    assert request["TransformInput"]["SplitType"] == "Line"
    assert request["BatchStrategy"] == "MultiRecord"
    assert request["TransformOutput"]["S3OutputPath"].endswith("/transform/eval/")
    assert "DataProcessing" not in request


@pytest.mark.parametrize("processing", [BATCH_DATA_PROCESSING, EVALUATION_DATA_PROCESSING])
def test_transform_request_with_join(
    prod_cfg: PipelineConfig, prod_ctx: RunContext, processing: dict[str, str]
) -> None:
    request = transform_job_request(
        prod_cfg,
        prod_ctx,
        model="m",
        input_uri="s3://mlpipeline-prod/x/batch_input/",
        output_path="s3://mlpipeline-prod/x/scores/",
        data_processing=processing,
    )
    assert_valid("CreateTransformJob", request)
    assert request["DataProcessing"] == {
        "InputFilter": "$[1:]",
        "JoinSource": "Input",
        "OutputFilter": "$[0,-1]",
    }
    assert request["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2}
    assert request["TransformOutput"]["S3OutputPath"] == "s3://mlpipeline-prod/x/scores/"


# ------------------------------------------------------------------------------- registry


def test_model_package_group_request(dev_cfg: PipelineConfig) -> None:
    request = model_package_group_request(dev_cfg)
    assert_valid("CreateModelPackageGroup", request)
    assert request["ModelPackageGroupName"] == "diabetes-dnn"


def test_model_package_request(dev_cfg: PipelineConfig, dev_ctx: RunContext) -> None:
    metrics = {"rmse": 53.25, "mae": 42.0, "r2": 0.48, "n": 62.0}
    request = model_package_request(
        dev_cfg,
        dev_ctx,
        model_data_url=model_artifact_uri(dev_cfg, dev_ctx),
        metrics=metrics,
        metrics_report_uri="s3://mlpipeline-dev/diabetes_dnn/r/evaluation/model_quality.json",
    )
    assert_valid("CreateModelPackage", request)
    assert request["ModelApprovalStatus"] == "PendingManualApproval"
    assert request["CustomerMetadataProperties"] == {
        "metric.rmse": "53.25",
        "metric.mae": "42.0",
        "metric.r2": "0.48",
        "metric.n": "62.0",
        "run_id": dev_ctx.run_id,
        "stage": "dev",
        "training_job": "diabetes-dnn-dev-20240601t020000",
    }
    assert request["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith("model_quality.json")
    assert request["InferenceSpecification"]["Containers"][0]["Image"] == dev_cfg.training.image_uri


def test_model_package_auto_approval_follows_the_run_flag(dev_ctx: RunContext) -> None:
    cfg = load_config("diabetes_dnn", "dev", {"run": {"auto_approve": True}})
    request = model_package_request(cfg, dev_ctx, model_data_url="s3://b/model.tar.gz", metrics={"rmse": 1.0})
    assert_valid("CreateModelPackage", request)
    assert request["ModelApprovalStatus"] == "Approved"
    assert "ModelMetrics" not in request
