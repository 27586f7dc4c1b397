"""What a training run ended as: promoted, gated out, rejected, no change (or failed).

A gated-out or rejected run is a green success in Airflow, like one that deployed; the outcome
says which it was. The training data's content hash travels with each model package (customer
metadata ``data.sha256``, with ``recipe.sha256`` of the image and hyperparameters), so a retrain on
exactly the champion's data with the champion's recipe is recognised as "no change": there is
nothing to approve and nothing to deploy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from . import s3

#: The model package's customer metadata key holding its training data's content hash.
DATA_HASH_PROPERTY = "data.sha256"
#: ... and the hash of its training recipe (image + hyperparameters).
RECIPE_HASH_PROPERTY = "recipe.sha256"
#: The ETL channels whose content is "the training data": what the model learns and is judged on.
HASHED_CHANNELS = ("train", "validation", "test")

Outcome = Literal["promoted", "gated out", "rejected", "no change", "not deployed", "failed"]

_CHUNK = 1 << 20


def data_fingerprint(s3_client: Any, channels: Mapping[str, str], names: Iterable[str] = HASHED_CHANNELS) -> str:
    """SHA-256 over the objects under each channel prefix: channel, key relative to the prefix,
    size and bytes, in sorted order.

    Content only: the run's own prefix is not part of it, so two runs that prepared the same rows
    into the same channels get the same hash. Objects are streamed, never held whole.
    """
    digest = hashlib.sha256()
    for name in sorted(n for n in names if n in channels):
        prefix = s3.as_prefix(channels[name])
        for uri in s3.list_uris(s3_client, prefix):
            digest.update(f"{name}\0{uri[len(prefix):]}\0".encode())
            with s3.open_stream(s3_client, uri) as body:
                while chunk := body.read(_CHUNK):
                    digest.update(chunk)
            digest.update(b"\0")
    return digest.hexdigest()


def recipe_fingerprint(image: str, hyperparameters: Mapping[str, Any]) -> str:
    """SHA-256 of what turns the data into a model: the training image and every hyperparameter
    the job ran with. A run that changes either is an experiment, not a retrain, and is judged
    on its metrics even on the champion's data. (Script mode's per-run ``sagemaker_submit_directory``
    makes such runs never match: they are always judged, never "no change".)"""
    document = json.dumps({"image": image, "hyperparameters": dict(hyperparameters)}, sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()


def same_training_as_champion(
    data_hash: str, recipe_hash: str, champion_properties: Mapping[str, str] | None
) -> bool:
    """Whether the champion was trained on exactly this data with this recipe (a champion
    registered before the hashes were recorded never matches: it is compared on its metrics)."""
    if not champion_properties or not data_hash or not recipe_hash:
        return False
    return (
        champion_properties.get(DATA_HASH_PROPERTY) == data_hash
        and champion_properties.get(RECIPE_HASH_PROPERTY) == recipe_hash
    )


def decide_outcome(
    *,
    evaluated: bool,
    no_change: bool,
    gate_passed: bool,
    deploy: bool,
    approved: bool | None,
    promoted: bool,
) -> Outcome:
    """The run's outcome from where it stopped.

    ``approved`` is ``None`` when no approval was asked (not reached, or ``auto_approve``);
    ``promoted`` means the package became champion (prod serves it).
    """
    if not evaluated:
        return "failed"
    if no_change:
        return "no change"
    if not gate_passed:
        return "gated out"
    if promoted:
        return "promoted"
    if approved is False:
        return "rejected"
    if not deploy:
        return "not deployed"
    return "failed"


def _fmt_metrics(metrics: Mapping[str, float] | None) -> str:
    return ", ".join(f"{k} {float(v):.4g}" for k, v in sorted((metrics or {}).items())) or "-"


def outcome_note(
    outcome: Outcome,
    metrics: Mapping[str, float] | None,
    champion: Mapping[str, float] | None,
    reasons: Iterable[str] = (),
) -> str:
    """The run's one-paragraph summary (Markdown): the outcome first, then the numbers and why."""
    head = f"**{outcome}**: candidate {_fmt_metrics(metrics)}; champion {_fmt_metrics(champion)}"
    return "\n".join([head, *(f"- {reason}" for reason in reasons)])


def outcome_event(
    outcome: Outcome,
    evaluation: Mapping[str, Any] | None,
    *,
    run_id: str,
    champion_arn: str | None = None,
) -> dict[str, Any]:
    """The ``extra`` of the model asset's event: JSON-serialisable, what a dashboard or a
    downstream DAG needs without reading XCom."""
    ev = evaluation or {}
    return {
        "outcome": outcome,
        "run_id": run_id,
        "metrics": dict(ev.get("metrics") or {}),
        "champion_metrics": dict(ev.get("champion") or {}) or None,
        "data_sha256": ev.get("data_sha256"),
        "reasons": list((ev.get("decision") or {}).get("reasons") or []),
        **({"champion": champion_arn} if champion_arn else {}),
    }
