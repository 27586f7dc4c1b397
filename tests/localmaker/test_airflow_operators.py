"""The amazon provider's own operators, unmodified, drive localmaker through `airflow dags test`."""

from __future__ import annotations

import json

import pytest

from ..airflow_helpers import airflow_env, dags_test, migrate, run_succeeded
from .conftest import HERE


@pytest.mark.slow
def test_provider_operators_train_and_deploy_with_live_training_log(tmp_path, server, s3, sm, runtime):
    s3.create_bucket(Bucket="airflow-ops")
    s3.put_object(Bucket="airflow-ops", Key="data/train/a.csv", Body=b"1\n2\n3\n4\n")
    env = airflow_env(tmp_path / "airflow", HERE / "dags", server.url, LM_TEST_BUCKET="airflow-ops")
    migrate(env)
    result = dags_test("localmaker_provider_operators", env, "2026-01-02")
    out = result.stdout + result.stderr
    assert run_succeeded(result), out[-4000:]
    # the training script's own output, streamed through CloudWatch Logs into the task log
    assert "epoch=3 train:loss=0.3333 validation:rmse=0.1667" in out
    assert "lines=4 files=1" in out
    job = sm.describe_training_job(TrainingJobName="af-train-20260102t000000")
    assert job["TrainingJobStatus"] == "Completed"
    ep = sm.describe_endpoint(EndpointName="af-endpoint")
    assert ep["EndpointStatus"] == "InService" and ep["EndpointConfigName"] == "af-config-20260102t000000"
    body = json.loads(runtime.invoke_endpoint(EndpointName="af-endpoint", Body=b"{}", ContentType="application/json")["Body"].read())
    assert body["lines"] == 4
    # a second run with another date updates the existing endpoint (the provider's create -> update switch)
    result = dags_test("localmaker_provider_operators", env, "2026-01-03")
    assert run_succeeded(result), (result.stdout + result.stderr)[-4000:]
    assert "updating it with the given config instead" in result.stdout + result.stderr
    assert sm.describe_endpoint(EndpointName="af-endpoint")["EndpointConfigName"] == "af-config-20260103t000000"
