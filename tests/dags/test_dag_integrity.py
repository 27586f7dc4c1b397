"""Integrity of every DAG in ``dags/``: it parses, carries the project's conventions, and is cheap
to import (the DAG processor re-imports each file every 30 s by default).

DAG files and DAGs are discovered, not listed: a new DAG file or a new model config is covered
without touching this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from include.mlpipeline.config import list_models, list_stages, load_config

from .conftest import DAGS_DIR, ROOT

DAG_FILES = sorted(p for p in DAGS_DIR.rglob("*.py") if "__pycache__" not in p.parts)
MODELS = list_models()
#: Must never be imported at parse time; numpy and matplotlib are only reported.
FORBIDDEN_AT_PARSE = ("tensorflow", "pandas", "sagemaker")
REPORTED_AT_PARSE = ("numpy", "matplotlib")
#: CPU seconds a DAG file's own import may cost (CPU time: the scheduler's parse work, steady on a busy
#: machine where wall time is not)
MAX_IMPORT_SECONDS = 1.0
#: wall seconds, generous: catches a DAG file that waits on something (a network call, a lock) at parse
MAX_IMPORT_WALL_SECONDS = 5.0
TRAINING_PARAMS = ("stage", "instance_type", "instance_count", "hyperparameters", "tuning", "deploy", "auto_approve")


def _dags(dag_bag) -> list[Any]:
    return [dag_bag.dags[dag_id] for dag_id in sorted(dag_bag.dag_ids)]


def _dag_ids(dag_bag) -> list[str]:
    return sorted(dag_bag.dag_ids)


# ------------------------------------------------------------------------------- parsing


def test_dag_files_are_discovered():
    assert DAG_FILES, f"no DAG files under {DAGS_DIR}"


def test_no_import_errors(dag_bag):
    errors = {Path(path).name: message for path, message in dag_bag.import_errors.items()}
    assert not errors, "DAG import errors:\n" + "\n".join(f"{f}: {m}" for f, m in errors.items())


def test_every_dag_file_defines_a_dag(dag_bag):
    files_with_dags = {Path(dag.fileloc).resolve() for dag in dag_bag.dags.values()}
    empty = [str(p.relative_to(ROOT)) for p in DAG_FILES if p.resolve() not in files_with_dags]
    assert not empty, f"DAG files that define no DAG: {empty}"


def test_one_training_dag_per_configured_model(dag_bag):
    assert MODELS, "no models under include/config/models"
    missing = [f"{m}_training" for m in MODELS if f"{m}_training" not in dag_bag.dag_ids]
    assert not missing, f"models without a training DAG: {missing}"


def test_every_dag_serializes(dag_bag):
    """What the DAG processor stores for the scheduler and the UI; a bad timetable fails only here."""
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in _dags(dag_bag):
        data = DagSerialization.to_dict(dag)
        assert DagSerialization.from_dict(data).dag_id == dag.dag_id


# --------------------------------------------------------------------------- conventions


@pytest.fixture(params=["tags", "doc_md", "retries", "on_failure_callback", "no_start_date", "catchup"])
def convention(request):
    return request.param


def _violation(dag: Any, convention: str) -> str | None:
    args = dag.default_args or {}
    if convention == "tags":
        return None if dag.tags else "no tags"
    if convention == "doc_md":
        return None if (dag.doc_md or "").strip() else "no doc_md"
    if convention == "retries":
        retries = args.get("retries")
        return None if isinstance(retries, int) and retries >= 2 else f"default_args retries={retries!r} (< 2)"
    if convention == "on_failure_callback":
        if not (args.get("on_failure_callback") or dag.on_failure_callback):
            return "no on_failure_callback in default_args or on the DAG"
        silent = [t.task_id for t in dag.tasks if not t.on_failure_callback and not dag.on_failure_callback]
        return f"tasks without a failure callback: {silent}" if silent else None
    if convention == "no_start_date":  # a past start_date makes Airflow run the latest missed slot at once
        return f"start_date {dag.start_date or args.get('start_date')}" if (dag.start_date or args.get("start_date")) else None
    if convention == "catchup":
        return None if dag.catchup is False else f"catchup={dag.catchup!r}"
    raise AssertionError(convention)


#: DAGs that start no SageMaker job (the janitor only lists and deletes).
NO_SAGEMAKER_JOBS = {"sagemaker_janitor"}


def test_every_sagemaker_task_fails_fast_on_permanent_errors_and_has_a_timeout(dag_bag):
    """Permanent errors are not retried (the retry policy), transient ones back off exponentially up
    to a cap, and no task runs unbounded (issue 15)."""
    from include.mlpipeline.failures import PermanentErrorPolicy

    problems = {}
    for dag in _dags(dag_bag):
        if dag.dag_id in NO_SAGEMAKER_JOBS:
            continue
        bad = [
            t.task_id
            for t in dag.tasks
            if not isinstance(t.retry_policy, PermanentErrorPolicy)
            or not t.execution_timeout
            or not t.retry_exponential_backoff
            or not t.max_retry_delay
        ]
        if bad:
            problems[dag.dag_id] = bad
    assert not problems, f"tasks without the retry policy, backoff or execution_timeout: {problems}"


def test_every_dag_follows_the_conventions(dag_bag, convention):
    problems = {dag.dag_id: _violation(dag, convention) for dag in _dags(dag_bag)}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, f"{convention}: {problems}"


def test_scheduled_dags_first_run_at_their_next_slot(dag_bag):
    """Unpausing a cron-scheduled DAG (or starting `UP_SCHEDULES=on make up`) starts nothing at once.

    Asks the serialized DAG's timetable, as the scheduler does, for the first run of a DAG with no
    runs yet: it must be after now (a missed slot run at once is what a past start_date gave).
    """
    import pendulum
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import TimeRestriction

    now = pendulum.now("UTC")
    scheduled, early = [], {}
    for dag in _dags(dag_bag):
        timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable
        if not timetable.periodic:
            continue
        scheduled.append(dag.dag_id)
        info = timetable.next_dagrun_info(
            last_automated_data_interval=None,
            restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=dag.catchup),
        )
        if info is None or info.run_after <= now:
            early[dag.dag_id] = info and info.run_after
    assert {"sagemaker_janitor", f"{list_models()[0]}_training"} <= set(scheduled), scheduled
    assert not early, f"first run not in the future (now {now}): {early}"


#: Trigger rules under which a task runs when something upstream failed. Airflow decides a run's
#: state from its leaves, so such a leaf (a clean-up, a notifier) *succeeding* after a failure would
#: mark the failed run successful, unless another leaf downstream of everything carries the failure.
RUNS_ON_FAILURE = {"one_failed", "all_failed", "all_done", "one_done", "always", "all_done_min_one_success"}


def test_a_failed_task_fails_the_run(dag_bag):
    """Every task's failure reaches a leaf that turns it into a failed run (teardowns aside, which
    Airflow leaves out of the run's state)."""
    problems = {}
    for dag in _dags(dag_bag):
        leaves = [t for t in dag.leaves if not getattr(t, "is_teardown", False)]
        masking = {t.task_id for t in leaves if t.trigger_rule in RUNS_ON_FAILURE}
        if not masking:
            continue
        guards = [t for t in leaves if t.task_id not in masking]
        covered = {t.task_id for t in guards}.union(*(t.get_flat_relative_ids(upstream=True) for t in guards))
        uncovered = sorted(
            t.task_id
            for t in dag.tasks
            if t.task_id not in masking and t.task_id not in covered and not getattr(t, "is_teardown", False)
        )
        if uncovered:
            problems[dag.dag_id] = f"leaves {sorted(masking)} succeed after a failure of {uncovered}"
    assert not problems, f"failed tasks that would leave the run successful: {problems}"


