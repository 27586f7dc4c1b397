"""Hyperparameter tuning jobs: a scheduler per job that runs real training jobs as trials.

Each trial is an ordinary training job (CreateTrainingJob through the same control plane), named
as AWS names them, ``{tuning job}-{NNN}-{8 hex}``, with the definition's
``StaticHyperParameters`` plus the tuned values (as strings, as SageMaker passes every
hyperparameter) plus ``_tuning_objective_metric``, and ``TuningJobArn`` on its description.
The objective is the trial's ``FinalMetricDataList`` value for the objective metric (from the
algorithm's ``MetricDefinitions`` regexes over its log).

Strategies:

* ``Random``: independent draws (seeded by ``RandomSeed``; fixed default), honouring
  ``ScalingType`` (``Auto`` is linear; ``Logarithmic``; ``ReverseLogarithmic``).
* ``Bayesian``: optuna's TPE sampler (seeded) through ask/tell, with the constant-liar
  heuristic so parallel trials do not pile onto one point.
* ``Grid``: every combination of the categorical values (localmaker also enumerates integer
  ranges; AWS accepts only categorical ones), in order; the grid size is the budget and
  ``MaxNumberOfTrainingJobs``, when given, caps it.
* ``Hyperband`` is refused (ValidationException).

At most ``MaxParallelTrainingJobs`` trials run at once; at most ``MaxNumberOfTrainingJobs`` are
started. A failed trial counts (NonRetryableError, objective Failed) and the search goes on; the
tuning job fails only when no trial succeeds (after 5 failures without one success, as AWS does).
``TuningJobCompletionCriteria`` (target value, best objective not improving) end the search early.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import random
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import controlplane
from .aws import now
from .context import Ctx
from .errors import AwsError, in_use, resource_not_found, validation
from .jobrunner import JobFailed, JobRun, JobRunner
from .jobs import JobService
from .service import Handler
from .training import TrainingService, fill_definition

log = logging.getLogger("localmaker.tuning")

KIND = "HyperParameterTuningJob"
TRAINING = "TrainingJob"
TERMINAL = ("Completed", "Failed", "Stopped")
DEFAULT_SEED = 0
FAIL_FAST_AFTER = 5  # AWS gives up when this many trials failed and none succeeded
MAX_PARAMETERS = 30
POLL = 0.15


class TuningFailed(JobFailed):
    """The message becomes the tuning job's FailureReason."""


# ---- parameter ranges ---------------------------------------------------------------------------
@dataclass
class Param:
    name: str
    kind: str  # Integer | Continuous | Categorical
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Linear"
    values: list[str] = field(default_factory=list)

    def fmt(self, v: Any) -> str:
        if self.kind == "Integer":
            return str(int(v))
        if self.kind == "Continuous":
            return repr(float(v))
        return str(v)

    def contains(self, s: str) -> bool:
        if self.kind == "Categorical":
            return s in self.values
        try:
            v = float(s)
        except ValueError:
            return False
        if self.kind == "Integer" and v != int(v):
            return False
        return self.low <= v <= self.high


def _number(name: str, which: str, raw: str, integer: bool) -> float:
    try:
        v = float(raw)
    except (TypeError, ValueError):
        v = math.nan
    if math.isnan(v) or math.isinf(v):
        raise validation(f"The {which} [{raw}] for hyperparameter [{name}] is not a valid number.")
    if integer and v != int(v):
        raise validation(f"The {which} [{raw}] for integer hyperparameter [{name}] must be an integer.")
    return v


