"""`<model>_training` end to end with `airflow dags test` against a real localmaker.

The three runs build on one another in one module (one localmaker, one Airflow DB):

A. a good model goes all the way: trained, evaluated on SageMaker, gated in, registered,
   deployed to dev and prod, promoted to champion; prod answers the test rows well enough; every
   SageMaker wait is deferred to the triggerer (the config's default, ``airflow.deferrable``);
B. a worse model is gated out: the run succeeds but stops at the gate, prod and the registry
   are exactly as A left them; this run turns ``airflow.deferrable`` off in its conf, and its
   waits stay in their tasks;
C. a malformed source fails at validation with an actionable message, the bad rows are
   quarantined with reasons, and the failure clean-up leaves prod alone;
D. a retrain on A's data with A's recipe ends as "no change": no package, no deployment.

Each run's outcome (promoted, gated out, failed, no change) is an event of the model asset and
the run's note.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tarfile
from pathlib import Path
from typing import Any

import pytest

from include.mlpipeline.etl import QUARANTINE_FILE
from include.mlpipeline.evaluate import METRICS_FILE, MODEL_QUALITY_FILE, PLOT_FILE, champion_metrics
from include.mlpipeline.run import run_key
from include.mlpipeline.s3 import split_s3_uri

from ..airflow_helpers import ROOT, run_succeeded
from .support import MODEL, Pipeline, deferred_tasks, output_tail, r2_score

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAG_ID = f"{MODEL}_training"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIXED_ROW = "59,2,32.1,101,157,93.2,38,4,4.8598,87"  # age,sex,bmi,bp,s1..s6 of one patient
#: Pure request builders wired off `candidate`/`evaluate`, not the gate: they may start after it.
UNGATED_BUILDERS = {"register.package_request", "deploy_dev.deploy_config"}

#: The tasks that wait for SageMaker in a deployed run (``tune`` is not on this model's path).
WAIT_TASKS = {"train.train", "evaluate.evaluate_transform", "deploy_dev.deploy_dev", "promote.deploy_prod", "promote.baseline"}

MODEL_ASSET = f"{MODEL}_model"
#: The teardown that records the run's outcome: it runs however the run ended.
RECORD_OUTCOME = "record_outcome"

#: What run A leaves behind, for B and C to compare against.
CHAMPION: dict[str, Any] = {}


def _approved(pipeline: Pipeline) -> list[dict[str, Any]]:
    return pipeline.sm.list_model_packages(
        ModelPackageGroupName=pipeline.cfg.registry.model_package_group_name, ModelApprovalStatus="Approved"
    )["ModelPackageSummaryList"]


def _all_packages(pipeline: Pipeline) -> list[dict[str, Any]]:
    return pipeline.sm.list_model_packages(
        ModelPackageGroupName=pipeline.cfg.registry.model_package_group_name
    )["ModelPackageSummaryList"]


def _served_model_url(pipeline: Pipeline, endpoint_config: str) -> str:
    config = pipeline.sm.describe_endpoint_config(EndpointConfigName=endpoint_config)
    model = pipeline.sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return model["PrimaryContainer"]["ModelDataUrl"]


def _test_rows(pipeline: Pipeline, run_prefix: str) -> tuple[list[str], list[float]]:
    """The run's test channel (label first, no header) as feature lines and labels."""
    keys = [k for k in pipeline.keys(run_prefix + "test/") if not k.endswith("/")]
    assert keys, f"no test channel under {run_prefix}test/"
    rows, labels = [], []
    for key in keys:
        for line in pipeline.read_text(key).splitlines():
            if line.strip():
                label, _, features = line.partition(",")
                labels.append(float(label))
                rows.append(features)
    return rows, labels


def _require_champion() -> None:
    if not CHAMPION:
        pytest.skip("needs the state the successful first run leaves (test A did not pass)")


# ----------------------------------------------------------------------------------------- A