# ------------------------------------------------------------------------- training DAG


@pytest.fixture(params=MODELS)
def training(request, dag_bag):
    model = request.param
    return model, dag_bag.dags[f"{model}_training"]


def test_training_dag_params(training):
    model, dag = training
    names = set(dag.params.keys())
    missing = [p for p in TRAINING_PARAMS if p not in names]
    assert not missing, f"{dag.dag_id} lacks params {missing}"
    stage = dag.params.get_param("stage")
    stage_files = sorted(p.stem for p in (ROOT / "include" / "config" / "stages").glob("*.yaml"))
    assert sorted(stage.schema["enum"]) == stage_files == list_stages()
    assert stage.value in stage_files
    assert dag.params["auto_approve"] is False, "production promotion must wait for approval by default"
    assert dag.params["hyperparameters"] == {}


def test_training_form_shows_defaults_allowed_values_and_stage_values(training):
    """The trigger form says what a blank field means and what a hyperparameter accepts."""
    model, dag = training
    cfg = load_config(model, dag.params["stage"])
    # the toggle starts at the model's configured tuning, not at "off"
    assert dag.params["tuning"] is cfg.tuning.enabled
    assert f"configured: {'on' if cfg.tuning.enabled else 'off'}" in dag.params.get_param("tuning").description
    # a blank instance type says which stage value applies, for every stage
    described = dag.params.get_param("instance_type").description
    for stage in list_stages():
        assert f"{stage}: {load_config(model, stage).training.instance_type}" in described
    # every configured hyperparameter with its default and what it accepts
    described = dag.params.get_param("hyperparameters").description
    specs = cfg.training.hyperparameter_spec
    assert specs, f"{model} declares no hyperparameter_spec"
    for name, value in cfg.training.hyperparameters.items():
        assert f"{name}: default {value!r}; " in described
    for name in specs:
        assert f"{name}: " in described


