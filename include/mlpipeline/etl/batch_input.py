"""Batch input: validate the batch source and write ``id,features...`` lines for batch transform."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import s3
from ..config import PipelineConfig
from ..run import RunContext
from ..sagemaker_requests import run_prefix
from .common import BATCH_PREFIX, BATCH_QUARANTINE_FILE, DATA_FILE
from .tally import Tally, good_chunks
from .write import LocalOutputs


@dataclass(frozen=True)
class BatchInputResult:
    """Batch scoring input written by :func:`prepare_batch_input`.

    Attributes:
        uri: S3 prefix holding ``data.csv``: ``id,features...`` per line, no header.
        rows / bad_rows / total_rows: counts; ``quarantine_uri`` as in :class:`EtlResult`.
        id_column / feature_columns: the column order of ``data.csv``.
    """

    uri: str
    rows: int
    bad_rows: int
    total_rows: int
    quarantine_uri: str | None
    id_column: str
    feature_columns: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare_batch_input(
    cfg: PipelineConfig,
    ctx: RunContext,
    *,
    s3_client: Any,
    base_dir: Path | None = None,
    source_uri: str | None = None,
) -> BatchInputResult:
    """Validate ``data.batch_source_uri`` and write ``id,features...`` lines (no header) for a
    batch transform that drops the id on the way in and joins it back on the way out
    (:data:`include.mlpipeline.sagemaker_requests.BATCH_DATA_PROCESSING`)."""
    data = cfg.data
    uri = source_uri or data.batch_source_uri
    if not uri or not data.batch_id_column:
        raise ValueError(
            "data.batch_source_uri and data.batch_id_column must be configured for batch scoring"
        )
    id_column = data.batch_id_column
    features = data.feature_columns
    schema = {name: data.columns[name] for name in features}
    prefix = run_prefix(cfg, ctx)
    with tempfile.TemporaryDirectory(prefix="mlpipeline-batch-") as tmp:
        outputs = LocalOutputs(Path(tmp))
        tally = Tally(outputs, BATCH_QUARANTINE_FILE)
        for good in good_chunks(
            uri,
            tally,
            columns=[id_column, *features],
            schema=schema,
            id_column=id_column,
            chunk_size=data.chunk_size,
            s3_client=s3_client,
            base_dir=base_dir,
        ):
            if len(good):
                outputs.append(f"{BATCH_PREFIX}/{DATA_FILE}", good, label=id_column, features=features)
        quarantine_uri = tally.settle(s3_client, prefix, data.max_bad_row_share, "batch rows")
        s3.upload_file(
            s3_client, outputs.files[f"{BATCH_PREFIX}/{DATA_FILE}"], f"{prefix}{BATCH_PREFIX}/{DATA_FILE}"
        )
    return BatchInputResult(
        uri=f"{prefix}{BATCH_PREFIX}/",
        rows=tally.total - tally.bad,
        bad_rows=tally.bad,
        total_rows=tally.total,
        quarantine_uri=quarantine_uri,
        id_column=id_column,
        feature_columns=features,
    )
