"""`<model>_monitoring`: the prod endpoint's captured traffic vs. the champion's training baseline.

Wiring only. The requests, windows and messages live in ``include/mlpipeline/monitoring.py``; the
analysis is a Processing job running our Model Monitor-compatible image
(``container/model_monitor``), started by the provider's ``SageMakerProcessingOperator``. The same
file runs against AWS and against localmaker: only the ``aws_default`` connection differs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, chain, task

from include.mlpipeline.config import default_stage, list_models, list_stages, load_config
from include.mlpipeline.dag_support import (
    CONN,
    cfg_ctx,
    clients,
    cron_timetable,
    default_args,
    retrain_request_asset,
    run_wait_settings,
    waits,
)
from include.mlpipeline.monitoring import monitor_settings
from include.mlpipeline.operators import ProcessingOperator

#: Trigger params that shape the window rather than override config.
WINDOW_PARAMS = ("window_start", "window_end", "window_hours")
PROBE_INFERENCE_ID = "mlpipeline-monitoring-probe"










def _param_time(value: Any, name: str) -> datetime | None:
    """An ISO-8601 trigger param as an aware datetime; a time without a zone is UTC."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(
            f"param {name}={value!r} is not an ISO-8601 time such as 2026-01-31T10:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=pendulum.UTC)


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
        doc_md=DOC.format(model=model, hours=settings.window_hours, probe=PROBE_INFERENCE_ID),
        schedule=schedule,
        catchup=False,
        max_active_runs=1,
        tags=["sagemaker", "monitoring", model],
        default_args=default_args(model, cfg.airflow),
        params={
            "stage": Param(cfg.stage, enum=list_stages(), description="Stage config to use (dev/prod)"),
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
    ) as dag:

        @task.short_circuit(multiple_outputs=True)
        def window(**context: Any) -> dict[str, Any] | None:
            """The window, the champion and its baseline, and the analysis request; or a clean stop."""
            from include.mlpipeline import monitoring as mon
            from include.mlpipeline.evaluate import latest_approved_package
            from include.mlpipeline.run import split_s3_uri

            cfg, ctx = cfg_ctx(model, context)
            s3, sm = clients()
            params = context["params"]
            hours = params.get("window_hours") or mon.monitor_settings(cfg).window_hours
            end = (
                _param_time(params.get("window_end"), "window_end")
                or context.get("data_interval_end")
                or context["dag_run"].run_after
            )
            start, end = mon.capture_window(end, float(hours))
            start = _param_time(params.get("window_start"), "window_start") or start

            group = cfg.registry.model_package_group_name
            champion = latest_approved_package(sm, group)
            if champion is None:
                print(f"nothing to monitor: model package group {group} has no Approved version yet")
                return None
            baseline = mon.baseline_location(cfg, champion.arn)
            bucket, prefix = split_s3_uri(baseline)
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            present = {o["Key"][len(prefix) :] for o in listed}
            missing = [f for f in (mon.STATISTICS_FILE, mon.CONSTRAINTS_FILE) if f not in present]
            if missing:
                print(
                    f"nothing to monitor: champion {champion.arn} has no baseline yet "
                    f"({', '.join(missing)} missing under {baseline}); the training DAG writes it"
                )
                return None

            endpoint = cfg.endpoint.prod_name
            folders = mon.capture_folder_uris(mon.capture_uri(cfg, endpoint), start, end)
            with_files = []
            for folder in folders:
                fb, fp = split_s3_uri(folder)
                if s3.list_objects_v2(Bucket=fb, Prefix=fp, MaxKeys=1).get("KeyCount", 0):
                    with_files.append(folder)
            output = mon.monitoring_output_uri(cfg, ctx, endpoint)
            request = mon.analysis_processing_request(
                cfg,
                ctx,
                endpoint=endpoint,
                baseline_uri=baseline,
                window_start=start,
                window_end=end,
                output_uri=output,
                job_name=mon.analysis_job_name(cfg, ctx),
                capture_uris=with_files,
            )
            print(f"window [{mon.iso_utc(start)}, {mon.iso_utc(end)}) of {endpoint}")
            print(f"champion {champion.arn}, baseline {baseline}")
            print(f"capture folders with files: {with_files or 'none (the analysis will report no data)'}")
            return {
                "endpoint": endpoint,
                "window_start": mon.iso_utc(start),
                "window_end": mon.iso_utc(end),
                "champion": champion.arn,
                "champion_model_data_url": champion.model_data_url,
                "baseline_uri": baseline,
                "capture_folders": with_files,
                "output_uri": output,
                "request": request,
            }

        @task
        def probe_endpoint(win: dict[str, Any], **context: Any) -> dict[str, Any]:
            """The endpoint is up and answers a plausible request; what it serves is the champion."""
            import math
            import time

            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

            from include.mlpipeline import monitoring as mon

            cfg, _ = cfg_ctx(model, context)
            s3, sm = clients()
            endpoint = win["endpoint"]
            try:
                described = sm.describe_endpoint(EndpointName=endpoint)
            except sm.exceptions.ClientError as err:
                raise RuntimeError(
                    f"prod endpoint {endpoint} cannot be described ({err}); the champion is deployed by "
                    f"{model}_training, which may have been run with deploy=false"
                ) from err
            status = described["EndpointStatus"]
            if status != "InService":
                raise RuntimeError(
                    f"prod endpoint {endpoint} is {status}, not InService"
                    + (f": {described['FailureReason']}" if described.get("FailureReason") else "")
                )
            variants = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
            served = set()
            for variant in variants["ProductionVariants"]:
                container = sm.describe_model(ModelName=variant["ModelName"]).get("PrimaryContainer") or {}
                served.add(container.get("ModelDataUrl"))
            if win.get("champion_model_data_url") and win["champion_model_data_url"] not in served:
                print(
                    f"WARNING: {endpoint} does not serve the champion's model ({win['champion_model_data_url']}); "
                    f"it serves {sorted(map(str, served))}. The baseline may not describe its training data."
                )
            row = mon.probe_row(mon.read_statistics(s3, win["baseline_uri"]), cfg.data.feature_columns)
            runtime = AwsBaseHook(aws_conn_id=CONN, client_type="sagemaker-runtime").get_conn()
            started = time.perf_counter()
            answer = (
                runtime.invoke_endpoint(
                    EndpointName=endpoint,
                    Body=row.encode(),
                    ContentType="text/csv",
                    Accept="text/csv",
                    InferenceId=PROBE_INFERENCE_ID,
                )["Body"]
                .read()
                .decode("utf-8", errors="replace")
            )
            latency_ms = (time.perf_counter() - started) * 1000
            try:
                prediction = float(answer.strip().splitlines()[0].split(",")[-1])
            except (ValueError, IndexError):
                raise RuntimeError(f"{endpoint} answered a non-number to [{row}]: {answer[:200]!r}") from None
            if not math.isfinite(prediction):
                raise RuntimeError(f"{endpoint} answered {prediction} to [{row}]")
            print(f"{endpoint} InService; probe [{row}] -> {prediction:.4g} in {latency_ms:.1f} ms")
            return {
                "endpoint": endpoint,
                "status": status,
                "latency_ms": round(latency_ms, 2),
                "prediction": prediction,
            }

        @task
        def violations(win: dict[str, Any]) -> dict[str, Any]:
            from include.mlpipeline import monitoring as mon

            s3, _ = clients()
            found = mon.read_violations(s3, win["output_uri"])
            report = mon.read_analysis_report(s3, win["output_uri"])
            result = mon.MonitoringResult(violations=found, report=report, output_uri=win["output_uri"])
            print(mon.summarise(found, report, title=f"{win['endpoint']}: {len(found)} violation(s)"))
            print(f"results: {win['output_uri']}")
            return result.to_dict()

        @task.branch
        def route(result: dict[str, Any], **context: Any) -> list[str] | str:
            from include.mlpipeline.monitoring import retraining_wanted

            cfg, _ = cfg_ctx(model, context)
            if not result["violations"]:
                return "all_clear"
            if retraining_wanted(cfg, result["violations"]):
                return ["notify", "request_retraining"]
            if result["drifted"]:
                print("drift found but alerts.retrain_on_drift is off: notifying only")
            return ["notify"]

        @task
        def notify(win: dict[str, Any], result: dict[str, Any], **context: Any) -> dict[str, Any]:
            from airflow.providers.amazon.aws.hooks.sns import SnsHook

            from include.mlpipeline.monitoring import summarise

            cfg, _ = cfg_ctx(model, context)
            topic = cfg.alerts.sns_topic_arn
            count = len(result["violations"])
            subject = f"[{cfg.stage}] {model}: {count} monitoring violation(s) on {win['endpoint']}"[:100]
            message = summarise(
                result["violations"],
                result["report"],
                title=(
                    f"{subject}\nDAG {context['dag'].dag_id} run {context['run_id']}; "
                    f"champion {win['champion']}; results {win['output_uri']}"
                ),
            )
            if not topic:
                print(f"alerts.sns_topic_arn is not set: not published.\n{message}")
                return {"published": False}
            response = SnsHook(aws_conn_id=CONN).publish_to_target(topic, message, subject=subject)
            print(f"published to {topic} (message {response.get('MessageId')}):\n{message}")
            return {"published": True, "message_id": response.get("MessageId"), "topic": topic}

        @task(outlets=[retrain_asset])
        def request_retraining(win: dict[str, Any], result: dict[str, Any], **context: Any) -> dict[str, Any]:
            """An event on the retrain-request Asset: the training DAG schedules on it."""
            extra = {
                "reason": "baseline drift",
                "endpoint": win["endpoint"],
                "drifted_features": result["drifted"],
                "window": [win["window_start"], win["window_end"]],
                "champion": win["champion"],
                "results": win["output_uri"],
            }
            context["outlet_events"][retrain_asset].extra = extra
            print(f"retraining requested: {extra}")
            return extra

        @task
        def all_clear(win: dict[str, Any], result: dict[str, Any]) -> str:
            report = result["report"]
            message = (
                f"{win['endpoint']}: no violations in [{win['window_start']}, {win['window_end']}) "
                f"({report.get('rows', 0)} rows analysed)"
            )
            print(message)
            return message

        win = window()
        probe = probe_endpoint(win)
        analyze = ProcessingOperator(
            task_id="analyze", config=win["request"], aws_conn_id=CONN, **waits(cfg.airflow, run_wait_settings(model))
        )
        found = violations(win)
        chain(probe, analyze, found)
        routed = route(found)
        chain(routed, [notify(win, found), request_retraining(win, found), all_clear(win, found)])
    return dag


for _model in list_models():
    if load_config(_model, default_stage()).monitoring.enabled:
        globals()[f"{_model}_monitoring"] = build_monitoring_dag(_model)
