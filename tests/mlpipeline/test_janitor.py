"""include/mlpipeline/janitor.py: what the janitor deletes, what it never touches, and how it
applies a plan against a live (here: fake) SageMaker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from include.mlpipeline import janitor as jn

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
SLUGS = ["diabetes-dnn"]
DEV = ["diabetes-dnn-dev"]
PROD = ["diabetes-dnn-prod"]


def ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def endpoint(name: str, config: str, hours: float, status: str = "InService", **extra: Any) -> dict[str, Any]:
    return {
        "EndpointName": name,
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": ago(hours + 1),
        "LastModifiedTime": ago(hours),
        **extra,
    }


def config(name: str, model: str, hours: float) -> dict[str, Any]:
    return {
        "EndpointConfigName": name,
        "CreationTime": ago(hours),
        "ProductionVariants": [{"ModelName": model}],
    }


def model(name: str, hours: float) -> dict[str, Any]:
    return {"ModelName": name, "CreationTime": ago(hours)}


def run_names(n: int) -> list[str]:
    """Five training runs, oldest first (run i was made 100 - 10 i hours ago)."""
    return [f"2026031{i}t020000" for i in range(n)]


def world() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Five runs of diabetes_dnn; prod serves run 1 (old), dev serves run 4 (the newest, 30 h old)."""
    runs = run_names(5)
    models = [model(f"diabetes-dnn-dev-{r}", 100 - 10 * i) for i, r in enumerate(runs)]
    configs = [
        config(
            f"diabetes-dnn-dev-{target}-{r}",
            f"diabetes-dnn-dev-{r}",
            100 - 10 * i + (0.1 if target == "dev" else 0),
        )
        for i, r in enumerate(runs)
        for target in ("dev", "prod")
    ]
    models.append(model("someone-elses-model", 500))
    configs.append(config("someone-elses-config", "someone-elses-model", 500))
    endpoints = [
        endpoint("diabetes-dnn-prod", f"diabetes-dnn-dev-prod-{runs[1]}", 200),
        endpoint("diabetes-dnn-dev", f"diabetes-dnn-dev-dev-{runs[4]}", 30),
        endpoint("someone-elses-endpoint", "someone-elses-config", 1000),
    ]
    return endpoints, configs, models


def plan(**kw: Any) -> jn.Plan:
    endpoints, configs, models = world()
    args: dict[str, Any] = {
        "endpoints": endpoints,
        "configs": configs,
        "models": models,
        "now": NOW,
        "ttl": timedelta(hours=24),
        "keep_last": 2,
        "protected_names": PROD,
        "dev_endpoint_names": DEV,
        "model_slugs": SLUGS,
    }
    args.update(kw)
    return jn.plan_cleanup(**args)


# ------------------------------------------------------------------------------------- plan


def test_idle_dev_endpoint_and_old_unused_resources_go() -> None:
    runs = run_names(5)
    p = plan()
    assert p.endpoints == ["diabetes-dnn-dev"]
    # configs: newest two kept (run 4 dev+prod configs), prod's config kept (in use); the rest go
    assert sorted(p.endpoint_configs) == sorted(
        [f"diabetes-dnn-dev-{t}-{r}" for r in (runs[0], runs[2], runs[3]) for t in ("dev", "prod")]
        + [f"diabetes-dnn-dev-dev-{runs[1]}"]
    )
    # models: run 4 and run 3 newest, run 1 used by prod; runs 0 and 2 go
    assert sorted(p.models) == [f"diabetes-dnn-dev-{runs[0]}", f"diabetes-dnn-dev-{runs[2]}"]
    kept = {a.name: a.reason for a in p.keep}
    assert kept["diabetes-dnn-prod"] == "protected"
    assert kept[f"diabetes-dnn-dev-prod-{runs[1]}"] == "used by endpoint diabetes-dnn-prod"
    assert kept[f"diabetes-dnn-dev-{runs[1]}"].startswith(
        f"used by endpoint config diabetes-dnn-dev-prod-{runs[1]}"
    )
    assert kept["someone-elses-endpoint"] == "not a dev endpoint"
    every = {a.name for a in p.delete} | set(kept)
    assert (
        "someone-elses-model" not in every and "someone-elses-config" not in every
    )  # not ours: not even listed


