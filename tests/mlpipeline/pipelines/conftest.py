"""Fakes for the task functions of ``include/mlpipeline/pipelines``: moto S3 (from the parent
conftest) plus a small SageMaker registry / endpoint fake and an endpoint runtime that answers."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

GROUP_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/{version}"


class ClientError(Exception):
    """botocore's ClientError shape: ``response["Error"]``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"An error occurred ({code}): {message}")
        self.response = {"Error": {"Code": code, "Message": message}}


class FakeSageMaker:
    """Approved packages of one group, endpoints with their configs and models."""

    exceptions = SimpleNamespace(ClientError=ClientError)

    def __init__(self) -> None:
        self.packages: list[dict[str, Any]] = []
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.models: dict[str, str] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def approve(self, group: str, version: int, *, image: str = "img", model_data_url: str = "s3://b/m.tar.gz",
                metrics: dict[str, float] | None = None) -> str:
        arn = GROUP_ARN.format(group=group.lower(), version=version)
        self.packages.append({"ModelPackageArn": arn, "ModelPackageVersion": version, "group": group,
                              "Image": image, "ModelDataUrl": model_data_url,
                              "props": {f"metric.{k}": str(v) for k, v in (metrics or {}).items()}})
        return arn

    def serve(self, endpoint: str, model_data_url: str, status: str = "InService") -> None:
        self.endpoints[endpoint] = {"EndpointStatus": status, "EndpointConfigName": f"{endpoint}-cfg"}
        self.models[f"{endpoint}-model"] = model_data_url

    def list_model_packages(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("list_model_packages", kw))
        return {"ModelPackageSummaryList": [p for p in self.packages if p["group"] == kw["ModelPackageGroupName"]]}

    def describe_model_package(self, ModelPackageName: str) -> dict[str, Any]:  # noqa: N803
        p = next(p for p in self.packages if p["ModelPackageArn"] == ModelPackageName)
        return {"CustomerMetadataProperties": p["props"],
                "InferenceSpecification": {"Containers": [{"Image": p["Image"], "ModelDataUrl": p["ModelDataUrl"]}]}}

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:  # noqa: N803
        if EndpointName not in self.endpoints:
            raise ClientError("ValidationException", f"Could not find endpoint {EndpointName}")
        return self.endpoints[EndpointName]

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict[str, Any]:  # noqa: N803
        endpoint = EndpointConfigName.removesuffix("-cfg")
        return {"ProductionVariants": [{"ModelName": f"{endpoint}-model"}]}

    def describe_model(self, ModelName: str) -> dict[str, Any]:  # noqa: N803
        return {"PrimaryContainer": {"ModelDataUrl": self.models[ModelName]}}


class FakeRuntime:
    """InvokeEndpoint answering ``answer`` (text), recording each request."""

    def __init__(self, answer: str = "0.5\n") -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kw: Any) -> dict[str, Any]:
        self.requests.append(kw)
        return {"Body": io.BytesIO(self.answer.encode())}


@pytest.fixture
def clients(s3: Any) -> SimpleNamespace:
    """What a task gets as ``clients``: moto S3, fake SageMaker and runtime, moto SNS."""
    import boto3

    return SimpleNamespace(
        s3=s3, sagemaker=FakeSageMaker(), runtime=FakeRuntime(), sns=boto3.client("sns", region_name="us-east-1")
    )
