"""Model registry and tags, with the messages the Airflow provider matches on."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from .conftest import unique

SPEC = {
    "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny-algo:1", "ModelDataUrl": "s3://b/m.tar.gz"}],
    "SupportedContentTypes": ["text/csv"],
    "SupportedResponseMIMETypes": ["text/csv"],
}


def test_groups_versions_approval_and_listing(sm):
    group = unique("grp")
    arn = sm.create_model_package_group(ModelPackageGroupName=group, ModelPackageGroupDescription="d")["ModelPackageGroupArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:model-package-group/{group}"
    with pytest.raises(ClientError) as e:
        sm.create_model_package_group(ModelPackageGroupName=group)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert e.value.response["Error"]["Message"].startswith("Model Package Group already exists")
    arns = [
        sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=SPEC,
                                CustomerMetadataProperties={"rmse": str(10 - i)})["ModelPackageArn"]
        for i in range(3)
    ]
    assert arns == [f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/{v}" for v in (1, 2, 3)]
    pkg = sm.describe_model_package(ModelPackageName=arns[1])
    assert pkg["ModelPackageVersion"] == 2 and pkg["ModelApprovalStatus"] == "PendingManualApproval"
    assert pkg["ModelPackageStatus"] == "Completed" and pkg["CustomerMetadataProperties"] == {"rmse": "9"}
    sm.update_model_package(ModelPackageArn=arns[1], ModelApprovalStatus="Approved", ApprovalDescription="champion")
    approved = sm.list_model_packages(ModelPackageGroupName=group, ModelApprovalStatus="Approved")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in approved] == [arns[1]]
    latest = sm.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending", MaxResults=1)
    assert latest["ModelPackageSummaryList"][0]["ModelPackageVersion"] == 3 and "NextToken" in latest
    assert sm.describe_model_package_group(ModelPackageGroupName=group)["ModelPackageGroupName"] == group
    assert any(g["ModelPackageGroupName"] == group for g in sm.list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"])


def test_registry_errors(sm):
    with pytest.raises(ClientError) as e:
        sm.create_model_package(ModelPackageGroupName="no-such-group", InferenceSpecification=SPEC)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        sm.describe_model_package(ModelPackageName="arn:aws:sagemaker:us-east-1:123456789012:model-package/nope/1")
    assert "does not exist" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        sm.describe_model_package_group(ModelPackageGroupName="nope")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        sm.update_model_package(ModelPackageArn="arn:aws:sagemaker:us-east-1:123456789012:model-package/x/1", ModelApprovalStatus="Maybe")
    assert "enum value set" in e.value.response["Error"]["Message"]


def test_tags_add_list_delete(sm):
    group = unique("tagged")
    arn = sm.create_model_package_group(ModelPackageGroupName=group, Tags=[{"Key": "team", "Value": "ml"}])["ModelPackageGroupArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}, {"Key": "team", "Value": "mlops"}])
    assert sorted((t["Key"], t["Value"]) for t in sm.list_tags(ResourceArn=arn)["Tags"]) == [("stage", "dev"), ("team", "mlops")]
    sm.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]
    with pytest.raises(ClientError) as e:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "k" * 129, "Value": "x"}])
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "Member must have length less than or equal to 128" in e.value.response["Error"]["Message"]


def test_create_tags_land_on_the_created_resource(sm):
    """Tags given to a Create are the resource's tags: a versioned and an unversioned package, a group."""
    group = unique("tagsgroup")
    g_arn = sm.create_model_package_group(ModelPackageGroupName=group, Tags=[{"Key": "g", "Value": "1"}])[
        "ModelPackageGroupArn"]
    spec = {"Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}
    versioned = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=spec,
                                        Tags=[{"Key": "v", "Value": "2"}])["ModelPackageArn"]
    plain = sm.create_model_package(ModelPackageName=unique("tagspkg"), InferenceSpecification=spec,
                                    Tags=[{"Key": "u", "Value": "3"}])["ModelPackageArn"]
    assert sm.list_tags(ResourceArn=g_arn)["Tags"] == [{"Key": "g", "Value": "1"}]
    assert sm.list_tags(ResourceArn=versioned)["Tags"] == [{"Key": "v", "Value": "2"}]
    assert sm.list_tags(ResourceArn=plain)["Tags"] == [{"Key": "u", "Value": "3"}]