def test_never_deletes_prod_or_what_it_uses_even_with_keep_last_one_and_ttl_zero() -> None:
    runs = run_names(5)
    p = plan(ttl=timedelta(0), keep_last=1)
    deleted = {a.name for a in p.delete}
    assert "diabetes-dnn-prod" not in deleted
    assert f"diabetes-dnn-dev-prod-{runs[1]}" not in deleted
    assert f"diabetes-dnn-dev-{runs[1]}" not in deleted
    assert "someone-elses-endpoint" not in deleted
    assert f"diabetes-dnn-dev-{runs[4]}" not in deleted  # the newest model is kept, always


def test_dev_endpoint_within_the_ttl_stays_with_what_it_uses() -> None:
    runs = run_names(5)
    p = plan(ttl=timedelta(hours=48), keep_last=1)
    assert p.endpoints == []
    assert f"diabetes-dnn-dev-dev-{runs[4]}" not in p.endpoint_configs
    assert "within the TTL of 48 h" in {a.name: a.reason for a in p.keep}["diabetes-dnn-dev"]


@pytest.mark.parametrize("status", ["Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"])
def test_dev_endpoint_mid_deployment_stays(status: str) -> None:
    endpoints, configs, models = world()
    endpoints[1]["EndpointStatus"] = status
    p = plan(endpoints=endpoints)
    assert p.endpoints == []
    assert "a deployment may be under way" in {a.name: a.reason for a in p.keep}["diabetes-dnn-dev"]


@pytest.mark.parametrize("status", ["Failed", "OutOfService"])
def test_failed_dev_endpoint_past_the_ttl_goes(status: str) -> None:
    endpoints, _, _ = world()
    endpoints[1]["EndpointStatus"] = status
    assert plan(endpoints=endpoints).endpoints == ["diabetes-dnn-dev"]


def test_pending_deployment_config_counts_as_used() -> None:
    runs = run_names(5)
    endpoints, configs, models = world()
    endpoints[0]["PendingDeploymentSummary"] = {"EndpointConfigName": f"diabetes-dnn-dev-prod-{runs[0]}"}
    p = plan(endpoints=endpoints, keep_last=1)
    assert f"diabetes-dnn-dev-prod-{runs[0]}" not in p.endpoint_configs
    assert f"diabetes-dnn-dev-{runs[0]}" not in p.models


def test_protected_models_stay() -> None:
    runs = run_names(5)
    p = plan(protected_names=[*PROD, f"diabetes-dnn-dev-{runs[0]}"])
    assert p.models == [f"diabetes-dnn-dev-{runs[2]}"]
    assert {a.name: a.reason for a in p.keep}[f"diabetes-dnn-dev-{runs[0]}"] == "protected"


def test_models_of_kept_configs_stay() -> None:
    """A config kept for rollback keeps its model: a config without its model is useless."""
    runs = run_names(3)
    configs = [config(f"diabetes-dnn-dev-dev-{runs[2]}", f"diabetes-dnn-dev-{runs[0]}", 1)]
    models = [model(f"diabetes-dnn-dev-{r}", 10 - i) for i, r in enumerate(runs)]
    p = plan(endpoints=[], configs=configs, models=models, keep_last=1)
    assert p.models == [f"diabetes-dnn-dev-{runs[1]}"]


def test_the_longest_slug_owns_a_name() -> None:
    """``diabetes-dnn-...`` belongs to diabetes_dnn, not to a model called ``diabetes``."""
    models = [model(f"diabetes-dnn-dev-{i}", 10 - i) for i in range(3)] + [model("diabetes-dev-1", 50)]
    p = plan(endpoints=[], configs=[], models=models, keep_last=1, model_slugs=["diabetes", "diabetes-dnn"])
    assert sorted(p.models) == ["diabetes-dnn-dev-0", "diabetes-dnn-dev-1"]
    assert {a.name: a.reason for a in p.keep}["diabetes-dev-1"] == "among the newest 1 of diabetes"
    assert jn.owner("diabetes-dnn-x", ["diabetes", "diabetes-dnn"]) == "diabetes-dnn"
    assert jn.owner("diabetesx-1", ["diabetes"]) is None
    assert jn.owner("Diabetes-DNN-1", ["diabetes-dnn"]) == "diabetes-dnn"


