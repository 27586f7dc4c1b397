"""The tasks of `<model>_monitoring` against moto S3/SNS and a fake registry and endpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from include.mlpipeline import monitoring as mon
from include.mlpipeline.pipelines import monitoring as tasks

END = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def _put(s3: Any, uri: str, body: str) -> None:
    bucket, _, key = uri[5:].partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode())


def _statistics() -> str:
    return json.dumps({"features": [
        {"name": n, "inferred_type": "Integral" if n == "sex" else "Fractional",
         "numerical_statistics": {"mean": 1.6 if n == "sex" else 0.25}} for n in FEATURES
    ]})


@pytest.fixture
def champion(dev_cfg: Any, clients: Any) -> str:
    """An approved version 3 of the group, with a baseline beside it."""
    arn = clients.sagemaker.approve(dev_cfg.registry.model_package_group_name, 3, model_data_url="s3://b/champ.tar.gz")
    baseline = mon.baseline_location(dev_cfg, arn)
    _put(clients.s3, baseline + mon.STATISTICS_FILE, _statistics())
    _put(clients.s3, baseline + mon.CONSTRAINTS_FILE, "{}")
    return arn


def test_window_without_a_champion_stops_the_run(dev_cfg, dev_ctx, clients, capsys):
    assert tasks.window(dev_cfg, dev_ctx, clients, {}, END) is None
    assert f"{dev_cfg.registry.model_package_group_name} has no Approved version yet" in capsys.readouterr().out


def test_window_with_a_champion_but_no_baseline_stops_the_run(dev_cfg, dev_ctx, clients, capsys):
    arn = clients.sagemaker.approve(dev_cfg.registry.model_package_group_name, 1)
    _put(clients.s3, mon.baseline_location(dev_cfg, arn) + mon.STATISTICS_FILE, "{}")
    assert tasks.window(dev_cfg, dev_ctx, clients, {}, END) is None
    out = capsys.readouterr().out
    assert f"champion {arn} has no baseline yet ({mon.CONSTRAINTS_FILE} missing" in out


def test_window_analyses_only_the_capture_folders_that_hold_files(dev_cfg, dev_ctx, clients, champion):
    capture = mon.capture_uri(dev_cfg, dev_cfg.endpoint.prod_name)
    _put(clients.s3, capture + "2026/03/01/11/capture-1.jsonl", "{}\n")
    _put(clients.s3, capture + "2026/03/01/09/too-early.jsonl", "{}\n")  # before the 2 h window

    win = tasks.window(dev_cfg, dev_ctx, clients, {"window_hours": 2}, END)

    assert win is not None
    assert (win["window_start"], win["window_end"]) == ("2026-03-01T10:00:00Z", "2026-03-01T12:00:00Z")
    assert win["champion"] == champion and win["champion_model_data_url"] == "s3://b/champ.tar.gz"
    assert win["baseline_uri"] == mon.baseline_location(dev_cfg, champion)
    assert win["capture_folders"] == [capture + "2026/03/01/11/"]
    inputs = [i["S3Input"]["S3Uri"] for i in win["request"]["ProcessingInputs"]]
    assert capture + "2026/03/01/11/" in inputs and capture + "2026/03/01/10/" not in inputs
    assert win["request"]["ProcessingJobName"] == mon.analysis_job_name(dev_cfg, dev_ctx)
    assert win["output_uri"] == mon.monitoring_output_uri(dev_cfg, dev_ctx, dev_cfg.endpoint.prod_name)


def test_window_params_override_the_interval(dev_cfg, dev_ctx, clients, champion):
    win = tasks.window(
        dev_cfg, dev_ctx, clients, {"window_end": "2026-02-01T08:00:00", "window_start": "2026-02-01T07:30:00+00:00"}, END
    )
    assert (win["window_start"], win["window_end"]) == ("2026-02-01T07:30:00Z", "2026-02-01T08:00:00Z")
    with pytest.raises(ValueError, match=r"param window_end='yesterday' is not an ISO-8601 time"):
        tasks.window(dev_cfg, dev_ctx, clients, {"window_end": "yesterday"}, END)


def _win(dev_cfg: Any, champion: str, endpoint: str | None = None) -> dict[str, Any]:
    return {"endpoint": endpoint or dev_cfg.endpoint.prod_name, "champion": champion,
            "champion_model_data_url": "s3://b/champ.tar.gz", "baseline_uri": mon.baseline_location(dev_cfg, champion),
            "window_start": "2026-03-01T11:00:00Z", "window_end": "2026-03-01T12:00:00Z",
            "output_uri": "s3://mlpipeline-dev/diabetes_dnn/monitoring/x/20260301T120000/",
            "request": {"ProcessingJobName": "diabetes-dnn-dev-monitor-20260301T120000"}}


def _presigned(url: str) -> tuple[str, dict[str, list[str]]]:
    """(path, query) of a presigned S3 GET URL."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    return parts.path, urllib.parse.parse_qs(parts.query)


def _valid_seconds(query: dict[str, list[str]]) -> float:
    """How long a presigned URL stays valid, SigV4 (``X-Amz-Expires``) or SigV2 (``Expires``, an epoch),
    checking that it is signed."""
    import time

    assert query.get("X-Amz-Signature") or query.get("Signature"), query
    if "X-Amz-Expires" in query:
        return float(query["X-Amz-Expires"][0])
    return float(query["Expires"][0]) - time.time()


