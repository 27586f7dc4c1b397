"""End to end with `airflow dags test` against a real localmaker: multi-instance training, tuning,
and scheduled batch scoring with the champion, idempotent per date."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from include.mlpipeline.bootstrap import provision_stage
from include.mlpipeline.config import load_config
from localmaker.launcher import start

from ..airflow_helpers import airflow_env, dags_test, migrate, run_succeeded

ROOT = Path(__file__).resolve().parents[2]
MODEL = "diabetes_dnn"
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("batch-e2e")
    server = start(home / "localmaker")
    cfg = load_config(MODEL, "dev")
    s3, sm = server.client("s3"), server.client("sagemaker")
    provision_stage(cfg, s3, server.client("sns"))
    af = airflow_env(home / "airflow", ROOT / "dags", server.url)
    migrate(af)
    yield {"server": server, "cfg": cfg, "s3": s3, "sm": sm, "af": af}
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


def run(env, dag_id, conf=None, date=None):
    result = dags_test(dag_id, env["af"], logical_date=date, conf=conf)
    out = result.stdout + result.stderr
    assert run_succeeded(result), out[-5000:]
    return out


def jobs(sm, contains):
    return [j for j in sm.list_training_jobs(NameContains=contains, MaxResults=100)["TrainingJobSummaries"]]


def test_two_instance_training_through_the_dag_becomes_the_champion(env):
    sm, s3, cfg = env["sm"], env["s3"], env["cfg"]
    run(env, f"{MODEL}_training", {"auto_approve": True, "instance_count": 2, "hyperparameters": {"epochs": 80}})
    [summary] = jobs(sm, cfg.model_slug)
    job = sm.describe_training_job(TrainingJobName=summary["TrainingJobName"])
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ResourceConfig"]["InstanceCount"] == 2
    train = next(c for c in job["InputDataConfig"] if c["ChannelName"] == "train")
    assert train["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
    bucket, prefix = train["DataSource"]["S3DataSource"]["S3Uri"][5:].split("/", 1)
    shards = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    assert len(shards) == 2  # one file per host, so each host trains on its own half
    logs = env["server"].client("logs").describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=job["TrainingJobName"] + "/")
    assert sorted(s["logStreamName"].split("/")[1].rsplit("-", 1)[0] for s in logs["logStreams"]) == ["algo-1", "algo-2"]
    assert sm.describe_endpoint(EndpointName=cfg.endpoint.prod_name)["EndpointStatus"] == "InService"


def test_batch_scoring_joins_ids_and_is_idempotent_per_date(env):
    s3, cfg = env["s3"], env["cfg"]
    run(env, f"{MODEL}_batch_data")
    ids = [line.split(",")[0] for line in (ROOT / "include/data/diabetes_batch.csv").read_text().splitlines()[1:] if line]
    prefix = f"{MODEL}/predictions/2026-03-01/"
    for _ in range(2):  # the same date twice: replaced, never duplicated
        out = run(env, f"{MODEL}_batch_transform", date="2026-03-01")
        assert "batch summary" in out
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=cfg.aws.bucket, Prefix=prefix)["Contents"]]
        outs = [k for k in keys if k.endswith(".out")]
        assert len(outs) == 1, keys
        lines = s3.get_object(Bucket=cfg.aws.bucket, Key=outs[0])["Body"].read().decode().splitlines()
        assert [line.split(",")[0] for line in lines] == ids  # every record once, in input order, id joined
        assert all(0 < float(line.split(",")[1]) < 500 for line in lines)
        summary = json.loads(s3.get_object(Bucket=cfg.aws.bucket, Key=prefix + "summary.json")["Body"].read())
        assert summary["rows_in"] == summary["rows_out"] == len(ids)


def test_tuning_switch_runs_a_tuning_job_and_continues_with_the_best_model(env):
    sm, cfg = env["sm"], env["cfg"]
    out = run(env, f"{MODEL}_training", {"tuning": True, "tuning_max_jobs": 2, "tuning_max_parallel_jobs": 2,
                                          "deploy": False, "hyperparameters": {"epochs": 40}})
    [tuning] = sm.list_hyper_parameter_tuning_jobs(NameContains=cfg.model_slug[:20])["HyperParameterTuningJobSummaries"]
    desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning["HyperParameterTuningJobName"])
    assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning["HyperParameterTuningJobName"])["TrainingJobSummaries"]
    assert len(trials) == 2
    best = desc["BestTrainingJob"]["TrainingJobName"]
    s3 = env["s3"]
    reports = [o for o in s3.list_objects_v2(Bucket=cfg.aws.bucket, Prefix=f"{MODEL}/")["Contents"]
               if o["Key"].endswith("evaluation/evaluation.json")]
    newest = max(reports, key=lambda o: o["LastModified"])["Key"]
    report = json.loads(s3.get_object(Bucket=cfg.aws.bucket, Key=newest)["Body"].read())
    assert report["training_job"] == best  # evaluation used the best trial's model
    assert "[DAG TEST] end task task_id=train.train " not in out  # the plain training branch was skipped
