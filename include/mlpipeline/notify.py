"""Failure notifications: a message on the configured SNS topic, through the provider's notifier."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: ``params -> (stage, SNS topic or None, problem or None)``: where a failed run's alert goes.
AlertTarget = Callable[[Mapping[str, Any]], tuple[str, str | None, str | None]]


def failure_callback(
    model: str, conn_id: str = "aws_default", *, target: AlertTarget | None = None, kind: str | None = None
) -> Callable[[Any], None]:
    """An ``on_failure_callback`` publishing the failed task to ``alerts.sns_topic_arn``.

    The topic is read when the failure happens (from the run's stage), so a DAG file parses
    without reading AWS-side state; when the run's overrides made its config invalid, from the
    config without them (and the message says so). ``target`` replaces that lookup for a DAG whose
    config is not a ``models/`` file (BYOM), ``kind`` then names it in the subject. A notification
    that cannot be sent is logged, never raised: it must not hide the task's own error.
    """
    find_target = target or (lambda params: _pipeline_target(model, params))
    label = f"{model} ({kind})" if kind else model

    def callback(context: Any) -> None:
        from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

        try:  # a run whose overrides broke its config alerts with the config without them
            stage, topic, problem = find_target(context.get("params") or {})
        except Exception as exc:  # noqa: BLE001 - the config files themselves are broken
            log.error("no failure notification for %s: its config files are unusable: %s", label, exc)
            return
        if not topic:
            return
        ti = context.get("ti") or context.get("task_instance")
        error = context.get("exception")
        subject = f"[{stage}] {label}: task {getattr(ti, 'task_id', '?')} failed"
        message = (
            f"DAG {getattr(ti, 'dag_id', '?')} run {context.get('run_id')} task {getattr(ti, 'task_id', '?')} "
            f"try {getattr(ti, 'try_number', '?')} failed: {error}"
        )
        if problem:
            message += f"\n\nThe run's config is invalid (alerting with it minus the run's overrides): {problem}"
        try:
            SnsNotifier(aws_conn_id=conn_id, target_arn=topic, message=message, subject=subject[:100]).notify(context)
        except Exception as err:  # noqa: BLE001
            log.warning("could not publish the failure of %s to %s: %s", subject, topic, err)

    return callback


def _pipeline_target(model: str, params: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """A ``models/`` pipeline's stage and topic: the run's config, else the config without the run's
    overrides (``problem`` says why)."""
    from .config import config_for_failed_run
    from .dag_support import config_params

    cfg, problem = config_for_failed_run(model, config_params(params))
    return cfg.stage, cfg.alerts.sns_topic_arn, problem
