"""What every SageMaker resource kind's operations share: ARNs, pagination, list filters and sorting, tags.

Public helpers (no service owns them), so a resource kind's module answers ``List*``, ``NextToken`` and
``Tags`` the way every other kind does. :class:`TagService` answers AddTags / ListTags / DeleteTags.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from typing import Any

from .aws import arn
from .context import Ctx
from .errors import AwsError, validation
from .service import BaseService, Handler
from .store import Store

MAX_TAGS = 50


@functools.lru_cache(maxsize=4)
def service_model(name: str) -> Any:
    """botocore's model of an AWS service (``sagemaker``, ``sagemaker-runtime``, ``logs``)."""
    import botocore.session

    return botocore.session.get_session().get_service_model(name)


def resource_arn(region: str, kind: str, name: str) -> str:
    """``arn:aws:sagemaker:<region>:<account>:<kind>/<name>``; SageMaker lower-cases the name in ARNs."""
    return arn(region, f"{kind}/{name.lower()}")


def paginate(items: list[dict[str, Any]], p: dict[str, Any], key: str, default_max: int = 10) -> dict[str, Any]:
    """One page of ``items`` under ``key`` by ``MaxResults`` / ``NextToken`` (the offset, as a string)."""
    start = 0
    if p.get("NextToken"):
        try:
            start = int(p["NextToken"])
        except ValueError as exc:
            raise validation("Invalid pagination token: NextToken is malformed.") from exc
    n = int(p.get("MaxResults", default_max))
    page = items[start : start + n]
    out: dict[str, Any] = {key: page}
    if start + n < len(items):
        out["NextToken"] = str(start + n)
    return out


def filter_sort(
    docs: list[dict[str, Any]],
    p: dict[str, Any],
    name_key: str,
    status_key: str | None = None,
    sort_default: str = "CreationTime",
) -> list[dict[str, Any]]:
    """The documents a List request selects (``NameContains``, ``StatusEquals``, creation and modification
    time bounds), sorted by its ``SortBy`` / ``SortOrder``."""
    out = []
    for d in docs:
        if p.get("NameContains") and p["NameContains"].lower() not in d[name_key].lower():
            continue
        if status_key and p.get("StatusEquals") and d.get(status_key) != p["StatusEquals"]:
            continue
        if p.get("CreationTimeAfter") and d["CreationTime"] <= timestamp(p["CreationTimeAfter"]):
            continue
        if p.get("CreationTimeBefore") and d["CreationTime"] >= timestamp(p["CreationTimeBefore"]):
            continue
        if p.get("LastModifiedTimeAfter") and d.get("LastModifiedTime", 0) <= timestamp(p["LastModifiedTimeAfter"]):
            continue
        if p.get("LastModifiedTimeBefore") and d.get("LastModifiedTime", 0) >= timestamp(p["LastModifiedTimeBefore"]):
            continue
        out.append(d)
    sort_by = p.get("SortBy", sort_default)
    key = {"Name": name_key, "CreationTime": "CreationTime", "Status": status_key or name_key}.get(
        sort_by, "CreationTime"
    )
    out.sort(key=lambda d: (d.get(key) is None, d.get(key)), reverse=p.get("SortOrder", "Descending") == "Descending")
    return out


def summaries(docs: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each document's summary: the members of ``keys`` it has."""
    return [{k: d[k] for k in keys if k in d} for d in docs]


def timestamp(v: Any) -> float:
    """A request's timestamp (epoch seconds or ISO 8601) as epoch seconds."""
    if isinstance(v, (int, float)):
        return float(v)
    return dt.datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()


# ---- tags -----------------------------------------------------------------------------------------------
def add_tags(store: Store, resource: str, tags: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Add (or overwrite) ``tags`` on the resource with ARN ``resource``; its tags afterwards."""
    current = store.get("Tags", resource) or {"Tags": {}}
    for t in tags:
        current["Tags"][t["Key"]] = t.get("Value", "")
    if len(current["Tags"]) > MAX_TAGS:
        raise AwsError("ResourceLimitExceeded", f"A resource can have at most {MAX_TAGS} tags.")
    store.put("Tags", resource, current)
    return [{"Key": k, "Value": v} for k, v in current["Tags"].items()]


def tag_on_create(store: Store, resource: str, p: dict[str, Any]) -> None:
    """A Create request's ``Tags``, put on the resource it created."""
    if p.get("Tags"):
        add_tags(store, resource, p["Tags"])


class ResourceService(BaseService):
    """A service over the resource store: its context, the store, its resources' ARNs."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.store: Store = ctx.store

    def resource_arn(self, kind: str, name: str) -> str:
        return resource_arn(self.ctx.region, kind, name)

    def insert(self, kind: str, name: str, doc: dict[str, Any], p: dict[str, Any],
               duplicate: Callable[[], AwsError]) -> None:
        """Store a new resource (``duplicate()`` raised if the name is taken) and put the request's Tags on it."""
        self.store.insert_new(kind, name, doc, duplicate)
        tag_on_create(self.store, doc[f"{kind}Arn"], p)

    def get_or_fail(self, kind: str, name: str, missing: Callable[[], AwsError]) -> dict[str, Any]:
        """The stored ``kind`` document named ``name``; ``missing()`` raised if there is none."""
        doc = self.store.get(kind, name)
        if doc is None:
            raise missing()
        return doc


class TagService(ResourceService):
    """AddTags, ListTags, DeleteTags for every resource, keyed by ARN."""

    def operations(self) -> Mapping[str, Handler]:
        return {"AddTags": self.add, "ListTags": self.list, "DeleteTags": self.delete}

    def add(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"Tags": add_tags(self.store, p["ResourceArn"], p["Tags"])}

    def list(self, p: dict[str, Any]) -> dict[str, Any]:
        current = self.store.get("Tags", p["ResourceArn"]) or {"Tags": {}}
        return paginate([{"Key": k, "Value": v} for k, v in current["Tags"].items()], p, "Tags", default_max=MAX_TAGS)

    def delete(self, p: dict[str, Any]) -> dict[str, Any]:
        current = self.store.get("Tags", p["ResourceArn"]) or {"Tags": {}}
        for k in p["TagKeys"]:
            current["Tags"].pop(k, None)
        self.store.put("Tags", p["ResourceArn"], current)
        return {}
