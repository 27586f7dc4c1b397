"""The tuning operations: Create, Describe, List, Stop, ListTrainingJobsForHyperParameterTuningJob, and the
describe view (counters and best job from the trials' current states)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .. import controlplane
from ..aws import now
from ..context import Ctx
from ..errors import AwsError, in_use, resource_not_found
from ..jobs import JobService
from ..service import Handler
from ..training import TrainingService, fill_definition
from ..validation import validate
from .plan import (
    KIND,
    TERMINAL,
    TRAINING,
    better,
    make_plan,
    objective_value,
    resource_config,
    trial_name,
    trial_request,
)
from .scheduler import TuningRunner


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
    value = objective_value(tdoc, objective["MetricName"]) if status in ("Completed", "Stopped") else None
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

    def __init__(self, ctx: Ctx, trainer: TrainingService) -> None:
        super().__init__(ctx, TuningRunner(ctx, trainer))
        trainer.runner.add_finish_listener(self.runner.on_training_finished)

    def operations(self) -> Mapping[str, Handler]:
        return {**super().operations(), "ListTrainingJobsForHyperParameterTuningJob": self.list_trials}

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
            if best is None or better(m["Value"], best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], minimize):
                best = s
        return best

    # ---- operations -----------------------------------------------------------------------------
    def create(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["HyperParameterTuningJobName"]
        plan = make_plan(p, self.ctx.images)
        sample = trial_request(plan, trial_name(name, 1), {q.name: "0" for q in plan.params})
        validate(controlplane.service_model("sagemaker").operation_model("CreateTrainingJob").input_shape, sample)
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
        return self.launch(p, doc, plan, history)

    def duplicate(self, name: str, job_arn: str) -> AwsError:
        return in_use(f"A hyperparameter tuning job with the name, {name}, already exists. Choose a different name.")

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
