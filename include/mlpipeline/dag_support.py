"""The few things every DAG file shares: the connection, the assets that link DAGs, and how a task
turns its Airflow context into the run's config and clients.

DAG files never import each other; they import this (cheap: no boto3, pandas or Airflow hooks
until a task uses :class:`Clients`), and ``include/mlpipeline/pipelines`` for their task bodies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

CONN = "aws_default"
#: Every DAG is tagged with it: the UI's filter for this project's DAGs.
PROJECT_TAG = "sagemaker"


def _asset(model: str, what: str) -> Any:
    from airflow.sdk import Asset

    return Asset(name=f"{model}_{what.replace('-', '_')}", uri=f"mlpipeline://{model}/{what}")


def training_data_asset(model: str) -> Any:
    """Published by the training DAG's ETL."""
    return _asset(model, "training-data")


def model_asset(model: str) -> Any:
    """The model: every training run emits an event with its outcome (promoted, gated out,
    rejected, no change, ...) and its metrics as ``extra``."""
    return _asset(model, "model")


def retrain_request_asset(model: str) -> Any:
    """Emitted by monitoring on drift; the training DAG schedules on it."""
    return _asset(model, "retrain-request")


def batch_data_asset(model: str) -> Any:
    """Published by `<model>_batch_data`; batch scoring schedules on it."""
    return _asset(model, "batch-data")


def config_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The params that select or override config; a DAG may have params of its own."""
    from .config import PARAM_KEYS, SELECTOR_PARAMS

    return {
        k: v
        for k, v in dict(params or {}).items()
        if k in PARAM_KEYS or k in SELECTOR_PARAMS or "." in k or k == "overrides"
    }


def cfg_ctx(model: str, context: Mapping[str, Any]) -> tuple[Any, Any]:
    """The run's merged config (base <- stage <- model <- trigger params) and its naming context."""
    from .config import config_for_run
    from .run import RunContext

    cfg = config_for_run(model, config_params(context["params"]))
    return cfg, RunContext.from_airflow(context, model=model, stage=cfg.stage)


def failed_run_cfg_ctx(model: str, context: Mapping[str, Any]) -> tuple[Any, Any, str | None]:
    """Like :func:`cfg_ctx`, for clean-up and alerts after a failure: ``(config, context, problem)``.

    A run whose overrides made its config invalid still gets one: the config without them, and
    the run's own naming context (:func:`include.mlpipeline.config.config_for_failed_run`).
    """
    from .config import config_for_failed_run
    from .run import RunContext

    cfg, problem = config_for_failed_run(model, config_params(context["params"]))
    return cfg, RunContext.from_airflow(context, model=model, stage=cfg.stage), problem


def run_wait_settings(model: str) -> Callable[[Mapping[str, Any]], Any]:
    """``context -> the run's airflow config section``: how its SageMaker operators wait."""

    def resolve(context: Mapping[str, Any]) -> Any:
        from .config import config_for_run

        return config_for_run(model, config_params(context["params"])).airflow

    return resolve


def waits(parsed: Any, at_run: Callable[[Mapping[str, Any]], Any]) -> dict[str, Any]:
    """Keyword arguments of an operator with ``ConfiguredWaitMixin`` (``include.mlpipeline.operators``).

    ``parsed`` is the ``airflow`` config section the DAG file read (what the task shows in the UI);
    ``at_run`` gives the run's own section when the task starts, which is what it then uses (the
    run's stage and overrides such as ``{"airflow.deferrable": false}`` apply). The pool of each
    job kind comes from ``parsed`` only: the scheduler picks a task's pool before it runs.
    """
    return {
        "wait_settings": at_run,
        "pools": parsed.pools.names(),
        "deferrable": parsed.deferrable,
        "check_interval": parsed.poll_interval_seconds,
        "max_ingestion_time": parsed.max_wait_seconds,
    }


class Clients:
    """The boto3 clients a task may use, each made from the Airflow connection on first use: AWS or
    localmaker alike.

    What ``include/mlpipeline/pipelines`` functions take as ``clients``: tests hand them any object
    with the same attributes (moto clients, small fakes) instead.
    """

    def __init__(self, conn_id: str = CONN) -> None:
        self.conn_id = conn_id

    @cached_property
    def s3(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.conn_id).get_conn()

    @cached_property
    def sagemaker(self) -> Any:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        return SageMakerHook(aws_conn_id=self.conn_id).conn

    @cached_property
    def runtime(self) -> Any:
        """``sagemaker-runtime``: InvokeEndpoint."""
        return self._client("sagemaker-runtime")

    @cached_property
    def sns(self) -> Any:
        return self._client("sns")

    def _client(self, client_type: str) -> Any:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=self.conn_id, client_type=client_type).get_conn()


def task_inputs(model: str, context: Mapping[str, Any]) -> tuple[Any, Any, Clients]:
    """``(cfg, ctx, clients)`` of a task: the run's config and naming context, and its clients."""
    cfg, ctx = cfg_ctx(model, context)
    return cfg, ctx, Clients()


PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0",
           "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *"}


