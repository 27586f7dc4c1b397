"""The tasks of `<model>_training` (``dags/training_pipeline.py``): data, train, evaluate, register,
deploy dev, approve, promote.

Each function is one task's whole body. The DAG groups its tasks (``TaskGroup``) by those stages,
which prefixes their ids with the group (``train.train``); the ids other code names (branches, XCom
pulls, templates) are the constants below, so a regrouping changes them in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypedDict

#: TaskGroup ids, in the order the run goes through them.
DATA, TRAIN_GROUP, EVALUATE_GROUP, REGISTER_GROUP, DEPLOY_DEV_GROUP, APPROVE_GROUP, PROMOTE_GROUP = (
    "data", "train", "evaluate", "register", "deploy_dev", "approve", "promote"
)
#: Full ids of the tasks that branches choose and XCom pulls name.
TRAIN = f"{TRAIN_GROUP}.train"
TUNE = f"{TRAIN_GROUP}.tune"
CANDIDATE = f"{TRAIN_GROUP}.candidate"
EVALUATE = f"{EVALUATE_GROUP}.evaluate"
APPROVE = f"{APPROVE_GROUP}.approve"
AUTO_APPROVED = f"{APPROVE_GROUP}.auto_approved"
DEPLOY_ENABLED = f"{DEPLOY_DEV_GROUP}.deploy_enabled"
PROMOTE = f"{PROMOTE_GROUP}.promote"


class TrainingRequests(TypedDict):
    training: dict[str, Any]
    tuning: dict[str, Any] | None


class Candidate(TypedDict):
    """The model this run produced, from whichever of train / tune ran."""

    training_job: str
    model_data_url: str
    hyperparameters: dict[str, str]
    final_metrics: dict[str, float]


class ModelAndTransform(TypedDict):
    Model: dict[str, Any]
    Transform: dict[str, Any]


class Evaluation(TypedDict):
    metrics: dict[str, float]
    champion: dict[str, float] | None
    decision: dict[str, Any]
    report: dict[str, Any]
    links: dict[str, str]
    #: content hash of the train/validation/test channels, and of the image + hyperparameters
    data_sha256: str
    recipe_sha256: str
    #: the champion was trained on the same data with the same recipe: nothing to approve or deploy
    no_change: bool


class Promoted(TypedDict):
    champion: str
    metrics: dict[str, float]


# ------------------------------------------------------------------------------------- data


def extract(cfg: Any, ctx: Any, clients: Any) -> dict[str, Any]:
    """Stream the source into the run's prefix, so later steps (and retries) read S3 only."""
    from ..etl import stage_source

    return stage_source(cfg, ctx, s3_client=clients.s3)


def validate_and_prepare(cfg: Any, ctx: Any, clients: Any, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate, split and upload the channels; data that cannot be used fails without retries."""
    from ..etl import DataValidationError, run_etl

    try:
        result = run_etl(cfg, ctx, s3_client=clients.s3, source_uri=raw["uri"])
    except DataValidationError as exc:  # the same data fails the same way: no retries
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
    print(f"rows per channel: {result.rows}; bad rows quarantined: {result.bad_rows}")
    return result.to_dict()


# ------------------------------------------------------------------------------------ train


def training_requests(cfg: Any, ctx: Any, clients: Any, etl: Mapping[str, Any]) -> TrainingRequests:
    """The training job and (when ``tuning`` has an objective) the tuning job; script mode
    uploads the user's code as ``sourcedir.tar.gz`` first."""
    from .. import sagemaker_requests as rq

    ctx = ctx.with_data(etl["channels"])
    if cfg.training.source_dir:  # script mode: the user's code travels as sourcedir.tar.gz
        from ..sourcedir import upload_source_dir

        uri = upload_source_dir(
            clients.s3, cfg.training.source_dir, cfg.training.entry_point, rq.sourcedir_uri(cfg, ctx)
        )
        print(f"packaged {cfg.training.source_dir} to {uri}")
    params = rq.data_hyperparameters(cfg.training.hyperparameters, etl["rows"])
    return {
        "training": rq.training_job_request(cfg, ctx, hyperparameters=params),
        "tuning": rq.tuning_job_request(cfg, ctx, hyperparameters=params) if cfg.tuning.objective else None,
    }


def train_or_tune(cfg: Any) -> str:
    """The task the run takes: one training job, or a tuning job when ``tuning.enabled``."""
    return TUNE if cfg.tuning.enabled else TRAIN


def candidate(clients: Any, pull: Callable[..., Any]) -> Candidate:
    """The model this run produced, from whichever of train / tune ran (``pull`` is ``ti.xcom_pull``)."""
    trained = pull(task_ids=TRAIN)
    if trained:
        job = trained["Training"]
    else:
        best = pull(task_ids=TUNE)["Tuning"]["BestTrainingJob"]["TrainingJobName"]
        job = clients.sagemaker.describe_training_job(TrainingJobName=best)
    return {
        "training_job": job["TrainingJobName"],
        "model_data_url": job["ModelArtifacts"]["S3ModelArtifacts"],
        "hyperparameters": job.get("HyperParameters", {}),
        "final_metrics": {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])},
    }


