"""Hyperparameter tuning jobs: real trials, strategies inside their ranges and budgets, errors like AWS's."""

from __future__ import annotations

import itertools
import math
import re
import threading

import pytest
from botocore.exceptions import ClientError

from .conftest import ROLE, start_server, unique, wait_for, wait_training

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tune-algo:1"
METRIC = "validation:rmse"
DEFAULT_RMSE = 58.1  # the image's defaults: x=10, lr=1.0, opt=sgd
RANGES = {
    "IntegerParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "10", "ScalingType": "Auto"}],
    "ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.001", "MaxValue": "1.0", "ScalingType": "Logarithmic"}],
    "CategoricalParameterRanges": [{"Name": "opt", "Values": ["adam", "sgd"]}],
}


def rmse(h):
    return (float(h["x"]) - 3) ** 2 + 10 * (float(h["lr"]) - 0.1) ** 2 + (0 if h["opt"] == "adam" else 1)


def definition(bucket, static=None):
    return {
        "StaticHyperParameters": {"sleep": "0.3", **(static or {})},
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": METRIC, "Regex": r"validation:rmse=([-+0-9.eE]+)"},
                                  {"Name": "train:loss", "Regex": r"train:loss=([-+0-9.eE]+)"}],
        },
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/tune-out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    }


def tuning_request(name, bucket, strategy="Random", max_jobs=6, max_parallel=2, ranges=None, static=None, seed=None,
                   objective=METRIC, objective_type="Minimize"):
    limits = {"MaxParallelTrainingJobs": max_parallel}
    if max_jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = max_jobs
    cfg = {
        "Strategy": strategy,
        "HyperParameterTuningJobObjective": {"Type": objective_type, "MetricName": objective},
        "ResourceLimits": limits,
        "ParameterRanges": ranges if ranges is not None else RANGES,
    }
    if seed is not None:
        cfg["RandomSeed"] = seed
    return {"HyperParameterTuningJobName": name, "HyperParameterTuningJobConfig": cfg,
            "TrainingJobDefinition": definition(bucket, static)}


def wait_tuning(sm, name, timeout=60):
    return wait_for(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        lambda d: d["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"),
        timeout,
        interval=0.2,
    )


def trials(sm, name):
    out, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name, MaxResults=100, **kw)
        out += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            return out


def max_overlap(jobs):
    events = sorted([(j["TrainingStartTime"].timestamp(), 1) for j in jobs] +
                    [(j["TrainingEndTime"].timestamp(), -1) for j in jobs], key=lambda e: (e[0], e[1]))
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


def in_ranges(tuned, ranges=RANGES):
    for r in ranges.get("IntegerParameterRanges", []):
        v = tuned[r["Name"]]
        assert re.fullmatch(r"-?\d+", v) and int(r["MinValue"]) <= int(v) <= int(r["MaxValue"]), (r, v)
    for r in ranges.get("ContinuousParameterRanges", []):
        assert float(r["MinValue"]) <= float(tuned[r["Name"]]) <= float(r["MaxValue"]), (r, tuned)
    for r in ranges.get("CategoricalParameterRanges", []):
        assert tuned[r["Name"]] in r["Values"]
    names = {r["Name"] for k in ranges for r in ranges[k]}
    assert set(tuned) == names


class InProgressSampler:
    """Samples how many trials are InProgress while the tuning job runs."""

    def __init__(self, sm, name):
        self.sm, self.name, self.peak, self.stop = sm, name, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                page = self.sm.list_training_jobs_for_hyper_parameter_tuning_job(
                    HyperParameterTuningJobName=self.name, StatusEquals="InProgress", MaxResults=100)
                self.peak = max(self.peak, len(page["TrainingJobSummaries"]))
            except ClientError:
                pass
            self.stop.wait(0.05)

    def done(self):
        self.stop.set()
        self.thread.join(5)
        return self.peak


