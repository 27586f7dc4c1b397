"""What every ETL step shares: the layout's names, the error, and the chunk types passed along."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

CHANNELS = ("train", "validation", "test")
#: Every prefix :func:`run_etl` writes under the run prefix, in order.
OUTPUT_PREFIXES = ("train", "validation", "test", "test_features", "test_labels")
DATA_FILE = "data.csv"
QUARANTINE_FILE = "quarantine/bad_rows.csv"
BATCH_QUARANTINE_FILE = "quarantine/batch_bad_rows.csv"
MANIFEST_FILE = "manifest.json"
BATCH_PREFIX = "batch_input"
_MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
_LINE = "line"
_REASON = "reason"


class DataValidationError(ValueError):
    """The input data cannot be used: missing columns, too many bad rows, an empty channel."""



@dataclass
class RawChunk:
    """Rows of one chunk as strings, before validation.

    Attributes:
        frame: one column per wanted source column, all ``str``, indexed by file line number.
        malformed: ``(line, reason, fields)`` of rows with the wrong number of fields.
    """

    frame: pd.DataFrame
    malformed: list[tuple[int, str, list[str]]] = field(default_factory=list)


@dataclass
class ValidatedChunk:
    """A chunk split into typed good rows (indexed by line) and bad rows with a ``reason``."""

    good: pd.DataFrame
    bad: pd.DataFrame
