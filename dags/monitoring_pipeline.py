"""`<model>_monitoring`: the prod endpoint's captured traffic vs. the champion's training baseline.

Wiring only. Each task is one call into ``include/mlpipeline/pipelines/monitoring.py``; the requests,
windows and messages live in ``include/mlpipeline/monitoring.py``; the
analysis is a Processing job running our Model Monitor-compatible image
(``container/model_monitor``), started by the provider's ``SageMakerProcessingOperator``. The same
file runs against AWS and against localmaker: only the ``aws_default`` connection differs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, chain, task

from include.mlpipeline.config import default_stage, list_models, load_config
from include.mlpipeline.dag_support import (
    CONN,
    cfg_ctx,
    cron_timetable,
    dag_defaults,
    retrain_request_asset,
    run_wait_settings,
    stage_param,
    task_inputs,
    waits,
)
from include.mlpipeline.monitoring import monitor_settings
from include.mlpipeline.operators import ProcessingOperator
from include.mlpipeline.pipelines import monitoring as tasks

DOC = """
### {model}: monitor the prod endpoint's traffic against the champion's baseline

1. **window**: the captured traffic of `[end - {hours:g} h, end)`, `end` being the run's
   `data_interval_end` (its trigger time for manual runs; or the `window_end`/`window_start`
   params). Finds the champion (newest Approved package of the model's group) and its baseline
   (`s3://<bucket>/{model}/baselines/<version>/`, written by the training DAG). No champion or no
   baseline yet: the run stops here, skipped, with the reason in the log.
2. **probe_endpoint**: the prod endpoint must be InService and answer one request at the baseline's
   feature means (latency logged). The probe is captured like any request (inference id
   `{probe}`); one average row does not move a distribution.
3. **analyze**: a Processing job with the model-monitor image over the window (the capture folders
   that hold files); results in `s3://<bucket>/{model}/monitoring/<endpoint>/<ts>/`.
4. **violations** reads `constraint_violations.json` and `analysis_report.json`. If there are any:
   **notify** publishes a summary to `alerts.sns_topic_arn`, and a `baseline_drift_check` with
   `alerts.retrain_on_drift` on makes **request_retraining** emit `{model}_retrain_request`, which
   triggers `{model}_training`. Otherwise **all_clear**.
"""


def build_monitoring_dag(model: str) -> DAG:
    cfg = load_config(model, default_stage())
    settings = monitor_settings(cfg)
    retrain_asset = retrain_request_asset(model)
    schedule = (
        cron_timetable(cfg.schedules.monitoring, interval=timedelta(hours=settings.window_hours))
        if cfg.schedules.monitoring
        else None
    )
    with DAG(
        dag_id=f"{model}_monitoring",
        description=f"Data-quality and drift checks of {model}'s prod endpoint traffic",
        doc_md=DOC.format(model=model, hours=settings.window_hours, probe=tasks.PROBE_INFERENCE_ID),
        schedule=schedule,
        **dag_defaults(
            model,
            "monitoring",
            settings=cfg.airflow,
            params={
                "stage": stage_param(cfg.stage),
                "window_end": Param(
                    None,
                    type=["null", "string"],
                    description="ISO-8601 end of the analysed window (default: the run's data interval end)",
                ),
                "window_start": Param(
                    None, type=["null", "string"], description="ISO-8601 start (default: end - window_hours)"
                ),
                "window_hours": Param(
                    None,
                    type=["null", "number"],
                    exclusiveMinimum=0,
                    description=f"Window length in hours (default: monitoring.window_hours, {settings.window_hours:g})",
                ),
            },
        ),
    ) as dag:

        @task.short_circuit(multiple_outputs=True)
        def window(**context: Any) -> tasks.Window | None:
            """The window, the champion and its baseline, and the analysis request; or a clean stop."""
            interval_end = context.get("data_interval_end") or context["dag_run"].run_after
            return tasks.window(*task_inputs(model, context), context["params"], interval_end)

        @task
        def probe_endpoint(win: tasks.Window, **context: Any) -> tasks.Probe:
            """The endpoint is up and answers a plausible request; what it serves is the champion."""
            cfg, _, clients = task_inputs(model, context)
            return tasks.probe_endpoint(cfg, clients, win)

        @task
        def violations(win: tasks.Window, **context: Any) -> dict[str, Any]:
            cfg, _, clients = task_inputs(model, context)
            return tasks.violations(cfg, clients, win)

        @task.branch
        def route(result: dict[str, Any], **context: Any) -> list[str] | str:
            return tasks.route(cfg_ctx(model, context)[0], result)

        @task
        def notify(win: tasks.Window, result: dict[str, Any], **context: Any) -> tasks.Published:
            cfg, _, clients = task_inputs(model, context)
            return tasks.notify(cfg, clients, win, result, dag_id=context["dag"].dag_id, run_id=context["run_id"])

        @task(outlets=[retrain_asset])
        def request_retraining(win: tasks.Window, result: dict[str, Any], **context: Any) -> dict[str, Any]:
            """An event on the retrain-request Asset: the training DAG schedules on it."""
            extra = tasks.retrain_request(win, result)
            context["outlet_events"][retrain_asset].extra = extra
            return extra

        @task
        def all_clear(win: tasks.Window, result: dict[str, Any]) -> str:
            return tasks.all_clear(win, result)

        # The ignores below ([arg-type], [index]): airflow.sdk types a @task call with the function's own
        # parameters (Task.__call__: Callable[FParams, XComArg]) and its result as an XComArg without
        # __getitem__; the XComArgs passed here are resolved at run time
        win = window()
        probe = probe_endpoint(win)  # type: ignore[arg-type]
        analyze = ProcessingOperator(
            task_id="analyze", config=win["request"], aws_conn_id=CONN, **waits(cfg.airflow, run_wait_settings(model))  # type: ignore[index]
        )
        found = violations(win)  # type: ignore[arg-type]
        chain(probe, analyze, found)
        routed = route(found)  # type: ignore[arg-type]
        chain(routed, [notify(win, found), request_retraining(win, found), all_clear(win, found)])  # type: ignore[arg-type]
    return dag


for _model in list_models():
    if load_config(_model, default_stage()).monitoring.enabled:
        globals()[f"{_model}_monitoring"] = build_monitoring_dag(_model)
