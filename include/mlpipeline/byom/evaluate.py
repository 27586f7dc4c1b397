"""The endpoint check: score the held-out rows on the deployed endpoint and compare the answers
with the in-task booster's predictions and the true labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .. import codec, s3
from .common import CSV, EndpointCheckError
from .config import CheckSettings
from .train import classification_metrics, max_abs_diff


def batches(rows: Sequence[str], size: int) -> list[list[str]]:
    return [list(rows[i : i + size]) for i in range(0, len(rows), size)]


def invoke_rows(runtime_client: Any, endpoint: str, rows: Sequence[str], batch_rows: int) -> list[float]:
    """Score ``rows`` (feature-only CSV lines) in requests of ``batch_rows``; one answer per row or an error."""
    answers: list[float] = []
    for i, batch in enumerate(batches(rows, batch_rows), start=1):
        response = runtime_client.invoke_endpoint(
            EndpointName=endpoint, Body=("\n".join(batch) + "\n").encode(), ContentType=CSV, Accept=CSV
        )
        try:
            values = codec.decode_predictions(response["Body"].read(), CSV, expected=len(batch))
        except codec.ResponseError as exc:
            raise EndpointCheckError(f"{endpoint}: request {i}: {exc}") from None
        if len(values) != len(batch):
            raise EndpointCheckError(
                f"{endpoint}: request {i} of {len(batch)} rows answered {len(values)} predictions"
            )
        answers.extend(values)
    return answers


@dataclass(frozen=True)
class CheckResult:
    endpoint: str
    rows: int
    max_abs_diff: float
    accuracy: float
    auc: float
    passed: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_with_reference(
    check: CheckSettings,
    endpoint: str,
    answers: Sequence[float],
    reference: Sequence[float],
    labels: Sequence[float],
) -> CheckResult:
    """The endpoint's answers against the in-task booster's predictions and the true labels."""
    reasons = []
    if len(answers) != len(reference):
        raise EndpointCheckError(f"{endpoint}: {len(answers)} answers for {len(reference)} rows")
    worst = max_abs_diff(answers, reference)
    if worst > check.max_abs_diff:
        at = max(range(len(answers)), key=lambda i: abs(answers[i] - reference[i]))
        reasons.append(
            f"endpoint and in-task booster differ by up to {worst:.3g} (row {at}: {answers[at]!r} vs "
            f"{reference[at]!r}) > check.max_abs_diff {check.max_abs_diff:g}"
        )
    metrics = classification_metrics(labels, answers)
    if metrics["accuracy"] < check.min_accuracy:
        reasons.append(f"endpoint accuracy {metrics['accuracy']:.4f} < check.min_accuracy {check.min_accuracy}")
    return CheckResult(
        endpoint=endpoint,
        rows=len(answers),
        max_abs_diff=worst,
        accuracy=metrics["accuracy"],
        auc=metrics["auc"],
        passed=not reasons,
        reasons=reasons,
    )


def put_text(s3_client: Any, uri: str, text: str, content_type: str = CSV) -> str:
    """:func:`.s3.put_text`, CSV unless told otherwise (the DAG stores data sets and predictions)."""
    return s3.put_text(s3_client, uri, text, content_type)