def parse_ranges(ranges: dict[str, Any]) -> list[Param]:
    params: list[Param] = []
    if ranges.get("AutoParameters"):
        raise validation("AutoParameters (Autotune) are not supported by localmaker; give explicit parameter ranges.")
    for kind in ("Integer", "Continuous"):
        for r in ranges.get(f"{kind}ParameterRanges", []):
            name = r["Name"]
            integer = kind == "Integer"
            low = _number(name, "MinValue", r["MinValue"], integer)
            high = _number(name, "MaxValue", r["MaxValue"], integer)
            if low > high:
                raise validation(
                    f"The MinValue [{r['MinValue']}] for hyperparameter [{name}] must be less than or equal to "
                    f"its MaxValue [{r['MaxValue']}]."
                )
            scaling = r.get("ScalingType", "Auto")
            if scaling == "Auto":
                scaling = "Linear"
            if scaling == "Logarithmic" and low <= 0:
                raise validation(
                    f"Logarithmic scaling works only for ranges that have only values greater than 0: "
                    f"hyperparameter [{name}] has MinValue [{r['MinValue']}]."
                )
            if scaling == "ReverseLogarithmic":
                if integer:
                    raise validation(
                        f"ReverseLogarithmic scaling is supported only for continuous hyperparameters: [{name}]."
                    )
                if not (0 <= low and high < 1):
                    raise validation(
                        "ReverseLogarithmic scaling works only for ranges that are entirely within the range "
                        f"0 <= x < 1.0: hyperparameter [{name}]."
                    )
            params.append(Param(name, kind, low, high, scaling))
    for r in ranges.get("CategoricalParameterRanges", []):
        params.append(Param(r["Name"], "Categorical", values=[str(v) for v in r["Values"]]))
    names = [p.name for p in params]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise validation(f"Hyperparameter names must be unique across parameter ranges; repeated: {dup}.")
    if not params:
        raise validation("ParameterRanges must contain at least one hyperparameter range.")
    if len(params) > MAX_PARAMETERS:
        raise validation(
            f"The number of hyperparameters to tune ({len(params)}) exceeds the maximum of {MAX_PARAMETERS}."
        )
    return params


# ---- strategies ---------------------------------------------------------------------------------
class RandomStrategy:
    def __init__(self, params: list[Param], seed: int) -> None:
        self.params = params
        self.rng = random.Random(seed)

    def _draw(self, p: Param) -> Any:
        r = self.rng
        if p.kind == "Categorical":
            return r.choice(p.values)
        if p.kind == "Integer":
            lo, hi = int(p.low), int(p.high)
            if p.scaling == "Logarithmic":
                v = int(math.exp(r.uniform(math.log(lo), math.log(hi + 1))))
                return min(max(v, lo), hi)
            return r.randint(lo, hi)
        if p.scaling == "Logarithmic":
            v = math.exp(r.uniform(math.log(p.low), math.log(p.high)))
        elif p.scaling == "ReverseLogarithmic":
            v = 1.0 - math.exp(r.uniform(math.log(1.0 - p.high), math.log(1.0 - p.low)))
        else:
            v = r.uniform(p.low, p.high)
        return min(max(v, p.low), p.high)

    def suggest(self) -> tuple[Any, dict[str, str]] | None:
        return None, {p.name: p.fmt(self._draw(p)) for p in self.params}

    def report(self, token: Any, value: float | None) -> None:
        pass


class GridStrategy:
    def __init__(self, params: list[Param]) -> None:
        self.params = params
        axes = [p.values if p.kind == "Categorical" else list(range(int(p.low), int(p.high) + 1)) for p in params]
        self.size = math.prod(len(a) for a in axes)
        self._it = itertools.product(*axes)

    def suggest(self) -> tuple[Any, dict[str, str]] | None:
        combo = next(self._it, None)
        if combo is None:
            return None
        return None, {p.name: p.fmt(v) for p, v in zip(self.params, combo, strict=True)}

    def report(self, token: Any, value: float | None) -> None:
        pass


