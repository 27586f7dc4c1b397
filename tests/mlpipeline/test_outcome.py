"""The run outcome decision and the training data hash that recognises "no change"."""

from __future__ import annotations

from typing import Any

import pytest

from include.mlpipeline import outcome as oc
from include.mlpipeline.s3 import put_text

CHANNELS = {name: f"s3://mlpipeline-dev/runs/{{run}}/{name}/" for name in ("train", "validation", "test", "test_labels")}


def _prepare(s3: Any, run: str, train: str = "1,2\n3,4\n", test: str = "5,6\n") -> dict[str, str]:
    channels = {k: v.format(run=run) for k, v in CHANNELS.items()}
    put_text(s3, channels["train"] + "data.csv", train)
    put_text(s3, channels["validation"] + "data.csv", "7,8\n")
    put_text(s3, channels["test"] + "data.csv", test)
    put_text(s3, channels["test_labels"] + "data.csv", "9\n")
    return channels


def test_same_rows_in_another_run_prefix_hash_the_same(s3: Any) -> None:
    first = oc.data_fingerprint(s3, _prepare(s3, "a"))
    assert first == oc.data_fingerprint(s3, _prepare(s3, "b"))
    assert len(first) == 64


@pytest.mark.parametrize("change", [{"train": "1,2\n3,5\n"}, {"test": "5,6\n7,8\n"}])
def test_any_changed_row_changes_the_hash(s3: Any, change: dict[str, str]) -> None:
    assert oc.data_fingerprint(s3, _prepare(s3, "a")) != oc.data_fingerprint(s3, _prepare(s3, "b", **change))


def test_a_row_moved_between_channels_changes_the_hash(s3: Any) -> None:
    moved = oc.data_fingerprint(s3, _prepare(s3, "b", train="1,2\n", test="3,4\n5,6\n"))
    assert oc.data_fingerprint(s3, _prepare(s3, "a")) != moved


def test_recipe_hash_covers_image_and_every_hyperparameter() -> None:
    base = oc.recipe_fingerprint("img:1", {"epochs": "10", "lr": "0.01"})
    assert base == oc.recipe_fingerprint("img:1", {"lr": "0.01", "epochs": "10"})  # order does not matter
    assert base != oc.recipe_fingerprint("img:2", {"epochs": "10", "lr": "0.01"})
    assert base != oc.recipe_fingerprint("img:1", {"epochs": "1", "lr": "0.01"})
    assert base != oc.recipe_fingerprint("img:1", {"epochs": "10"})


def test_champion_comparison() -> None:
    props = {oc.DATA_HASH_PROPERTY: "abc", oc.RECIPE_HASH_PROPERTY: "r1", "metric.rmse": "1.0"}
    assert oc.same_training_as_champion("abc", "r1", props)
    assert not oc.same_training_as_champion("abd", "r1", props)  # new data
    assert not oc.same_training_as_champion("abc", "r2", props)  # same data, another recipe
    assert not oc.same_training_as_champion("abc", "r1", {"metric.rmse": "1.0"})  # registered before hashes
    assert not oc.same_training_as_champion("abc", "r1", None)  # no champion
    assert not oc.same_training_as_champion("", "", {oc.DATA_HASH_PROPERTY: "", oc.RECIPE_HASH_PROPERTY: ""})


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"evaluated": False}, "failed"),
        ({"no_change": True, "gate_passed": False}, "no change"),
        ({"gate_passed": False}, "gated out"),
        ({"promoted": True, "approved": True}, "promoted"),
        ({"promoted": True}, "promoted"),  # auto_approve: no one was asked
        ({"approved": False}, "rejected"),
        ({"deploy": False}, "not deployed"),
        ({"approved": True}, "failed"),  # approved but prod never became champion
    ],
)
def test_outcome_decision(state: dict[str, Any], expected: str) -> None:
    base = {"evaluated": True, "no_change": False, "gate_passed": True, "deploy": True, "approved": None, "promoted": False}
    assert oc.decide_outcome(**{**base, **state}) == expected


def test_note_and_event_carry_outcome_and_metrics() -> None:
    evaluation = {
        "metrics": {"rmse": 52.123456, "r2": 0.5},
        "champion": {"rmse": 50.0},
        "decision": {"passed": False, "reasons": ["rmse 52.12 is worse than the champion's 50"]},
        "data_sha256": "f" * 64,
    }
    note = oc.outcome_note("gated out", evaluation["metrics"], evaluation["champion"], evaluation["decision"]["reasons"])
    assert note.splitlines()[0] == "**gated out**: candidate r2 0.5, rmse 52.12; champion rmse 50"
    assert note.splitlines()[1] == "- rmse 52.12 is worse than the champion's 50"
    event = oc.outcome_event("gated out", evaluation, run_id="r1")
    assert event == {
        "outcome": "gated out",
        "run_id": "r1",
        "metrics": {"rmse": 52.123456, "r2": 0.5},
        "champion_metrics": {"rmse": 50.0},
        "data_sha256": "f" * 64,
        "reasons": ["rmse 52.12 is worse than the champion's 50"],
    }
    assert oc.outcome_event("failed", None, run_id="r2")["metrics"] == {}
