"""``--fault OPERATION=CODE[:COUNT]``: the first calls of an operation fail with an AWS error, then it is served."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localmaker.faults import Faults

from .conftest import ROOT, start_server


def test_a_fault_fails_the_first_calls_with_the_aws_error_then_the_operation_is_served(tmp_path):
    srv = start_server(tmp_path / "home", "--fault", "ListModelPackages=ThrottlingException:2",
                       "--fault", "ListEndpoints=InternalFailure")
    try:
        # botocore's own retries off (total_max_attempts 1): each call is one request
        sm = boto3.client("sagemaker", endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test", config=Config(retries={"total_max_attempts": 1}))
        for left in (1, 0):
            with pytest.raises(ClientError) as err:
                sm.list_model_packages()
            assert err.value.response["Error"]["Code"] == "ThrottlingException"
            assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert f"({left} left)" in err.value.response["Error"]["Message"]
        assert sm.list_model_packages()["ModelPackageSummaryList"] == []
        with pytest.raises(ClientError) as err:
            sm.list_endpoints()
        assert (err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
            "InternalFailure", 500)
        assert sm.list_endpoints()["Endpoints"] == []
        assert sm.list_training_jobs()["TrainingJobSummaries"] == []  # other operations never fail
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ListModelPackages", "expected OPERATION=CODE"),
        ("ListModelPackages=ThrottlingException:0", "COUNT must be at least 1"),
        ("list_model_packages=Throttling", "expected OPERATION=CODE"),
    ],
)
def test_a_bad_fault_spec_is_refused_by_name(spec, message):
    with pytest.raises(ValueError, match=message):
        Faults.parse([spec])
    with pytest.raises(ValueError, match="given twice"):
        Faults.parse(["ListEndpoints=Throttling", "ListEndpoints=InternalFailure:2"])


def test_the_cli_refuses_a_bad_fault_before_serving(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "localmaker", "--port", "0", "--home", str(tmp_path / "h"), "--fault", "nonsense"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "localmaker: error: --fault 'nonsense': expected OPERATION=CODE" in result.stderr