def test_random_search_beats_defaults_within_ranges_budget_and_parallelism(sm, bucket):
    # the defaults, trained as a plain job: poor on purpose
    base = unique("tune-default")
    sm.create_training_job(TrainingJobName=base, HyperParameters={"sleep": "0"},
                           **{k: v for k, v in definition(bucket).items() if k != "StaticHyperParameters"})
    default = wait_training(sm, base)
    assert default["TrainingJobStatus"] == "Completed", default.get("FailureReason")
    default_value = {m["MetricName"]: m["Value"] for m in default["FinalMetricDataList"]}[METRIC]
    assert default_value == pytest.approx(DEFAULT_RMSE)

    name = unique("rand")
    arn = sm.create_hyper_parameter_tuning_job(**tuning_request(name, bucket, max_jobs=8, max_parallel=3))[
        "HyperParameterTuningJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{name}"
    sampler = InProgressSampler(sm, name)
    job = wait_tuning(sm, name)
    peak_sampled = sampler.done()
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobStatusCounters"] == {"Completed": 8, "InProgress": 0, "RetryableError": 0,
                                                "NonRetryableError": 0, "Stopped": 0}
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 8, "Pending": 0, "Failed": 0}
    assert job["HyperParameterTuningJobConfig"]["Strategy"] == "Random"
    # as AWS shows it: the objective among the static hyperparameters (every trial gets it too)
    assert job["TrainingJobDefinition"]["StaticHyperParameters"] == {"sleep": "0.3", "_tuning_objective_metric": METRIC}
    assert job["CreationTime"] <= job["HyperParameterTuningEndTime"]

    ts = trials(sm, name)
    assert len(ts) == 8
    names = sorted(t["TrainingJobName"] for t in ts)
    for i, n in enumerate(names, start=1):
        assert re.fullmatch(rf"{name}-{i:03d}-[0-9a-f]{{8}}", n), n
    values = {}
    for t in ts:
        in_ranges(t["TunedHyperParameters"])
        assert t["TuningJobName"] == name and t["ObjectiveStatus"] == "Succeeded"
        m = t["FinalHyperParameterTuningJobObjectiveMetric"]
        assert m["MetricName"] == METRIC and m["Value"] == pytest.approx(rmse(t["TunedHyperParameters"]), abs=1e-5)
        values[t["TrainingJobName"]] = m["Value"]
        d = sm.describe_training_job(TrainingJobName=t["TrainingJobName"])
        assert d["TuningJobArn"] == arn
        assert d["HyperParameters"] == {"sleep": "0.3", "_tuning_objective_metric": METRIC, **t["TunedHyperParameters"]}
        t["TrainingStartTime"], t["TrainingEndTime"] = d["TrainingStartTime"], d["TrainingEndTime"]
    best = job["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == min(values.values())
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Type"] == "Minimize"
    assert best["TrainingJobName"] == min(values, key=values.get)
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] < default_value
    # never more than MaxParallelTrainingJobs at once, and parallelism was actually used
    assert 2 <= max_overlap(ts) <= 3
    assert peak_sampled <= 3
    # sorted listings
    by_value = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, SortBy="FinalObjectiveMetricValue", SortOrder="Ascending")["TrainingJobSummaries"]
    assert [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in by_value] == sorted(values.values())
    page = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name, MaxResults=5)
    assert [t["TrainingJobName"] for t in page["TrainingJobSummaries"]] == names[:5] and "NextToken" in page
    listed = sm.list_hyper_parameter_tuning_jobs(NameContains=name)["HyperParameterTuningJobSummaries"]
    assert len(listed) == 1 and listed[0]["Strategy"] == "Random"
    assert listed[0]["TrainingJobStatusCounters"]["Completed"] == 8
    assert listed[0]["ResourceLimits"] == {"MaxParallelTrainingJobs": 3, "MaxNumberOfTrainingJobs": 8}


def test_random_is_deterministic_for_a_seed(sm, bucket):
    ranges = {"IntegerParameterRanges": RANGES["IntegerParameterRanges"],
              "ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.01", "MaxValue": "0.5",
                                             "ScalingType": "ReverseLogarithmic"}]}
    tuned = []
    for _ in range(2):
        name = unique("seed")
        sm.create_hyper_parameter_tuning_job(**tuning_request(name, bucket, max_jobs=3, max_parallel=3, seed=7,
                                                              ranges=ranges, static={"sleep": "0", "opt": "adam"}))
        assert wait_tuning(sm, name)["HyperParameterTuningJobStatus"] == "Completed"
        ts = sorted(trials(sm, name), key=lambda t: t["TrainingJobName"])
        for t in ts:
            in_ranges(t["TunedHyperParameters"], ranges)
        tuned.append([t["TunedHyperParameters"] for t in ts])
    assert tuned[0] == tuned[1]


