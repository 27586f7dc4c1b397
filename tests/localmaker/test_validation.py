from __future__ import annotations

import botocore.session
import pytest

from localmaker.errors import AwsError
from localmaker.validation import validate

SM = botocore.session.get_session().get_service_model("sagemaker")


def shape(op: str):
    return SM.operation_model(op).input_shape


def test_missing_required_member_is_named_like_aws():
    with pytest.raises(AwsError) as e:
        validate(shape("DescribeTrainingJob"), {})
    assert e.value.code == "ValidationException"
    assert e.value.message == (
        "1 validation error detected: Value null at 'trainingJobName' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_pattern_length_range_and_enum_are_enforced_with_paths():
    params = {
        "TrainingJobName": "bad name!",
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "Sideways"},
        "RoleArn": "arn:aws:iam::123456789012:role/R",
        "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 0},
    }
    with pytest.raises(AwsError) as e:
        validate(shape("CreateTrainingJob"), params)
    msg = e.value.message
    assert msg.startswith("3 validation errors detected: ")
    assert "Value 'bad name!' at 'trainingJobName' failed to satisfy constraint: Member must satisfy regular expression pattern" in msg
    assert "at 'algorithmSpecification.trainingInputMode' failed to satisfy constraint: Member must satisfy enum value set" in msg
    assert "Value '0' at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: Member must have value greater than or equal to 1" in msg


def test_wrong_types_and_list_members():
    with pytest.raises(AwsError) as e:
        validate(shape("AddTags"), {"ResourceArn": "arn:aws:sagemaker:us-east-1:1:model/x", "Tags": [{"Key": 5}]})
    assert "at 'tags.1.member.key' failed to satisfy constraint: Member must be a string" in e.value.message


def test_valid_request_passes():
    validate(shape("DescribeEndpoint"), {"EndpointName": "ok-name"})
