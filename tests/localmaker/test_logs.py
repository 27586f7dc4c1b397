from __future__ import annotations

import pytest

from localmaker.errors import AwsError
from localmaker.logs import LogStore


def test_get_log_events_tokens_stop_when_exhausted(tmp_path):
    store = LogStore(tmp_path)
    store.put("g", "job/algo-1-1", [f"line {i}" for i in range(5)], timestamp=1000)
    r1 = store.handle("GetLogEvents", {"logGroupName": "g", "logStreamName": "job/algo-1-1", "startFromHead": True, "limit": 3})
    assert [e["message"] for e in r1["events"]] == ["line 0", "line 1", "line 2"]
    r2 = store.handle("GetLogEvents", {"logGroupName": "g", "logStreamName": "job/algo-1-1", "nextToken": r1["nextForwardToken"]})
    assert [e["message"] for e in r2["events"]] == ["line 3", "line 4"]
    r3 = store.handle("GetLogEvents", {"logGroupName": "g", "logStreamName": "job/algo-1-1", "nextToken": r2["nextForwardToken"]})
    assert r3["events"] == [] and r3["nextForwardToken"] == r2["nextForwardToken"]
    store.put("g", "job/algo-1-1", ["late line"], timestamp=2000)
    r4 = store.handle("GetLogEvents", {"logGroupName": "g", "logStreamName": "job/algo-1-1", "nextToken": r3["nextForwardToken"]})
    assert [e["message"] for e in r4["events"]] == ["late line"]


def test_start_time_filter_and_tail(tmp_path):
    store = LogStore(tmp_path)
    store.put("g", "s", ["old"], timestamp=1000)
    store.put("g", "s", ["new"], timestamp=5000)
    r = store.handle("GetLogEvents", {"logGroupName": "g", "logStreamName": "s", "startTime": 2000, "startFromHead": True})
    assert [e["message"] for e in r["events"]] == ["new"]
    r = store.handle("GetLogEvents", {"logGroupName": "g", "logStreamName": "s", "limit": 1})
    assert [e["message"] for e in r["events"]] == ["new"]


def test_describe_filter_and_persistence(tmp_path):
    store = LogStore(tmp_path)
    store.put("/aws/sagemaker/TrainingJobs", "a/algo-1-1", ["epoch=1 loss=2", "done"], timestamp=10)
    store.put("/aws/sagemaker/TrainingJobs", "a/algo-2-1", ["epoch=1 loss=3"], timestamp=11)
    store.put("/aws/sagemaker/TrainingJobs", "b/algo-1-1", ["other"], timestamp=12)
    again = LogStore(tmp_path)  # a restart reads the same events back
    streams = again.handle("DescribeLogStreams", {"logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamNamePrefix": "a/"})
    assert [s["logStreamName"] for s in streams["logStreams"]] == ["a/algo-1-1", "a/algo-2-1"]
    assert streams["logStreams"][0]["lastEventTimestamp"] == 10
    found = again.handle("FilterLogEvents", {"logGroupName": "/aws/sagemaker/TrainingJobs", "filterPattern": "epoch=1"})
    assert [e["logStreamName"] for e in found["events"]] == ["a/algo-1-1", "a/algo-2-1"]
    groups = again.handle("DescribeLogGroups", {"logGroupNamePrefix": "/aws/sagemaker"})
    assert [g["logGroupName"] for g in groups["logGroups"]] == ["/aws/sagemaker/TrainingJobs"]


def test_missing_group_and_stream(tmp_path):
    store = LogStore(tmp_path)
    with pytest.raises(AwsError) as e:
        store.handle("DescribeLogStreams", {"logGroupName": "nope"})
    assert e.value.code == "ResourceNotFoundException"
    store.ensure_group("g")
    with pytest.raises(AwsError, match="log stream does not exist"):
        store.handle("GetLogEvents", {"logGroupName": "g", "logStreamName": "x"})


# ---- through boto3 against a running localmaker (what clean-up tasks and log readers call) ----------
import time as _time  # noqa: E402

from botocore.exceptions import ClientError  # noqa: E402

from .conftest import unique  # noqa: E402


