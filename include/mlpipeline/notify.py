"""Failure notifications: a message on the configured SNS topic, through the provider's notifier."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def failure_callback(model: str, conn_id: str = "aws_default") -> Callable[[Any], None]:
    """An ``on_failure_callback`` publishing the failed task to ``alerts.sns_topic_arn``.

    The topic is read when the failure happens (from the run's stage), so a DAG file parses
    without reading AWS-side state; when the run's overrides made its config invalid, from the
    config without them (and the message says so). A notification that cannot be sent is logged, never raised:
    it must not hide the task's own error.
    """

    def callback(context: Any) -> None:
        from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

        from .config import config_for_failed_run
        from .dag_support import config_params

        try:  # a run whose overrides broke its config alerts with the config without them
            cfg, problem = config_for_failed_run(model, config_params(context.get("params") or {}))
        except Exception as exc:  # noqa: BLE001 - the model's own config files are broken
            log.error("no failure notification for %s: its config files are unusable: %s", model, exc)
            return
        topic = cfg.alerts.sns_topic_arn
        if not topic:
            return
        ti = context.get("ti") or context.get("task_instance")
        exc = context.get("exception")
        subject = f"[{cfg.stage}] {model}: task {getattr(ti, 'task_id', '?')} failed"
        message = (
            f"DAG {getattr(ti, 'dag_id', '?')} run {context.get('run_id')} task {getattr(ti, 'task_id', '?')} "
            f"try {getattr(ti, 'try_number', '?')} failed: {exc}"
        )
        if problem:
            message += f"\n\nThe run's config is invalid (alerting with it minus the run's overrides): {problem}"
        try:
            SnsNotifier(aws_conn_id=conn_id, target_arn=topic, message=message, subject=subject[:100]).notify(context)
        except Exception as err:  # noqa: BLE001
            log.warning("could not publish the failure of %s to %s: %s", subject, topic, err)

    return callback