def _assets(condition: Any) -> list[Any]:
    """Every asset in an asset condition (``AssetAll`` / ``AssetAny`` nest through ``objects``)."""
    objects = getattr(condition, "objects", None)
    if objects is None:
        return [condition]
    return [a for obj in objects for a in _assets(obj)]


def test_training_dag_schedule_is_config_cron_or_retrain_asset(training):
    from airflow.sdk import Asset, AssetOrTimeSchedule

    model, dag = training
    cron = load_config(model, dag.params["stage"]).schedules.training
    retrain = f"{model}_retrain_request"
    schedule = dag.timetable
    if cron:
        assert isinstance(schedule, AssetOrTimeSchedule), f"expected cron OR asset, got {schedule!r}"
        assert schedule.timetable.expression == cron
        assert str(schedule.timetable.timezone) == "UTC"
        condition = schedule.asset_condition
    else:  # schedules.training: null disables the cron; the retrain request alone triggers
        condition = getattr(schedule, "asset_condition", None)
        assert condition is not None, f"{dag.dag_id} has neither a cron nor the retrain asset: {schedule!r}"
    names = [a.name for a in _assets(condition) if isinstance(a, Asset)]
    assert names == [retrain], f"{dag.dag_id} should be triggered by the {retrain} asset, got {names}"


def _upstream(dag: Any, task_id: str) -> set[str]:
    return dag.get_task(task_id).get_flat_relative_ids(upstream=True)