def _code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def test_retention_policy_validated_shown_and_removed(logs):
    group = "/lm/" + unique("ret")
    logs.create_log_group(logGroupName=group)
    with pytest.raises(ClientError) as e:
        logs.put_retention_policy(logGroupName=group, retentionInDays=2)
    code, msg = _code(e)
    assert code == "InvalidParameterException"
    assert msg.startswith("1 validation error detected: Value '2' at 'retentionInDays' failed to satisfy constraint: "
                          "Member must satisfy enum value set: [1, 3, 5, 7, 14, 30")
    with pytest.raises(ClientError) as e:
        logs.put_retention_policy(logGroupName=group + "-missing", retentionInDays=7)
    assert _code(e) == ("ResourceNotFoundException", "The specified log group does not exist.")
    logs.put_retention_policy(logGroupName=group, retentionInDays=7)
    [g] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert g["retentionInDays"] == 7
    logs.delete_retention_policy(logGroupName=group)
    [g] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert "retentionInDays" not in g
    with pytest.raises(ClientError) as e:
        logs.delete_retention_policy(logGroupName=group + "-missing")
    assert _code(e)[0] == "ResourceNotFoundException"


def test_retention_expires_old_events_on_read(logs):
    group, stream = "/lm/" + unique("exp"), "s"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(_time.time() * 1000)
    old = now - 10 * 86_400_000
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": old, "message": "ten days old"}, {"timestamp": now, "message": "fresh"}])
    logs.put_retention_policy(logGroupName=group, retentionInDays=7)
    got = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    assert [e["message"] for e in got] == ["fresh"]
    assert [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]] == ["fresh"]
    logs.put_retention_policy(logGroupName=group, retentionInDays=14)
    assert [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]] == ["ten days old", "fresh"]


def test_delete_log_stream_and_group(server, logs):
    group = "/lm/" + unique("del")
    logs.create_log_group(logGroupName=group)
    for s in ("a", "b"):
        logs.create_log_stream(logGroupName=group, logStreamName=s)
        logs.put_log_events(logGroupName=group, logStreamName=s,
                            logEvents=[{"timestamp": int(_time.time() * 1000), "message": f"in {s}"}])
    logs_dir = server.home / "logs"
    before = {p.name for p in logs_dir.iterdir()}
    logs.delete_log_stream(logGroupName=group, logStreamName="a")
    names = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    assert names == ["b"]
    with pytest.raises(ClientError) as e:
        logs.get_log_events(logGroupName=group, logStreamName="a")
    assert _code(e) == ("ResourceNotFoundException", "The specified log stream does not exist.")
    with pytest.raises(ClientError) as e:
        logs.delete_log_stream(logGroupName=group, logStreamName="a")
    assert _code(e) == ("ResourceNotFoundException", "The specified log stream does not exist.")
    with pytest.raises(ClientError) as e:
        logs.delete_log_stream(logGroupName=group + "-missing", logStreamName="b")
    assert _code(e) == ("ResourceNotFoundException", "The specified log group does not exist.")
    logs.delete_log_group(logGroupName=group)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []
    after = {p.name for p in logs_dir.iterdir()}
    assert len(before - after) == 1 and not (after - before)  # the group's directory is gone from disk
    assert logs_dir.is_dir()
    with pytest.raises(ClientError) as e:
        logs.delete_log_group(logGroupName=group)
    assert _code(e) == ("ResourceNotFoundException", "The specified log group does not exist.")
    logs.create_log_group(logGroupName=group)  # the name is free again, and the new group is empty
    assert logs.describe_log_streams(logGroupName=group)["logStreams"] == []


def test_deleted_group_stays_deleted_after_restart(tmp_path):
    store = LogStore(tmp_path)
    store.put("/aws/sagemaker/Endpoints/e", "AllTraffic/i-1", ["x"], timestamp=1)
    store.put("keep", "s", ["y"], timestamp=1)
    store.handle("PutRetentionPolicy", {"logGroupName": "keep", "retentionInDays": 3653})
    store.handle("DeleteLogGroup", {"logGroupName": "/aws/sagemaker/Endpoints/e"})
    store.handle("DeleteLogStream", {"logGroupName": "keep", "logStreamName": "s"})
    (tmp_path / "+deleted-1-1").mkdir()  # what a crash in the middle of a DeleteLogGroup leaves
    again = LogStore(tmp_path)
    groups = again.handle("DescribeLogGroups", {})["logGroups"]
    assert [(g["logGroupName"], g.get("retentionInDays")) for g in groups] == [("keep", 3653)]
    assert again.handle("DescribeLogStreams", {"logGroupName": "keep"})["logStreams"] == []
    assert not (tmp_path / "+deleted-1-1").exists()


