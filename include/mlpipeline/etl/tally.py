"""Tally: count rows read, quarantine the bad ones, and decide whether a run may go on."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import s3
from ..config import ColumnSpec
from .common import DataValidationError, RawChunk, ValidatedChunk
from .extract import iter_csv_chunks, open_source
from .validate import validate_chunk
from .write import LocalOutputs

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping

    import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """Rows read and rows that failed validation, which go to one quarantine file with a header."""

    outputs: LocalOutputs
    quarantine_file: str
    total: int = 0
    bad: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, chunk: RawChunk, checked: ValidatedChunk) -> None:
        self.total += len(chunk.frame) + len(chunk.malformed)
        if len(checked.bad):
            self.bad += len(checked.bad)
            self.outputs.append_with_header(self.quarantine_file, checked.bad)
            self.examples.extend(f"line {r.line}: {r.reason}" for r in checked.bad.head(3).itertuples())

    def settle(self, s3_client: Any, prefix: str, bound: float, what: str = "rows") -> str | None:
        """Upload the quarantine file (its URI, or None when every row was good); fail when the
        bad share is over ``bound`` (``data.max_bad_row_share``) or nothing was good."""
        bad, total = self.bad, self.total
        quarantine_uri = None
        if bad:
            quarantine_uri = s3.upload_file(
                s3_client, self.outputs.files[self.quarantine_file], prefix + self.quarantine_file
            )
            log.warning("quarantined %d of %d %s to %s", bad, total, what, quarantine_uri)
        if total == 0:
            raise DataValidationError("source has a header but no data rows")
        if bad / total > bound:
            raise DataValidationError(
                f"{bad} of {total} rows ({bad / total:.1%}) failed validation, above the allowed "
                f"{bound:.1%} (data.max_bad_row_share). Quarantined rows: {quarantine_uri}. "
                f"First problems: {'; '.join(self.examples[:3])}"
            )
        if bad == total:
            raise DataValidationError(f"all {total} {what} failed validation; see {quarantine_uri}")
        return quarantine_uri


def good_chunks(
    uri: str,
    tally: Tally,
    *,
    columns: Sequence[str],
    schema: Mapping[str, ColumnSpec],
    id_column: str | None,
    chunk_size: int,
    s3_client: Any,
    base_dir: Path | None,
) -> Iterator[pd.DataFrame]:
    """Stream ``uri`` chunk by chunk: read ``columns``, validate them against ``schema``, count and
    quarantine the bad rows in ``tally``, yield each chunk's typed good rows."""
    with open_source(uri, s3_client=s3_client, base_dir=base_dir) as stream:
        for chunk in iter_csv_chunks(stream, chunk_size=chunk_size, columns=columns):
            checked = validate_chunk(chunk, schema, id_column=id_column)
            tally.add(chunk, checked)
            yield checked.good