class BayesianStrategy:
    """TPE through optuna's ask/tell; ReverseLogarithmic is sampled log-scaled on 1 - x."""

    def __init__(
        self, params: list[Param], seed: int, minimize: bool, budget: int, history: list[tuple[dict[str, str], float]]
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.params = params
        self.dists: dict[str, Any] = {}
        for p in params:
            if p.kind == "Categorical":
                self.dists[p.name] = optuna.distributions.CategoricalDistribution(tuple(p.values))
            elif p.kind == "Integer":
                self.dists[p.name] = optuna.distributions.IntDistribution(
                    int(p.low), int(p.high), log=p.scaling == "Logarithmic"
                )
            elif p.scaling == "ReverseLogarithmic":
                self.dists[p.name] = optuna.distributions.FloatDistribution(1.0 - p.high, 1.0 - p.low, log=True)
            else:
                self.dists[p.name] = optuna.distributions.FloatDistribution(
                    p.low, p.high, log=p.scaling == "Logarithmic"
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=max(2, min(10, budget // 4)), multivariate=True, constant_liar=True
            )
            self.study = optuna.create_study(direction="minimize" if minimize else "maximize", sampler=sampler)
        for tuned, value in history:  # warm start: what parent tuning jobs learned
            try:
                internal = {p.name: self._to_internal(p, tuned[p.name]) for p in params}
                trial = optuna.trial.create_trial(params=internal, distributions=self.dists, value=value)
                self.study.add_trial(trial)
            except (KeyError, ValueError):
                continue

    @staticmethod
    def _to_internal(p: Param, s: str) -> Any:
        if p.kind == "Categorical":
            if s not in p.values:
                raise ValueError(s)
            return s
        if not p.contains(s):
            raise ValueError(s)
        if p.kind == "Integer":
            return int(float(s))
        return 1.0 - float(s) if p.scaling == "ReverseLogarithmic" else float(s)

    def _external(self, p: Param, v: Any) -> str:
        if p.kind == "Continuous":
            v = 1.0 - v if p.scaling == "ReverseLogarithmic" else v
            v = min(max(float(v), p.low), p.high)
        return p.fmt(v)

    def suggest(self) -> tuple[Any, dict[str, str]] | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = self.study.ask(self.dists)
        return trial, {p.name: self._external(p, trial.params[p.name]) for p in self.params}

    def report(self, token: Any, value: float | None) -> None:
        if token is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if value is None or math.isnan(value):
                self.study.tell(token, state=self.optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(token, value)


# ---- the job's configuration ----------------------------------------------------------------------
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


def _trial_name(tuning: str, index: int) -> str:
    return f"{tuning}-{index:03d}-{uuid.uuid4().hex[:8]}"


def _better(a: float, b: float, minimize: bool) -> bool:
    return a < b if minimize else a > b


# ---- views ----------------------------------------------------------------------------------------
def _objective_value(tdoc: dict[str, Any] | None, metric: str) -> float | None:
    for m in (tdoc or {}).get("FinalMetricDataList", []):
        if m.get("MetricName") == metric:
            return float(m["Value"])
    return None


def trial_summary(doc: dict[str, Any], trial: dict[str, Any], tdoc: dict[str, Any] | None) -> dict[str, Any]:
    """A HyperParameterTrainingJobSummary for one trial, from its training job's current state."""
    objective = doc["_lm"]["objective"]
    status = (tdoc or {}).get("TrainingJobStatus", "Failed")
    out: dict[str, Any] = {
        **({"TrainingJobDefinitionName": doc["_lm"]["definition"]} if doc["_lm"].get("definition") else {}),
        "TrainingJobName": trial["name"],
        "TrainingJobArn": (tdoc or {}).get("TrainingJobArn", trial["arn"]),
        "TuningJobName": doc["HyperParameterTuningJobName"],
        "CreationTime": (tdoc or {}).get("CreationTime", trial["created"]),
        "TrainingJobStatus": status,
        "TunedHyperParameters": dict(trial["tuned"]),
    }
    for k in ("TrainingStartTime", "TrainingEndTime", "FailureReason"):
        if tdoc and k in tdoc:
            out[k] = tdoc[k]
    value = _objective_value(tdoc, objective["MetricName"]) if status in ("Completed", "Stopped") else None
    if value is not None:
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": objective["Type"], "MetricName": objective["MetricName"], "Value": value,
        }
        out["ObjectiveStatus"] = "Succeeded"
    elif status in TERMINAL:
        out["ObjectiveStatus"] = "Failed"
    else:
        out["ObjectiveStatus"] = "Pending"
    return out


class TuningService(JobService):
    """CreateHyperParameterTuningJob, Describe..., List..., Stop... and ListTrainingJobsForHyperParameterTuningJob."""

    runner: TuningRunner

    noun = "hyperparameter tuning job"
    arn_kind = "hyper-parameter-tuning-job"

    def __init__(self, ctx: Ctx, trainer: TrainingService) -> None:
        super().__init__(ctx, TuningRunner(ctx, trainer))
        trainer.runner.add_finish_listener(self.runner.on_training_finished)

    def operations(self) -> Mapping[str, Handler]:
        return {
            "CreateHyperParameterTuningJob": self.create,
            "DescribeHyperParameterTuningJob": self.describe,
            "ListHyperParameterTuningJobs": self.list,
            "StopHyperParameterTuningJob": self.stop,
            "ListTrainingJobsForHyperParameterTuningJob": self.list_trials,
        }

    def missing(self, name: str) -> AwsError:
        return resource_not_found(f"Amazon SageMaker can't find a tuning job called {name}. Type another name.")

    # ---- helpers --------------------------------------------------------------------------------
    def summaries(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        return [trial_summary(doc, t, self.store.get(TRAINING, t["name"])) for t in doc["_lm"]["trials"]]

    def view(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The describe answer: stored fields plus counters and best job from the trials' states."""
        out = copy.deepcopy({k: v for k, v in doc.items() if not k.startswith("_")})
        # as AWS shows a definition: the objective among the static hyperparameters (every trial gets it;
        # HyperparameterTuner.attach removes it again), a built-in algorithm's own metric definitions
        for d in [out.get("TrainingJobDefinition"), *(out.get("TrainingJobDefinitions") or [])]:
            if isinstance(d, dict):
                d["StaticHyperParameters"] = {**(d.get("StaticHyperParameters") or {}),
                                              "_tuning_objective_metric": doc["_lm"]["objective"]["MetricName"]}
                # the trials' ResourceConfig, also when the request gave HyperParameterTuningResourceConfig
                # (HyperparameterTuner.attach and best_estimator() read it)
                d["ResourceConfig"] = resource_config(d)
                fill_definition(d, self.ctx.images)
        sums = self.summaries(doc)
        tc = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
        oc = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        for s in sums:
            st = s["TrainingJobStatus"]
            tc[{"Failed": "NonRetryableError", "Stopping": "InProgress"}.get(st, st)] += 1
            oc[s["ObjectiveStatus"]] += 1
        out["TrainingJobStatusCounters"] = tc
        out["ObjectiveStatusCounters"] = oc
        best = self._best(doc, sums)
        if best is not None:
            out["BestTrainingJob"] = best
        out["TuningJobCompletionDetails"] = {
            "NumberOfTrainingJobsObjectiveNotImproving": doc["_lm"].get("not_improving", 0)
        }
        return out

    @staticmethod
    def _best(doc: dict[str, Any], sums: list[dict[str, Any]]) -> dict[str, Any] | None:
        minimize = doc["_lm"]["objective"]["Type"] == "Minimize"
        best = None
        for s in sums:
            m = s.get("FinalHyperParameterTuningJobObjectiveMetric")
            if m is None:
                continue
            if best is None or _better(m["Value"], best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], minimize):
                best = s
        return best

    # ---- operations -----------------------------------------------------------------------------
    def create(self, p: dict[str, Any]) -> dict[str, Any]:
        from .sagemaker_api import service_model
        from .validation import validate

        name = p["HyperParameterTuningJobName"]
        plan = make_plan(p, self.ctx.images)
        sample = trial_request(plan, _trial_name(name, 1), {q.name: "0" for q in plan.params})
        validate(service_model("sagemaker").operation_model("CreateTrainingJob").input_shape, sample)
        history: list[tuple[dict[str, str], float]] = []
        warm = p.get("WarmStartConfig")
        if warm:
            for parent in warm["ParentHyperParameterTuningJobs"]:
                pdoc = self.doc(parent.get("HyperParameterTuningJobName", ""))
                for s in self.summaries(pdoc):
                    m = s.get("FinalHyperParameterTuningJobObjectiveMetric")
                    if m is not None and m["MetricName"] == plan.metric:
                        history.append((s["TunedHyperParameters"], m["Value"]))
        doc = self.new_doc(p)
        doc["HyperParameterTuningJobConfig"] = dict(p["HyperParameterTuningJobConfig"])
        doc["HyperParameterTuningJobConfig"].setdefault("TrainingJobEarlyStoppingType", "Off")
        doc["_lm"] = {
            "trials": [],
            "objective": {"Type": plan.objective_type, "MetricName": plan.metric},
            "definition": plan.definition.get("DefinitionName"),
            "not_improving": 0,
        }
        tuning_arn = doc["HyperParameterTuningJobArn"]
        self.launch(p, doc, lambda: in_use(
            f"A hyperparameter tuning job with the name, {name}, already exists. Choose a different name."), plan, history)
        return {"HyperParameterTuningJobArn": tuning_arn}

    def describe(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.view(self.doc(p["HyperParameterTuningJobName"]))

    def list(self, p: dict[str, Any]) -> dict[str, Any]:
        q = {"SortBy": "Name", "SortOrder": "Ascending", **p}
        docs = controlplane.filter_sort(self.store.list(KIND), q, "HyperParameterTuningJobName", "HyperParameterTuningJobStatus")
        out = []
        for d in docs:
            v = self.view(d)
            s = {k: v[k] for k in ("HyperParameterTuningJobName", "HyperParameterTuningJobArn",
                                   "HyperParameterTuningJobStatus", "CreationTime", "HyperParameterTuningEndTime",
                                   "LastModifiedTime", "TrainingJobStatusCounters", "ObjectiveStatusCounters") if k in v}
            s["Strategy"] = d["HyperParameterTuningJobConfig"]["Strategy"]
            s["ResourceLimits"] = d["HyperParameterTuningJobConfig"]["ResourceLimits"]
            out.append(s)
        return controlplane.paginate(out, p, "HyperParameterTuningJobSummaries")

    def list_trials(self, p: dict[str, Any]) -> dict[str, Any]:
        doc = self.doc(p["HyperParameterTuningJobName"])
        sums = self.summaries(doc)
        if p.get("StatusEquals"):
            sums = [s for s in sums if s["TrainingJobStatus"] == p["StatusEquals"]]
        sort_by = p.get("SortBy", "Name")
        if sort_by == "FinalObjectiveMetricValue":
            # AWS: training jobs that did not return an objective metric are not listed
            sums = [s for s in sums if "FinalHyperParameterTuningJobObjectiveMetric" in s]
            key: Any = lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]  # noqa: E731
        else:
            field_ = {"Name": "TrainingJobName", "CreationTime": "CreationTime", "Status": "TrainingJobStatus"}[sort_by]
            key = lambda s: s[field_]  # noqa: E731
        sums.sort(key=key, reverse=p.get("SortOrder", "Ascending") == "Descending")
        return controlplane.paginate(sums, p, "TrainingJobSummaries")

    def no_run_to_stop(self, name: str) -> None:
        # no scheduler (cannot normally happen): nothing left to stop
        self.store.update(KIND, name, lambda d: d.update(
            HyperParameterTuningJobStatus="Stopped", HyperParameterTuningEndTime=now(), LastModifiedTime=now()))


class Tuner(JobRun):
    """One tuning job's scheduler thread: launches trials, collects objectives, decides the end."""

    runner: TuningRunner

    def __init__(self, runner: TuningRunner, name: str, plan: Plan, history: list[tuple[dict[str, str], float]]) -> None:
        super().__init__(runner, name)
        self.trainer = runner.trainer
        self.store = runner.ctx.store
        self.arn = controlplane.resource_arn(self.ctx.region, TuningService.arn_kind, name)
        self.plan = plan
        self.history = history
        self.wake = threading.Event()
        self.running: dict[str, Any] = {}  # trial name -> strategy token
        self.launched = 0
        self.best: float | None = None
        self.succeeded = 0
        self.failed = 0
        self.not_improving = 0

    def request_stop(self) -> None:
        super().request_stop()
        self.wake.set()

    @property
    def minimize(self) -> bool:
        return self.plan.objective_type == "Minimize"

    def _strategy(self) -> Any:
        if self.plan.strategy == "Grid":
            return GridStrategy(self.plan.params)
        if self.plan.strategy == "Bayesian":
            return BayesianStrategy(self.plan.params, self.plan.seed, self.minimize, self.plan.budget, self.history)
        return RandomStrategy(self.plan.params, self.plan.seed)

    def fail(self, reason: str) -> None:
        self._stop_trials()
        self._finish("Failed", reason)

    def cleanup(self) -> None:
        self.runner.forget(self)

    def run(self) -> None:
        strategy = self._strategy()
        deadline = time.monotonic() + self.plan.max_runtime if self.plan.max_runtime else None
        stop_launching = False
        while True:
            if self.shutdown.is_set():
                return self._finish("Failed", "InternalServerError: localmaker shut down while the tuning job was running.")
            if self.stop_requested.is_set():
                self._stop_trials()
                if not self._drain(strategy):
                    return self._finish("Failed", "InternalServerError: localmaker shut down while the tuning job was running.")
                return self._finish("Stopped")
            self._collect(strategy)
            if self.succeeded == 0 and self.failed >= FAIL_FAST_AFTER:
                self._stop_trials()
                self._drain(strategy)
                return self._finish("Failed", self._no_success_reason())
            if self._criteria_met() or (deadline is not None and time.monotonic() > deadline):
                if not stop_launching and deadline is not None and time.monotonic() > deadline:
                    self._stop_trials()
                stop_launching = True
            while not stop_launching and self.launched < self.plan.budget and len(self.running) < self.plan.max_parallel:
                suggestion = strategy.suggest()
                if suggestion is None:  # grid exhausted
                    self.plan.budget = self.launched
                    break
                self._launch(*suggestion)
            if not self.running and (stop_launching or self.launched >= self.plan.budget):
                if self.succeeded == 0:
                    return self._finish("Failed", self._no_success_reason())
                return self._finish("Completed")
            self.wake.wait(POLL)
            self.wake.clear()

    def _no_success_reason(self) -> str:
        n = self.succeeded + self.failed
        return (
            f"No training job succeeded after {n} attempts. Please take a look at the training job failures "
            "to get more details."
        )

    def _criteria_met(self) -> bool:
        if self.best is not None and self.plan.target is not None:
            if self.best == self.plan.target or _better(self.best, self.plan.target, self.minimize):
                return True
        return self.plan.not_improving is not None and self.not_improving >= self.plan.not_improving

    def _launch(self, token: Any, tuned: dict[str, str]) -> None:
        index = self.launched + 1
        trial = _trial_name(self.name, index)
        req = trial_request(self.plan, trial, tuned)
        self.runner.own(trial, self)
        try:
            resp = self.trainer.create(req)
        except AwsError as err:
            raise TuningFailed(f"ClientError: cannot start training job {trial}: {err.message}") from err
        self.store.update(TRAINING, trial, lambda d: d.__setitem__("TuningJobArn", self.arn))
        entry = {"name": trial, "arn": resp["TrainingJobArn"], "tuned": tuned, "created": now()}
        self.store.update(KIND, self.name, lambda d: (d["_lm"]["trials"].append(entry), d.update(LastModifiedTime=now())))
        self.running[trial] = token
        self.launched = index

    def _collect(self, strategy: Any) -> None:
        for trial in list(self.running):
            tdoc = self.store.get(TRAINING, trial)
            status = (tdoc or {}).get("TrainingJobStatus", "Failed")
            if status == "Stopping" and not self.trainer.runner.is_running(trial):
                # a stop that raced with the trial's own end: its runner is gone, it will not change again
                status = "Stopped"
            if status not in TERMINAL:
                continue
            token = self.running.pop(trial)
            value = _objective_value(tdoc, self.plan.metric) if status in ("Completed", "Stopped") else None
            strategy.report(token, value)
            if value is None:
                self.failed += 1
                self.not_improving += 1
            else:
                self.succeeded += 1
                if self.best is None or _better(value, self.best, self.minimize):
                    self.best = value
                    self.not_improving = 0
                else:
                    self.not_improving += 1
            n = self.not_improving
            self.store.update(KIND, self.name, lambda d, n=n: (d["_lm"].__setitem__("not_improving", n),
                                                                d.update(LastModifiedTime=now())))

    def _stop_trials(self) -> None:
        for trial in list(self.running):
            try:
                self.trainer.stop({"TrainingJobName": trial})
            except AwsError:
                pass  # it finished meanwhile

    def _drain(self, strategy: Any) -> bool:
        """Wait for the running trials to end; False if localmaker shuts down meanwhile."""
        while self.running:
            if self.shutdown.is_set():
                return False
            self._collect(strategy)
            if self.running:
                self.wake.wait(POLL)
                self.wake.clear()
        return True

    def _finish(self, status: str, reason: str | None = None) -> None:
        t = now()

        def fn(d: dict[str, Any]) -> None:
            # a stop that raced with the natural end still ends as Stopped
            stopped = d["HyperParameterTuningJobStatus"] == "Stopping" and status == "Completed"
            d["HyperParameterTuningJobStatus"] = "Stopped" if stopped else status
            d["HyperParameterTuningEndTime"] = t
            d["LastModifiedTime"] = t
            d["ConsumedResources"] = {"RuntimeInSeconds": max(0, int(math.ceil(t - d["CreationTime"])))}
            if reason:
                d["FailureReason"] = reason[:1024]

        self.store.update(KIND, self.name, fn)


class TuningRunner(JobRunner):
    """The tuning jobs' schedulers, and which of them owns each running trial."""

    kind = KIND
    thread_name = "tuning"
    join_timeout = 10.0
    run_class = Tuner

    def __init__(self, ctx: Ctx, trainer: TrainingService) -> None:
        super().__init__(ctx)
        self.trainer = trainer
        self._owner: dict[str, Tuner] = {}  # trial name -> its tuner

    def on_training_finished(self, name: str, _doc: Any) -> None:
        with self._lock:
            tuner = self._owner.get(name)
        if tuner is not None:
            tuner.wake.set()

    def own(self, trial: str, tuner: Tuner) -> None:
        with self._lock:
            self._owner[trial] = tuner

    def forget(self, tuner: Tuner) -> None:
        with self._lock:
            for t in [k for k, v in self._owner.items() if v is tuner]:
                self._owner.pop(t, None)