def test_training_dag_task_graph(training):
    _, dag = training
    task = dag.get_task
    # either branch produces the candidate, and the skipped one must not skip it
    for producer in ("train.train", "train.tune"):
        assert "train.candidate" in task(producer).downstream_task_ids, f"{producer} does not lead to candidate"
    assert task("train.train_or_tune").downstream_task_ids >= {"train.train", "train.tune"}
    assert task("train.candidate").trigger_rule == "none_failed_min_one_success"
    # nothing is registered or deployed that did not pass the gate
    assert "evaluate.gate" in task("register.register").upstream_task_ids
    for guarded in ("register.register", "deploy_dev.deploy_dev", "deploy_dev.smoke_test", "promote.deploy_prod",
                    "promote.promote"):
        assert "evaluate.gate" in _upstream(dag, guarded), f"{guarded} does not wait for the gate"
    assert "evaluate.evaluate" in _upstream(dag, "evaluate.gate")
    # prod only after the dev smoke test and an approval (human or auto)
    for before in ("approve.approve", "approve.auto_approved"):
        assert "promote.prod_config" in task(before).downstream_task_ids
        assert before in _upstream(dag, "promote.deploy_prod")
    assert {"deploy_dev.deploy_dev", "deploy_dev.smoke_test", "approve.approval_route"} <= _upstream(
        dag, "promote.deploy_prod"
    )
    assert task("promote.prod_config").trigger_rule == "none_failed_min_one_success"
    assert "promote.deploy_prod" in _upstream(dag, "promote.promote")
    # the human approval is not retried on its own (a retry would re-ask)
    assert task("approve.approve").retries == 0
    # a failure anywhere that creates SageMaker resources triggers the clean-up
    cleanup = task("clean_up_failed_run")
    assert cleanup.trigger_rule == "one_failed"
    assert cleanup.upstream_task_ids >= {
        "train.train", "train.tune", "evaluate.evaluate_transform", "register.register", "deploy_dev.deploy_dev",
        "promote.deploy_prod",
    }


def test_training_dag_reads_as_its_stages(training):
    """Every task but the run's three end tasks sits in one of the stage groups, in the run's order."""
    from include.mlpipeline.pipelines import training as stages

    _, dag = training
    groups = list(dag.task_group.children)
    assert groups == [stages.DATA, stages.TRAIN_GROUP, stages.EVALUATE_GROUP, stages.REGISTER_GROUP,
                      stages.DEPLOY_DEV_GROUP, stages.APPROVE_GROUP, stages.PROMOTE_GROUP,
                      "finished", "clean_up_failed_run", "record_outcome"]
    # the ids other code names (branches, XCom pulls, templates) are real tasks
    for task_id in (stages.TRAIN, stages.TUNE, stages.CANDIDATE, stages.EVALUATE, stages.APPROVE, stages.AUTO_APPROVED,
                    stages.DEPLOY_ENABLED, stages.PROMOTE):
        assert dag.has_task(task_id), task_id
    assert f"task_ids='{stages.CANDIDATE}'" in dag.get_task("register.register").model_url


def test_training_run_outcome_is_recorded_however_the_run_ends(training):
    """record_outcome runs after everything (a teardown: the gate's, deploy_enabled's and the
    approval's skip-everything-downstream spare teardowns), emits the model asset and does not
    decide the run's state."""
    model, dag = training
    outcome = dag.get_task("record_outcome")
    assert outcome.is_teardown and not outcome.on_failure_fail_dagrun
    assert not outcome.downstream_task_ids
    assert [getattr(o, "name", None) for o in outcome.outlets] == [f"{model}_model"]
    others = {t.task_id for t in dag.tasks} - {"record_outcome"}
    assert _upstream(dag, "record_outcome") == others, "record_outcome must wait for every task"
    # the skipping tasks would skip it if it were not a teardown
    for skipper in ("evaluate.gate", "deploy_dev.deploy_enabled", "approve.approve"):
        assert "record_outcome" in dag.get_task(skipper).get_flat_relative_ids(upstream=False)


def test_training_dag_publishes_its_training_data_asset(training):
    model, dag = training
    outlets = [getattr(o, "name", None) for o in dag.get_task("data.validate_and_prepare").outlets]
    assert f"{model}_training_data" in outlets


# ------------------------------------------------------------------ import cost per file