def test_bayesian_finds_better_than_its_first_trial(sm, bucket):
    name = unique("bayes")
    sm.create_hyper_parameter_tuning_job(**tuning_request(name, bucket, strategy="Bayesian", max_jobs=12, max_parallel=2,
                                                          static={"sleep": "0"}, seed=3))
    sampler = InProgressSampler(sm, name)
    job = wait_tuning(sm, name)
    assert sampler.done() <= 2
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    ts = trials(sm, name)
    assert len(ts) == 12 and job["TrainingJobStatusCounters"]["Completed"] == 12
    for t in ts:
        in_ranges(t["TunedHyperParameters"])
    first = min(ts, key=lambda t: t["TrainingJobName"])
    best = job["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    assert best < first["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    assert best < DEFAULT_RMSE / 5


def test_grid_enumerates_exactly_the_grid_and_max_jobs_caps_it(sm, bucket):
    ranges = {"CategoricalParameterRanges": [{"Name": "opt", "Values": ["adam", "sgd", "rmsprop"]}],
              "IntegerParameterRanges": [{"Name": "x", "MinValue": "2", "MaxValue": "4"}]}
    name = unique("grid")
    # no MaxNumberOfTrainingJobs: the grid is the budget
    sm.create_hyper_parameter_tuning_job(**tuning_request(name, bucket, strategy="Grid", max_jobs=None, max_parallel=4,
                                                          ranges=ranges, static={"sleep": "0", "lr": "0.1"}))
    capped = unique("gridcap")
    sm.create_hyper_parameter_tuning_job(**tuning_request(capped, bucket, strategy="Grid", max_jobs=4, max_parallel=2,
                                                          ranges=ranges, static={"sleep": "0", "lr": "0.1"}))
    job = wait_tuning(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    combos = sorted((t["TunedHyperParameters"]["opt"], t["TunedHyperParameters"]["x"]) for t in trials(sm, name))
    assert combos == sorted(itertools.product(["adam", "sgd", "rmsprop"], ["2", "3", "4"]))
    best = job["BestTrainingJob"]
    assert best["TunedHyperParameters"] == {"opt": "adam", "x": "3"}
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(0.0)
    job = wait_tuning(sm, capped)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    ts = trials(sm, capped)
    assert len(ts) == 4 and len({tuple(sorted(t["TunedHyperParameters"].items())) for t in ts}) == 4


def test_failing_trials_are_counted_not_fatal(sm, bucket):
    ranges = {"CategoricalParameterRanges": [{"Name": "opt", "Values": ["adam", "broken", "nometric"]}]}
    name = unique("flaky")
    sm.create_hyper_parameter_tuning_job(**tuning_request(name, bucket, strategy="Grid", max_jobs=None, max_parallel=3,
                                                          ranges=ranges, static={"sleep": "0", "x": "4", "lr": "0.1"}))
    job = wait_tuning(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobStatusCounters"] == {"Completed": 2, "InProgress": 0, "RetryableError": 0,
                                                "NonRetryableError": 1, "Stopped": 0}
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 1, "Pending": 0, "Failed": 2}
    assert job["BestTrainingJob"]["TunedHyperParameters"] == {"opt": "adam"}
    assert job["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(1.0)
    failed = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name,
                                                                  StatusEquals="Failed")["TrainingJobSummaries"]
    assert len(failed) == 1 and failed[0]["ObjectiveStatus"] == "Failed"
    assert failed[0]["FailureReason"] == "AlgorithmError: optimizer 'broken' diverged at x=4"
    with_metric = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, SortBy="FinalObjectiveMetricValue")["TrainingJobSummaries"]
    assert [t["TunedHyperParameters"]["opt"] for t in with_metric] == ["adam"]


