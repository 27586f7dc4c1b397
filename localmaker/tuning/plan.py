"""A tuning job's plan: its request checked and reduced to what the scheduler needs; each trial's request;
the objective read from a trial's final metrics."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import validation
from .ranges import Param, parse_ranges

KIND = "HyperParameterTuningJob"
ARN_KIND = "hyper-parameter-tuning-job"
TRAINING = "TrainingJob"
TERMINAL = ("Completed", "Failed", "Stopped")
DEFAULT_SEED = 0


@dataclass
class Plan:
    strategy: str
    params: list[Param]
    metric: str
    objective_type: str
    budget: int
    max_parallel: int
    seed: int
    definition: dict[str, Any]
    target: float | None
    not_improving: int | None
    max_runtime: float | None


def _definition(p: dict[str, Any]) -> dict[str, Any]:
    defs = p.get("TrainingJobDefinitions")
    single = p.get("TrainingJobDefinition")
    if single and defs:
        raise validation("Specify either TrainingJobDefinition or TrainingJobDefinitions, not both.")
    if defs:
        if len(defs) > 1:
            raise validation("Multiple TrainingJobDefinitions are not supported by localmaker; give one definition.")
        return defs[0]
    if not single:
        raise validation("Either TrainingJobDefinition or TrainingJobDefinitions must be specified.")
    return single


def make_plan(p: dict[str, Any], images: Any) -> Plan:
    cfg = p["HyperParameterTuningJobConfig"]
    strategy = cfg["Strategy"]
    if strategy == "Hyperband":
        raise validation(
            "The Hyperband strategy is not supported by localmaker; use Bayesian, Random or Grid."
        )
    if p.get("Autotune"):
        raise validation("Autotune is not supported by localmaker; give the strategy, ranges and limits.")
    defn = _definition(p)
    objective = cfg.get("HyperParameterTuningJobObjective") or defn.get("TuningObjective")
    if not objective:
        raise validation("HyperParameterTuningJobObjective must be specified.")
    ranges = cfg.get("ParameterRanges") or defn.get("HyperParameterRanges") or {}
    params = parse_ranges(ranges)
    static = defn.get("StaticHyperParameters") or {}
    both = sorted(set(static) & {q.name for q in params})
    if both:
        raise validation(f"Hyperparameters {both} are specified as both static and tunable; choose one.")

    algo = defn["AlgorithmSpecification"]
    image = algo.get("TrainingImage")
    if not image:
        raise validation(
            "AlgorithmName (marketplace algorithms) is not supported by localmaker; give a TrainingImage."
        )
    metric = objective["MetricName"]
    names = [m["Name"] for m in algo.get("MetricDefinitions") or []]
    try:
        names += [m["Name"] for m in images.resolve(image).metrics]
    except Exception:  # noqa: BLE001 - an unmapped image fails its trials, as a training job would
        pass
    if metric not in names:
        raise validation(
            f"The objective metric for the hyperparameter tuning job, [{metric}], isn't valid for the [{image}] "
            f"algorithm. Choose a valid objective metric: one of the MetricDefinitions {names}."
        )

    limits = cfg["ResourceLimits"]
    max_jobs = limits.get("MaxNumberOfTrainingJobs")
    max_parallel = int(limits["MaxParallelTrainingJobs"])
    if strategy == "Grid":
        bad = [q.name for q in params if q.kind == "Continuous"]
        if bad:
            raise validation(
                f"The Grid strategy needs enumerable ranges; continuous hyperparameters {bad} cannot be searched on a grid."
            )
        size = math.prod(len(q.values) if q.kind == "Categorical" else int(q.high) - int(q.low) + 1 for q in params)
        budget = min(size, int(max_jobs)) if max_jobs else size
    else:
        if not max_jobs:
            raise validation(f"MaxNumberOfTrainingJobs must be specified for the {strategy} strategy.")
        budget = int(max_jobs)
    if max_jobs and max_parallel > int(max_jobs):
        raise validation(
            f"MaxParallelTrainingJobs [{max_parallel}] must be less than or equal to MaxNumberOfTrainingJobs [{max_jobs}]."
        )
    criteria = cfg.get("TuningJobCompletionCriteria") or {}
    nip = (criteria.get("BestObjectiveNotImproving") or {}).get("MaxNumberOfTrainingJobsNotImproving")
    return Plan(
        strategy=strategy,
        params=params,
        metric=metric,
        objective_type=objective["Type"],
        budget=budget,
        max_parallel=max_parallel,
        seed=int(cfg.get("RandomSeed", DEFAULT_SEED)),
        definition=defn,
        target=criteria.get("TargetObjectiveMetricValue"),
        not_improving=int(nip) if nip else None,
        max_runtime=float(limits["MaxRuntimeInSeconds"]) if limits.get("MaxRuntimeInSeconds") else None,
    )


def trial_request(plan: Plan, name: str, tuned: dict[str, str]) -> dict[str, Any]:
    d = plan.definition
    algo = {k: d["AlgorithmSpecification"][k] for k in ("TrainingImage", "TrainingInputMode", "AlgorithmName",
                                                         "MetricDefinitions") if k in d["AlgorithmSpecification"]}
    hps = {str(k): str(v) for k, v in (d.get("StaticHyperParameters") or {}).items()}
    hps.update(tuned)
    hps["_tuning_objective_metric"] = plan.metric
    req: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": algo,
        "RoleArn": d["RoleArn"],
        "HyperParameters": hps,
        "OutputDataConfig": d["OutputDataConfig"],
        "StoppingCondition": d["StoppingCondition"],
    }
    req["ResourceConfig"] = resource_config(d)
    for k in ("InputDataConfig", "VpcConfig", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
              "EnableManagedSpotTraining", "CheckpointConfig", "RetryStrategy", "Environment"):
        if k in d:
            req[k] = d[k]
    return req


def resource_config(d: dict[str, Any]) -> dict[str, Any]:
    """A definition's ResourceConfig: as given, else the one its HyperParameterTuningResourceConfig
    (what the SageMaker Python SDK 2.x sends) gives each trial."""
    rc = d.get("ResourceConfig")
    if rc is None:
        hrc = d.get("HyperParameterTuningResourceConfig") or {}
        first = (hrc.get("InstanceConfigs") or [{}])[0]
        rc = {
            "InstanceType": hrc.get("InstanceType") or first.get("InstanceType", "ml.m5.large"),
            "InstanceCount": hrc.get("InstanceCount") or first.get("InstanceCount", 1),
            "VolumeSizeInGB": hrc.get("VolumeSizeInGB") or first.get("VolumeSizeInGB", 1),
        }
        if hrc.get("VolumeKmsKeyId"):
            rc["VolumeKmsKeyId"] = hrc["VolumeKmsKeyId"]
    return rc


def trial_name(tuning: str, index: int) -> str:
    return f"{tuning}-{index:03d}-{uuid.uuid4().hex[:8]}"


def better(a: float, b: float, minimize: bool) -> bool:
    return a < b if minimize else a > b


def objective_value(tdoc: dict[str, Any] | None, metric: str) -> float | None:
    for m in (tdoc or {}).get("FinalMetricDataList", []):
        if m.get("MetricName") == metric:
            return float(m["Value"])
    return None
