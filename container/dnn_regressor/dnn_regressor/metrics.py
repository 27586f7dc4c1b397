"""The metric lines training prints, and the regexes SageMaker reads them with.

SageMaker (and localmaker) turn a custom algorithm's log into metrics with the
``MetricDefinitions`` regexes of the training request; ``FinalMetricDataList`` and tuning
objectives take the *last* value each regex matched. So every epoch prints one line in a fixed
``name=value`` shape, and the final summary line repeats the best epoch's values last: the final
metric then describes the weights actually saved (early stopping restores the best epoch).

``metric_definitions.json`` next to this package holds the same list for the pipeline's request
builders, which must not import container code; a test keeps the two equal.
Regenerate it with ``python -m dnn_regressor.metrics``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

_NUMBER = "([0-9.eE+-]+)"

METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "validation:rmse", "Regex": f"validation:rmse={_NUMBER}"},
    {"Name": "train:loss", "Regex": f"train:loss={_NUMBER}"},
    {"Name": "validation:loss", "Regex": f"validation:loss={_NUMBER}"},
]

OBJECTIVE_METRIC = "validation:rmse"
METRIC_DEFINITIONS_FILE = Path(__file__).resolve().parent.parent / "metric_definitions.json"


def _num(value: float) -> str:
    """Six significant digits: enough to rank tuning trials, always matched by ``_NUMBER``."""
    if not math.isfinite(value):
        raise ValueError(f"metric value {value} is not finite")
    return f"{value:.6g}"


def metric_fields(train_loss: float, validation_loss: float) -> str:
    rmse = math.sqrt(validation_loss)
    return (
        f"train:loss={_num(train_loss)} validation:loss={_num(validation_loss)} validation:rmse={_num(rmse)}"
    )


def epoch_line(epoch: int, train_loss: float, validation_loss: float) -> str:
    """``epoch=3 train:loss=0.1234 validation:loss=0.2 validation:rmse=0.447214``."""
    return f"epoch={epoch} {metric_fields(train_loss, validation_loss)}"


def summary_line(best_epoch: int, epochs_run: int, train_loss: float, validation_loss: float) -> str:
    """Last metric line of the log: the saved (best) epoch's values."""
    return (
        f"final: best_epoch={best_epoch} epochs_run={epochs_run} {metric_fields(train_loss, validation_loss)}"
    )


def write_metric_definitions(path: Path = METRIC_DEFINITIONS_FILE) -> None:
    path.write_text(json.dumps(METRIC_DEFINITIONS, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_metric_definitions()
    print(f"wrote {METRIC_DEFINITIONS_FILE}")
