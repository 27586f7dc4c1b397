"""What a training run ended as: promoted, gated out, rejected, no change (or failed).

A gated-out or rejected run is a green success in Airflow, like one that deployed; the outcome
says which it was. The training data's content hash travels with each model package (customer
metadata ``data.sha256``), so a retrain on exactly the champion's data is recognised as "no
change": there is nothing to approve and nothing to deploy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from . import s3

#: The model package's customer metadata key holding its training data's content hash.
DATA_HASH_PROPERTY = "data.sha256"
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


def same_data_as_champion(data_hash: str, champion_properties: Mapping[str, str] | None) -> bool:
    """Whether the champion was trained on exactly this data (a champion registered before the
    hash was recorded never matches: it is compared on its metrics as before)."""
    if not champion_properties or not data_hash:
        return False
    return champion_properties.get(DATA_HASH_PROPERTY) == data_hash


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