def test_describe_log_groups_prefix_pattern_and_paginator(logs):
    base = unique("dg")
    names = [f"/lm/{base}/g{i:02d}" for i in range(7)] + [f"/lm/other-{base}/Data"]
    for n in names:
        logs.create_log_group(logGroupName=n)
    pages = list(logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=f"/lm/{base}/",
                                                                     PaginationConfig={"PageSize": 3}))
    assert [len(p["logGroups"]) for p in pages] == [3, 3, 1]
    assert [g["logGroupName"] for p in pages for g in p["logGroups"]] == names[:7]
    r = logs.describe_log_groups(logGroupNamePattern=f"other-{base}")
    assert [g["logGroupName"] for g in r["logGroups"]] == [names[7]]
    assert set(r["logGroups"][0]) == {"logGroupName", "creationTime", "arn"}
    assert logs.describe_log_groups(logGroupNamePattern=f"OTHER-{base}")["logGroups"] == []  # case-sensitive
    with pytest.raises(ClientError) as e:
        logs.describe_log_groups(logGroupNamePrefix="/lm", logGroupNamePattern="x")
    assert _code(e)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        logs.describe_log_groups(nextToken="not-a-token")
    assert _code(e) == ("InvalidParameterException", "The specified nextToken is invalid.")


def test_filter_log_events_across_streams(logs):
    group = "/lm/" + unique("flt")
    logs.create_log_group(logGroupName=group)
    t0 = int(_time.time() * 1000) - 60_000
    lines = {
        "job/algo-1-1": [(0, "epoch=1 loss=0.9 ERROR disk"), (20, "epoch=2 loss=0.5"), (40, "Failed to connect")],
        "job/algo-2-1": [(10, "epoch=1 loss=0.8 WARN slow"), (30, "epoch=2 loss=0.4 ERROR net")],
        "other/algo-1-1": [(5, "epoch=1 loss=0.7")],
    }
    for s, evs in lines.items():
        logs.create_log_stream(logGroupName=group, logStreamName=s)
        logs.put_log_events(logGroupName=group, logStreamName=s,
                            logEvents=[{"timestamp": t0 + dt, "message": m} for dt, m in evs])

    def msgs(**kw):
        return [e["message"] for e in logs.filter_log_events(logGroupName=group, **kw)["events"]]

    # interleaved by time across streams
    assert msgs(logStreamNamePrefix="job/") == [
        "epoch=1 loss=0.9 ERROR disk", "epoch=1 loss=0.8 WARN slow", "epoch=2 loss=0.5",
        "epoch=2 loss=0.4 ERROR net", "Failed to connect"]
    assert msgs(logStreamNames=["job/algo-2-1", "other/algo-1-1"]) == [
        "epoch=1 loss=0.7", "epoch=1 loss=0.8 WARN slow", "epoch=2 loss=0.4 ERROR net"]
    assert msgs(filterPattern="ERROR") == ["epoch=1 loss=0.9 ERROR disk", "epoch=2 loss=0.4 ERROR net"]
    assert msgs(filterPattern="ERROR epoch=2") == ["epoch=2 loss=0.4 ERROR net"]
    assert msgs(filterPattern='"Failed to"') == ["Failed to connect"]
    assert msgs(filterPattern="Failed connect") == ["Failed to connect"]
    assert msgs(filterPattern='"to Failed"') == []
    assert msgs(filterPattern="error") == []  # terms are case-sensitive
    assert msgs(filterPattern="?WARN ?Failed") == ["epoch=1 loss=0.8 WARN slow", "Failed to connect"]
    assert msgs(filterPattern="epoch=1 -ERROR") == ["epoch=1 loss=0.7", "epoch=1 loss=0.8 WARN slow"]
    assert msgs(filterPattern="%loss=0\\.[45]%") == ["epoch=2 loss=0.5", "epoch=2 loss=0.4 ERROR net"]
    assert msgs(startTime=t0 + 10, endTime=t0 + 30) == [
        "epoch=1 loss=0.8 WARN slow", "epoch=2 loss=0.5", "epoch=2 loss=0.4 ERROR net"]
    found = logs.filter_log_events(logGroupName=group, filterPattern="ERROR")["events"]
    assert [e["logStreamName"] for e in found] == ["job/algo-1-1", "job/algo-2-1"]
    assert all(e["eventId"].isdigit() for e in found) and len({e["eventId"] for e in found}) == 2

    pages = list(logs.get_paginator("filter_log_events").paginate(logGroupName=group,
                                                                   PaginationConfig={"PageSize": 2}))
    assert [len(p["events"]) for p in pages] == [2, 2, 2]
    assert [e["timestamp"] - t0 for p in pages for e in p["events"]] == [0, 5, 10, 20, 30, 40]

    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName=group, logStreamNames=["a"], logStreamNamePrefix="a")
    assert _code(e)[0] == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName=group + "-missing")
    assert _code(e) == ("ResourceNotFoundException", "The specified log group does not exist.")
    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName=group, nextToken="garbage")
    assert _code(e) == ("InvalidParameterException", "The specified nextToken is invalid.")