def test_completion_criteria_end_the_search_early(sm, bucket):
    # grid order is x = 0, 1, 2, ...: rmse 9, 4, 1, 0, 1, 4, 9, ... (opt=adam, lr=0.1)
    ranges = {"IntegerParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "10"}]}
    static = {"sleep": "0", "opt": "adam", "lr": "0.1"}
    target, stale = unique("target"), unique("stale")
    req = tuning_request(target, bucket, strategy="Grid", max_jobs=None, max_parallel=1, ranges=ranges, static=static)
    req["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] = {"TargetObjectiveMetricValue": 0.5}
    sm.create_hyper_parameter_tuning_job(**req)
    req = tuning_request(stale, bucket, strategy="Grid", max_jobs=None, max_parallel=1, ranges=ranges, static=static)
    req["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] = {
        "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3}}
    sm.create_hyper_parameter_tuning_job(**req)
    job = wait_tuning(sm, target)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert sorted(int(t["TunedHyperParameters"]["x"]) for t in trials(sm, target)) == [0, 1, 2, 3]
    job = wait_tuning(sm, stale)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert sorted(int(t["TunedHyperParameters"]["x"]) for t in trials(sm, stale)) == [0, 1, 2, 3, 4, 5, 6]
    assert job["TuningJobCompletionDetails"]["NumberOfTrainingJobsObjectiveNotImproving"] == 3
    assert job["BestTrainingJob"]["TunedHyperParameters"] == {"x": "3"}


def test_no_successful_trial_fails_the_tuning_job(sm, bucket):
    ranges = {"CategoricalParameterRanges": [{"Name": "opt", "Values": ["broken"]}],
              "IntegerParameterRanges": [{"Name": "x", "MinValue": "1", "MaxValue": "2"}]}
    name = unique("allfail")
    sm.create_hyper_parameter_tuning_job(**tuning_request(name, bucket, strategy="Grid", max_jobs=None, max_parallel=2,
                                                          ranges=ranges, static={"sleep": "0"}))
    job = wait_tuning(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Failed"
    assert job["FailureReason"] == ("No training job succeeded after 2 attempts. Please take a look at the training "
                                    "job failures to get more details.")
    assert job["TrainingJobStatusCounters"]["NonRetryableError"] == 2 and "BestTrainingJob" not in job


def test_stop_tuning_job_stops_its_trials(sm, bucket):
    name = unique("tstop")
    sm.create_hyper_parameter_tuning_job(**tuning_request(name, bucket, max_jobs=5, max_parallel=2,
                                                          static={"sleep": "60"}))
    wait_for(lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
             lambda d: d["TrainingJobStatusCounters"]["InProgress"] == 2)
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name)["HyperParameterTuningJobStatus"] in ("Stopping", "Stopped")
    job = wait_tuning(sm, name, timeout=30)
    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    assert job["TrainingJobStatusCounters"]["Stopped"] == 2 and job["TrainingJobStatusCounters"]["InProgress"] == 0
    ts = trials(sm, name)
    assert len(ts) == 2 and all(t["TrainingJobStatus"] == "Stopped" for t in ts)
    with pytest.raises(ClientError) as e:
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "status Stopped" in e.value.response["Error"]["Message"]


def error_of(fn, **kw):
    with pytest.raises(ClientError) as e:
        fn(**kw)
    return e.value.response["Error"]


def test_api_errors(sm, bucket):
    create = sm.create_hyper_parameter_tuning_job
    err = error_of(sm.describe_hyper_parameter_tuning_job, HyperParameterTuningJobName="never-created")
    assert err == {"Code": "ResourceNotFound",
                   "Message": "Amazon SageMaker can't find a tuning job called never-created. Type another name."}
    assert error_of(sm.stop_hyper_parameter_tuning_job, HyperParameterTuningJobName="never-created")["Code"] == "ResourceNotFound"
    assert error_of(sm.list_training_jobs_for_hyper_parameter_tuning_job,
                    HyperParameterTuningJobName="never-created")["Code"] == "ResourceNotFound"

    err = error_of(create, **tuning_request("x" * 33, bucket))
    assert err["Code"] == "ValidationException" and "at 'hyperParameterTuningJobName'" in err["Message"]

    bad = {"IntegerParameterRanges": [{"Name": "x", "MinValue": "5", "MaxValue": "1"}]}
    err = error_of(create, **tuning_request(unique("bad"), bucket, ranges=bad))
    assert err["Code"] == "ValidationException" and "MinValue [5]" in err["Message"] and "MaxValue [1]" in err["Message"]
    bad = {"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}]}
    err = error_of(create, **tuning_request(unique("bad"), bucket, ranges=bad))
    assert err["Code"] == "ValidationException" and "Logarithmic" in err["Message"]
    bad = {"IntegerParameterRanges": [{"Name": "x", "MinValue": "1.5", "MaxValue": "3"}]}
    assert error_of(create, **tuning_request(unique("bad"), bucket, ranges=bad))["Code"] == "ValidationException"

    err = error_of(create, **tuning_request(unique("metric"), bucket, objective="validation:auc"))
    assert err["Code"] == "ValidationException" and "validation:auc" in err["Message"]
    err = error_of(create, **tuning_request(unique("hyper"), bucket, strategy="Hyperband"))
    assert err["Code"] == "ValidationException" and "not supported by localmaker" in err["Message"]
    err = error_of(create, **tuning_request(unique("par"), bucket, max_jobs=2, max_parallel=3))
    assert err["Code"] == "ValidationException" and "MaxParallelTrainingJobs" in err["Message"]
    err = error_of(create, **tuning_request(unique("nomax"), bucket, strategy="Bayesian", max_jobs=None))
    assert err["Code"] == "ValidationException" and "MaxNumberOfTrainingJobs" in err["Message"]
    err = error_of(create, **tuning_request(unique("gridc"), bucket, strategy="Grid", max_jobs=None))
    assert err["Code"] == "ValidationException" and "lr" in err["Message"]
    err = error_of(create, **tuning_request(unique("both"), bucket, static={"x": "1"}))
    assert err["Code"] == "ValidationException" and "x" in err["Message"]

    name = unique("dup")
    sm.create_hyper_parameter_tuning_job(**tuning_request(name, bucket, max_jobs=1, max_parallel=1, static={"sleep": "0"}))
    err = error_of(create, **tuning_request(name, bucket))
    assert err == {"Code": "ResourceInUse",
                   "Message": f"A hyperparameter tuning job with the name, {name}, already exists. Choose a different name."}
    assert wait_tuning(sm, name)["HyperParameterTuningJobStatus"] == "Completed"
    assert math.isfinite(sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name)["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])

    # warm start: parents must exist; a Bayesian child learns from their trials
    child = tuning_request(unique("warm"), bucket, strategy="Bayesian", max_jobs=2, max_parallel=2, static={"sleep": "0"})
    child["WarmStartConfig"] = {"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "never-created"}],
                                "WarmStartType": "IdenticalDataAndAlgorithm"}
    assert error_of(create, **child)["Code"] == "ResourceNotFound"
    child["WarmStartConfig"]["ParentHyperParameterTuningJobs"] = [{"HyperParameterTuningJobName": name}]
    create(**child)
    job = wait_tuning(sm, child["HyperParameterTuningJobName"])
    assert job["HyperParameterTuningJobStatus"] == "Completed" and job["WarmStartConfig"]["WarmStartType"] == "IdenticalDataAndAlgorithm"


def test_server_stop_fails_a_running_tuning_job_and_the_state_survives(tmp_path):
    srv = start_server(tmp_path / "home")
    try:
        sm = srv.client("sagemaker")
        srv.client("s3").create_bucket(Bucket="restart")
        name = unique("restart")
        sm.create_hyper_parameter_tuning_job(**tuning_request(name, "restart", max_jobs=4, max_parallel=2,
                                                              static={"sleep": "60"}))
        wait_for(lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
                 lambda d: d["TrainingJobStatusCounters"]["InProgress"] == 2)
    finally:
        assert srv.stop() == 0
    srv = start_server(tmp_path / "home")
    try:
        sm = srv.client("sagemaker")
        job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        assert job["HyperParameterTuningJobStatus"] == "Failed"
        assert "localmaker shut down" in job["FailureReason"]
        found = trials(sm, name)
        statuses = {t["TrainingJobName"]: (t["TrainingJobStatus"], t.get("FailureReason")) for t in found}
        assert job["TrainingJobStatusCounters"]["NonRetryableError"] == 2, (job["TrainingJobStatusCounters"], statuses)
        assert len(found) == 2
    finally:
        srv.stop()


@pytest.mark.slow
def test_provider_processing_and_tuning_operators(tmp_path, server, s3, sm):
    from ..airflow_helpers import airflow_env, dags_test, migrate, run_succeeded
    from .conftest import HERE

    s3.create_bucket(Bucket="airflow-tune")
    s3.put_object(Bucket="airflow-tune", Key="data/train/a.csv", Body=b"1\n2\n3\n")
    env = airflow_env(tmp_path / "airflow", HERE / "dags", server.url, LM_TEST_BUCKET="airflow-tune")
    migrate(env)
    result = dags_test("localmaker_tuning_processing", env, "2026-01-02")
    out = result.stdout + result.stderr
    assert run_succeeded(result), out[-4000:]
    proc = sm.describe_processing_job(ProcessingJobName="af-proc-20260102t000000")
    assert proc["ProcessingJobStatus"] == "Completed" and proc["ExitMessage"] == "processed 3 lines"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="airflow-tune", Prefix="processed/")["Contents"]]
    assert "processed/20260102t000000/report-algo-1.json" in keys
    tune = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="af-tune-20260102t000000")
    assert tune["HyperParameterTuningJobStatus"] == "Completed"
    assert tune["TrainingJobStatusCounters"]["Completed"] == 4
    assert tune["BestTrainingJob"]["TrainingJobName"].startswith("af-tune-20260102t000000-")
