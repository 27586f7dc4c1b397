"""infra/sagemaker-pipelines.yaml: cfn-lint clean, least-privilege IAM, the resources the pipelines use."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import ManualArgs, lint_all, lint_file
from cfnlint.decode import decode

from tests.infra.support import ROOT

TEMPLATE_PATH = ROOT / "infra" / "sagemaker-pipelines.yaml"
TEMPLATES = sorted(
    p for p in (ROOT / "infra").rglob("*") if p.suffix in {".yaml", ".yml", ".json"}
    and "AWSTemplateFormatVersion" in p.read_text(errors="replace")
)

#: Allow statements on Resource "*" are only for actions with no resource-level permissions.
RESOURCE_STAR_EXCEPTIONS = {
    "ecr:GetAuthorizationToken": "ECR login token: account-wide by design",
    "cloudwatch:PutMetricData": "no resource-level permissions; pinned to SageMaker namespaces by condition",
    "sagemaker:List*": "SageMaker List* calls have no resource-level permissions (read-only)",
}
READ_VERBS = ("Describe", "List", "Get", "Search", "BatchDescribe", "BatchGet")


def _template() -> dict[str, Any]:
    template, matches = decode(str(TEMPLATE_PATH))
    assert template is not None, matches
    return template


TEMPLATE = _template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _of_type(kind: str) -> dict[str, Any]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] == kind}


def _branches(node: Any) -> Iterator[Any]:
    """Both branches of an Fn::If (minus AWS::NoValue), or the node itself."""
    if isinstance(node, dict) and "Fn::If" in node:
        for branch in node["Fn::If"][1:]:
            yield from _branches(branch)
    elif not (isinstance(node, dict) and node.get("Ref") == "AWS::NoValue"):
        yield node


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource_text(resource: Any) -> str:
    if isinstance(resource, str):
        return resource
    if "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    if "Fn::GetAtt" in resource:
        att = resource["Fn::GetAtt"]
        return "GetAtt:" + (att if isinstance(att, str) else ".".join(att))
    if "Ref" in resource:
        return "Ref:" + resource["Ref"]
    return json.dumps(resource)


def identity_statements() -> list[tuple[str, dict[str, Any]]]:
    """Every statement of every identity policy in the template, with the policy's owner."""
    found = []
    for name, res in RESOURCES.items():
        props = res.get("Properties", {})
        documents = []
        if res["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif res["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            documents = [props["PolicyDocument"]]
        for document in documents:
            for statement in _listify(document["Statement"]):
                found.extend((name, s) for s in _branches(statement))
    return found


STATEMENTS = identity_statements()


def _allowed(owner: str) -> list[tuple[list[str], list[str], dict[str, Any]]]:
    return [
        (_listify(s["Action"]), [_resource_text(r) for r in _listify(s["Resource"])], s)
        for name, s in STATEMENTS
        if name == owner and s["Effect"] == "Allow"
    ]


def _allows(owner: str, action: str) -> bool:
    return any(fnmatch.fnmatchcase(action, pattern) for actions, _, _ in _allowed(owner) for pattern in actions)


def _is_write(action: str) -> bool:
    return not action.split(":", 1)[1].startswith(READ_VERBS)


# ---- cfn-lint ----------------------------------------------------------------------------------------


def test_infra_has_templates() -> None:
    assert TEMPLATE_PATH in TEMPLATES


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cfn_lint_reports_no_errors_or_warnings(template: Path) -> None:
    matches = lint_file(template, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    problems = [m for m in matches if m.rule.severity in ("error", "warning")]
    assert not problems, "\n".join(f"{m.rule.id} line {m.linenumber}: {m.message}" for m in problems)


def test_cfn_lint_api_does_catch_errors() -> None:
    """Guards the test above against silently linting nothing."""
    bad = "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n      Bogus: 1\n"
    assert any(m.rule.id == "E3002" for m in lint_all(bad))


# ---- IAM: least privilege ----------------------------------------------------------------------------


@pytest.mark.parametrize("owner, statement", STATEMENTS, ids=lambda v: v if isinstance(v, str) else v.get("Sid", "?"))
def test_statement_is_least_privilege(owner: str, statement: dict[str, Any]) -> None:
    assert statement["Effect"] == "Allow", "identity policies here only allow; denials live on the resources"
    assert "NotAction" not in statement and "NotResource" not in statement
    actions = _listify(statement["Action"])
    resources = [_resource_text(r) for r in _listify(statement["Resource"])]
    for action in actions:
        assert action not in ("*", "*:*") and not action.endswith(":*"), f"{owner}: service-wide action {action}"
    if "*" in resources:
        unexplained = [a for a in actions if a not in RESOURCE_STAR_EXCEPTIONS
                       and not any(fnmatch.fnmatchcase(a, e) for e in RESOURCE_STAR_EXCEPTIONS)]
        assert not unexplained, f"{owner}: Resource '*' for {unexplained}; narrow it or document the exception"
    for action in actions:
        if action.startswith("sagemaker:") and _is_write(action):
            for resource in resources:
                m = re.fullmatch(r"arn:\$\{AWS::Partition\}:sagemaker:\$\{AWS::Region\}:\$\{AWS::AccountId\}:([a-z-]+)/\*",
                                 resource)
                assert m, f"{owner}: {action} on {resource}: use this account/region and one resource type"


def test_pass_role_only_hands_the_execution_role_to_sagemaker() -> None:
    passes = [(actions, resources, s) for actions, resources, s in _allowed("AirflowPolicy") if "iam:PassRole" in actions]
    assert len(passes) == 1
    actions, resources, statement = passes[0]
    assert actions == ["iam:PassRole"]
    assert resources == ["GetAtt:SageMakerExecutionRole.Arn"]
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert not any("iam:PassRole" in a for name, s in STATEMENTS if name != "AirflowPolicy" for a in _listify(s["Action"]))


def test_execution_role_is_assumable_by_sagemaker_only() -> None:
    trust = RESOURCES["SageMakerExecutionRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "sagemaker.amazonaws.com"}]
    assert trust[0]["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def _provider_sagemaker_actions() -> set[str]:
    """IAM actions for the SageMaker API calls the Amazon provider's hook makes (get_conn().<op>())."""
    import airflow.providers.amazon.aws.hooks.sagemaker as hook

    ops = set(re.findall(r"\.get_conn\(\)\.([a-z_]+)\(", Path(hook.__file__).read_text()))
    ops |= {"list_training_jobs", "list_transform_jobs",  # paginated through getattr in _list_request
            "create_model_package_group", "create_model_package"}  # SageMakerRegisterModelVersionOperator
    return {"sagemaker:" + "".join(w.capitalize() for w in op.split("_")) for op in ops}


def test_airflow_may_call_what_the_provider_and_pipeline_call() -> None:
    required = _provider_sagemaker_actions() | {
        "sagemaker:CreateTrainingJob", "sagemaker:CreateHyperParameterTuningJob", "sagemaker:CreateProcessingJob",
        "sagemaker:CreateTransformJob", "sagemaker:CreateModel", "sagemaker:CreateEndpointConfig",
        "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint",
        "sagemaker:DescribeTrainingJob", "sagemaker:DescribeEndpoint", "sagemaker:DescribeModelPackage",
        "sagemaker:ListModelPackages", "sagemaker:UpdateModelPackage", "sagemaker:InvokeEndpoint",
        "sagemaker:AddTags", "sagemaker:ListTags",
        "logs:DescribeLogStreams", "logs:GetLogEvents",
        "s3:GetObject", "s3:PutObject", "s3:ListBucket", "sns:Publish", "iam:PassRole",
    }
    missing = sorted(a for a in required if not _allows("AirflowPolicy", a))
    assert not missing, f"AirflowPolicy does not allow {missing}"


def test_execution_role_can_run_jobs_and_endpoints() -> None:
    required = {
        "s3:GetObject", "s3:PutObject", "s3:ListBucket", "ecr:GetAuthorizationToken", "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer", "logs:CreateLogStream", "logs:PutLogEvents", "cloudwatch:PutMetricData",
    }
    missing = sorted(a for a in required if not _allows("SageMakerExecutionRole", a))
    assert not missing, f"SageMakerExecutionRole does not allow {missing}"
    assert not any(a.startswith("sagemaker:") for actions, _, _ in _allowed("SageMakerExecutionRole") for a in actions)


@pytest.mark.parametrize("owner", ["SageMakerExecutionRole", "AirflowPolicy"])
def test_s3_and_logs_are_scoped(owner: str) -> None:
    for actions, resources, _ in _allowed(owner):
        if any(a.startswith("s3:") for a in actions):
            assert set(resources) <= {"GetAtt:ArtifactBucket.Arn", "${ArtifactBucket.Arn}/*"}, resources
        if any(a.startswith("logs:") for a in actions):
            assert all(":log-group:/aws/sagemaker/" in r for r in resources), resources


# ---- resources ---------------------------------------------------------------------------------------


def test_bucket_is_versioned_encrypted_private_and_tls_only() -> None:
    props = RESOURCES["ArtifactBucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    algorithms = {b["SSEAlgorithm"] for b in _branches(rule)}
    assert algorithms == {"aws:kms", "AES256"}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    (policy,) = _of_type("AWS::S3::BucketPolicy").values()
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_ecr_repositories_scan_on_push_with_lifecycle() -> None:
    params = {name: str(p.get("Default", "")) for name, p in TEMPLATE["Parameters"].items()}
    repos = _of_type("AWS::ECR::Repository")
    assert {r["Properties"]["RepositoryName"] for r in repos.values()} == {"dnn-regressor", "model-monitor"}
    for name, repo in repos.items():
        props = repo["Properties"]
        assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}, name
        text = re.sub(r"\$\{(\w+)\}", lambda m: params[m.group(1)], props["LifecyclePolicy"]["LifecyclePolicyText"]["Fn::Sub"])
        rules = json.loads(text)["rules"]
        assert [r["selection"]["tagStatus"] for r in rules] == ["untagged", "any"], name


def test_image_repositories_match_config_and_containers() -> None:
    """The repos must be where include/config points and where scripts/push_images.sh pushes."""
    shipped = [yaml.safe_load(m.read_text())["training"]["image_uri"]
               for m in (ROOT / "include" / "config" / "models").glob("*.yaml")]
    assert any(u.startswith("{account}.dkr.ecr.") for u in shipped)  # the check below is not vacuous
    repos = {r["Properties"]["RepositoryName"] for r in _of_type("AWS::ECR::Repository").values()}
    for model in sorted((ROOT / "include" / "config" / "models").glob("*.yaml")):
        uri = (yaml.safe_load(model.read_text()).get("training") or {}).get("image_uri", "")
        # our images live in the stage's own account; built-ins (sagemaker-xgboost, kmeans...) in AWS's
        if uri.startswith("{account}.dkr.ecr."):
            repo = uri.split("/", 1)[1].rsplit(":", 1)[0]
            assert repo in repos, f"{model.relative_to(ROOT)} uses ECR repo {repo}, not in the template"
    for dockerfile in sorted((ROOT / "container").glob("*/Dockerfile")):
        repo = dockerfile.parent.name.replace("_", "-")
        assert repo in repos, f"scripts/push_images.sh pushes {dockerfile.parent.name} to {repo}: add the repo"


def test_alert_topic_is_encrypted() -> None:
    (topic,) = _of_type("AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"]


def test_outputs_and_version() -> None:
    outputs = TEMPLATE["Outputs"]
    for name in ("BucketName", "SageMakerExecutionRoleArn", "DnnRegressorRepositoryUri", "ModelMonitorRepositoryUri",
                 "AlertTopicArn", "AirflowPolicyArn", "TemplateVersion"):
        assert name in outputs, f"missing output {name}"
    version = TEMPLATE["Metadata"]["TemplateVersion"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(version))
    assert str(outputs["TemplateVersion"]["Value"]) == str(version)
    assert f"template {version}" in TEMPLATE["Description"]


def test_stage_parameter_matches_config_stages() -> None:
    stages = sorted(p.stem for p in (ROOT / "include" / "config" / "stages").glob("*.yaml"))
    assert sorted(TEMPLATE["Parameters"]["Stage"]["AllowedValues"]) == stages