# --------------------------------------------------------------------------------- evaluate


def evaluation_request(cfg: Any, ctx: Any, cand: Candidate, etl: Mapping[str, Any]) -> ModelAndTransform:
    """Model + transform of the held-out test set, scored in order against its labels."""
    from .. import sagemaker_requests as rq

    ctx = ctx.with_data(etl["channels"])
    model_req = rq.model_request(cfg, ctx, cand["model_data_url"])
    transform = rq.evaluation_transform_request(cfg, ctx, model=model_req["ModelName"])
    return {"Model": model_req, "Transform": transform}


def evaluate(
    cfg: Any, ctx: Any, clients: Any, cand: Candidate, transformed: Mapping[str, Any], etl: Mapping[str, Any]
) -> Evaluation:
    """Metrics of the scored test set, the champion's, the gate's decision, the report and links."""
    from .. import evaluate as ev
    from .. import outcome as oc
    from .. import sagemaker_requests as rq
    from ..run import sagemaker_console_url
    from ..s3 import presigned_url

    s3, sm = clients.s3, clients.sagemaker
    output = transformed["Transform"]["TransformOutput"]["S3OutputPath"]
    y_true, y_pred = ev.evaluation_pairs(s3, output, etl["channels"]["test_labels"], cfg.inference.prediction_field)
    metrics = ev.metrics_for_task(cfg.evaluation.task, y_true, y_pred)
    package = ev.latest_approved_package(sm, cfg.registry.model_package_group_name)
    champion = None if package is None else package.metrics
    decision = ev.gate_from_config(metrics, cfg, champion)
    data_hash = oc.data_fingerprint(s3, etl["channels"])
    recipe_hash = oc.recipe_fingerprint(cfg.training.image_uri, cand["hyperparameters"])
    no_change = oc.same_training_as_champion(data_hash, recipe_hash, None if package is None else package.properties)
    report = ev.write_report(
        s3,
        rq.run_output_uri(cfg, ctx, "evaluation"),
        y_true=y_true,
        y_pred=y_pred,
        metrics=metrics,
        decision=decision,
        champion=champion,
        extra={
            "training_job": cand["training_job"],
            "hyperparameters": cand["hyperparameters"],
            "data_sha256": data_hash,
            "recipe_sha256": recipe_hash,
            "no_change": no_change,
        },
        task=cfg.evaluation.task,
    )
    # links a person can open: valid while the approval request can be answered (and then some)
    hours = cfg.run.approval_timeout_hours + 2
    links = {
        "plot": presigned_url(s3, report.plot_uri, hours * 3600),
        "model_quality": presigned_url(s3, report.model_quality_uri, hours * 3600),
        "training_job": sagemaker_console_url(cfg.aws.region, "training", cand["training_job"]),
        "training_job_name": cand["training_job"],
        "valid_hours": f"{hours:g}",
    }
    print(f"test metrics: {metrics}")
    print(f"champion: {champion}")
    print(f"gate: {'PASSED' if decision.passed else 'FAILED'}: {'; '.join(decision.reasons)}")
    print(f"training data sha256 {data_hash}, recipe sha256 {recipe_hash}")
    print(f"report plot: {report.plot_uri}\n  open (valid {hours:g} h): {links['plot']}")
    print(f"training job {cand['training_job']} in the SageMaker console: {links['training_job']}")
    return {
        "metrics": metrics,
        "champion": champion,
        "decision": decision.to_dict(),
        "report": report.to_dict(),
        "links": links,
        "data_sha256": data_hash,
        "recipe_sha256": recipe_hash,
        "no_change": no_change,
    }


