from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from include.mlpipeline.batch import BatchOutputError, parse_joined_lines, summarise_predictions


def test_parse_joined_lines_and_errors():
    assert parse_joined_lines("7,1.5\n8,2\n\n", "x") == [("7", 1.5), ("8", 2.0)]
    with pytest.raises(BatchOutputError, match="x: line 2: not a number: 'abc' in '8,abc'"):
        parse_joined_lines("7,1.5\n8,abc\n", "x")
    with pytest.raises(BatchOutputError, match="x: line 1: expected 'first,prediction'"):
        parse_joined_lines("nocomma\n", "x")


@mock_aws
def test_summary_checks_counts_and_writes_json():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bkt1")
    s3.put_object(Bucket="bkt1", Key="p/2026-01-01/data.csv.out", Body=b"1,10\n2,20\n3,30\n")
    summary = summarise_predictions(s3, "s3://bkt1/p/2026-01-01", expected_rows=3)
    assert summary["rows_out"] == 3 and summary["predictions"]["mean"] == 20
    assert b'"rows_in": 3' in s3.get_object(Bucket="bkt1", Key="p/2026-01-01/summary.json")["Body"].read()
    with pytest.raises(BatchOutputError, match="3 predictions .* for 4 input rows"):
        summarise_predictions(s3, "s3://bkt1/p/2026-01-01", expected_rows=4)
    s3.put_object(Bucket="bkt1", Key="p/2026-01-01/again.csv.out", Body=b"1,10\n")
    with pytest.raises(BatchOutputError, match="1 duplicate ids"):
        summarise_predictions(s3, "s3://bkt1/p/2026-01-01", expected_rows=4)


def test_schedule_with_asset_handles_null_presets_and_refuses_once():
    from airflow.sdk import Asset, AssetOrTimeSchedule

    from include.mlpipeline.dag_support import schedule_with_asset

    asset = Asset(name="m_retrain", uri="mlpipeline://m/retrain")
    assert schedule_with_asset(None, asset) == [asset]
    sched = schedule_with_asset("@daily", asset)
    assert isinstance(sched, AssetOrTimeSchedule)
    assert schedule_with_asset("0 2 * * *", asset).timetable is not None
    with pytest.raises(ValueError, match="cannot be combined with an asset trigger"):
        schedule_with_asset("@once", asset)


@mock_aws
def test_unjoined_json_lines_are_paired_with_input_ids_by_position():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bkt1")
    s3.put_object(Bucket="bkt1", Key="in/batch_input/data.csv", Body=b"a,1,2\nb,3,4\nc,5,6\n")
    s3.put_object(Bucket="bkt1", Key="p/d/data.csv.out",
                  Body=b'{"closest_cluster": 2.0}\n{"closest_cluster": 0.0}\n{"closest_cluster": 2.0}\n')
    summary = summarise_predictions(s3, "s3://bkt1/p/d", expected_rows=3, input_uri="s3://bkt1/in/batch_input/",
                                    field="closest_cluster")
    assert summary["rows_out"] == 3 and summary["predictions"]["max"] == 2.0
    body = s3.get_object(Bucket="bkt1", Key="p/d/predictions.csv")["Body"].read().decode()
    assert body.splitlines() == ["a,2.0", "b,0.0", "c,2.0"]
    s3.put_object(Bucket="bkt1", Key="p/e/data.csv.out", Body=b'{"closest_cluster": 1}\n')
    s3.put_object(Bucket="bkt1", Key="in2/data.csv", Body=b"a,1\nb,2\n")
    with pytest.raises(BatchOutputError, match="1 answers for 2 input lines"):
        summarise_predictions(s3, "s3://bkt1/p/e", expected_rows=2, input_uri="s3://bkt1/in2/")
