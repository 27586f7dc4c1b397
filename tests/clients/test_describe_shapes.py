"""Every Describe and List answer localmaker gives has the members AWS always returns, with their types.

Walks each operation's output shape in botocore's service model over real resources (the SDK flows'
jobs, plus an endpoint with data capture, a processing job and a model package made here): every
member the shape marks required is present, every member present has the shape's type. On top of the
model, the members AWS returns without the model requiring them that client code indexes (the SDK's
``attach`` reads ``OutputDataConfig.KmsKeyId``, ``training_job_analytics`` reads ``MetricDefinitions``,
``HyperparameterTuner.attach`` deletes ``StaticHyperParameters['_tuning_objective_metric']``...).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from localmaker.controlplane import service_model
from localmaker.server import LocalMaker
from tests.clients.conftest import FLOW_NAMES, Flows
from tests.localmaker.conftest import ROLE, wait_for

pytestmark = pytest.mark.slow

_TYPES: dict[str, Any] = {
    "string": str, "integer": int, "long": int, "boolean": bool, "float": (int, float), "double": (int, float),
    "timestamp": dt.datetime, "list": list, "map": dict, "structure": dict, "blob": bytes,
}


def check_shape(shape: Any, value: Any, path: str, problems: list[str]) -> None:
    want = _TYPES[shape.type_name]
    if not isinstance(value, want) or (shape.type_name in ("integer", "long") and isinstance(value, bool)):
        problems.append(f"{path}: {type(value).__name__} {value!r:.80}, the model says {shape.type_name}")
        return
    if shape.type_name == "structure":
        for name in shape.metadata.get("required", []):
            if name not in value:
                problems.append(f"{path}.{name}: missing (required)")
        for name, member in shape.members.items():
            if name in value:
                check_shape(member, value[name], f"{path}.{name}", problems)
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            check_shape(shape.member, item, f"{path}[{i}]", problems)
    elif shape.type_name == "map":
        for k, v in value.items():
            check_shape(shape.value, v, f"{path}[{k!r}]", problems)


def checked(sm: Any, operation: str, **params: Any) -> dict[str, Any]:
    """The parsed answer of ``operation``, failing the test on any required member missing or mistyped."""
    py_name = "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")
    answer = getattr(sm, py_name)(**params)
    answer.pop("ResponseMetadata", None)
    problems: list[str] = []
    check_shape(service_model("sagemaker").operation_model(operation).output_shape, answer, operation, problems)
    assert problems == [], "\n".join(problems)
    return answer


@pytest.fixture(scope="module")
def resources(flows: Flows) -> dict[str, str]:
    """Names of one resource of every kind, all flows done; the endpoint, processing job and model
    package are made here (the flows delete their endpoints)."""
    for n in FLOW_NAMES:
        flows.result(n)  # done, whether or not it passed: its resources are what is described here
    srv = flows.server
    sm = srv.client("sagemaker")
    completed = sm.list_training_jobs(NameContains="sagemaker-xgboost", StatusEquals="Completed",
                                      SortOrder="Ascending", MaxResults=100)["TrainingJobSummaries"]
    assert completed, "no completed XGBoost training job: the SDK flows made none"
    job = sm.describe_training_job(TrainingJobName=completed[0]["TrainingJobName"])
    (tuning,) = sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    tag = str(int(time.time()))
    model, config, endpoint = f"shape-model-{tag}", f"shape-config-{tag}", f"shape-endpoint-{tag}"
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": job["AlgorithmSpecification"]["TrainingImage"],
        "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
    sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100,
                           "DestinationS3Uri": "s3://sdk-flows/capture",
                           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    processing = f"shape-processing-{tag}"
    sm.create_processing_job(
        ProcessingJobName=processing, RoleArn=ROLE,
        AppSpecification={"ImageUri": job["AlgorithmSpecification"]["TrainingImage"],
                          "ContainerEntrypoint": ["python3", "-c", "import sys; print(sys.argv)"]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        ProcessingInputs=[{"InputName": "data", "S3Input": {
            "S3Uri": "s3://sdk-flows/sdk-xgboost/batch", "LocalPath": "/opt/ml/processing/input",
            "S3DataType": "S3Prefix"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "out", "S3Output": {
            "S3Uri": "s3://sdk-flows/shape-out", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]})
    group = f"shape-group-{tag}"
    sm.create_model_package_group(ModelPackageGroupName=group)
    package = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification={
        "Containers": [{"Image": job["AlgorithmSpecification"]["TrainingImage"],
                        "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]}],
        "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]})["ModelPackageArn"]
    wait_for(lambda: sm.describe_endpoint(EndpointName=endpoint), lambda d: d["EndpointStatus"] != "Creating", 120)
    wait_for(lambda: sm.describe_processing_job(ProcessingJobName=processing),
             lambda d: d["ProcessingJobStatus"] not in ("InProgress", "Stopping"), 120)
    (transform,) = sm.list_transform_jobs()["TransformJobSummaries"]
    out = {"training": job["TrainingJobName"], "tuning": tuning["HyperParameterTuningJobName"], "model": model,
           "config": config, "endpoint": endpoint, "processing": processing, "group": group, "package": package,
           "transform": transform["TransformJobName"]}
    yield out
    sm.delete_endpoint(EndpointName=endpoint)


def test_every_describe_operation_is_covered(tmp_path: Any) -> None:
    lm = LocalMaker(tmp_path / "home", port=0)
    try:
        implemented = {op for op in lm.sagemaker.operations if op.startswith("Describe")}
    finally:
        lm.stop()
    assert implemented == set(DESCRIBES), "a Describe operation without a shape check: " + str(implemented ^ set(DESCRIBES))


DESCRIBES = {
    "DescribeTrainingJob": ("training", "TrainingJobName"),
    "DescribeModel": ("model", "ModelName"),
    "DescribeEndpointConfig": ("config", "EndpointConfigName"),
    "DescribeEndpoint": ("endpoint", "EndpointName"),
    "DescribeHyperParameterTuningJob": ("tuning", "HyperParameterTuningJobName"),
    "DescribeProcessingJob": ("processing", "ProcessingJobName"),
    "DescribeTransformJob": ("transform", "TransformJobName"),
    "DescribeModelPackageGroup": ("group", "ModelPackageGroupName"),
    "DescribeModelPackage": ("package", "ModelPackageName"),
}


@pytest.mark.parametrize("operation", sorted(DESCRIBES))
def test_describe_has_the_required_members(flows: Flows, resources: dict[str, str], operation: str) -> None:
    kind, param = DESCRIBES[operation]
    checked(flows.server.client("sagemaker"), operation, **{param: resources[kind]})


@pytest.mark.parametrize("operation, params", [
    ("ListTrainingJobs", {}), ("ListModels", {}), ("ListEndpointConfigs", {}), ("ListEndpoints", {}),
    ("ListHyperParameterTuningJobs", {}), ("ListTrainingJobsForHyperParameterTuningJob", {"HyperParameterTuningJobName": "tuning"}),
    ("ListProcessingJobs", {}), ("ListTransformJobs", {}), ("ListModelPackageGroups", {}),
    ("ListModelPackages", {"ModelPackageGroupName": "group"}),
])
def test_list_has_the_required_members(flows: Flows, resources: dict[str, str], operation: str,
                                       params: dict[str, str]) -> None:
    answer = checked(flows.server.client("sagemaker"), operation,
                     **{k: resources[v] for k, v in params.items()}, MaxResults=100)
    assert any(isinstance(v, list) and v for v in answer.values()), answer


def test_members_aws_returns_that_clients_index(flows: Flows, resources: dict[str, str]) -> None:
    sm = flows.server.client("sagemaker")
    job = sm.describe_training_job(TrainingJobName=resources["training"])
    assert job["OutputDataConfig"]["KmsKeyId"] == ""
    assert {"validation:error", "train:error"} <= {m["Name"] for m in job["AlgorithmSpecification"]["MetricDefinitions"]}
    assert all(ch["CompressionType"] == "None" for ch in job["InputDataConfig"])

    tuning = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=resources["tuning"])
    definition = tuning["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"]["_tuning_objective_metric"] == "validation:auc"
    assert definition["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert "validation:auc" in {m["Name"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]}

    endpoint = sm.describe_endpoint(EndpointName=resources["endpoint"])
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    (image,) = endpoint["ProductionVariants"][0]["DeployedImages"]
    assert image["SpecifiedImage"] == job["AlgorithmSpecification"]["TrainingImage"]
    assert image["ResolvedImage"] and isinstance(image["ResolutionTime"], dt.datetime)
    assert endpoint["DataCaptureConfig"]["KmsKeyId"] == ""

    model = sm.describe_model(ModelName=resources["model"])
    assert model["PrimaryContainer"]["Mode"] == "SingleModel" and model["PrimaryContainer"]["Environment"] == {}
    config = sm.describe_endpoint_config(EndpointConfigName=resources["config"])
    assert config["ProductionVariants"][0]["InitialVariantWeight"] == 1.0

    processing = sm.describe_processing_job(ProcessingJobName=resources["processing"])
    assert processing["ProcessingJobStatus"] == "Completed", processing.get("FailureReason")
    s3_input = processing["ProcessingInputs"][0]["S3Input"]
    assert (s3_input["S3InputMode"], s3_input["S3DataDistributionType"], s3_input["S3CompressionType"]) == (
        "File", "FullyReplicated", "None")
    assert processing["ProcessingInputs"][0]["AppManaged"] is False
    assert processing["ProcessingOutputConfig"]["Outputs"][0]["AppManaged"] is False

    transform = sm.describe_transform_job(TransformJobName=resources["transform"])
    assert transform["DataProcessing"] == {"InputFilter": "$[1:]", "OutputFilter": "$[0,-1]", "JoinSource": "Input"}
    assert transform["TransformInput"]["CompressionType"] == "None"
    assert transform["TransformOutput"]["KmsKeyId"] == ""
