"""The ETL run: extract -> validate -> split -> write -> upload one run's channels and manifest."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import s3
from ..config import PipelineConfig
from ..run import RunContext
from ..sagemaker_requests import run_prefix
from .common import CHANNELS, DATA_FILE, MANIFEST_FILE, OUTPUT_PREFIXES, QUARANTINE_FILE, DataValidationError
from .split import assign_channels, assign_shards, row_keys
from .tally import Tally, good_chunks
from .write import EXTRA_PREFIXES, LAYOUTS, LocalOutputs, convert_channels, write_split_chunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EtlResult:
    """Where ETL put the data and how much of it there is.

    Attributes:
        prefix: the run's S3 prefix, ``s3://{bucket}/{model}/{run_key}/``.
        channels: ``train``/``validation``/``test``/``test_features``/``test_labels`` -> S3 prefix
            (with a trailing slash, so ``test/`` never matches ``test_features/``).
        rows: good rows per channel (``train``, ``validation``, ``test``).
        total_rows: data rows read from the source (good + bad).
        bad_rows: rows quarantined.
        quarantine_uri: the quarantine CSV, or ``None`` when every row was good.
        manifest_uri: JSON summary of this ETL run next to the data.
        feature_columns / label_column: the algorithm CSV's columns after the label.
        train_files: number of files (shards) in the train channel.
    """

    prefix: str
    channels: dict[str, str]
    rows: dict[str, int]
    total_rows: int
    bad_rows: int
    quarantine_uri: str | None
    manifest_uri: str
    feature_columns: list[str]
    label_column: str
    train_files: int = 1

    @property
    def train_uri(self) -> str:
        return self.channels["train"]

    @property
    def validation_uri(self) -> str:
        return self.channels["validation"]

    @property
    def test_uri(self) -> str:
        return self.channels["test"]

    @property
    def data_uris(self) -> dict[str, str]:
        """Channel -> URI, the shape :meth:`RunContext.with_data` takes."""
        return dict(self.channels)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict, for XCom."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EtlResult:
        return cls(**dict(data))



def run_etl(
    cfg: PipelineConfig,
    ctx: RunContext,
    *,
    s3_client: Any,
    base_dir: Path | None = None,
    source_uri: str | None = None,
    shards: int | None = None,
) -> EtlResult:
    """Extract ``data.source_uri``, validate, split, format and upload one run's channels.

    Args:
        cfg: the merged config; ``data`` drives everything here.
        ctx: the run; its ``run_key`` names the S3 prefix.
        s3_client: boto3 S3 client for reading ``s3://`` sources and writing the outputs.
        base_dir: what relative ``file://`` paths resolve against (default: project root).
        source_uri: read this instead of ``data.source_uri`` (a test, a backfill).
        shards: train files to write; default ``training.instance_count``, so each host of a
            ``ShardedByS3Key`` job gets one.

    Raises:
        DataValidationError: missing columns, no rows, bad-row share over the bound, or a
            channel left empty by the split.
    """
    if ctx.model != cfg.model:
        raise ValueError(f"run context is for model {ctx.model!r} but config is for {cfg.model!r}")
    data = cfg.data
    uri = source_uri or data.source_uri
    features = data.feature_columns
    wanted = [*([data.id_column] if data.id_column else []), *data.columns]
    shard_count = shards if shards is not None else cfg.training.instance_count
    key_columns = [data.id_column] if data.id_column else list(data.columns)
    prefix = run_prefix(cfg, ctx)

    filtered = 0
    with tempfile.TemporaryDirectory(prefix="mlpipeline-etl-") as tmp:
        outputs = LocalOutputs(Path(tmp))
        tally = Tally(outputs, QUARANTINE_FILE)
        for good in good_chunks(
            uri,
            tally,
            columns=wanted,
            schema=data.columns,
            id_column=data.id_column,
            chunk_size=data.chunk_size,
            s3_client=s3_client,
            base_dir=base_dir,
        ):
            if data.label_values is not None and len(good):  # a subset of the classes
                keep = good[data.label_column].isin(data.label_values)
                filtered += int((~keep).sum())
                good = good[keep]
            if len(good):
                keys = row_keys(good, key_columns)
                write_split_chunk(
                    outputs,
                    good,
                    assign_channels(keys, data.split),
                    label=data.label_column,
                    features=features,
                    shards=assign_shards(keys, data.split.seed, shard_count),
                    shard_count=shard_count,
                )

        if filtered:
            log.info("left out %d rows whose label is not in data.label_values %s", filtered, data.label_values)
        quarantine_uri = tally.settle(s3_client, prefix, data.max_bad_row_share)

        rows = {
            "train": sum(n for rel, n in outputs.rows.items() if rel.startswith("train/")),
            "validation": outputs.rows.get(f"validation/{DATA_FILE}", 0),
            "test": outputs.rows.get(f"test/{DATA_FILE}", 0),
        }
        for channel in CHANNELS:
            if rows[channel] == 0 and getattr(data.split, channel) > 0:
                raise DataValidationError(
                    f"the {channel} channel is empty: {tally.total - tally.bad} good rows are too few for split "
                    f"{data.split.train}/{data.split.validation}/{data.split.test}"
                )
        convert_channels(outputs, data)
        train_files = sum(1 for rel in outputs.files if rel.startswith("train/"))
        for relative, path in sorted(outputs.files.items()):
            if relative != QUARANTINE_FILE:
                s3.upload_file(s3_client, path, prefix + relative)

    channels = {name: f"{prefix}{name}/" for name in OUTPUT_PREFIXES}
    channels.update({name: f"{prefix}{name}/" for name in EXTRA_PREFIXES[data.format]})
    # the monitoring baseline profiles tabular training data: the CSV copy when channels aren't CSV
    channels["baseline"] = channels.get("train_csv", channels["train"])
    manifest_uri = prefix + MANIFEST_FILE
    result = EtlResult(
        prefix=prefix,
        channels=channels,
        rows=rows,
        total_rows=tally.total,
        bad_rows=tally.bad,
        quarantine_uri=quarantine_uri,
        manifest_uri=manifest_uri,
        feature_columns=features,
        label_column=data.label_column,
        train_files=train_files,
    )
    s3.put_json(
        s3_client,
        manifest_uri,
        {
            **result.to_dict(),
            "model": cfg.model,
            "stage": cfg.stage,
            "run_id": ctx.run_id,
            "source_uri": uri,
            "split": data.split.model_dump(),
            "layout": LAYOUTS[data.format],
        },
        sort_keys=True,
    )
    return result
