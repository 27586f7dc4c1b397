"""`<model>_monitoring` end to end: real traffic on a real prod endpoint, real captures, a real
analysis Processing job, a real SNS -> SQS notification and a real Asset event.

One localmaker and one Airflow DB for the module, in order:

A. no champion yet: the run stops cleanly at ``window`` (skipped, nothing analysed);
B. the training DAG makes a champion (and its baseline); clean test-channel rows sent to prod are
   all clear: no violations, no notification, no retrain request;
C. the same rows with ``bmi`` shifted far out of its range: exactly one ``baseline_drift_check``,
   on ``bmi``; a notification arrives in the SQS queue subscribed to the alerts topic; a retrain
   request event is recorded on ``diabetes_dnn_retrain_request``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.mlpipeline import monitoring as mon
from include.mlpipeline.config import PipelineConfig, load_config
from include.mlpipeline.evaluate import latest_approved_package
from include.mlpipeline.run import RunContext, run_key
from include.mlpipeline.s3 import split_s3_uri

from ..airflow_helpers import ROOT, airflow_env, dags_test, migrate, run_succeeded

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "diabetes_dnn"
DAG_ID = f"{MODEL}_monitoring"
ASSET = f"{MODEL}_retrain_request"
BMI_SHIFT = 30.0  # training bmi is ~18-42; 48-72 is far outside


@dataclass
class Stack:
    server: Any
    cfg: PipelineConfig
    airflow: dict[str, str]
    home: Path
    s3: Any
    sm: Any
    runtime: Any
    sqs: Any
    queue_url: str

    def run(self, dag_id: str, *, logical_date: datetime | None = None, conf: dict | None = None) -> Any:
        when = logical_date.strftime("%Y-%m-%dT%H:%M:%S+00:00") if logical_date else None
        return dags_test(dag_id, self.airflow, logical_date=when, conf=conf, timeout=900)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.home / "airflow" / "airflow.db")

    def last_run_states(self, dag_id: str) -> dict[str, str]:
        with self.db() as db:
            (run_id,) = db.execute(
                "select run_id from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
            ).fetchone()
            return dict(
                db.execute(
                    "select task_id, state from task_instance where dag_id = ? and run_id = ?",
                    (dag_id, run_id),
                )
            )

    def asset_events(self) -> list[dict[str, Any]]:
        with self.db() as db:
            rows = db.execute(
                "select e.extra from asset_event e join asset a on a.id = e.asset_id where a.name = ?",
                (ASSET,),
            ).fetchall()
        return [json.loads(extra) if isinstance(extra, str) else extra for (extra,) in rows]

    def messages(self, wait: float = 0) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            got += [json.loads(m["Body"]) for m in answer.get("Messages", [])]
            if got or time.monotonic() >= deadline:
                return got

    def captured_records(self) -> int:
        prefix = mon.capture_uri(self.cfg, self.cfg.endpoint.prod_name)
        bucket, key = split_s3_uri(prefix)
        total = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                body = self.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
                total += sum(1 for line in body.splitlines() if line.strip())
        return total

    def send(self, rows: list[str]) -> None:
        """One request per row, as clients do; waits until every one is in a capture file."""
        before = self.captured_records()
        for row in rows:
            self.runtime.invoke_endpoint(
                EndpointName=self.cfg.endpoint.prod_name,
                Body=row.encode(),
                ContentType="text/csv",
                Accept="text/csv",
            )["Body"].read()
        deadline = time.monotonic() + 30
        while self.captured_records() < before + len(rows):
            assert time.monotonic() < deadline, "captured requests did not reach S3 within 30 s"
            time.sleep(0.5)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from localmaker.launcher import start

    home = tmp_path_factory.mktemp("monitoring-e2e")
    cfg = load_config(MODEL, "dev")
    server = start(home / "localmaker")
    try:
        s3 = server.client("s3", cfg.aws.region)
        s3.create_bucket(Bucket=cfg.aws.bucket)
        sns, sqs = server.client("sns", cfg.aws.region), server.client("sqs", cfg.aws.region)
        assert cfg.alerts.sns_topic_arn
        topic = sns.create_topic(Name=cfg.alerts.sns_topic_arn.rsplit(":", 1)[1])["TopicArn"]
        assert topic == cfg.alerts.sns_topic_arn
        queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        env = airflow_env(home / "airflow", ROOT / "dags", server.url)
        migrate(env)
        yield Stack(
            server=server,
            cfg=cfg,
            airflow=env,
            home=home,
            s3=s3,
            sm=server.client("sagemaker", cfg.aws.region),
            runtime=server.client("sagemaker-runtime", cfg.aws.region),
            sqs=sqs,
            queue_url=queue_url,
        )
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def champion(stack: Stack) -> dict[str, Any]:
    """Train and deploy a champion quickly (as `make demo` does) and make sure it has a baseline."""
    cfg = stack.cfg
    result = stack.run(f"{MODEL}_training", conf={"auto_approve": True, "hyperparameters": {"epochs": 30}})
    assert run_succeeded(result), result.stdout[-8000:]
    package = latest_approved_package(stack.sm, cfg.registry.model_package_group_name)
    assert package is not None
    prefix = f"s3://{cfg.aws.bucket}/{cfg.model}/{run_key(package.properties['run_id'])}/"
    baseline = mon.baseline_location(cfg, package.arn)
    training_dag = (ROOT / "dags" / "training_pipeline.py").read_text()
    if 'task_id="baseline"' not in training_dag:  # until the training DAG computes it
        ctx = RunContext(
            model=MODEL, stage="dev", run_id="e2e-baseline", ts_nodash=_now().strftime("%Y%m%dT%H%M%S")
        )
        request = mon.baseline_processing_request(cfg, ctx, train_uri=prefix + "train/", output_uri=baseline)
        stack.sm.create_processing_job(**request)
        deadline = time.monotonic() + 120
        while (job := stack.sm.describe_processing_job(ProcessingJobName=request["ProcessingJobName"]))[
            "ProcessingJobStatus"
        ] == "InProgress":
            assert time.monotonic() < deadline, "baseline job did not finish in 120 s"
            time.sleep(1)
        assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    statistics = mon.read_statistics(stack.s3, baseline)
    assert [f["name"] for f in statistics["features"]] == cfg.data.feature_columns
    bucket, key = split_s3_uri(prefix + "test/")
    rows = []
    for obj in stack.s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]:
        for line in stack.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode().splitlines():
            if line.strip():
                rows.append(line.partition(",")[2])  # drop the label: clients send features
    assert len(rows) > 30
    return {"arn": package.arn, "baseline": baseline, "rows": rows}


def _violations_of_last_run(stack: Stack) -> tuple[list[dict[str, str]], dict[str, Any]]:
    prefix = f"{stack.cfg.model}/monitoring/{stack.cfg.endpoint.prod_name}/"
    keys = [
        o
        for o in stack.s3.list_objects_v2(Bucket=stack.cfg.aws.bucket, Prefix=prefix).get("Contents", [])
        if o["Key"].endswith(mon.VIOLATIONS_FILE)
    ]
    latest = max(keys, key=lambda o: o["LastModified"])["Key"]
    output = f"s3://{stack.cfg.aws.bucket}/{latest.rsplit('/', 1)[0]}/"
    return mon.read_violations(stack.s3, output), mon.read_analysis_report(stack.s3, output)


def test_a_without_a_champion_the_run_skips_cleanly(stack: Stack) -> None:
    result = stack.run(DAG_ID, logical_date=_now())
    assert run_succeeded(result), result.stdout[-8000:]
    assert "has no Approved version yet" in result.stdout
    states = stack.last_run_states(DAG_ID)
    assert states["window"] == "success"
    assert {t: s for t, s in states.items() if t != "window"} == {
        t: "skipped"
        for t in (
            "probe_endpoint",
            "analyze",
            "violations",
            "route",
            "notify",
            "request_retraining",
            "all_clear",
        )
    }
    assert stack.sm.list_processing_jobs()["ProcessingJobSummaries"] == []


def test_b_clean_traffic_is_all_clear(stack: Stack, champion: dict[str, Any]) -> None:
    stack.messages()  # drain anything a failure notification may have left
    start = _now()
    stack.send(champion["rows"])
    end = _now() + timedelta(seconds=1)
    t0 = time.monotonic()
    result = stack.run(DAG_ID, logical_date=end, conf={"window_start": start.isoformat()})
    seconds = time.monotonic() - t0
    assert run_succeeded(result), result.stdout[-8000:]
    states = stack.last_run_states(DAG_ID)
    assert states["all_clear"] == "success"
    assert states["notify"] == states["request_retraining"] == "skipped"
    violations, report = _violations_of_last_run(stack)
    assert violations == [], violations
    assert report["rows"] == len(champion["rows"])  # every clean request, nothing else
    assert report["window"] == {"start_time": mon.iso_utc(start), "end_time": mon.iso_utc(end)}
    assert "InService; probe [" in result.stdout
    assert stack.messages(wait=2) == []
    assert stack.asset_events() == []
    print(f"clean monitoring run: {seconds:.1f} s")


def test_c_drifted_bmi_alerts_and_requests_retraining(stack: Stack, champion: dict[str, Any]) -> None:
    bmi = stack.cfg.data.feature_columns.index("bmi")

    def shifted(row: str) -> str:
        values = row.split(",")
        values[bmi] = f"{float(values[bmi]) + BMI_SHIFT:.1f}"
        return ",".join(values)

    start = _now()
    stack.send([shifted(r) for r in champion["rows"]])
    end = _now() + timedelta(seconds=1)
    t0 = time.monotonic()
    result = stack.run(DAG_ID, logical_date=end, conf={"window_start": start.isoformat()})
    seconds = time.monotonic() - t0
    assert run_succeeded(result), result.stdout[-8000:]
    states = stack.last_run_states(DAG_ID)
    assert states["notify"] == states["request_retraining"] == "success"
    assert states["all_clear"] == "skipped"

    violations, report = _violations_of_last_run(stack)
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [
        ("bmi", "baseline_drift_check")
    ]
    assert report["drift"]["bmi"]["distance"] > 0.9
    # the previous run's probe (at the baseline means) is in this window too; it moves nothing
    assert len(champion["rows"]) <= report["rows"] <= len(champion["rows"]) + 1

    messages = stack.messages(wait=10)
    assert len(messages) == 1, messages
    assert (
        messages[0]["Subject"]
        == f"[dev] {MODEL}: 1 monitoring violation(s) on {stack.cfg.endpoint.prod_name}"
    )
    assert "baseline_drift_check on bmi" in messages[0]["Message"]
    assert champion["arn"] in messages[0]["Message"]

    events = stack.asset_events()
    assert len(events) == 1, events
    assert events[0]["drifted_features"] == ["bmi"]
    assert events[0]["champion"] == champion["arn"]
    print(f"drift monitoring run: {seconds:.1f} s")


def test_d_a_run_with_no_conf_analyses_its_data_interval(stack: Stack, champion: dict[str, Any]) -> None:
    """What the hourly schedule does: no trigger params, the window is the run's data interval.

    Every scheduled run used to fail in ``window`` (a pendulum ``data_interval_end`` turned naive).
    """
    start = _now()
    stack.send(champion["rows"][:5])
    hour = _now().replace(minute=0, second=0)
    result = stack.run(DAG_ID, logical_date=hour)
    assert run_succeeded(result), result.stdout[-8000:]
    with stack.db() as db:
        begin, end = db.execute(
            "select data_interval_start, data_interval_end from dag_run where dag_id = ? order by id desc limit 1",
            (DAG_ID,),
        ).fetchone()
    interval_end = datetime.fromisoformat(str(end)).astimezone(UTC)
    assert datetime.fromisoformat(str(begin)).astimezone(UTC) == interval_end - timedelta(hours=1)
    assert stack.last_run_states(DAG_ID)["analyze"] == "success"
    _, report = _violations_of_last_run(stack)
    assert report["window"] == {
        "start_time": mon.iso_utc(interval_end - timedelta(hours=1)),
        "end_time": mon.iso_utc(interval_end),
    }
    if interval_end - timedelta(hours=1) <= start < interval_end:
        assert report["rows"] >= 5