_PROBE = r"""
import importlib.util, json, sys, time
import airflow.sdk  # Airflow's own import cost is not the DAG file's
import airflow.providers.amazon.aws.operators.sagemaker
before = set(sys.modules)
path = sys.argv[1]
spec = importlib.util.spec_from_file_location("dag_file_under_test", path)
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
started, cpu_started = time.perf_counter(), time.process_time()
spec.loader.exec_module(module)
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
watched = json.loads(sys.argv[2])
print(json.dumps({
    "seconds": cpu,
    "wall_seconds": elapsed,
    "loaded": {m: m in sys.modules for m in watched},
    "new": {m: m in sys.modules and m not in before for m in watched},
}))
"""


def _probe(path: Path, home: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AWS_"))}
    env.update(
        {"PYTHONPATH": str(ROOT), "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    )
    watched = json.dumps([*FORBIDDEN_AT_PARSE, *REPORTED_AT_PARSE])
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), watched],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"importing {path.name} failed:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", DAG_FILES, ids=[str(p.relative_to(DAGS_DIR)) for p in DAG_FILES])
def test_dag_file_imports_fast_and_light(path: Path, tmp_path: Path):
    report = _probe(path, tmp_path)
    if report["seconds"] >= MAX_IMPORT_SECONDS or report["wall_seconds"] >= MAX_IMPORT_WALL_SECONDS:
        report = _probe(path, tmp_path)  # one more fresh try: a cold disk cache, not the file
    print(
        f"{path.name}: {report['seconds']:.3f} s CPU, {report['wall_seconds']:.3f} s wall; in sys.modules: "
        + ", ".join(f"{m}={'yes' if report['loaded'][m] else 'no'}"
                    + (" (imported by the DAG file)" if report["new"][m] else "")
                    for m in (*FORBIDDEN_AT_PARSE, *REPORTED_AT_PARSE))
    )
    heavy = [m for m in FORBIDDEN_AT_PARSE if report["new"][m]]
    assert not heavy, f"{path.name} imports {heavy} at parse time: move the import into the task that needs it"
    assert report["seconds"] < MAX_IMPORT_SECONDS, (
        f"{path.name} took {report['seconds']:.2f} s of CPU to import (limit {MAX_IMPORT_SECONDS} s, "
        "Airflow's own import excluded)"
    )
    assert report["wall_seconds"] < MAX_IMPORT_WALL_SECONDS, (
        f"{path.name} took {report['wall_seconds']:.2f} s to import but only {report['seconds']:.2f} s of CPU: "
        "it waits on something at parse time"
    )


# ------------------------------------------------------------------- waiting for SageMaker


def _waiting_operators(dag_bag) -> list[tuple[str, Any]]:
    """Every provider SageMaker operator that waits for a job or endpoint (it has ``deferrable``)."""
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerBaseOperator

    return [
        (f"{dag.dag_id}.{t.task_id}", t)
        for dag in _dags(dag_bag)
        for t in dag.tasks
        if isinstance(t, SageMakerBaseOperator) and hasattr(t, "deferrable")
    ]


def test_every_sagemaker_wait_comes_from_config(dag_bag):
    """Deferrable mode and poll interval are config (``airflow.*``), read again for each run: the
    parsed values are the default stage's, and a run's conf can turn deferral off."""
    from include.mlpipeline.operators import ConfiguredWaitMixin

    waiting = _waiting_operators(dag_bag)
    kinds = {type(t).__name__ for _, t in waiting}
    assert {"ResumableTrainingOperator", "TuningOperator", "TransformOperator", "ProcessingOperator",
            "IdempotentEndpointOperator"} <= kinds, kinds
    expected = load_config(MODELS[0], os.environ.get("MLPIPELINE_STAGE", "dev")).airflow
    problems = {}
    for name, task in waiting:
        if not isinstance(task, ConfiguredWaitMixin) or task.wait_settings is None:
            problems[name] = f"{type(task).__name__} does not take its wait from config"
            continue
        parsed = (task.deferrable, task.check_interval, task.max_ingestion_time)
        if parsed != (expected.deferrable, expected.poll_interval_seconds, expected.max_wait_seconds):
            problems[name] = f"parsed (deferrable, check_interval, max_ingestion_time) = {parsed}"
            continue
        defaults = task.dag.params.dump()
        if task.wait_settings({"params": defaults}) != expected:
            problems[name] = "the run's settings differ from the config's"
        elif "training" in task.dag.dag_id and task.wait_settings(
            {"params": {**defaults, "airflow.deferrable": False}}
        ).deferrable:
            problems[name] = "a run conf of {'airflow.deferrable': false} does not turn deferral off"
    assert not problems, problems
    assert expected.deferrable is True, "every stage defers by default"


