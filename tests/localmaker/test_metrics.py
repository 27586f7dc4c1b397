"""Training metrics reach CloudWatch as SageMaker publishes them, and read back as the SDK reads them."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict

import boto3
import pytest

from localmaker.metrics import round_start

from .conftest import training_request, unique, wait_for, wait_training
from .test_tuning import tuning_request, wait_tuning

NAMESPACE = "/aws/sagemaker/TrainingJobs"
REGEXES = {"validation:rmse": r"validation:rmse=([0-9.]+)", "train:loss": r"train:loss=([0-9.]+)"}


@pytest.fixture(scope="module")
def data(s3, bucket):
    s3.put_object(Bucket=bucket, Key="metrics/train/part-0.csv", Body=b"1,1\n2,2\n")
    return bucket


def sdk_query(cw, job: dict, metric: str) -> list[dict]:
    """GetMetricStatistics exactly as sagemaker's TrainingJobAnalytics._fetch_metric calls it."""
    return cw.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=metric,
        Dimensions=[{"Name": "TrainingJobName", "Value": job["TrainingJobName"]}],
        StartTime=job["TrainingStartTime"],
        EndTime=job["TrainingEndTime"] + dt.timedelta(minutes=1),
        Period=60,
        Statistics=["Average"],
    )["Datapoints"]


def expected_from_log(logs, group: str, job_name: str, metric: str) -> dict[dt.datetime, float]:
    """The per-minute averages CloudWatch would hold: every value the regex finds in the job's log
    events, at the event's timestamp."""
    per_minute = defaultdict(list)
    for stream in logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=job_name + "/")["logStreams"]:
        events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True)
        for e in events["events"]:
            m = re.search(REGEXES[metric], e["message"])
            if m:
                t = dt.datetime.fromtimestamp(e["timestamp"] / 1000, dt.UTC).replace(second=0, microsecond=0)
                per_minute[t].append(float(m.group(1)))
    return {t: sum(v) / len(v) for t, v in per_minute.items()}


def as_map(points: list[dict]) -> dict[dt.datetime, float]:
    return {p["Timestamp"].astimezone(dt.UTC): p["Average"] for p in points}


@pytest.mark.parametrize("hosts", [1, 2])
def test_training_metrics_published_and_read_like_the_sdk(server, sm, logs, data, hosts):
    name = unique(f"metrics{hosts}")
    sm.create_training_job(**training_request(name, data, hps={"mode": "ok"}, count=hosts, prefix="metrics/train/"))
    job = wait_training(sm, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    cw = server.client("cloudwatch")
    for metric in REGEXES:
        points = sdk_query(cw, job, metric)
        want = expected_from_log(logs, "/aws/sagemaker/TrainingJobs", name, metric)
        # tiny-algo prints 3 epochs per host: 1/epoch for loss and 0.5/epoch for rmse
        assert 1 <= len(want) <= 2
        assert as_map(points) == pytest.approx(want)
        assert all(p["Timestamp"].second == 0 and p["Unit"] == "None" for p in points)
    # the values of every host, all of them (not only the last, which FinalMetricDataList keeps)
    listed = cw.list_metrics(Namespace=NAMESPACE, Dimensions=[{"Name": "TrainingJobName", "Value": name}])["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == ["train:loss", "validation:rmse"]
    stats = cw.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="train:loss", Dimensions=[{"Name": "TrainingJobName", "Value": name}],
        StartTime=job["TrainingStartTime"], EndTime=job["TrainingEndTime"] + dt.timedelta(minutes=1),
        Period=3600, Statistics=["SampleCount", "Minimum", "Maximum", "Sum"])["Datapoints"]
    assert sum(p["SampleCount"] for p in stats) == 3 * hosts
    assert min(p["Minimum"] for p in stats) == pytest.approx(0.3333)
    assert max(p["Maximum"] for p in stats) == pytest.approx(1.0)
    assert sum(p["Sum"] for p in stats) == pytest.approx(hosts * (1 + 0.5 + 0.3333))
    # another job's metrics are not mixed in
    other = cw.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="train:loss", Dimensions=[{"Name": "TrainingJobName", "Value": name + "-x"}],
        StartTime=job["TrainingStartTime"], EndTime=job["TrainingEndTime"] + dt.timedelta(minutes=1),
        Period=60, Statistics=["Average"])["Datapoints"]
    assert other == []


