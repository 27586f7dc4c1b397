"""The SageMaker janitor: idle dev endpoints and old models / endpoint configs cost money or clutter.

Every training run leaves a model and one or two endpoint configs behind (configs are immutable,
so each deployment makes new ones), and the dev endpoint keeps running after its smoke test.
The janitor deletes

* **dev endpoints** (any model's ``endpoint.dev_name``) not modified for ``ttl``, when they are in
  a settled state (InService, OutOfService, Failed; never while Creating or Updating);
* **endpoint configs and models** of a configured model (names starting with its slug, the
  longest matching slug owning a name) beyond the newest ``keep_last`` of that model, unless an
  endpoint that stays uses them (directly, or through a config that stays).

It never deletes a protected name (every model's prod endpoint, in every stage) nor anything
such an endpoint uses, nor a resource whose name belongs to no configured model.

:func:`plan_cleanup` decides from listed resources alone (pure, unit-tested);
:func:`list_resources` gathers them and :func:`apply_plan` deletes, re-checking first that what it
deletes is still unused. Settings come from the config's ``janitor`` section when it exists, else
from the defaults below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

#: Hours a dev endpoint may sit unmodified (its last deployment) before it is deleted.
DEFAULT_DEV_ENDPOINT_TTL_HOURS = 24.0
#: Models / endpoint configs kept per model regardless of use (the newest), for quick rollback.
DEFAULT_KEEP_LAST = 3
#: Endpoint states in which deleting is safe; others mean a deployment is under way.
SETTLED_STATES = frozenset({"InService", "OutOfService", "Failed"})

Kind = Literal["endpoint", "endpoint_config", "model"]


@dataclass(frozen=True)
class JanitorSettings:
    dev_endpoint_ttl_hours: float
    keep_last: int


def janitor_settings(cfg: Any) -> JanitorSettings:
    """Read ``cfg.janitor`` key by key, falling back to this module's defaults."""
    section = getattr(cfg, "janitor", None)

    def get(name: str, default: Any) -> Any:
        value = getattr(section, name, None) if section is not None else None
        return default if value is None else value

    return JanitorSettings(
        dev_endpoint_ttl_hours=float(get("dev_endpoint_ttl_hours", DEFAULT_DEV_ENDPOINT_TTL_HOURS)),
        keep_last=int(get("keep_last", DEFAULT_KEEP_LAST)),
    )


@dataclass(frozen=True)
class Action:
    """One resource and what the plan does with it, and why."""

    kind: Kind
    name: str
    reason: str
    #: endpoints: the LastModifiedTime the decision saw (ISO), so applying can notice a redeploy
    last_modified: str | None = None


@dataclass(frozen=True)
class Plan:
    """What a cleanup deletes (in order: endpoints, configs, models) and what it keeps, with reasons."""

    delete: list[Action] = field(default_factory=list)
    keep: list[Action] = field(default_factory=list)

    def names(self, kind: Kind) -> list[str]:
        return [a.name for a in self.delete if a.kind == kind]

    @property
    def endpoints(self) -> list[str]:
        return self.names("endpoint")

    @property
    def endpoint_configs(self) -> list[str]:
        return self.names("endpoint_config")

    @property
    def models(self) -> list[str]:
        return self.names("model")

    def render(self) -> str:
        """A table for the task log."""
        lines = [f"delete {len(self.delete)}, keep {len(self.keep)}"]
        for verb, actions in (("DELETE", self.delete), ("keep", self.keep)):
            for a in actions:
                lines.append(f"  {verb:<6} {a.kind:<15} {a.name:<63} {a.reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"delete": [asdict(a) for a in self.delete], "keep": [asdict(a) for a in self.keep]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            delete=[Action(**a) for a in data.get("delete", [])],
            keep=[Action(**a) for a in data.get("keep", [])],
        )