def gate(evaluation: Evaluation) -> bool:
    """A model that is not good enough ends the run cleanly: skipped, prod untouched. So does a
    retrain on the champion's data with the champion's recipe: it would deploy the same model."""
    if evaluation.get("no_change"):
        print(
            "no change: the champion was trained on the same data (sha256 "
            f"{evaluation['data_sha256'][:12]}...) with the same image and hyperparameters; "
            "nothing to approve or deploy"
        )
        return False
    passed = bool(evaluation["decision"]["passed"])
    for reason in evaluation["decision"]["reasons"]:
        print(("passed: " if passed else "gated out: ") + reason)
    return passed


# ------------------------------------------------------------------------- register, deploy


def package_request(cfg: Any, ctx: Any, cand: Candidate, evaluation: Evaluation) -> dict[str, Any]:
    """The model package version's request: metrics as metadata, pending approval."""
    from .. import sagemaker_requests as rq
    from ..outcome import DATA_HASH_PROPERTY, RECIPE_HASH_PROPERTY

    request = rq.model_package_request(
        cfg,
        ctx,
        model_data_url=cand["model_data_url"],
        metrics=evaluation["metrics"],
        metrics_report_uri=evaluation["report"]["model_quality_uri"],
        training_job=cand["training_job"],
        approval_status="PendingManualApproval",
    )
    # what the next run's "no change" check compares against, once this version is champion
    request["CustomerMetadataProperties"].update(
        {DATA_HASH_PROPERTY: evaluation["data_sha256"], RECIPE_HASH_PROPERTY: evaluation["recipe_sha256"]}
    )
    return request


def deploy_request(
    cfg: Any, ctx: Any, cand: Candidate, target: Literal["dev", "prod"], *, include_model: bool = True
) -> dict[str, Any]:
    """Model, endpoint config and endpoint of ``target`` (dev or prod)."""
    from .. import sagemaker_requests as rq

    return rq.deploy_request(cfg, ctx, cand["model_data_url"], target=target, include_model=include_model)


def smoke_test(cfg: Any, clients: Any, etl: Mapping[str, Any]) -> dict[str, Any]:
    """Real requests to the dev endpoint: every row answered, finite, within the latency bound."""
    from ..smoke import smoke_test_endpoint

    result = smoke_test_endpoint(cfg, clients.runtime, clients.s3, etl["channels"], cfg.endpoint.dev_name)
    print(f"smoke test of {cfg.endpoint.dev_name}: {result}")
    return result


# ---------------------------------------------------------------------------- approve, promote


def approval_route(cfg: Any) -> str:
    """A person approves, unless the run's ``auto_approve``."""
    return AUTO_APPROVED if cfg.run.auto_approve else APPROVE


