"""The tasks of `<model>_batch_data` / `<model>_batch_transform` against moto S3 and a fake registry."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from include.mlpipeline.pipelines import batch_transform as tasks


def test_prepare_batch_writes_the_validated_rows(dev_cfg, dev_ctx, clients, s3_read):
    result = tasks.prepare_batch(dev_cfg, dev_ctx, clients, None)
    assert result["rows"] > 0 and result["uri"].startswith(f"s3://{dev_cfg.aws.bucket}/")
    lines = [line for k in s3_read.keys(result["uri"]) for line in s3_read.text(f"s3://{dev_cfg.aws.bucket}/{k}").splitlines()]
    assert len(lines) == result["rows"]
    assert len(lines[0].split(",")) == 1 + len(dev_cfg.data.feature_columns)  # id, features


def test_prepare_batch_fails_bad_data_without_retries(dev_cfg, dev_ctx, clients, tmp_path: Path):
    from airflow.sdk.exceptions import AirflowFailException

    bad = tmp_path / "bad.csv"
    bad.write_text("id,colour\n1,blue\n")
    with pytest.raises(AirflowFailException, match="age"):
        tasks.prepare_batch(dev_cfg, dev_ctx, clients, f"file://{bad}")


def _event(**extra: Any) -> SimpleNamespace:
    return SimpleNamespace(extra=extra)


def test_batch_input_is_the_triggering_data_set(dev_cfg, dev_ctx, clients, s3_read):
    events = {"asset": [_event(uri="s3://b/old/", rows=1), _event(uri="s3://b/new/", rows="7")]}
    assert tasks.batch_input(dev_cfg, dev_ctx, clients, events) == {"uri": "s3://b/new/", "rows": 7}
    assert s3_read.keys(f"s3://{dev_cfg.aws.bucket}/") == []  # nothing prepared
    # on the cron (no event with a uri): the configured source is prepared
    prepared = tasks.batch_input(dev_cfg, dev_ctx, clients, {"asset": [_event()]})
    assert prepared["rows"] > 0 and s3_read.keys(prepared["uri"])


def test_no_champion_skips_the_run_with_what_to_do(dev_cfg, clients):
    from airflow.sdk.exceptions import AirflowSkipException

    group = dev_cfg.registry.model_package_group_name
    with pytest.raises(AirflowSkipException) as exc:
        tasks.champion(dev_cfg, clients)
    assert "no champion yet" in str(exc.value) and group in str(exc.value)
    assert f"{dev_cfg.model}_training" in str(exc.value)
    arn = clients.sagemaker.approve(group, 2, image="xgb:1", model_data_url="s3://b/m2.tar.gz")
    assert tasks.champion(dev_cfg, clients) == {"arn": arn, "image": "xgb:1", "model_data_url": "s3://b/m2.tar.gz"}


def test_transform_request_names_the_run_and_the_date(dev_cfg, dev_ctx):
    champ = {"arn": "arn", "image": "xgb:1", "model_data_url": "s3://b/m.tar.gz"}
    date = tasks.run_date(datetime(2026, 3, 1, 4, 0))
    req = tasks.transform_request(dev_cfg, dev_ctx, {"uri": "s3://b/batch/", "rows": 3}, champ, date)
    assert req["Model"]["ModelName"] == f"{dev_cfg.model_slug}-dev-batch-{dev_ctx.ts_nodash.lower()}"
    assert req["Model"]["PrimaryContainer"]["ModelDataUrl"] == "s3://b/m.tar.gz"
    assert req["Transform"]["ModelName"] == req["Model"]["ModelName"]
    assert req["Transform"]["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://b/batch/"
    assert req["Transform"]["TransformOutput"]["S3OutputPath"] == f"s3://{dev_cfg.aws.bucket}/{dev_cfg.model}/predictions/2026-03-01"


def test_clear_previous_output_removes_only_that_dates_predictions(dev_cfg, clients, s3_read):
    bucket = dev_cfg.aws.bucket
    for key in [f"{dev_cfg.model}/predictions/2026-03-01/part-{i}.out" for i in range(3)] + [
        f"{dev_cfg.model}/predictions/2026-03-011/keep.out", f"{dev_cfg.model}/predictions/2026-03-02/keep.out"
    ]:
        clients.s3.put_object(Bucket=bucket, Key=key, Body=b"1")
    req = {"Model": {}, "Transform": {"TransformOutput": {"S3OutputPath": f"s3://{bucket}/{dev_cfg.model}/predictions/2026-03-01"}}}
    assert tasks.clear_previous_output(clients, req) == 3
    assert s3_read.keys(f"s3://{bucket}/{dev_cfg.model}/predictions/") == [
        f"{dev_cfg.model}/predictions/2026-03-011/keep.out", f"{dev_cfg.model}/predictions/2026-03-02/keep.out"
    ]
    assert tasks.clear_previous_output(clients, req) == 0