def test_sagemaker_sdk_training_job_analytics(server, sm, data, monkeypatch):
    """The SDK's own TrainingJobAnalytics, pointed at localmaker by AWS_ENDPOINT_URL only."""
    pytest.importorskip("pandas")
    analytics = pytest.importorskip("sagemaker.core.analytics")
    session_helper = pytest.importorskip("sagemaker.core.helper.session_helper")
    name = unique("sdkmetrics")
    sm.create_training_job(**training_request(name, data, hps={"mode": "ok"}, prefix="metrics/train/"))
    assert wait_training(sm, name)["TrainingJobStatus"] == "Completed"
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    boto = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    session = session_helper.Session(boto_session=boto, sagemaker_client=boto.client("sagemaker"))
    df = analytics.TrainingJobAnalytics(name, sagemaker_session=session).dataframe()
    assert set(df["metric_name"]) == {"validation:rmse", "train:loss"}
    for metric, values in (("train:loss", [1.0, 0.5, 0.3333]), ("validation:rmse", [0.5, 0.25, 0.1667])):
        rows = df[df["metric_name"] == metric]
        # one row per minute the job printed in; each the average of that minute's values
        assert 1 <= len(rows) <= 2
        assert min(rows["value"]) >= min(values) - 1e-3 and max(rows["value"]) <= max(values) + 1e-3
        assert all(t % 60 == 0 for t in rows["timestamp"])
        if len(rows) == 1:
            assert rows["value"].iloc[0] == pytest.approx(sum(values) / 3, abs=1e-3)


def test_tuning_trials_publish_metrics(server, sm, bucket):
    name = unique("tunemetrics")[:32]
    sm.create_hyper_parameter_tuning_job(**tuning_request(name, bucket, max_jobs=2, max_parallel=2))
    assert wait_tuning(sm, name, timeout=120)["HyperParameterTuningJobStatus"] == "Completed"
    cw = server.client("cloudwatch")
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert len(trials["TrainingJobSummaries"]) == 2
    for t in trials["TrainingJobSummaries"]:
        job = sm.describe_training_job(TrainingJobName=t["TrainingJobName"])
        final = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
        points = sdk_query(cw, job, "validation:rmse")
        # tune-algo prints its rmse once: the one datapoint's average is the trial's final metric
        assert [p["Average"] for p in points] == [pytest.approx(final["validation:rmse"], rel=1e-6)]


def test_periods_counted_from_the_rounded_start_time(server):
    """CloudWatch's one-minute datapoints sit on whole minutes: values at :50 and at :10 of the next
    minute are two datapoints, not one (moto alone starts its periods at the first value)."""
    cw = server.client("cloudwatch")
    dims = [{"Name": "TrainingJobName", "Value": unique("aligned")}]
    t0 = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=10)
    values = {50: 1.0, 70: 3.0, 80: 5.0, 130: 7.0}  # seconds after t0
    cw.put_metric_data(Namespace=NAMESPACE, MetricData=[
        {"MetricName": "m", "Dimensions": dims, "Value": v, "Timestamp": t0 + dt.timedelta(seconds=s)}
        for s, v in values.items()])

    def query(start, end, period=60):
        return cw.get_metric_statistics(Namespace=NAMESPACE, MetricName="m", Dimensions=dims, StartTime=start,
                                        EndTime=end, Period=period, Statistics=["Average", "SampleCount"])["Datapoints"]

    points = wait_for(lambda: query(t0 + dt.timedelta(seconds=45.5), t0 + dt.timedelta(minutes=5)),
                      lambda p: len(p) > 0, timeout=10)
    assert as_map(points) == {t0: 1.0, t0 + dt.timedelta(minutes=1): 4.0, t0 + dt.timedelta(minutes=2): 7.0}
    # StartTime 12:00:45 is rounded down to 12:00:00, so the value at :50 is in
    assert {p["SampleCount"] for p in points} == {1.0, 2.0}
    five = query(t0 + dt.timedelta(seconds=30), t0 + dt.timedelta(minutes=5), period=120)
    assert as_map(five) == {t0: pytest.approx(3.0), t0 + dt.timedelta(minutes=2): 7.0}
    assert query(t0 + dt.timedelta(minutes=3), t0 + dt.timedelta(minutes=5)) == []


