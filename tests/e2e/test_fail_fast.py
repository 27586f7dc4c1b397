"""A failure that cannot succeed on a retry fails the run in one try, after at most one training job.

`airflow dags test` runs of `<model>_training` against a real localmaker:

* a hyperparameter outside the model's declaration (``training.hyperparameter_spec``) fails the
  first task, before any data moves or any SageMaker job exists;
* one the container rejects although the run's config accepts it (the run loosens the declaration
  to get there, ``epochs: "abc"``): the job ends Failed, its reason the container's ``ClientError:``
  behind SageMaker's ``AlgorithmError:`` prefix for a custom image. Before the retry policy the
  task retried twice, each try starting (and billing) another job;
* an override that makes the run's config invalid (``instance_type: ml.bogus``): the first task
  fails in one try, and still ``clean_up_failed_run`` succeeds with the stage config without the
  run's overrides and the failure alert reaches the alerts topic (an SQS queue subscribed to it);
* a transient error (a throttled SageMaker call, from a localmaker started with ``--fault``) fails
  one try of `<model>_monitoring`'s first task, the retry policy logs why it may pass, and the
  second try succeeds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from ..airflow_helpers import ROOT, dags_test, run_succeeded
from .support import MODEL, Pipeline, output_tail

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAG_ID = f"{MODEL}_training"


@pytest.fixture(scope="module")
def alerts(pipeline: Pipeline) -> Callable[[str, float], list[dict[str, Any]]]:
    """``(run_id, wait) -> the SNS notifications about that run`` from a queue on the alerts topic."""
    sns = pipeline.server.client("sns", pipeline.cfg.aws.region)
    sqs = pipeline.server.client("sqs", pipeline.cfg.aws.region)
    topic = pipeline.cfg.alerts.sns_topic_arn
    assert topic, "the dev stage has no alerts topic"
    queue_url = sqs.create_queue(QueueName="fail-fast-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    seen: list[dict[str, Any]] = []

    def about(run_id: str, wait: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + wait
        while True:
            answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            seen.extend(json.loads(m["Body"]) for m in answer.get("Messages", []))
            mine = [m for m in seen if run_id in m.get("Message", "")]
            if mine or time.monotonic() >= deadline:
                return mine

    return about


def _task_tries(pipeline: Pipeline, run_id: str, dag_id: str = DAG_ID) -> dict[str, dict[str, Any]]:
    """task_id -> {"state", "try_number"} from the metadata DB (the CLI does not show tries)."""
    script = (
        "import json, sys\n"
        "from airflow.models import TaskInstance\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as s:\n"
        "    tis = s.query(TaskInstance).filter_by(dag_id=sys.argv[1], run_id=sys.argv[2]).all()\n"
        "    print(json.dumps({t.task_id: {'state': str(t.state), 'try_number': t.try_number} for t in tis}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, dag_id, run_id],
        env=pipeline.airflow, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_rejected_hyperparameter_fails_the_run_in_one_try_with_one_training_job(pipeline: Pipeline):
    before = pipeline.sm.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    # the declaration says epochs is an integer: loosen it for this run, so the container judges
    loosened = {"training": {"hyperparameter_spec": {"epochs": {"type": "str"}}}}
    result = pipeline.run(
        DAG_ID, {"hyperparameters": {"epochs": "abc"}, "overrides": loosened, "auto_approve": True}
    )
    run = pipeline.latest_run(DAG_ID)
    assert run["state"] == "failed" and not run_succeeded(result), output_tail(result)

    jobs = pipeline.sm.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    new = [j for j in jobs if j["TrainingJobName"] not in {b["TrainingJobName"] for b in before}]
    assert len(new) == 1, f"{len(new)} training jobs for one run: {[j['TrainingJobName'] for j in new]}"
    job = pipeline.sm.describe_training_job(TrainingJobName=new[0]["TrainingJobName"])
    assert job["TrainingJobStatus"] == "Failed"
    # a custom image's failure file, behind SageMaker's own prefix
    assert job["FailureReason"].startswith("AlgorithmError: ClientError:"), job["FailureReason"]
    assert "epochs" in job["FailureReason"], job["FailureReason"]

    tries = _task_tries(pipeline, run["run_id"])
    assert tries["train.train"] == {"state": "failed", "try_number": 1}, tries["train.train"]
    out = result.stdout + result.stderr
    assert "cannot succeed on a retry" in out, output_tail(result)
    # the failure clean-up still runs, and nothing downstream of train started
    assert tries["clean_up_failed_run"]["state"] == "success", tries
    assert tries["train.candidate"]["state"] == "upstream_failed", tries


def test_an_undeclared_hyperparameter_value_fails_the_first_task_before_any_job(pipeline: Pipeline):
    before = pipeline.sm.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    result = pipeline.run(DAG_ID, {"hyperparameters": {"dropout": 1.5}, "auto_approve": True})
    run = pipeline.latest_run(DAG_ID)
    assert run["state"] == "failed" and not run_succeeded(result), output_tail(result)

    after = pipeline.sm.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in after] == [j["TrainingJobName"] for j in before], "a training job was created"
    out = result.stdout + result.stderr
    assert "run overrides: training.hyperparameters.dropout: must be a number >= 0 and < 1 (got 1.5)" in out, output_tail(result)
    assert "cannot succeed on a retry" in out, output_tail(result)

    tries = _task_tries(pipeline, run["run_id"])
    assert tries["data.extract"] == {"state": "failed", "try_number": 1}, tries["data.extract"]
    assert tries["data.validate_and_prepare"]["state"] == "upstream_failed", tries
    assert tries["train.train"]["state"] in ("upstream_failed", "skipped"), tries


def test_a_bad_override_fails_at_once_and_still_cleans_up_and_alerts(pipeline: Pipeline, alerts):
    result = pipeline.run(DAG_ID, {"instance_type": "ml.bogus", "auto_approve": True})
    run = pipeline.latest_run(DAG_ID)
    assert run["state"] == "failed" and not run_succeeded(result), output_tail(result)
    out = result.stdout + result.stderr
    problem = "run overrides: training.instance_type: must match"
    assert problem in out, output_tail(result)

    tries = _task_tries(pipeline, run["run_id"])
    assert tries["data.extract"] == {"state": "failed", "try_number": 1}, tries["data.extract"]
    # the clean-up ran with the stage config minus the overrides, and did not fail on them
    assert tries["clean_up_failed_run"]["state"] == "success", tries
    assert "cleaning up with it minus the overrides: " + problem in out, output_tail(result)

    (alert,) = alerts(run["run_id"])
    assert alert["TopicArn"] == pipeline.cfg.alerts.sns_topic_arn
    assert alert["Subject"] == f"[{pipeline.cfg.stage}] {MODEL}: task data.extract failed", alert
    assert "The run's config is invalid (alerting with it minus the run's overrides): " + problem in alert["Message"]


def test_a_throttled_call_fails_one_try_and_the_retry_succeeds(pipeline: Pipeline, tmp_path):
    """The cheapest run with a SageMaker call in its first task: monitoring with no champion yet
    (``window`` lists the group's approved packages, finds none and stops the run cleanly)."""
    from localmaker.launcher import start

    dag_id = f"{MODEL}_monitoring"
    # A localmaker whose first ListModelPackages is throttled. botocore's own retries are off for this
    # run (total_max_attempts 1), so the throttle reaches the task as one outlasting them would.
    server = start(tmp_path / "throttled", extra_args=["--fault", "ListModelPackages=ThrottlingException:1"])
    try:
        conn = {"conn_type": "aws", "extra": {"region_name": pipeline.cfg.aws.region, "endpoint_url": server.url,
                                              "config_kwargs": {"retries": {"total_max_attempts": 1}}}}
        env = {**pipeline.airflow, "AWS_ENDPOINT_URL": server.url, "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn)}
        result = dags_test(dag_id, env, timeout=600)
    finally:
        server.stop()
    run = pipeline.latest_run(dag_id)
    out = result.stdout + result.stderr
    assert run["state"] == "success" and run_succeeded(result), output_tail(result)

    tries = _task_tries(pipeline, run["run_id"], dag_id)
    assert tries["window"] == {"state": "success", "try_number": 2}, tries
    assert "ThrottlingException" in out and "injected by localmaker --fault ListModelPackages" in out, output_tail(result)
    assert "Retry policy decision" in out, output_tail(result)
    assert "ClientError may pass on a retry (throttling, connection, 5xx or unknown error): try 1 of" in out, (
        output_tail(result))
    assert "cannot succeed on a retry" not in out, output_tail(result)
    assert "nothing to monitor: model package group" in out, output_tail(result)
