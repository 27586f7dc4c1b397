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