def cron_timetable(cron: str, interval: Any = None) -> Any:
    """A cron schedule (UTC) whose first run is its next slot after the DAG appears or is unpaused.

    The DAGs have no ``start_date``: with one in the past, Airflow starts the latest missed slot at
    once even with ``catchup=False`` (a nightly DAG unpaused at noon would run immediately for last
    midnight). ``run_immediately=timedelta(0)`` waits for the next slot instead. Presets (``@daily``...)
    become their cron; ``@once``/``@continuous`` are not crons and are refused.
    """
    from datetime import timedelta

    from airflow.sdk import CronTriggerTimetable

    if cron in ("@once", "@continuous"):
        raise ValueError(f"schedule {cron!r} is not a cron: use a cron expression, a preset like @daily, or null")
    kw = {"interval": interval} if interval is not None else {}
    return CronTriggerTimetable(PRESETS.get(cron, cron), timezone="UTC", run_immediately=timedelta(0), **kw)


def schedule_with_asset(cron: str | None, asset: Any) -> Any:
    """Run on the cron AND whenever ``asset`` is updated; only on the asset when the cron is null.

    Presets (``@daily``...) become their cron; ``@once``/``@continuous`` make no sense next to an
    asset trigger and are refused with the key to fix.
    """
    from airflow.sdk import AssetOrTimeSchedule

    if not cron:
        return [asset]
    if cron in ("@once", "@continuous"):
        raise ValueError(f"schedule {cron!r} cannot be combined with an asset trigger: use a cron or null")
    return AssetOrTimeSchedule(timetable=cron_timetable(cron), assets=[asset])


def stage_param(stage: str, description: str = "Stage config to use (dev/prod)") -> Any:
    """The ``stage`` trigger param every DAG has: one of the files under ``include/config/stages``."""
    from airflow.sdk import Param

    from .config import list_stages

    return Param(stage, enum=list_stages(), description=description)


def stage_values(model: str, dotted: str) -> str:
    """``dotted``'s value in each stage's config of ``model``, for a trigger form's text:
    ``dev: ml.m5.large, prod: ml.m5.xlarge``. Merges the layers without validating them (the run
    validates its own config) and parses with libyaml when present, because DAG files call it at
    parse time (a full :func:`load_config` per stage and model doubles a DAG file's import time)."""
    from .config import list_stages, merge_layers

    model_layer = _parsed(f"models/{model}.yaml")
    values = []
    for stage in list_stages():
        merged, _ = merge_layers(
            [("base", _parsed("base.yaml")), ("stage", _parsed(f"stages/{stage}.yaml")), ("model", model_layer)]
        )
        value: Any = merged
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        values.append(f"{stage}: {value}")
    return ", ".join(values)


@functools.cache
def _parsed(relative: str) -> Mapping[str, Any]:
    """A config file parsed once per process (merge_layers copies it; nothing may modify it)."""
    import yaml

    from .config import CONFIG_DIR

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((CONFIG_DIR / relative).read_text(encoding="utf-8"), Loader=loader) or {}


def dag_defaults(
    model: str | None,
    *tags: str,
    settings: Any = None,
    params: Mapping[str, Any] | None = None,
    default_args_: Mapping[str, Any] | None = None,
    **extra_default_args: Any,
) -> dict[str, Any]:
    """The ``DAG(...)`` keyword arguments every DAG of the project shares.

    No catch-up and one active run at a time (runs name their resources from the run and reuse
    state, two at once would race); tags ``sagemaker``, ``tags`` and the model; ``default_args``
    from the ``airflow`` config section ``settings`` (:func:`default_args`, with
    ``extra_default_args``), or ``default_args_`` as given for a DAG of no one model; ``params``.
    """
    if default_args_ is None:
        if model is None or settings is None:
            raise ValueError("dag_defaults needs the model and its airflow settings, or default_args_")
        args = default_args(model, settings, **extra_default_args)
    else:
        args = {**default_args_, **extra_default_args}
    return {
        "catchup": False,
        "max_active_runs": 1,
        "tags": [PROJECT_TAG, *tags, *([model] if model else [])],
        "default_args": args,
        "params": dict(params or {}),
    }


def default_args(model: str, settings: Any, **extra: Any) -> dict[str, Any]:
    """A DAG's ``default_args`` from its ``airflow`` config section (``AirflowSettings``).

    Transient failures retry ``settings.retries`` times after ``retry_delay_seconds``, doubling
    with jitter up to ``max_retry_delay_seconds``; permanent ones fail at once
    (``include.mlpipeline.failures.PermanentErrorPolicy``); every task is bounded by
    ``task_timeout_seconds``; a failed task publishes an alert (``include.mlpipeline.notify``).
    """
    from datetime import timedelta

    from .failures import PermanentErrorPolicy
    from .notify import failure_callback

    return {
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=settings.max_retry_delay_seconds),
        "execution_timeout": timedelta(seconds=settings.task_timeout_seconds),
        "retry_policy": PermanentErrorPolicy(),
        "on_failure_callback": failure_callback(model),
        **extra,
    }