def test_a_good_model_is_trained_gated_in_registered_and_served_in_prod(pipeline: Pipeline):
    cfg, sm, s3 = pipeline.cfg, pipeline.sm, pipeline.s3
    result = pipeline.run(DAG_ID, {"auto_approve": True})
    assert run_succeeded(result), output_tail(result)
    run = pipeline.latest_run(DAG_ID)
    assert run["state"] == "success"
    out = result.stdout + result.stderr

    # every SageMaker wait was deferred (the worker slot freed), polled at the configured interval,
    # and the deferred training still put the job's own log into the task log
    assert deferred_tasks(out) == WAIT_TASKS, output_tail(result)
    poll = cfg.airflow.poll_interval_seconds
    assert f"Waiting in the triggerer (deferred), a status check every {poll} s" in out
    assert "Training job not done yet: InProgress" in out  # the trigger's aiobotocore waiter at work
    assert "validation:rmse=" in out
    prefix = f"{cfg.model}/{run_key(run['run_id'])}/"

    # evaluation report: metrics + gate decision, the registry's model-quality JSON, a real PNG
    report = json.loads(pipeline.read_text(prefix + f"evaluation/{METRICS_FILE}"))
    assert report["gate"]["passed"] is True, report["gate"]
    assert report["champion_metrics"] is None  # the first model has nobody to beat
    quality = json.loads(pipeline.read_text(prefix + f"evaluation/{MODEL_QUALITY_FILE}"))
    assert quality["regression_metrics"]["r2"]["value"] == pytest.approx(report["metrics"]["r2"])
    png = s3.get_object(Bucket=cfg.aws.bucket, Key=prefix + f"evaluation/{PLOT_FILE}")["Body"].read()
    assert png[:8] == PNG_MAGIC and len(png) > 1000

    # the training job completed and its model.tar.gz is a real archive in S3
    job = sm.describe_training_job(TrainingJobName=report["training_job"])
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    artifacts = job["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, key = split_s3_uri(artifacts)
    assert key.endswith("/model.tar.gz")
    archive = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert archive[:2] == b"\x1f\x8b", "model.tar.gz is not gzip"
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        assert tar.getnames(), "model.tar.gz is empty"

    # both endpoints serve this run's model
    dev, prod = pipeline.endpoint("dev"), pipeline.endpoint("prod")
    assert dev["EndpointStatus"] == "InService", dev.get("FailureReason")
    assert prod["EndpointStatus"] == "InService", prod.get("FailureReason")
    assert _served_model_url(pipeline, prod["EndpointConfigName"]) == artifacts
    assert _served_model_url(pipeline, dev["EndpointConfigName"]) == artifacts

    # live predictions of the held-out test rows through prod meet the configured bound
    rows, labels = _test_rows(pipeline, prefix)
    assert len(rows) == int(report["metrics"]["n"])
    predictions = pipeline.predict("prod", rows)
    assert len(predictions) == len(rows) and all(math.isfinite(p) for p in predictions)
    r2 = r2_score(labels, predictions)
    thresholds = cfg.evaluation.thresholds
    assert r2 >= thresholds["min_r2"], f"live R^2 {r2:.3f} below {thresholds['min_r2']}"
    rmse = math.sqrt(sum((y - p) ** 2 for y, p in zip(labels, predictions, strict=True)) / len(rows))
    assert rmse <= thresholds["max_rmse"]
    # the same model on the same rows: the endpoint agrees with the batch-transform evaluation
    assert r2 == pytest.approx(report["metrics"]["r2"], abs=1e-3)

    # the champion is recorded: one approved package carrying the metrics and this run's model
    [approved] = _approved(pipeline)
    package = sm.describe_model_package(ModelPackageName=approved["ModelPackageArn"])
    assert package["CustomerMetadataProperties"]["run_id"] == run["run_id"]
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == artifacts
    champion = champion_metrics(sm, cfg.registry.model_package_group_name)
    assert champion is not None
    for name in cfg.evaluation.metrics:
        assert champion[name] == pytest.approx(report["metrics"][name], rel=1e-9), name

    # the run's outcome, with the metrics, is an event of the model asset
    [event] = pipeline.asset_events(MODEL_ASSET, run["run_id"])
    assert event["outcome"] == "promoted" and event["champion"] == approved["ModelPackageArn"]
    assert event["metrics"] == pytest.approx(report["metrics"])
    assert event["data_sha256"] == package["CustomerMetadataProperties"]["data.sha256"] == report["data_sha256"]
    assert pipeline.run_note(DAG_ID, run["run_id"]).startswith("**promoted**: candidate ")

    CHAMPION.update(
        run_id=run["run_id"],
        metrics=report["metrics"],
        package_arn=approved["ModelPackageArn"],
        prod_config=prod["EndpointConfigName"],
        dev_config=dev["EndpointConfigName"],
        model_url=artifacts,
        fixed_prediction=pipeline.predict("prod", [FIXED_ROW])[0],
    )


# ----------------------------------------------------------------------------------------- B


def test_b_a_worse_model_is_gated_out_and_prod_is_untouched(pipeline: Pipeline):
    _require_champion()
    cfg = pipeline.cfg
    result = pipeline.run(
        DAG_ID,
        {
            "hyperparameters": {"epochs": 1, "learning_rate": 0.00001},
            "auto_approve": True,
            "airflow.deferrable": False,  # a run-conf override of the config key
        },
    )
    out = result.stdout + result.stderr
    assert run_succeeded(result), output_tail(result)  # gated out is a clean end, not a failure
    # the waits (train, evaluate_transform) stayed in their tasks
    assert deferred_tasks(out) == set(), output_tail(result)
    assert out.count("Waiting in this task, a status check every") == 2, output_tail(result)
    assert "gated out:" in out
    run = pipeline.latest_run(DAG_ID)
    assert run["run_id"] != CHAMPION["run_id"] and run["state"] == "success"

    # the gate compared against A's champion and said no, with reasons
    report = json.loads(pipeline.read_text(f"{cfg.model}/{run_key(run['run_id'])}/evaluation/{METRICS_FILE}"))
    assert report["gate"]["passed"] is False
    assert report["champion_metrics"]["rmse"] == pytest.approx(CHAMPION["metrics"]["rmse"])
    assert any("champion" in reason for reason in report["gate"]["reasons"]), report["gate"]["reasons"]

    # the gate is the last task that ran; everything it guards was skipped
    states = pipeline.task_states(DAG_ID, run["run_id"])
    assert states["train.train"]["state"] == states["evaluate.evaluate"]["state"] == states["evaluate.gate"]["state"] == "success"
    gated = pipeline.downstream_of(DAG_ID, "evaluate.gate")
    assert {"register.register", "deploy_dev.deploy_dev", "promote.deploy_prod", "promote.promote", "clean_up_failed_run"} <= gated
    assert states[RECORD_OUTCOME]["state"] == "success"  # a teardown: the gate does not skip it
    not_skipped = {t: states[t]["state"] for t in gated - {RECORD_OUTCOME} if states[t]["state"] != "skipped"}
    assert not not_skipped, f"tasks behind the gate did not skip: {not_skipped}"
    gate_started = states["evaluate.gate"]["start_date"]
    ran_after = {
        t for t, s in states.items()
        if s["state"] not in ("skipped", None) and s["start_date"] and s["start_date"] > gate_started
    }
    assert ran_after <= UNGATED_BUILDERS | {RECORD_OUTCOME}, f"tasks that ran after the gate: {sorted(ran_after)}"
    [event] = pipeline.asset_events(MODEL_ASSET, run["run_id"])
    assert event["outcome"] == "gated out" and event["reasons"] == report["gate"]["reasons"]
    note = pipeline.run_note(DAG_ID, run["run_id"])
    assert note.startswith("**gated out**") and report["gate"]["reasons"][0] in note
    assert event["metrics"] == pytest.approx(report["metrics"])

    # prod, dev and the registry are as A left them
    assert pipeline.endpoint("prod")["EndpointConfigName"] == CHAMPION["prod_config"]
    assert pipeline.endpoint("dev")["EndpointConfigName"] == CHAMPION["dev_config"]
    assert [p["ModelPackageArn"] for p in _approved(pipeline)] == [CHAMPION["package_arn"]]
    assert len(_all_packages(pipeline)) == 1, "a gated-out model must not be registered at all"
    assert pipeline.predict("prod", [FIXED_ROW])[0] == pytest.approx(CHAMPION["fixed_prediction"], abs=1e-6)


# ----------------------------------------------------------------------------------------- C


def _malformed_copy(path: Path, every: int = 10) -> int:
    """The demo data set with every ``every``-th row broken (well over the 2 % allowed); returns
    how many rows were broken."""
    source = (ROOT / "include" / "data" / "diabetes.csv").read_text().splitlines()
    header, rows = source[0], source[1:]
    columns = header.split(",")
    broken = 0
    out = [header]
    for i, line in enumerate(rows):
        fields = line.split(",")
        if i % every == 0:
            kind = broken % 3
            if kind == 0:
                fields[columns.index("age")] = "abc"  # not a number
            elif kind == 1:
                fields[columns.index("sex")] = "3"  # outside the allowed 1..2
            else:
                fields = fields[:-1]  # a missing field
            broken += 1
        out.append(",".join(fields))
    path.write_text("\n".join(out) + "\n")
    return broken


@pytest.fixture(scope="module")
def malformed_run(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run over a source with ~10 % bad rows (the model allows 2 %), shared by the C tests."""
    source = tmp_path_factory.mktemp("malformed-source") / "diabetes_malformed.csv"
    broken = _malformed_copy(source)
    result = pipeline.run(DAG_ID, {"source_uri": source.as_uri(), "auto_approve": True})
    run = pipeline.latest_run(DAG_ID)
    return {
        "broken": broken,
        "result": result,
        "run": run,
        "states": pipeline.task_states(DAG_ID, run["run_id"]),
        "prefix": f"{pipeline.cfg.model}/{run_key(run['run_id'])}/",
    }


def test_c_malformed_source_fails_validation_and_quarantines_the_bad_rows(
    pipeline: Pipeline, malformed_run: dict[str, Any]
):
    cfg, result, states = pipeline.cfg, malformed_run["result"], malformed_run["states"]
    assert states["data.extract"]["state"] == "success"
    assert states["data.validate_and_prepare"]["state"] == "failed", output_tail(result)
    assert states["train.train"]["state"] == "upstream_failed"
    # the message says what failed, by how much, which setting bounds it and where the rows are
    out = result.stdout + result.stderr
    allowed = f"{cfg.data.max_bad_row_share:.1%}"
    assert f"failed validation, above the allowed {allowed} (data.max_bad_row_share)" in out, output_tail(result)
    assert f"Quarantined rows: s3://{cfg.aws.bucket}/{malformed_run['prefix']}{QUARANTINE_FILE}" in out

    # the bad rows are kept, each with the reason it was rejected; no channels were published
    prefix = malformed_run["prefix"]
    quarantine = list(csv.DictReader(io.StringIO(pipeline.read_text(prefix + QUARANTINE_FILE))))
    assert len(quarantine) == malformed_run["broken"]
    assert "reason" in quarantine[0]
    assert all(row["reason"].strip() for row in quarantine)
    reasons = " | ".join(row["reason"] for row in quarantine)
    assert "age" in reasons and "sex" in reasons and "fields" in reasons, reasons[:500]
    assert not pipeline.keys(prefix + "train/"), "channels were uploaded from rejected data"


def test_c_failure_clean_up_runs_and_spares_prod(pipeline: Pipeline, malformed_run: dict[str, Any]):
    _require_champion()
    assert malformed_run["states"]["clean_up_failed_run"]["state"] == "success", "the failure clean-up did not run"
    prod = pipeline.endpoint("prod")
    assert prod["EndpointStatus"] == "InService"
    assert prod["EndpointConfigName"] == CHAMPION["prod_config"]
    assert _served_model_url(pipeline, prod["EndpointConfigName"]) == CHAMPION["model_url"]
    dev = pipeline.endpoint("dev")
    assert dev["EndpointStatus"] == "InService" and dev["EndpointConfigName"] == CHAMPION["dev_config"]
    assert pipeline.predict("prod", [FIXED_ROW])[0] == pytest.approx(CHAMPION["fixed_prediction"], abs=1e-6)
    assert [p["ModelPackageArn"] for p in _approved(pipeline)] == [CHAMPION["package_arn"]]


def test_c_the_failed_run_is_reported_failed(pipeline: Pipeline, malformed_run: dict[str, Any]):
    """The clean-up leaf succeeds after a failure; the run must still end failed (and say so)."""
    assert malformed_run["run"]["state"] == "failed", output_tail(malformed_run["result"])
    assert not run_succeeded(malformed_run["result"])
    [event] = pipeline.asset_events(MODEL_ASSET, malformed_run["run"]["run_id"])
    assert event["outcome"] == "failed" and event["metrics"] == {}
    assert pipeline.run_note(DAG_ID, malformed_run["run"]["run_id"]).startswith("**failed**")


# ----------------------------------------------------------------------------------------- D


def test_d_a_retrain_on_the_champions_data_is_no_change(pipeline: Pipeline):
    """A's conf again: the same source rows and recipe. The gate stops it as "no change":
    nothing registered, no approval asked, nothing deployed."""
    _require_champion()
    packages_before = len(_all_packages(pipeline))
    result = pipeline.run(DAG_ID, {})  # no auto_approve: it must not wait for a person either
    assert run_succeeded(result), output_tail(result)
    out = result.stdout + result.stderr
    assert "no change: the champion was trained on the same data" in out, output_tail(result)
    run = pipeline.latest_run(DAG_ID)
    assert run["state"] == "success"
    states = pipeline.task_states(DAG_ID, run["run_id"])
    assert states["evaluate.gate"]["state"] == "success"
    for guarded in ("register.register", "approve.approve", "deploy_dev.deploy_dev", "promote.deploy_prod"):
        assert states[guarded]["state"] == "skipped", (guarded, states[guarded]["state"])
    [event] = pipeline.asset_events(MODEL_ASSET, run["run_id"])
    assert event["outcome"] == "no change"
    assert pipeline.run_note(DAG_ID, run["run_id"]).startswith("**no change**")
    assert set(event["metrics"]) >= set(pipeline.cfg.evaluation.metrics)
    assert len(_all_packages(pipeline)) == packages_before
    assert pipeline.endpoint("prod")["EndpointConfigName"] == CHAMPION["prod_config"]
    assert pipeline.endpoint("dev")["EndpointConfigName"] == CHAMPION["dev_config"]
