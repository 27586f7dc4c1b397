"""Does MaxParallelTrainingJobs buy wall-clock time on a laptop?

The same tuning job (Random, fixed seed, 6 trials, each ~2 s of single-threaded numpy CPU work)
runs with MaxParallelTrainingJobs=1 and then 2 against one fresh localmaker subprocess. The trial
program and its images manifest are written to a temporary folder, so the benchmark is self-contained.

Prints a table and writes bench/results/tuning_parallel.json. Target: >= 1.5x on 2 cores.
Environment: BENCH_TRIALS (6), BENCH_TRIAL_SECONDS (2.0), BENCH_PARALLEL ("1,2").
"""

from __future__ import annotations

import os
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import boto3
from _common import save, start_localmaker, wait_done  # noqa: E402  (bench/ is the script's own folder on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench-cpu:1"
ROLE = "arn:aws:iam::123456789012:role/Bench"

WORK = textwrap.dedent(
    """
    import numpy as np

    def work(iters, seed=0):
        # element-wise ufuncs only: single-threaded whatever BLAS is installed
        a = np.random.default_rng(seed).random(50_000)
        acc = 0.0
        for _ in range(iters):
            a = np.sqrt(a * a + 1.0) - 0.999
            acc += float(a[::97].sum())
        return acc
    """
)

TRIAL = WORK + textwrap.dedent(
    """
    import json, os, time
    base = os.environ["SAGEMAKER_BASE_DIR"]
    hps = json.load(open(os.path.join(base, "input/config/hyperparameters.json")))
    t0 = time.process_time()
    work(int(hps["iters"]), int(float(hps["x"]) * 1000))
    cpu = time.process_time() - t0
    x, lr = float(hps["x"]), float(hps["lr"])
    print(f"cpu_seconds={cpu:.3f}", flush=True)
    print(f"validation:rmse={(x - 3) ** 2 + 10 * (lr - 0.1) ** 2:.6f}", flush=True)
    """
)


def calibrate(seconds: float) -> int:
    ns: dict[str, Any] = {}
    exec(WORK, ns)  # noqa: S102 - our own constant source, shared with the trial program
    ns["work"](50)  # warm up
    n, elapsed = 200, 0.0
    while elapsed < 0.5:
        t0 = time.process_time()
        ns["work"](n)
        elapsed = time.process_time() - t0
        if elapsed < 0.5:
            n *= 2
    return max(1, int(n * seconds / elapsed))


def client(url: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="b", aws_secret_access_key="b")


def tuning_request(name: str, trials: int, parallel: int, iters: int) -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "RandomSeed": 1,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": parallel},
            "ParameterRanges": {
                "IntegerParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "6"}],
                "ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.01", "MaxValue": "1"}],
            },
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {"iters": str(iters)},
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": [
                    {"Name": "validation:rmse", "Regex": r"validation:rmse=([-+0-9.eE]+)"},
                    {"Name": "cpu_seconds", "Regex": r"cpu_seconds=([0-9.]+)"},
                ],
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": "s3://bench/tuning"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "Environment": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        },
    }


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda ev: (ev[0], ev[1]))
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


def run_tuning(sm: Any, name: str, trials: int, parallel: int, iters: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    sm.create_hyper_parameter_tuning_job(**tuning_request(name, trials, parallel, iters))
    d = wait_done(lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
                  "HyperParameterTuningJobStatus", 0.05)
    wall = time.perf_counter() - t0
    assert d["HyperParameterTuningJobStatus"] == "Completed", d.get("FailureReason")
    summaries = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, MaxResults=100)["TrainingJobSummaries"]
    spans, cpu = [], []
    for s in summaries:
        t = sm.describe_training_job(TrainingJobName=s["TrainingJobName"])
        spans.append((t["TrainingStartTime"].timestamp(), t["TrainingEndTime"].timestamp()))
        cpu.append({m["MetricName"]: m["Value"] for m in t["FinalMetricDataList"]}["cpu_seconds"])
    durations = [e - s for s, e in spans]
    return {
        "parallel": parallel,
        "trials": len(summaries),
        "wall_s": wall,
        "mean_trial_s": sum(durations) / len(durations),
        "mean_trial_cpu_s": sum(cpu) / len(cpu),
        "peak_running": peak_overlap(spans),
        "best": d["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
    }


def main() -> None:
    trials = int(os.environ.get("BENCH_TRIALS", "6"))
    seconds = float(os.environ.get("BENCH_TRIAL_SECONDS", "2.0"))
    levels = [int(v) for v in os.environ.get("BENCH_PARALLEL", "1,2").split(",")]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    iters = calibrate(seconds)
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "cpu_train.py").write_text(TRIAL)
        manifest = tmpdir / "images.yaml"
        manifest.write_text(
            "images:\n  cpu:\n    repository: \"(.*/)?bench-cpu\"\n    workdir: .\n"
            "    train: [\"{python}\", \"cpu_train.py\"]\n"
        )
        proc, url = start_localmaker(tmpdir / "home", manifest)
        try:
            sm, s3 = client(url, "sagemaker"), client(url, "s3")
            s3.create_bucket(Bucket="bench")
            runs = [run_tuning(sm, f"par{p}-{int(time.time())}", trials, p, iters) for p in levels]
        finally:
            proc.terminate()
            proc.wait(60)
    by = {r["parallel"]: r for r in runs}
    speedup = by[levels[0]]["wall_s"] / by[levels[-1]]["wall_s"]
    results = {
        "cpus": cpus,
        "trials": trials,
        "trial_work_target_s": seconds,
        "iterations_per_trial": iters,
        "runs": runs,
        "speedup": speedup,
        "speedup_of": f"MaxParallelTrainingJobs={levels[-1]} vs {levels[0]}",
        "target_speedup": 1.5,
        "target_met": speedup >= 1.5,
    }
    print(f"{'MaxParallel':>11} {'trials':>6} {'wall s':>8} {'trial s':>8} {'trial cpu s':>11} {'peak':>5} {'best':>8}")
    for r in runs:
        print(f"{r['parallel']:>11} {r['trials']:>6} {r['wall_s']:>8.2f} {r['mean_trial_s']:>8.2f} "
              f"{r['mean_trial_cpu_s']:>11.2f} {r['peak_running']:>5} {r['best']:>8.3f}")
    print(f"speedup {results['speedup_of']}: {speedup:.2f}x on {cpus} CPUs (target >= 1.5x: "
          f"{'met' if results['target_met'] else 'NOT met'})")
    save("tuning_parallel", results)


if __name__ == "__main__":
    main()