def test_probe_sends_the_baseline_means_and_parses_the_answer(dev_cfg, clients, champion, capsys):
    endpoint = dev_cfg.endpoint.prod_name
    clients.sagemaker.serve(endpoint, "s3://b/other.tar.gz")
    clients.runtime.answer = "151.25\n"
    probe = tasks.probe_endpoint(dev_cfg, clients, _win(dev_cfg, champion))
    assert probe["status"] == "InService" and probe["prediction"] == 151.25 and probe["latency_ms"] >= 0
    (request,) = clients.runtime.requests
    assert request["Body"] == b"0.25,2,0.25,0.25,0.25,0.25,0.25,0.25,0.25,0.25"
    assert request["InferenceId"] == tasks.PROBE_INFERENCE_ID and request["ContentType"] == "text/csv"
    assert "does not serve the champion's model (s3://b/champ.tar.gz)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("status", "answer", "message"),
    [
        (None, "1", "cannot be described .* diabetes_dnn_training, which may have been run with deploy=false"),
        ("Updating", "1", "is Updating, not InService"),
        ("InService", "oops", r"answered a non-number to \[.*\]: 'oops'"),
        ("InService", "nan", "answered nan"),
    ],
)
def test_probe_fails_with_the_reason(dev_cfg, clients, champion, status, answer, message):
    if status:
        clients.sagemaker.serve(dev_cfg.endpoint.prod_name, "s3://b/champ.tar.gz", status=status)
    clients.runtime.answer = answer
    with pytest.raises(RuntimeError, match=message):
        tasks.probe_endpoint(dev_cfg, clients, _win(dev_cfg, champion))


def _analysis(s3: Any, output_uri: str, violations: list[dict[str, str]]) -> None:
    _put(s3, output_uri + mon.VIOLATIONS_FILE, json.dumps({"violations": violations}))
    _put(s3, output_uri + mon.REPORT_FILE, json.dumps({"rows": 42}))


DRIFT = {"feature_name": "bmi", "constraint_check_type": mon.DRIFT_CHECK, "description": "distance 0.4 > 0.1"}
MISSING = {"feature_name": "bp", "constraint_check_type": "completeness_check", "description": "2% missing"}


def test_violations_route_to_notify_and_retraining_on_drift(dev_cfg, clients, champion):
    win = _win(dev_cfg, champion)
    _analysis(clients.s3, win["output_uri"], [DRIFT, MISSING])
    result = tasks.violations(dev_cfg, clients, win)
    assert result["drifted"] == ["bmi"] and len(result["violations"]) == 2 and result["report"] == {"rows": 42}
    assert tasks.route(dev_cfg, result) == [tasks.NOTIFY, tasks.REQUEST_RETRAINING]
    no_retrain = dev_cfg.model_copy(update={"alerts": dev_cfg.alerts.model_copy(update={"retrain_on_drift": False})})
    assert tasks.route(no_retrain, result) == [tasks.NOTIFY]
    extra = tasks.retrain_request(win, result)
    assert extra["drifted_features"] == ["bmi"] and extra["window"] == [win["window_start"], win["window_end"]]


def test_violations_log_links_a_person_can_open(dev_cfg, clients, champion, capsys):
    win = _win(dev_cfg, champion)
    _analysis(clients.s3, win["output_uri"], [DRIFT])
    links = tasks.violations(dev_cfg, clients, win)["links"]
    for name, file in (("violations", mon.VIOLATIONS_FILE), ("report", mon.REPORT_FILE)):
        path, query = _presigned(links[name])
        assert path.endswith(f"/diabetes_dnn/monitoring/x/20260301T120000/{file}"), links[name]
        assert 86400 - 60 < _valid_seconds(query) <= 86400, query
    job = win["request"]["ProcessingJobName"]
    assert links["processing_job"] == (
        f"https://{dev_cfg.aws.region}.console.aws.amazon.com/sagemaker/home?region={dev_cfg.aws.region}"
        f"#/processing-jobs/{job}"
    )
    out = capsys.readouterr().out
    assert f"violations (link valid 24 h): {links['violations']}" in out
    assert f"report: {links['report']}" in out
    assert f"processing job {job} in the SageMaker console: {links['processing_job']}" in out


def test_no_violations_is_all_clear(dev_cfg, clients, champion):
    win = _win(dev_cfg, champion)
    _analysis(clients.s3, win["output_uri"], [])
    result = tasks.violations(dev_cfg, clients, win)
    assert tasks.route(dev_cfg, result) == tasks.ALL_CLEAR
    assert tasks.all_clear(win, result).endswith("(42 rows analysed)")


def test_notify_publishes_the_summary_to_the_topic(dev_cfg, clients, champion):
    import boto3

    topic = clients.sns.create_topic(Name="mlpipeline-alerts")["TopicArn"]
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    cfg = dev_cfg.model_copy(update={"alerts": dev_cfg.alerts.model_copy(update={"sns_topic_arn": topic})})
    links = {"violations": "https://v", "report": "https://r", "processing_job": "https://job", "valid_hours": "24"}
    result = {"violations": [DRIFT], "report": {"rows": 42}, "drifted": ["bmi"], "links": links}
    sent = tasks.notify(cfg, clients, _win(cfg, champion), result, dag_id="diabetes_dnn_monitoring", run_id="r1")
    assert sent["published"] is True and sent["topic"] == topic and sent["message_id"]
    (received,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    envelope = json.loads(received["Body"])
    assert envelope["Subject"] == f"[dev] diabetes_dnn: 1 monitoring violation(s) on {dev_cfg.endpoint.prod_name}"
    assert "DAG diabetes_dnn_monitoring run r1" in envelope["Message"] and "bmi" in envelope["Message"]
    assert "violations (link valid 24 h): https://v\nreport: https://r\n" in envelope["Message"]
    assert "processing job in the SageMaker console: https://job" in envelope["Message"]
    unset = cfg.model_copy(update={"alerts": cfg.alerts.model_copy(update={"sns_topic_arn": None})})
    assert tasks.notify(unset, clients, _win(cfg, champion), result, dag_id="d", run_id="r") == {"published": False}
