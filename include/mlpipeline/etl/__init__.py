"""ETL: extract -> validate -> split -> write -> upload, streaming in chunks.

The package, one module per step; each imports only the ones listed before it:

* ``common``      - layout names (``CHANNELS``, ``DATA_FILE``...), :class:`DataValidationError`,
  the chunk types passed between steps.
* ``extract``     - open ``file://``/``s3://``/``http(s)://``/``sklearn://`` as a stream, parse CSV
  chunks, :func:`stage_source`.
* ``validate``    - schema checks per chunk, bad rows with reasons.
* ``split``       - keyed-hash channel and shard of each row.
* ``write``       - local channel files in the algorithm's layout, format conversion.
* ``tally``       - row counts, quarantine file, the bad-row bound; the shared read-validate loop.
* ``pipeline``    - :func:`run_etl` (training data) and :class:`EtlResult`.
* ``batch_input`` - :func:`prepare_batch_input` (batch scoring input) and :class:`BatchInputResult`.

Every public name is importable from ``include.mlpipeline.etl``. Design choices, and why:

* **Streaming.** The source is read as a stream, ``data.chunk_size`` rows at a time, and every
  output goes to a local temporary file before a (multipart) upload, so memory stays flat as the
  input grows. The CSV is tokenised with the stdlib ``csv`` reader rather than
  ``pandas.read_csv(chunksize=...)`` because pandas either aborts on a row with too many fields or
  drops it silently without its line number; here such a row is quarantined like any other bad
  row, with its line. Each chunk is then validated with vectorised pandas operations.
* **Quarantine, not silent drops.** Rows failing the schema (non-numeric, missing, out of range,
  wrong field count) are written to ``quarantine/bad_rows.csv`` with their line number and a
  ``reason`` such as ``bmi: 99.0 above max 60``. More than ``data.max_bad_row_share`` of them
  fails the run with :class:`DataValidationError`, after the quarantine file is uploaded so the
  user can look at it.
* **Deterministic split.** A row's channel comes from a keyed BLAKE2 hash of its id (or, without
  an id column, of its parsed values) with the seed as key: the same row lands in the same
  channel whatever the chunk size, row order or run, and duplicate rows never straddle train and
  test. hashlib rather than pandas' hashing so a library upgrade cannot silently reshuffle.
* **Layout the algorithm reads.** ``{channel}/data.csv``: label first, no header, no index.
  ``test_features/`` (no label) feeds batch transform; ``test_labels/`` is what its output is
  scored against. With several training instances the train channel is sharded into one file
  per host, so ``ShardedByS3Key`` gives each host its own part.

pandas and numpy are imported inside functions: DAG files import this package's names cheaply.
"""

from __future__ import annotations

from .batch_input import BatchInputResult, prepare_batch_input
from .common import (
    BATCH_PREFIX,
    BATCH_QUARANTINE_FILE,
    CHANNELS,
    DATA_FILE,
    MANIFEST_FILE,
    OUTPUT_PREFIXES,
    QUARANTINE_FILE,
    DataValidationError,
    RawChunk,
    ValidatedChunk,
)
from .extract import (
    SKLEARN_DATASETS,
    iter_csv_chunks,
    open_source,
    resolve_local_path,
    sklearn_dataset_csv,
    stage_source,
)
from .pipeline import EtlResult, run_etl
from .split import assign_channels, assign_shards, hash_fraction, row_keys
from .validate import validate_chunk
from .write import EXTRA_PREFIXES, LAYOUTS, LocalOutputs, convert_channels, shard_file_name, write_split_chunk

__all__ = [
    "BATCH_PREFIX",
    "BATCH_QUARANTINE_FILE",
    "CHANNELS",
    "DATA_FILE",
    "EXTRA_PREFIXES",
    "LAYOUTS",
    "MANIFEST_FILE",
    "OUTPUT_PREFIXES",
    "QUARANTINE_FILE",
    "SKLEARN_DATASETS",
    "BatchInputResult",
    "DataValidationError",
    "EtlResult",
    "LocalOutputs",
    "RawChunk",
    "ValidatedChunk",
    "assign_channels",
    "assign_shards",
    "convert_channels",
    "hash_fraction",
    "iter_csv_chunks",
    "open_source",
    "prepare_batch_input",
    "resolve_local_path",
    "row_keys",
    "run_etl",
    "shard_file_name",
    "sklearn_dataset_csv",
    "stage_source",
    "validate_chunk",
    "write_split_chunk",
]
