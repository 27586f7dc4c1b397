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


#: What managed Airflow (MWAA, Astro) often sets: every provider operator defers by default.
DEFERRABLE_BY_DEFAULT = {"AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"}

#: The provider's async (aiobotocore) CloudWatch Logs readers, which its hook's
#: ``describe_training_job_with_log_async`` uses: the job's streams, then the first event of the first
#: one (``get_log_events_async`` tails for ever, one event a second, so it is not read to the end).
ASYNC_LOG_READER = """
import asyncio, json, sys
from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook

async def main(job):
    hook = AwsLogsHook(aws_conn_id="aws_default", region_name="us-east-1")
    group = "/aws/sagemaker/TrainingJobs"
    streams = await hook.describe_log_streams_async(group, job + "/", "LogStreamName", 10)
    names = [s["logStreamName"] for s in streams["logStreams"]]
    first = await asyncio.wait_for(anext(hook.get_log_events_async(group, names[0])), 30)
    print(json.dumps({"streams": names, "first": first["message"]}))

asyncio.run(main(sys.argv[1]))
"""


def _deferred_tasks(out: str) -> set[str]:
    """Tasks that `airflow dags test` paused as DEFERRED (it then runs their trigger in line)."""
    import re

    return {
        m.group(1)
        for line in out.splitlines()
        if "Pausing task as DEFERRED" in line and (m := re.search(r"task_id=(\w+)", line))
    }


@pytest.mark.slow
def test_provider_operators_deferred_wait_through_aiobotocore(tmp_path, server, s3, sm):
    """`[operators] default_deferrable = True`: the unmodified operators defer, and their triggers'
    aiobotocore waiters (training, endpoint, processing, tuning) and the async log reader work."""
    import subprocess
    import sys

    from ..airflow_helpers import ROOT

    s3.create_bucket(Bucket="airflow-defer")
    s3.put_object(Bucket="airflow-defer", Key="data/train/a.csv", Body=b"1\n2\n3\n4\n")
    env = airflow_env(
        tmp_path / "airflow", HERE / "dags", server.url, LM_TEST_BUCKET="airflow-defer", LM_TEST_TRAIN_MODE="sleep",
        **DEFERRABLE_BY_DEFAULT,
    )
    migrate(env)

    result = dags_test("localmaker_provider_operators", env, "2026-02-02")
    out = result.stdout + result.stderr
    assert run_succeeded(result), out[-4000:]
    assert "No module named 'aiobotocore'" not in out
    assert _deferred_tasks(out) == {"train", "endpoint"}, out[-4000:]
    assert "Training job not done yet: InProgress" in out  # the trigger's waiter polled localmaker
    assert "SageMaker job af-train-20260202t000000 completed." in out
    assert sm.describe_training_job(TrainingJobName="af-train-20260202t000000")["TrainingJobStatus"] == "Completed"
    assert sm.describe_endpoint(EndpointName="af-endpoint")["EndpointConfigName"] == "af-config-20260202t000000"

    read = subprocess.run(
        [sys.executable, "-c", ASYNC_LOG_READER, "af-train-20260202t000000"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert read.returncode == 0, read.stderr[-3000:]
    logged = json.loads(read.stdout.strip().splitlines()[-1])
    assert logged["streams"] and logged["streams"][0].startswith("af-train-20260202t000000/algo-1-")
    assert logged["first"] == "tiny-algo starting on algo-1 mode sleep"

    s3.put_object(Bucket="airflow-defer", Key="data/train/a.csv", Body=b"1\n2\n3\n")
    result = dags_test("localmaker_tuning_processing", env, "2026-02-02")
    out = result.stdout + result.stderr
    assert run_succeeded(result), out[-4000:]
    assert {"process", "tune"} <= _deferred_tasks(out), out[-4000:]
    tune = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="af-tune-20260202t000000")
    assert tune["HyperParameterTuningJobStatus"] == "Completed"