def test_times_as_strings_are_accepted() -> None:
    endpoints, configs, models = world()
    for item in endpoints + configs + models:
        for key in ("CreationTime", "LastModifiedTime"):
            if key in item:
                item[key] = item[key].isoformat().replace("+00:00", "Z")
    assert plan(endpoints=endpoints, configs=configs, models=models) == plan()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"keep_last": 0}, "keep_last must be >= 1"),
        ({"ttl": timedelta(hours=-1)}, "ttl must not be negative"),
        ({"now": datetime(2026, 3, 14, 12)}, "naive time"),
        ({"protected_names": ["diabetes-dnn-dev"]}, "both a dev endpoint and protected"),
    ],
)
def test_plan_refuses(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan(**kw)


def test_plan_round_trips_and_renders() -> None:
    p = plan()
    assert jn.Plan.from_dict(p.to_dict()) == p
    text = p.render()
    assert text.splitlines()[0] == f"delete {len(p.delete)}, keep {len(p.keep)}"
    assert any(line.split()[:3] == ["DELETE", "endpoint", "diabetes-dnn-dev"] for line in text.splitlines())


def test_settings_default_until_the_config_has_a_janitor_section() -> None:
    assert jn.janitor_settings(SimpleNamespace()) == jn.JanitorSettings(
        jn.DEFAULT_DEV_ENDPOINT_TTL_HOURS, jn.DEFAULT_KEEP_LAST
    )
    cfg = SimpleNamespace(janitor=SimpleNamespace(dev_endpoint_ttl_hours=6, keep_last=None))
    assert jn.janitor_settings(cfg) == jn.JanitorSettings(6.0, jn.DEFAULT_KEEP_LAST)


# ------------------------------------------------------------------------------- with a client


def _not_found(what: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "ValidationException", "Message": f"Could not find {what}"}}, "Describe"
    )


class FakeSageMaker:
    """Just enough of the SageMaker client for the janitor: three dicts and their operations."""

    def __init__(self, endpoints: list[dict], configs: list[dict], models: list[dict]) -> None:
        self.endpoints = {e["EndpointName"]: dict(e) for e in endpoints}
        self.configs = {c["EndpointConfigName"]: dict(c) for c in configs}
        self.models = {m["ModelName"]: dict(m) for m in models}
        self.transforms: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_on: set[str] = set()

    def get_paginator(self, operation: str) -> Any:
        fake = self

        class Paginator:
            def paginate(self, **kw: Any) -> list[dict[str, Any]]:
                if operation == "list_endpoints":
                    summaries = [
                        {
                            k: e[k]
                            for k in ("EndpointName", "EndpointStatus", "CreationTime", "LastModifiedTime")
                        }
                        for e in fake.endpoints.values()
                    ]
                    return [{"Endpoints": summaries[:2]}, {"Endpoints": summaries[2:]}]
                if operation == "list_endpoint_configs":
                    return [
                        {
                            "EndpointConfigs": [
                                {
                                    "EndpointConfigName": c["EndpointConfigName"],
                                    "CreationTime": c["CreationTime"],
                                }
                                for c in fake.configs.values()
                            ]
                        }
                    ]
                if operation == "list_models":
                    return [{"Models": list(fake.models.values())}]
                if operation == "list_transform_jobs":
                    assert kw == {"StatusEquals": "InProgress"}
                    return [{"TransformJobSummaries": [{"TransformJobName": n} for n in fake.transforms]}]
                raise AssertionError(operation)

        return Paginator()

    def _get(self, store: dict, name: str) -> dict:
        if name not in store:
            raise _not_found(name)
        return dict(store[name])

    def describe_endpoint(self, EndpointName: str) -> dict:
        return self._get(self.endpoints, EndpointName)

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict:
        return self._get(self.configs, EndpointConfigName)

    def describe_transform_job(self, TransformJobName: str) -> dict:
        return self._get(self.transforms, TransformJobName)

    def _delete(self, kind: str, store: dict, name: str) -> dict:
        self.calls.append((kind, name))
        if name in self.fail_on:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, kind)
        if name not in store:
            raise _not_found(name)
        del store[name]
        return {}

    def delete_endpoint(self, EndpointName: str) -> dict:
        return self._delete("endpoint", self.endpoints, EndpointName)

    def delete_endpoint_config(self, EndpointConfigName: str) -> dict:
        return self._delete("endpoint_config", self.configs, EndpointConfigName)

    def delete_model(self, ModelName: str) -> dict:
        return self._delete("model", self.models, ModelName)


def fake_world() -> FakeSageMaker:
    return FakeSageMaker(*world())