def test_every_sagemaker_task_runs_in_its_job_kinds_configured_pool(dag_bag):
    """Training, tuning, processing, transform and endpoint tasks each run in the pool that
    ``airflow.pools`` names for their kind, as the scheduler sees them (serialized); other tasks
    stay in the default pool (issue 15.8)."""
    from airflow.serialization.serialized_objects import DagSerialization

    from include.mlpipeline.config.pools import stage_pools

    pools = stage_pools(os.environ.get("MLPIPELINE_STAGE", "dev")).names()
    kind_of = {"ResumableTrainingOperator": "training", "TuningOperator": "tuning", "ProcessingOperator": "processing",
               "TransformOperator": "transform", "IdempotentEndpointOperator": "endpoint"}
    seen, problems = set(), {}
    for dag in _dags(dag_bag):
        scheduled = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        for task in scheduled.tasks:
            kind = kind_of.get(dag.get_task(task.task_id).__class__.__name__)
            want = pools[kind] if kind else "default_pool"
            seen.add(kind)
            if task.pool != want:
                problems[f"{dag.dag_id}.{task.task_id}"] = f"pool {task.pool!r}, expected {want!r}"
    assert not problems, problems
    assert set(kind_of.values()) <= seen, f"job kinds with no task in any DAG: {set(kind_of.values()) - seen}"


def test_approval_timeout_is_the_configured_one_and_the_docs_quote_it(dag_bag):
    """One truth: `run.approval_timeout_hours` sets the approve task's timeout, its text and docs/ui.md."""
    import re
    from datetime import timedelta

    from include.mlpipeline.config import default_stage

    for model in list_models():
        hours = load_config(model, default_stage()).run.approval_timeout_hours
        approve = dag_bag.dags[f"{model}_training"].get_task("approve.approve")
        assert approve.response_timeout == timedelta(hours=hours)
        assert f"Unanswered within {hours:g} hours counts as **Reject**" in approve.body
    base = load_config(list_models()[0], default_stage()).run.approval_timeout_hours
    doc = (ROOT / "docs" / "ui.md").read_text()
    quoted = re.search(r"`run\.approval_timeout_hours` \((\d+(?:\.\d+)?) hours", doc)
    assert quoted, "docs/ui.md does not quote run.approval_timeout_hours"
    assert float(quoted.group(1)) == base
    assert "three days" not in doc


def test_approval_request_links_the_report_and_the_training_job(dag_bag):
    """The approval form renders the evaluate task's links (presigned report, console page) as links."""
    import jinja2

    model = list_models()[0]
    approve = dag_bag.dags[f"{model}_training"].get_task("approve.approve")
    metrics = list(load_config(model, list_stages()[0]).evaluation.metrics)
    ev = {
        "metrics": dict.fromkeys(metrics, 0.5), "champion": None,
        "report": {"plot_uri": "s3://b/m/evaluation/evaluation.png"},
        "links": {"plot": "http://lm:4566/b/m/evaluation/evaluation.png?Signature=s", "model_quality": "http://q?s",
                  "training_job": "https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/jobs/j-1",
                  "training_job_name": "j-1", "valid_hours": "14"},
    }

    class TI:
        def xcom_pull(self, task_ids):
            assert task_ids == "evaluate.evaluate"
            return ev

    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(approve.body).render(ti=TI())
    assert "[evaluation plot](http://lm:4566/b/m/evaluation/evaluation.png?Signature=s) (link valid 14 h;" in text
    assert "[j-1](https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/jobs/j-1)" in text