def test_filter_pagination_survives_new_events_between_pages(tmp_path):
    store = LogStore(tmp_path)
    store.put("g", "a", ["a1", "a2", "a3"], timestamp=100)
    r1 = store.handle("FilterLogEvents", {"logGroupName": "g", "limit": 2})
    assert [e["message"] for e in r1["events"]] == ["a1", "a2"]
    store.put("g", "b", ["b-late"], timestamp=200)
    r2 = store.handle("FilterLogEvents", {"logGroupName": "g", "limit": 2, "nextToken": r1["nextToken"]})
    assert [e["message"] for e in r2["events"]] == ["a3", "b-late"]
    assert "nextToken" not in r2
    back = store.handle("FilterLogEvents", {"logGroupName": "g", "limit": 3, "startFromHead": False})
    assert [e["message"] for e in back["events"]] == ["b-late", "a3", "a2"]


def test_groups_and_stream_names_as_aws_writes_them(sm, s3, logs, bucket):
    """/aws/sagemaker/{TrainingJobs,ProcessingJobs,TransformJobs} and /aws/sagemaker/Endpoints/<name>, with
    AWS's stream names: <job>/algo-N-<epoch>, <job>/<instance-id>-<epoch>[/data-log], <variant>/<instance-id>."""
    import re

    from .conftest import ROLE, training_request, wait_endpoint, wait_for, wait_training
    from .test_processing import processing_request, wait_processing

    tiny = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny-algo:1"
    instance = r"i-[0-9a-f]{17}"
    s3.put_object(Bucket=bucket, Key="lognames/train/a.csv", Body=b"1\n2\n")

    def streams(group, prefix=None):
        kw = {"logStreamNamePrefix": prefix} if prefix else {}
        return [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group, **kw)["logStreams"]]

    job = unique("lognames")
    sm.create_training_job(**training_request(job, bucket, prefix="lognames/train/", count=2))
    art = wait_training(sm, job)["ModelArtifacts"]["S3ModelArtifacts"]
    names = streams("/aws/sagemaker/TrainingJobs", job + "/")
    assert len(names) == 2 and all(re.fullmatch(rf"{job}/algo-[12]-\d{{10}}", n) for n in names)

    proc = unique("lognames-p")
    sm.create_processing_job(**processing_request(proc, bucket, prefix="lognames/train/"))
    assert wait_processing(sm, proc)["ProcessingJobStatus"] == "Completed"
    [pstream] = streams("/aws/sagemaker/ProcessingJobs", proc + "/")
    assert re.fullmatch(rf"{proc}/algo-1-\d{{10}}", pstream)

    model = unique("lognames-m")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": tiny, "ModelDataUrl": art})
    tx = unique("lognames-t")
    sm.create_transform_job(
        TransformJobName=tx, ModelName=model,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/lognames/train/"}},
                        "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{bucket}/lognames/out"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    done = wait_for(lambda: sm.describe_transform_job(TransformJobName=tx),
                    lambda d: d["TransformJobStatus"] not in ("InProgress", "Stopping"), timeout=60)
    assert done["TransformJobStatus"] == "Completed", done.get("FailureReason")
    tnames = streams("/aws/sagemaker/TransformJobs", tx + "/")
    container = [n for n in tnames if not n.endswith("/data-log")]
    assert len(container) == 1 and re.fullmatch(rf"{tx}/{instance}-\d{{10}}", container[0])
    assert tnames == sorted([container[0], container[0] + "/data-log"])
    data_log = logs.get_log_events(logGroupName="/aws/sagemaker/TransformJobs", logStreamName=container[0] + "/data-log",
                                   startFromHead=True)["events"]
    assert data_log[-1]["message"].startswith("done: 2 records from 1 objects")

    cfg = unique("lognames-c")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 2, "InstanceType": "ml.m5.large"}])
    ep = unique("lognames-e")
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=cfg)
    try:
        assert wait_endpoint(sm, ep)["EndpointStatus"] == "InService"
        enames = streams(f"/aws/sagemaker/Endpoints/{ep}")
        assert len(enames) == 2 and all(re.fullmatch(rf"AllTraffic/{instance}", n) for n in enames)
    finally:
        sm.delete_endpoint(EndpointName=ep)

    def gone():
        try:
            sm.describe_endpoint(EndpointName=ep)
            return False
        except ClientError:
            return True

    wait_for(gone, bool, timeout=60)
    # what a clean-up task does once the endpoint is gone
    logs.delete_log_group(logGroupName=f"/aws/sagemaker/Endpoints/{ep}")
    assert logs.describe_log_groups(logGroupNamePrefix=f"/aws/sagemaker/Endpoints/{ep}")["logGroups"] == []