def test_round_start_follows_cloudwatch_by_age():
    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    t = dt.datetime(2026, 5, 30, 10, 37, 42, 500, tzinfo=dt.UTC)
    assert round_start(t, now) == dt.datetime(2026, 5, 30, 10, 37, tzinfo=dt.UTC)
    t = dt.datetime(2026, 5, 1, 10, 37, 42, tzinfo=dt.UTC)  # 31 days: 5-minute boundaries
    assert round_start(t, now) == dt.datetime(2026, 5, 1, 10, 35, tzinfo=dt.UTC)
    t = dt.datetime(2026, 1, 1, 10, 37, 42, tzinfo=dt.UTC)  # over 63 days: whole hours
    assert round_start(t, now) == dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
    naive = dt.datetime(2026, 5, 30, 10, 37, 42)  # naive times are UTC
    assert round_start(naive, now) == dt.datetime(2026, 5, 30, 10, 37, tzinfo=dt.UTC)


def test_builtin_algorithm_metrics_published(server, sm, s3, bucket, monkeypatch):
    """A built-in algorithm's own MetricDefinitions (from the images manifest) are matched over its log and
    every value is in CloudWatch, where TrainingJobAnalytics reads them."""
    analytics = pytest.importorskip("sagemaker.core.analytics")
    session_helper = pytest.importorskip("sagemaker.core.helper.session_helper")
    from .builtins.test_xgboost import job_request

    rows = "".join(f"{2.0 * i + 1},{float(i)}\n" for i in range(40)).encode()
    s3.put_object(Bucket=bucket, Key="xgbmetrics/train/d.csv", Body=rows)
    s3.put_object(Bucket=bucket, Key="xgbmetrics/validation/d.csv", Body=rows)
    name = unique("xgbmetrics")
    sm.create_training_job(**job_request(name, bucket, "xgbmetrics", {"num_round": "5", "objective": "reg:squarederror"}))
    job = wait_training(sm, name, timeout=180)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    final = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert set(final) == {"train:rmse", "validation:rmse"}
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    boto = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    session = session_helper.Session(boto_session=boto, sagemaker_client=boto.client("sagemaker"))
    df = analytics.TrainingJobAnalytics(name, metric_names=["train:rmse", "validation:rmse", "train:auc"],
                                        sagemaker_session=session).dataframe()
    assert set(df["metric_name"]) == {"train:rmse", "validation:rmse"}  # train:auc was never printed
    # without metric names the SDK reads them from DescribeTrainingJob's MetricDefinitions (the algorithm's own)
    listed = {m["Name"] for m in job["AlgorithmSpecification"]["MetricDefinitions"]}
    assert {"train:rmse", "validation:rmse", "train:auc"} <= listed
    every = analytics.TrainingJobAnalytics(name, sagemaker_session=session).dataframe()
    assert set(every["metric_name"]) == {"train:rmse", "validation:rmse"}
    assert len(every) == len(df)
    cw = server.client("cloudwatch")
    stats = cw.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="validation:rmse", Dimensions=[{"Name": "TrainingJobName", "Value": name}],
        StartTime=job["TrainingStartTime"], EndTime=job["TrainingEndTime"] + dt.timedelta(minutes=1),
        Period=3600, Statistics=["SampleCount", "Minimum"])["Datapoints"]
    assert sum(p["SampleCount"] for p in stats) == 5  # one value per boosting round
    assert min(p["Minimum"] for p in stats) == pytest.approx(final["validation:rmse"])

def test_metrics_survive_a_restart(tmp_path):
    """moto keeps CloudWatch in memory; the training metrics are put back when localmaker starts again."""
    from .conftest import start_server

    srv = start_server(tmp_path / "home")
    try:
        s3b, sm = srv.client("s3"), srv.client("sagemaker")
        s3b.create_bucket(Bucket="restart-metrics")
        s3b.put_object(Bucket="restart-metrics", Key="t/a.csv", Body=b"1\n")
        name = unique("restartmetrics")
        sm.create_training_job(**training_request(name, "restart-metrics", prefix="t/"))
        job = wait_training(sm, name)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        before = as_map(sdk_query(srv.client("cloudwatch"), job, "train:loss"))
        assert before
    finally:
        srv.stop()
    srv = start_server(tmp_path / "home")
    try:
        job = srv.client("sagemaker").describe_training_job(TrainingJobName=name)
        after = as_map(sdk_query(srv.client("cloudwatch"), job, "train:loss"))
        assert after == pytest.approx(before)
        kept = (tmp_path / "home" / "metrics" / "TrainingJobs" / f"{name}.jsonl").read_text().splitlines()
        assert len(kept) == 6  # 3 epochs x 2 metrics
    finally:
        srv.stop()