def test_list_resources_describes_what_planning_needs() -> None:
    sm = fake_world()
    inventory = jn.list_resources(sm, SLUGS)
    assert {e["EndpointName"] for e in inventory.endpoints} == set(sm.endpoints)
    assert all("EndpointConfigName" in e for e in inventory.endpoints)
    described = {c["EndpointConfigName"] for c in inventory.configs if "ProductionVariants" in c}
    # ours and those endpoints use are described; others are listed only
    assert described == set(sm.configs)
    sm.configs["unused-foreign-config"] = config("unused-foreign-config", "x", 3)
    inventory = jn.list_resources(sm, SLUGS)
    foreign = next(c for c in inventory.configs if c["EndpointConfigName"] == "unused-foreign-config")
    assert "ProductionVariants" not in foreign
    assert len(inventory.models) == len(sm.models)


def test_running_transform_models() -> None:
    sm = fake_world()
    sm.transforms = {
        "score-1": {"TransformJobName": "score-1", "ModelName": "diabetes-dnn-dev-20260310t020000"}
    }
    assert jn.running_transform_models(sm) == {"diabetes-dnn-dev-20260310t020000"}


def test_apply_deletes_exactly_the_plan_in_order() -> None:
    sm = fake_world()
    inventory = jn.list_resources(sm, SLUGS)
    p = jn.plan_cleanup(
        inventory.endpoints,
        inventory.configs,
        inventory.models,
        NOW,
        timedelta(hours=24),
        2,
        PROD,
        dev_endpoint_names=DEV,
        model_slugs=SLUGS,
    )
    before = (set(sm.endpoints), set(sm.configs), set(sm.models))
    done = jn.apply_plan(sm, p)
    assert done.deleted == {"endpoint": p.endpoints, "endpoint_config": p.endpoint_configs, "model": p.models}
    assert done.skipped == [] and done.failed == []
    assert set(sm.endpoints) == before[0] - set(p.endpoints)
    assert set(sm.configs) == before[1] - set(p.endpoint_configs)
    assert set(sm.models) == before[2] - set(p.models)
    kinds = [k for k, _ in sm.calls]
    assert kinds == sorted(kinds, key=["endpoint", "endpoint_config", "model"].index)
    # applying again (a retried task) finds everything gone and reports it done
    again = jn.apply_plan(sm, p)
    assert again.deleted == done.deleted and again.failed == []


def test_apply_skips_what_changed_since_the_plan() -> None:
    runs = run_names(5)
    sm = fake_world()
    p = plan(ttl=timedelta(0), keep_last=1)
    # someone redeployed the dev endpoint, and pointed prod at an old config, after the plan
    sm.endpoints["diabetes-dnn-dev"]["LastModifiedTime"] = NOW
    sm.endpoints["diabetes-dnn-prod"]["EndpointConfigName"] = f"diabetes-dnn-dev-prod-{runs[0]}"
    assert f"diabetes-dnn-dev-prod-{runs[0]}" in p.endpoint_configs
    done = jn.apply_plan(sm, p)
    assert "diabetes-dnn-dev" in sm.endpoints
    assert f"diabetes-dnn-dev-prod-{runs[0]}" in sm.configs
    assert f"diabetes-dnn-dev-{runs[0]}" in sm.models  # its model is in use again too
    assert any(s.startswith("endpoint diabetes-dnn-dev: modified at") for s in done.skipped)
    assert f"endpoint_config diabetes-dnn-dev-prod-{runs[0]}: now used by an endpoint" in done.skipped


def test_apply_skips_an_endpoint_that_started_updating() -> None:
    sm = fake_world()
    p = plan()
    sm.endpoints["diabetes-dnn-dev"]["EndpointStatus"] = "Updating"
    done = jn.apply_plan(sm, p)
    assert "diabetes-dnn-dev" in sm.endpoints
    assert done.skipped[0] == "endpoint diabetes-dnn-dev: now Updating"


def test_apply_attempts_everything_then_reports_failures() -> None:
    runs = run_names(5)
    sm = fake_world()
    p = plan()
    sm.fail_on = {f"diabetes-dnn-dev-{runs[0]}"}
    with pytest.raises(jn.CleanupError, match=r"1 deletion\(s\) failed .*Rate exceeded"):
        jn.apply_plan(sm, p)
    assert f"diabetes-dnn-dev-{runs[2]}" not in sm.models  # the other model went anyway
    assert not set(p.endpoint_configs) & set(sm.configs)
