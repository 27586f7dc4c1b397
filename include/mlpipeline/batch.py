"""Batch scoring results: count them, check them against the input, describe their distribution."""

from __future__ import annotations

from typing import Any

from . import codec, s3
from .metrics import distribution


class BatchOutputError(RuntimeError):
    pass


def parse_joined_lines(text: str, where: str) -> list[tuple[str, float]]:
    """``id,prediction`` lines (the transform's join) -> pairs; a bad line names where it is."""
    try:
        return codec.decode_joined(text)
    except codec.ResponseError as exc:
        raise BatchOutputError(f"{where}: {exc}") from None


def pair_by_position(ids_text: str, output_text: str, where: str, field: str | None) -> list[tuple[str, float]]:
    """Unjoined output (one answer a line, e.g. k-means' JSON Lines) paired with the ids of the
    input lines it answers, in order."""
    ids = [line.split(",", 1)[0] for line in ids_text.splitlines() if line.strip()]
    answers = [line for line in output_text.splitlines() if line.strip()]
    if len(ids) != len(answers):
        raise BatchOutputError(f"{where}: {len(answers)} answers for {len(ids)} input lines")
    try:
        return list(zip(ids, codec.decode_records("\n".join(answers), field), strict=True))
    except codec.ResponseError as exc:
        raise BatchOutputError(f"{where}: {exc}") from None


def summarise_predictions(
    s3_client: Any,
    output_uri: str,
    *,
    expected_rows: int,
    input_uri: str | None = None,
    field: str | None = None,
) -> dict[str, Any]:
    """Read every ``.out`` object under ``output_uri``; fail unless each input row has exactly one
    prediction; write ``summary.json`` next to the predictions and return it.

    Joined output holds ``id,prediction`` lines. With ``input_uri`` (the batch input prefix) the
    output is unjoined: each ``<name>.out`` is paired line by line with the input object
    ``<name>``'s ids (``field`` picks the value from JSON answers), and ``predictions.csv`` with
    ``id,prediction`` lines is written next to it.
    """
    out_prefix = s3.as_prefix(output_uri)
    outputs = s3.list_uris(s3_client, out_prefix, ".out")
    pairs: list[tuple[str, float]] = []
    for obj in outputs:
        text = s3.get_text(s3_client, obj)
        if input_uri is None:
            pairs.extend(parse_joined_lines(text, obj))
            continue
        source = s3.as_prefix(input_uri) + obj[len(out_prefix) : -len(".out")]
        pairs.extend(pair_by_position(s3.get_text(s3_client, source), text, obj, field))
    if input_uri is not None:
        body = "".join(f"{i},{v!r}\n" for i, v in pairs)
        s3.put_text(s3_client, out_prefix + "predictions.csv", body, "text/csv")
    ids = [p[0] for p in pairs]
    duplicates = len(ids) - len(set(ids))
    if len(pairs) != expected_rows or duplicates:
        raise BatchOutputError(
            f"{len(pairs)} predictions ({duplicates} duplicate ids) under {output_uri} for {expected_rows} input rows"
        )
    summary = {
        "rows_in": expected_rows,
        "rows_out": len(pairs),
        "objects": len(outputs),
        "predictions": distribution([p[1] for p in pairs]),
    }
    s3.put_json(s3_client, out_prefix + "summary.json", summary)
    return summary