def test_clean_up_loop_deleting_streams_page_by_page_misses_none(logs):
    """for page in describe_log_streams paginator: delete its streams -- every stream goes (position
    tokens would skip a page's worth after each deletion)."""
    group = "/lm/" + unique("cleanup")
    logs.create_log_group(logGroupName=group)
    for i in range(7):
        logs.create_log_stream(logGroupName=group, logStreamName=f"job-{i}/algo-1-1")
    deleted = []
    for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=group, PaginationConfig={"PageSize": 2}):
        for s in page["logStreams"]:
            logs.delete_log_stream(logGroupName=group, logStreamName=s["logStreamName"])
            deleted.append(s["logStreamName"])
    assert deleted == [f"job-{i}/algo-1-1" for i in range(7)]
    assert logs.describe_log_streams(logGroupName=group)["logStreams"] == []
    # descending and by last event time page through every stream once too
    for i in range(5):
        logs.create_log_stream(logGroupName=group, logStreamName=f"s{i}")
        logs.put_log_events(logGroupName=group, logStreamName=f"s{i}",
                            logEvents=[{"timestamp": 1_000_000 + (i * 7) % 5, "message": "x"}])
    pages = logs.get_paginator("describe_log_streams").paginate(logGroupName=group, descending=True,
                                                                PaginationConfig={"PageSize": 2})
    assert [s["logStreamName"] for p in pages for s in p["logStreams"]] == ["s4", "s3", "s2", "s1", "s0"]
    pages = logs.get_paginator("describe_log_streams").paginate(logGroupName=group, orderBy="LastEventTime",
                                                                PaginationConfig={"PageSize": 2})
    by_time = [s["logStreamName"] for p in pages for s in p["logStreams"]]
    assert by_time == ["s0", "s3", "s1", "s4", "s2"]  # last event at +0, +1, +2, +3, +4
    with pytest.raises(ClientError) as e:
        logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime",
                                  nextToken=logs.describe_log_streams(logGroupName=group, limit=1)["nextToken"])
    assert _code(e) == ("InvalidParameterException", "The specified nextToken is invalid.")