def _aware(value: Any, what: str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise ValueError(f"{what}: not a time: {value!r}")
    if value.tzinfo is None:
        raise ValueError(f"{what}: naive time {value.isoformat()}; boto3 returns aware times, pass those")
    return value.astimezone(UTC)


def owner(name: str, slugs: Iterable[str]) -> str | None:
    """The model slug a resource name belongs to: the longest slug ``s`` with ``name`` starting
    ``s-`` (so ``diabetes-dnn-...`` is not claimed by a model named ``diabetes``)."""
    matches = [s for s in slugs if name.lower().startswith(s.lower() + "-")]
    return max(matches, key=len) if matches else None


def _models_of(config: Mapping[str, Any]) -> set[str]:
    variants = list(config.get("ProductionVariants") or []) + list(
        config.get("ShadowProductionVariants") or []
    )
    return {v["ModelName"] for v in variants if v.get("ModelName")}


def _prune(
    kind: Kind,
    items: list[Mapping[str, Any]],
    name_key: str,
    *,
    slugs: list[str],
    keep_last: int,
    in_use: Mapping[str, str],
    protected: set[str],
) -> tuple[list[Action], list[Action]]:
    delete: list[Action] = []
    keep: list[Action] = []
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for item in items:
        slug = owner(item[name_key], slugs)
        if slug is not None:
            groups.setdefault(slug, []).append(item)
    for slug in sorted(groups):
        ordered = sorted(
            groups[slug], key=lambda i: (_aware(i["CreationTime"], i[name_key]), i[name_key]), reverse=True
        )
        for rank, item in enumerate(ordered):
            name = item[name_key]
            if name in protected:
                keep.append(Action(kind, name, "protected"))
            elif name in in_use:
                keep.append(Action(kind, name, in_use[name]))
            elif rank < keep_last:
                keep.append(Action(kind, name, f"among the newest {keep_last} of {slug}"))
            else:
                delete.append(Action(kind, name, f"unused and older than the newest {keep_last} of {slug}"))
    return delete, keep


def plan_cleanup(
    endpoints: Iterable[Mapping[str, Any]],
    configs: Iterable[Mapping[str, Any]],
    models: Iterable[Mapping[str, Any]],
    now: datetime,
    ttl: timedelta,
    keep_last: int,
    protected_names: Iterable[str],
    *,
    dev_endpoint_names: Iterable[str],
    model_slugs: Iterable[str],
) -> Plan:
    """Decide what to delete.

    Args:
        endpoints: ``DescribeEndpoint`` answers (``EndpointName``, ``EndpointConfigName``,
            ``EndpointStatus``, ``LastModifiedTime``, optional ``PendingDeploymentSummary``).
        configs: endpoint configs with ``EndpointConfigName`` and ``CreationTime``, and
            ``ProductionVariants`` (as ``DescribeEndpointConfig`` answers) for every config whose
            models must be known: those of the configured models and those endpoints use.
        models: ``ListModels`` summaries (``ModelName``, ``CreationTime``).
        now: the current time (aware).
        ttl: how long a dev endpoint may go unmodified.
        keep_last: newest configs and models kept per model whether used or not (>= 1, so a
            deployment that has created its model but not yet its endpoint never loses it).
        protected_names: never deleted, whatever their kind (prod endpoints; models of running
            transform jobs).
        dev_endpoint_names: endpoints subject to ``ttl``.
        model_slugs: the configured models' slugs; only names they own are pruned.

    Raises:
        ValueError: ``keep_last < 1``, a negative ``ttl``, a naive time, or a dev endpoint name
            that is also protected (a config mistake that would put prod at risk).
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 (got {keep_last}): the newest model may be mid-deployment")
    if ttl < timedelta(0):
        raise ValueError(f"ttl must not be negative (got {ttl})")
    now = _aware(now, "now")
    protected = set(protected_names)
    dev = set(dev_endpoint_names)
    clash = sorted(dev & protected)
    if clash:
        raise ValueError(
            f"{', '.join(clash)}: both a dev endpoint and protected; fix endpoint.dev_name/prod_name"
        )
    slugs = sorted(set(model_slugs))

    delete: list[Action] = []
    keep: list[Action] = []
    used_configs: dict[str, str] = {}
    for ep in sorted(endpoints, key=lambda e: e["EndpointName"]):
        name = ep["EndpointName"]
        modified = _aware(ep.get("LastModifiedTime") or ep["CreationTime"], name)
        status = ep.get("EndpointStatus", "")
        age = now - modified
        hours = age.total_seconds() / 3600
        gone = False
        if name in protected:
            reason = "protected"
        elif name not in dev:
            reason = "not a dev endpoint"
        elif status not in SETTLED_STATES:
            reason = f"dev endpoint {status or 'in an unknown state'}: a deployment may be under way"
        elif age < ttl:
            reason = (
                f"dev endpoint modified {hours:.1f} h ago, within the TTL of {ttl.total_seconds() / 3600:g} h"
            )
        else:
            gone = True
            reason = (
                f"dev endpoint {status}, unmodified for {hours:.1f} h >= TTL {ttl.total_seconds() / 3600:g} h"
            )
        action = Action("endpoint", name, reason, modified.isoformat())
        (delete if gone else keep).append(action)
        if not gone:
            for config in (
                ep.get("EndpointConfigName"),
                (ep.get("PendingDeploymentSummary") or {}).get("EndpointConfigName"),
            ):
                if config:
                    used_configs.setdefault(config, f"used by endpoint {name}")

    config_list = list(configs)
    gone_configs, kept_configs = _prune(
        "endpoint_config",
        config_list,
        "EndpointConfigName",
        slugs=slugs,
        keep_last=keep_last,
        in_use=used_configs,
        protected=protected,
    )
    deleted_config_names = {a.name for a in gone_configs}
    used_models: dict[str, str] = {}
    for config in config_list:
        name = config["EndpointConfigName"]
        if name in deleted_config_names:
            continue
        why = f"used by endpoint config {name}" + (f" ({used_configs[name]})" if name in used_configs else "")
        for model in _models_of(config):
            if name in used_configs or model not in used_models:
                used_models[model] = why
    gone_models, kept_models = _prune(
        "model",
        list(models),
        "ModelName",
        slugs=slugs,
        keep_last=keep_last,
        in_use=used_models,
        protected=protected,
    )
    return Plan(delete=delete + gone_configs + gone_models, keep=keep + kept_configs + kept_models)


# ---------------------------------------------------------------------------------- with a client


def _paginate(sm: Any, operation: str, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in sm.get_paginator(operation).paginate():
        items.extend(page.get(key, []))
    return items


def _missing(exc: Exception) -> bool:
    """SageMaker's "no such resource" (``ValidationException`` ... ``Could not find``)."""
    error = getattr(exc, "response", {}).get("Error", {})
    return error.get("Code") in ("ValidationException", "ResourceNotFound") and (
        "could not find" in str(error.get("Message", "")).lower()
        or "does not exist" in str(error.get("Message", "")).lower()
    )


@dataclass(frozen=True)
class Inventory:
    endpoints: list[dict[str, Any]]
    configs: list[dict[str, Any]]
    models: list[dict[str, Any]]


def list_resources(sm: Any, model_slugs: Iterable[str]) -> Inventory:
    """Endpoints (described), endpoint configs (described when a configured model owns them or an
    endpoint uses them) and models, as :func:`plan_cleanup` takes them."""
    slugs = list(model_slugs)
    endpoints: list[dict[str, Any]] = []
    for summary in _paginate(sm, "list_endpoints", "Endpoints"):
        try:
            endpoints.append(sm.describe_endpoint(EndpointName=summary["EndpointName"]))
        except Exception as exc:
            if not _missing(exc):  # deleted since the listing
                raise
    wanted = {e.get("EndpointConfigName") for e in endpoints} | {
        (e.get("PendingDeploymentSummary") or {}).get("EndpointConfigName") for e in endpoints
    }
    configs: list[dict[str, Any]] = []
    for summary in _paginate(sm, "list_endpoint_configs", "EndpointConfigs"):
        name = summary["EndpointConfigName"]
        if name in wanted or owner(name, slugs):
            try:
                configs.append(sm.describe_endpoint_config(EndpointConfigName=name))
            except Exception as exc:
                if not _missing(exc):
                    raise
        else:
            configs.append(dict(summary))
    models = [dict(m) for m in _paginate(sm, "list_models", "Models")]
    return Inventory(endpoints, configs, models)


def running_transform_models(sm: Any) -> set[str]:
    """Models of InProgress batch transform jobs: deleting one under a running job is rude."""
    names: set[str] = set()
    for page in sm.get_paginator("list_transform_jobs").paginate(StatusEquals="InProgress"):
        for job in page.get("TransformJobSummaries", []):
            try:
                names.add(sm.describe_transform_job(TransformJobName=job["TransformJobName"])["ModelName"])
            except Exception as exc:
                if not _missing(exc):
                    raise
    return names


@dataclass
class Applied:
    """What :func:`apply_plan` did."""

    deleted: dict[str, list[str]] = field(
        default_factory=lambda: {"endpoint": [], "endpoint_config": [], "model": []}
    )
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CleanupError(RuntimeError):
    """Some deletions failed; the rest were done."""


def apply_plan(sm: Any, plan: Plan) -> Applied:
    """Delete what ``plan`` says, endpoints first, re-checking each against the live state.

    An endpoint modified since the plan (someone redeployed it) is skipped; a config or model
    that an endpoint now uses is skipped; one already gone counts as deleted (a retried task).
    Every deletion is attempted; failures are collected and raised together at the end.
    """
    result = Applied()
    for action in plan.delete:
        if action.kind != "endpoint":
            continue
        try:
            current = sm.describe_endpoint(EndpointName=action.name)
        except Exception as exc:
            if _missing(exc):
                result.deleted["endpoint"].append(action.name)
                continue
            result.failed.append(f"endpoint {action.name}: {exc}")
            continue
        seen = _aware(current.get("LastModifiedTime") or current["CreationTime"], action.name).isoformat()
        if action.last_modified and seen != action.last_modified:
            result.skipped.append(f"endpoint {action.name}: modified at {seen} after the plan")
            continue
        if current.get("EndpointStatus") not in SETTLED_STATES:
            result.skipped.append(f"endpoint {action.name}: now {current.get('EndpointStatus')}")
            continue
        try:
            sm.delete_endpoint(EndpointName=action.name)
            result.deleted["endpoint"].append(action.name)
        except Exception as exc:
            if _missing(exc):
                result.deleted["endpoint"].append(action.name)
            else:
                result.failed.append(f"endpoint {action.name}: {exc}")

    # What endpoints use now; not the ones just deleted, which AWS lists as Deleting for a while.
    used_configs: set[str] = set()
    for summary in _paginate(sm, "list_endpoints", "Endpoints"):
        if (
            summary["EndpointName"] in result.deleted["endpoint"]
            or summary.get("EndpointStatus") == "Deleting"
        ):
            continue
        try:
            ep = sm.describe_endpoint(EndpointName=summary["EndpointName"])
        except Exception as exc:
            if _missing(exc):
                continue
            raise
        pending = ep.get("PendingDeploymentSummary") or {}
        used_configs.update(
            name for name in (ep.get("EndpointConfigName"), pending.get("EndpointConfigName")) if name
        )
    used_models: set[str] = set()
    for name in used_configs:
        try:
            used_models |= _models_of(sm.describe_endpoint_config(EndpointConfigName=name))
        except Exception as exc:
            if not _missing(exc):
                raise

    for kind, used, delete, param in (
        ("endpoint_config", used_configs, sm.delete_endpoint_config, "EndpointConfigName"),
        ("model", used_models, sm.delete_model, "ModelName"),
    ):
        for action in plan.delete:
            if action.kind != kind:
                continue
            if action.name in used:
                result.skipped.append(f"{kind} {action.name}: now used by an endpoint")
                continue
            try:
                delete(**{param: action.name})
                result.deleted[kind].append(action.name)
            except Exception as exc:
                if _missing(exc):
                    result.deleted[kind].append(action.name)
                else:
                    result.failed.append(f"{kind} {action.name}: {exc}")
    if result.failed:
        raise CleanupError(
            f"{len(result.failed)} deletion(s) failed (the others were done): " + "; ".join(result.failed)
        )
    return result
