"""The tasks of `sagemaker_janitor` (``dags/janitor.py``): policy, plan, whether to apply, apply.

The decisions are :mod:`include.mlpipeline.janitor` (pure functions over listed resources); this
module gathers what they need across every configured model and stage, and logs what they decided.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, TypedDict

from ..config import default_stage, list_models, list_stages, load_config

CONN = "aws_default"
log = logging.getLogger(__name__)


class Policy(TypedDict):
    """Names and settings across every model and stage."""

    protected: list[str]
    dev: list[str]
    slugs: list[str]
    ttl_hours: float
    keep_last: int


class Planned(TypedDict):
    dry_run: bool
    plan: dict[str, Any]
    policy: Policy


def policy(params: Mapping[str, Any]) -> Policy:
    """Every model's prod endpoint (all stages) protected; the most conservative settings win
    (the longest TTL, the most kept) unless the run's ``ttl_hours`` / ``keep_last`` params say."""
    from ..janitor import janitor_settings

    protected: set[str] = set()
    dev: set[str] = set()
    slugs: set[str] = set()
    ttl_hours: list[float] = []
    keep: list[int] = []
    for model in list_models():
        for stage in list_stages():
            cfg = load_config(model, stage)
            protected.add(cfg.endpoint.prod_name)
            dev.add(cfg.endpoint.dev_name)
            slugs.add(cfg.model_slug)
            if stage == (params.get("stage") or default_stage()):
                settings = janitor_settings(cfg)
                ttl_hours.append(settings.dev_endpoint_ttl_hours)
                keep.append(settings.keep_last)
    ttl = params.get("ttl_hours")
    keep_last = params.get("keep_last")
    return {
        "protected": sorted(protected),
        "dev": sorted(dev - protected),
        "slugs": sorted(slugs),
        "ttl_hours": float(ttl if ttl is not None else max(ttl_hours)),
        "keep_last": int(keep_last if keep_last is not None else max(keep)),
    }


def plan(clients: Any, params: Mapping[str, Any], *, now: datetime, scheduled: bool) -> Planned:
    """What to delete and keep, logged as a table. ``dry_run`` (param) unset: a scheduled run
    deletes, a manual one only lists."""
    from .. import janitor as jn

    pol = policy(params)
    sm = clients.sagemaker
    inventory = jn.list_resources(sm, pol["slugs"])
    protected = set(pol["protected"]) | jn.running_transform_models(sm)
    decided = jn.plan_cleanup(
        inventory.endpoints,
        inventory.configs,
        inventory.models,
        now,
        timedelta(hours=pol["ttl_hours"]),
        pol["keep_last"],
        protected,
        dev_endpoint_names=pol["dev"],
        model_slugs=pol["slugs"],
    )
    dry_run = params.get("dry_run")
    if dry_run is None:
        dry_run = not scheduled
    print(
        f"policy: dev endpoints {pol['dev']} TTL {pol['ttl_hours']:g} h; keep the newest "
        f"{pol['keep_last']} per model {pol['slugs']}; protected {sorted(protected)}"
    )
    print(("DRY RUN (nothing is deleted)\n" if dry_run else "") + decided.render())
    return {"dry_run": bool(dry_run), "plan": decided.to_dict(), "policy": pol}


def live(planned: Planned) -> bool:
    """Whether ``apply`` runs: not on a dry run, not with nothing to delete."""
    if planned["dry_run"]:
        print("dry run: nothing deleted (trigger with dry_run=false to delete)")
        return False
    if not planned["plan"]["delete"]:
        print("nothing to delete")
        return False
    return True


def apply(clients: Any, planned: Planned) -> dict[str, Any]:
    """Delete what the plan says, re-checked against the live state (:func:`janitor.apply_plan`)."""
    from .. import janitor as jn

    done = jn.apply_plan(clients.sagemaker, jn.Plan.from_dict(planned["plan"]))
    for kind, names in done.deleted.items():
        print(f"deleted {len(names)} {kind}(s): {names}")
    for line in done.skipped:
        print(f"skipped {line}")
    return done.to_dict()


def on_failure(context: Any) -> None:
    """Publish a failed janitor task to the alerts topic (a base setting, read from the first model)."""
    from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

    try:
        topic = load_config(list_models()[0], default_stage()).alerts.sns_topic_arn
    except Exception as exc:  # noqa: BLE001 - the config itself may be what failed
        log.warning("no failure notification: config unusable: %s", exc)
        return
    if not topic:
        return
    ti = context.get("ti") or context.get("task_instance")
    message = f"sagemaker_janitor run {context.get('run_id')} task {getattr(ti, 'task_id', '?')} failed: {context.get('exception')}"
    try:
        SnsNotifier(
            aws_conn_id=CONN,
            target_arn=topic,
            message=message,
            subject=f"sagemaker_janitor: {getattr(ti, 'task_id', '?')} failed",
        ).notify(context)
    except Exception as err:  # noqa: BLE001 - never hide the task's own error
        log.warning("could not publish the janitor failure to %s: %s", topic, err)