def approval_body(cfg: Any) -> str:
    """The approval request's Markdown (a Jinja template over the ``evaluate`` task's XCom)."""
    return (
        "The candidate passed the quality gate and the dev endpoint's smoke test.\n\n"
        "| metric | candidate | champion |\n|---|---|---|\n"
        f"{{% set ev = ti.xcom_pull(task_ids='{EVALUATE}') %}}"
        "{% for k in " + repr(list(cfg.evaluation.metrics)) + " %}| {{ k }} | {{ '%.4g' % ev['metrics'][k] }} | "
        "{{ ('%.4g' % ev['champion'][k]) if ev['champion'] and k in ev['champion'] else '-' }} |\n"
        "{% endfor %}\nReport: [evaluation plot]({{ ev['links']['plot'] }}) "
        "(link valid {{ ev['links']['valid_hours'] }} h; `{{ ev['report']['plot_uri'] }}`), "
        "[metrics]({{ ev['links']['model_quality'] }}); training job "
        "[{{ ev['links']['training_job_name'] }}]({{ ev['links']['training_job'] }}) "
        "in the SageMaker console\n\n"
        f"Unanswered within {cfg.run.approval_timeout_hours:g} hours counts as **Reject**: prod stays as it is."
    )


def baseline_request(cfg: Any, ctx: Any, package_arn: str, etl: Mapping[str, Any]) -> dict[str, Any]:
    """Model Monitor statistics/constraints of the champion's training data, stored beside its
    package version, for the monitoring DAG to compare captured traffic against."""
    from ..monitoring import baseline_location, baseline_processing_request

    return baseline_processing_request(
        cfg, ctx, train_uri=etl["channels"]["baseline"], output_uri=baseline_location(cfg, package_arn)
    )


def promote(clients: Any, package_arn: str, evaluation: Evaluation, run_id: str) -> Promoted:
    """The deployed package becomes the champion the next run's gate compares against."""
    clients.sagemaker.update_model_package(
        ModelPackageArn=package_arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription=f"deployed to prod by run {run_id}",
    )
    print(f"champion is now {package_arn} with {evaluation['metrics']}")
    return {"champion": package_arn, "metrics": evaluation["metrics"]}


def clean_up_failed_run(cfg: Any, ctx: Any, clients: Any, problem: str | None) -> dict[str, list[str]]:
    """Delete what this run half-made (its models, configs and jobs no endpoint uses).

    ``problem``: the run's overrides broke its config, so ``cfg`` is the config without them
    (the names come from the run, not from them)."""
    from ..cleanup import clean_up_run

    if problem:
        print(f"the run's config is invalid, cleaning up with it minus the overrides: {problem}")
    removed = clean_up_run(cfg, ctx, clients.sagemaker)
    print(f"cleaned up: {removed}")
    return removed


# ------------------------------------------------------------------------------------ outcome


class RunOutcome(TypedDict):
    outcome: str
    note: str
    event: dict[str, Any]


def run_outcome(pull: Callable[..., Any], run_id: str) -> RunOutcome:
    """What the run ended as, from the XComs of the tasks that decide it (``pull`` is
    ``ti.xcom_pull``): the note's text and the model asset event's ``extra``."""
    from ..outcome import decide_outcome, outcome_event, outcome_note

    evaluation = pull(task_ids=EVALUATE)
    approval = pull(task_ids=APPROVE)
    promoted = pull(task_ids=PROMOTE)
    outcome = decide_outcome(
        evaluated=bool(evaluation),
        no_change=bool(evaluation and evaluation.get("no_change")),
        gate_passed=bool(evaluation and evaluation["decision"]["passed"]),
        deploy=pull(task_ids=DEPLOY_ENABLED) is not False,
        approved=None if not approval else approval.get("chosen_options", [None])[0] == "Approve",
        promoted=bool(promoted),
    )
    reasons = list(evaluation["decision"]["reasons"]) if evaluation else []
    if outcome == "no change":
        reasons = ["same training data and recipe as the champion: nothing to approve or deploy"]
    note = outcome_note(
        outcome, evaluation["metrics"] if evaluation else None, evaluation["champion"] if evaluation else None, reasons
    )
    print(note)
    event = outcome_event(outcome, evaluation, run_id=run_id, champion_arn=promoted["champion"] if promoted else None)
    return {"outcome": outcome, "note": note, "event": event}
