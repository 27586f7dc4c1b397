"""ETL: extract -> validate -> split -> format -> upload, streaming in chunks.

The steps are separate functions so each can be tested alone; :func:`run_etl` and
:func:`prepare_batch_input` wire them. Design choices, and why:

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

pandas and numpy are imported inside functions: DAG files import this module's names cheaply.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import tempfile
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .config import PROJECT_ROOT, ColumnSpec, PipelineConfig, SplitConfig
from .formats.csv import write_algorithm_csv, write_csv_with_header
from .run import RunContext, split_s3_uri
from .sagemaker_requests import run_prefix

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

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


# ------------------------------------------------------------------------------------ extract


def resolve_local_path(uri: str, base_dir: Path | None = None) -> Path:
    """``file://relative/path`` resolves against ``base_dir`` (default: the project root);
    ``file:///abs/path`` is absolute. (``urlparse`` would read ``include`` as a host name.)"""
    if not uri.startswith("file://"):
        raise ValueError(f"not a file:// URI: {uri!r}")
    path = Path(uri[len("file://") :])
    return path if path.is_absolute() else (base_dir or PROJECT_ROOT) / path


@contextlib.contextmanager
def open_source(
    uri: str,
    *,
    s3_client: Any = None,
    base_dir: Path | None = None,
    timeout: float = 60.0,
) -> Iterator[BinaryIO]:
    """Open ``file://``, ``s3://``, ``http://`` or ``https://`` data as a binary stream.

    Nothing is read up front: callers pull bytes as they parse, which keeps memory flat. For S3
    the caller passes the boto3 client (the Airflow hook's), so credentials and endpoint - AWS
    or localmaker - are the connection's business, not this function's.
    """
    if uri.startswith("file://"):
        path = resolve_local_path(uri, base_dir)
        if not path.is_file():
            raise FileNotFoundError(f"{uri}: no such file ({path})")
        with open(path, "rb") as fh:
            yield fh
    elif uri.startswith("s3://"):
        if s3_client is None:
            raise ValueError(f"{uri}: reading from S3 needs an s3_client")
        bucket, key = split_s3_uri(uri)
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            yield body
        finally:
            body.close()
    elif uri.startswith("sklearn://"):
        yield sklearn_dataset_csv(uri)
    elif uri.startswith(("https://", "http://")):
        request = urllib.request.Request(uri, headers={"User-Agent": "mlpipeline-etl"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            yield response
    else:
        raise ValueError(f"unsupported data source {uri!r}: use file://, s3://, http://, https:// or sklearn://")


#: data sets scikit-learn ships inside its wheel (no download), by ``sklearn://<name>``
SKLEARN_DATASETS = ("breast_cancer", "diabetes", "digits", "iris", "wine")


def sklearn_dataset_csv(uri: str) -> BinaryIO:
    """A data set scikit-learn ships (``sklearn://digits``) as CSV with a header; the label is
    ``target``, ``row_id`` (0, 1, ...) a stable key usable as ``id_column`` / ``batch_id_column``.
    Other column names are the set's own (``pixel_0_0``..., ``mean radius``...)."""
    name = uri[len("sklearn://") :].strip("/")
    if name not in SKLEARN_DATASETS:
        raise ValueError(f"{uri}: unknown scikit-learn data set; choose one of {list(SKLEARN_DATASETS)}")
    from sklearn import datasets

    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    if name == "diabetes":  # the scaled variant is the only one with as_frame; keep it honest
        frame = datasets.load_diabetes(as_frame=True, scaled=False).frame
    frame.insert(0, "row_id", range(len(frame)))
    buf = io.BytesIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    buf.seek(0)
    return buf


def iter_csv_chunks(
    stream: BinaryIO,
    *,
    chunk_size: int,
    columns: Sequence[str],
    encoding: str = "utf-8-sig",
) -> Iterator[RawChunk]:
    """Parse a CSV with a header into :class:`RawChunk` s of at most ``chunk_size`` rows.

    Only ``columns`` are kept (extra source columns are dropped with a log line, so a new upstream
    column does not break training). Line numbers count the header as line 1, as an editor does.

    Raises:
        DataValidationError: no header, duplicate header names, or wanted columns missing.
    """
    import pandas as pd

    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    reader = csv.reader(text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataValidationError("source is empty: expected a header line") from None
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise DataValidationError(f"header has duplicate columns: {duplicates}")
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataValidationError(f"source lacks columns {missing}; its header is {header}")
    extra = [h for h in header if h not in columns]
    if extra:
        log.warning("ignoring source columns not in the schema: %s", extra)
    positions = [header.index(c) for c in columns]
    width = len(header)

    rows: list[list[str]] = []
    lines: list[int] = []
    malformed: list[tuple[int, str, list[str]]] = []
    for fields in reader:
        line = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line
        if len(fields) != width:
            malformed.append((line, f"expected {width} fields, got {len(fields)}", fields))
        else:
            rows.append([fields[p] for p in positions])
            lines.append(line)
        if len(rows) + len(malformed) >= chunk_size:
            yield RawChunk(
                pd.DataFrame(rows, columns=list(columns), index=pd.Index(lines, name=_LINE), dtype=str),
                malformed,
            )
            rows, lines, malformed = [], [], []
    if rows or malformed:
        yield RawChunk(
            pd.DataFrame(rows, columns=list(columns), index=pd.Index(lines, name=_LINE), dtype=str), malformed
        )


# ----------------------------------------------------------------------------------- validate


def validate_chunk(
    chunk: RawChunk,
    columns: Mapping[str, ColumnSpec],
    *,
    id_column: str | None = None,
) -> ValidatedChunk:
    """Check every row against the schema; typed good rows and bad rows with reasons.

    A row may fail several checks; its ``reason`` lists them all, ``; ``-separated, so one look at
    the quarantine file tells the whole story. ``int`` columns come out as ``Int64``, ``float``
    columns as ``float64``; a nullable column's empty fields become its ``fill_value`` (or NA).
    """
    import numpy as np
    import pandas as pd

    raw = chunk.frame
    reasons = pd.Series("", index=raw.index, dtype=object)

    def flag(mask: pd.Series, message: Callable[[pd.Index], pd.Series | str]) -> None:
        """Add ``message`` to the reasons of rows in ``mask``; built for those rows only, since
        bad rows are usually few and formatting strings for every row is the expensive part."""
        if not mask.any():
            return
        rows = mask.index[mask.to_numpy()]
        text = message(rows)
        current = reasons.loc[rows]
        reasons.loc[rows] = np.where(current.eq(""), text, current + "; " + text)

    typed: dict[str, pd.Series] = {}
    if id_column is not None:
        ids = raw[id_column].str.strip()
        flag(ids.eq(""), lambda rows: f"{id_column}: missing value")
        typed[id_column] = ids
    for name, spec in columns.items():
        text = raw[name].str.strip()
        missing = text.str.lower().isin(_MISSING_TOKENS)
        number = pd.to_numeric(text.where(~missing), errors="coerce")
        not_number = ~missing & (number.isna() | np.isinf(number))
        flag(
            not_number,
            lambda rows, t=text, n=name: n + ": " + t.loc[rows].map(repr) + " is not a finite number",
        )
        if not spec.nullable:
            flag(missing, lambda rows, n=name: f"{n}: missing value")
        ok = number.notna() & ~not_number
        if spec.type == "int":
            flag(
                ok & (number % 1 != 0),
                lambda rows, t=text, n=name: n + ": " + t.loc[rows] + " is not an integer",
            )
        if spec.min is not None:
            low = f" below min {spec.min:g}"
            flag(ok & (number < spec.min), lambda rows, t=text, n=name, m=low: n + ": " + t.loc[rows] + m)
        if spec.max is not None:
            high = f" above max {spec.max:g}"
            flag(ok & (number > spec.max), lambda rows, t=text, n=name, m=high: n + ": " + t.loc[rows] + m)
        if spec.nullable and spec.fill_value is not None:
            number = number.where(~missing, spec.fill_value)
        typed[name] = number

    bad_mask = reasons.ne("")
    good = pd.DataFrame({name: series[~bad_mask] for name, series in typed.items()})
    for name, spec in columns.items():
        good[name] = good[name].astype("Int64" if spec.type == "int" else "float64")

    bad = raw[bad_mask].copy()
    bad.insert(0, _REASON, reasons[bad_mask])
    bad = bad.reset_index()
    if chunk.malformed:
        source_columns = list(raw.columns)
        ragged = pd.DataFrame(
            [
                {_LINE: line, _REASON: reason, **dict(zip(source_columns, fields, strict=False))}
                for line, reason, fields in chunk.malformed
            ],
            columns=[_LINE, _REASON, *source_columns],
        )
        bad = (
            pd.concat([bad, ragged], ignore_index=True)
            .sort_values(_LINE, kind="stable")
            .reset_index(drop=True)
        )
    return ValidatedChunk(good=good, bad=bad)


# -------------------------------------------------------------------------------------- split


def row_keys(frame: pd.DataFrame, key_columns: Sequence[str]) -> list[bytes]:
    """Stable per-row keys for hashing: the id as UTF-8, or the row's values as little-endian
    float64 (``-0.0`` as ``0.0``, every NaN alike), independent of how the number was spelled."""
    import numpy as np
    import pandas as pd

    if not all(pd.api.types.is_numeric_dtype(frame[c]) for c in key_columns):
        return [
            "\x1f".join(map(str, row)).encode("utf-8")
            for row in frame[list(key_columns)].itertuples(index=False)
        ]
    values = frame[list(key_columns)].astype("float64").to_numpy(dtype="<f8", na_value=np.nan, copy=True)
    values += 0.0
    values[np.isnan(values)] = np.nan
    contiguous = np.ascontiguousarray(values)
    width = contiguous.shape[1] * 8
    flat = contiguous.tobytes()
    return [flat[i * width : (i + 1) * width] for i in range(contiguous.shape[0])]


def hash_fraction(key: bytes, seed: int, *, salt: bytes = b"split") -> float:
    """A uniform number in ``[0, 1)`` determined by ``key``, ``seed`` and ``salt`` alone."""
    digest = hashlib.blake2b(
        key, digest_size=8, key=seed.to_bytes(8, "little"), person=salt.ljust(16, b"\0")[:16]
    )
    return int.from_bytes(digest.digest(), "big") / 2**64


def assign_channels(keys: Sequence[bytes], split: SplitConfig) -> list[str]:
    """Channel of each row key: ``train`` / ``validation`` / ``test`` by cumulative fraction."""
    train_edge = split.train
    validation_edge = split.train + split.validation
    channels = []
    for key in keys:
        u = hash_fraction(key, split.seed)
        channels.append("train" if u < train_edge else "validation" if u < validation_edge else "test")
    return channels


def assign_shards(keys: Sequence[bytes], seed: int, shards: int) -> list[int]:
    """Shard of each train row; hashed independently of the split so shards stay balanced."""
    if shards <= 1:
        return [0] * len(keys)
    return [min(int(hash_fraction(key, seed, salt=b"shard") * shards), shards - 1) for key in keys]


# ------------------------------------------------------------------------------------- format


class LocalOutputs:
    """Temporary local files per output (channel / shard), appended chunk by chunk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, Path] = {}
        self.rows: dict[str, int] = {}

    def path(self, relative: str) -> Path:
        if relative not in self.files:
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"")
            self.files[relative] = target
            self.rows[relative] = 0
        return self.files[relative]

    def append(
        self, relative: str, frame: pd.DataFrame, *, label: str | None, features: Sequence[str]
    ) -> None:
        self.rows[relative] = self.rows.get(relative, 0) + write_algorithm_csv(
            frame, self.path(relative), label=label, features=features, append=True
        )

    def append_with_header(self, relative: str, frame: pd.DataFrame) -> None:
        self.rows[relative] = self.rows.get(relative, 0) + write_csv_with_header(
            frame, self.path(relative), append=True
        )


def shard_file_name(shard: int, shards: int) -> str:
    """``data.csv`` for one file, ``data-000.csv``... when the train channel is sharded."""
    return DATA_FILE if shards <= 1 else f"data-{shard:03d}.csv"


def write_split_chunk(
    outputs: LocalOutputs,
    good: pd.DataFrame,
    channels: Sequence[str],
    *,
    label: str,
    features: Sequence[str],
    shards: Sequence[int] | None = None,
    shard_count: int = 1,
) -> None:
    """Append one validated chunk to the channel files in the algorithm's layout."""
    import numpy as np

    assigned = np.asarray(channels)
    train = good[assigned == "train"]
    if shard_count > 1 and shards is not None:
        shard_of = np.asarray(shards)[assigned == "train"]
        for shard in range(shard_count):
            part = train[shard_of == shard]
            if len(part):
                outputs.append(
                    f"train/{shard_file_name(shard, shard_count)}", part, label=label, features=features
                )
    elif len(train):
        outputs.append(f"train/{DATA_FILE}", train, label=label, features=features)
    for channel in ("validation", "test"):
        part = good[assigned == channel]
        if len(part):
            outputs.append(f"{channel}/{DATA_FILE}", part, label=label, features=features)
    test = good[assigned == "test"]
    if len(test):
        outputs.append(f"test_features/{DATA_FILE}", test, label=None, features=features)
        outputs.append(f"test_labels/{DATA_FILE}", test, label=label, features=[])


# ------------------------------------------------------------------------------ format conversion

#: prefixes written besides OUTPUT_PREFIXES, per data.format
EXTRA_PREFIXES: dict[str, tuple[str, ...]] = {
    "csv": (),
    "recordio-protobuf": ("train_csv",),
    "image": ("train_lst", "validation_lst", "test_lst"),
}
LAYOUTS = {
    "csv": "label first, no header, no index (text/csv)",
    "recordio-protobuf": "train/validation/test: RecordIO-protobuf records (features + label); "
    "train_csv, test_features, test_labels: CSV",
    "image": "train/validation/test: PNG images; <channel>_lst: .lst files (index, label, path); "
    "test_labels: CSV",
}


def convert_channels(outputs: LocalOutputs, data: Any) -> None:
    """Rewrite the label-first CSV channel files in ``data.format`` (in place, before upload).

    ``test_features``/``test_labels`` stay CSV: evaluation and batch scoring send CSV rows (the
    built-ins read CSV at inference) and score against the labels in order.
    """
    if data.format == "csv":
        return
    import numpy as np

    for relative in sorted(outputs.files):
        channel = relative.split("/", 1)[0]
        if channel not in CHANNELS:
            continue
        path = outputs.files[relative]
        rows = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2) if path.stat().st_size else None
        del outputs.files[relative]
        n = outputs.rows.pop(relative, 0)
        if data.format == "recordio-protobuf":
            if channel == "train":  # the baseline's CSV copy
                outputs.files[f"train_csv/{relative.split('/', 1)[1]}"] = path
                outputs.rows[f"train_csv/{relative.split('/', 1)[1]}"] = n
            from .formats.recordio import write_recordio_protobuf

            target = path.with_suffix(".rec")
            with open(target, "wb") as fh:
                if rows is not None:
                    write_recordio_protobuf(fh, rows[:, 1:], rows[:, 0])
            new = relative[: -len(".csv")] + ".rec"
            outputs.files[new] = target
            outputs.rows[new] = n
        elif data.format == "image":
            _write_images(outputs, channel, relative, rows, data.image)


def _write_images(outputs: LocalOutputs, channel: str, relative: str, rows: Any, layout: Any) -> None:
    """One PNG per row under ``<channel>/`` and a ``<channel>_lst/<channel>.lst`` listing them."""
    import numpy as np

    from .formats.imagelist import LstEntry, save_png, write_lst

    if rows is None:
        return
    stem = Path(relative).stem
    h, w = layout.source_shape
    channels, out_h, out_w = layout.shape
    entries = []
    for i, row in enumerate(rows):
        name = f"{stem}-{i:06d}.png"
        rel = f"{channel}/{name}"
        target = outputs.root / "images" / rel
        grey = np.clip(np.asarray(row[1:], dtype=np.float64).reshape(h, w) / layout.value_max, 0.0, 1.0)
        save_png(target, grey, size=(out_w, out_h), mode="RGB" if channels == 3 else "L")
        outputs.files[rel] = target
        outputs.rows[rel] = 1
        entries.append(LstEntry(index=i, label=int(row[0]), path=name))
    lst = outputs.root / "images" / f"{channel}_lst" / f"{channel}.lst"
    lst.parent.mkdir(parents=True, exist_ok=True)
    write_lst(lst, entries)
    outputs.files[f"{channel}_lst/{channel}.lst"] = lst
    outputs.rows[f"{channel}_lst/{channel}.lst"] = len(entries)


# ------------------------------------------------------------------------------------- upload


def upload_file(s3_client: Any, path: Path, uri: str) -> str:
    """Upload one local file (multipart for big ones, via boto3's transfer manager)."""
    bucket, key = split_s3_uri(uri)
    s3_client.upload_file(str(path), bucket, key)
    return uri


def upload_json(s3_client: Any, payload: Mapping[str, Any], uri: str) -> str:
    bucket, key = split_s3_uri(uri)
    s3_client.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(payload, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return uri


# ----------------------------------------------------------------------------------- pipeline


def _check_bad_share(
    bad: int, total: int, bound: float, quarantine_uri: str | None, examples: list[str]
) -> None:
    if total == 0:
        raise DataValidationError("source has a header but no data rows")
    share = bad / total
    if share > bound:
        sample = "; ".join(examples[:3])
        raise DataValidationError(
            f"{bad} of {total} rows ({share:.1%}) failed validation, above the allowed "
            f"{bound:.1%} (data.max_bad_row_share). Quarantined rows: {quarantine_uri}. "
            f"First problems: {sample}"
        )


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

    total = bad = filtered = 0
    examples: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlpipeline-etl-") as tmp:
        outputs = LocalOutputs(Path(tmp))
        with open_source(uri, s3_client=s3_client, base_dir=base_dir) as stream:
            for chunk in iter_csv_chunks(stream, chunk_size=data.chunk_size, columns=wanted):
                checked = validate_chunk(chunk, data.columns, id_column=data.id_column)
                total += len(chunk.frame) + len(chunk.malformed)
                if len(checked.bad):
                    bad += len(checked.bad)
                    outputs.append_with_header(QUARANTINE_FILE, checked.bad)
                    examples.extend(f"line {r.line}: {r.reason}" for r in checked.bad.head(3).itertuples())
                good = checked.good
                if data.label_values is not None and len(good):  # a subset of the classes
                    keep = good[data.label_column].isin(data.label_values)
                    filtered += int((~keep).sum())
                    good = good[keep]
                if len(good):
                    keys = row_keys(good, key_columns)
                    channels = assign_channels(keys, data.split)
                    shard_ids = assign_shards(keys, data.split.seed, shard_count)
                    write_split_chunk(
                        outputs,
                        good,
                        channels,
                        label=data.label_column,
                        features=features,
                        shards=shard_ids,
                        shard_count=shard_count,
                    )

        if filtered:
            log.info("left out %d rows whose label is not in data.label_values %s", filtered, data.label_values)
        quarantine_uri = None
        if bad:
            quarantine_uri = upload_file(s3_client, outputs.files[QUARANTINE_FILE], prefix + QUARANTINE_FILE)
            log.warning("quarantined %d of %d rows to %s", bad, total, quarantine_uri)
        _check_bad_share(bad, total, data.max_bad_row_share, quarantine_uri, examples)
        if bad == total:
            raise DataValidationError(f"all {total} rows failed validation; see {quarantine_uri}")

        rows = {
            "train": sum(n for rel, n in outputs.rows.items() if rel.startswith("train/")),
            "validation": outputs.rows.get(f"validation/{DATA_FILE}", 0),
            "test": outputs.rows.get(f"test/{DATA_FILE}", 0),
        }
        for channel in CHANNELS:
            if rows[channel] == 0 and getattr(data.split, channel) > 0:
                raise DataValidationError(
                    f"the {channel} channel is empty: {total - bad} good rows are too few for split "
                    f"{data.split.train}/{data.split.validation}/{data.split.test}"
                )
        convert_channels(outputs, data)
        train_files = sum(1 for rel in outputs.files if rel.startswith("train/"))
        for relative, path in sorted(outputs.files.items()):
            if relative != QUARANTINE_FILE:
                upload_file(s3_client, path, prefix + relative)

    channels = {name: f"{prefix}{name}/" for name in OUTPUT_PREFIXES}
    channels.update({name: f"{prefix}{name}/" for name in EXTRA_PREFIXES[data.format]})
    # the monitoring baseline profiles tabular training data: the CSV copy when channels aren't CSV
    channels["baseline"] = channels.get("train_csv", channels["train"])
    manifest_uri = prefix + MANIFEST_FILE
    result = EtlResult(
        prefix=prefix,
        channels=channels,
        rows=rows,
        total_rows=total,
        bad_rows=bad,
        quarantine_uri=quarantine_uri,
        manifest_uri=manifest_uri,
        feature_columns=features,
        label_column=data.label_column,
        train_files=train_files,
    )
    upload_json(
        s3_client,
        {
            **result.to_dict(),
            "model": cfg.model,
            "stage": cfg.stage,
            "run_id": ctx.run_id,
            "source_uri": uri,
            "split": data.split.model_dump(),
            "layout": LAYOUTS[data.format],
        },
        manifest_uri,
    )
    return result


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
    total = bad = 0
    examples: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlpipeline-batch-") as tmp:
        outputs = LocalOutputs(Path(tmp))
        with open_source(uri, s3_client=s3_client, base_dir=base_dir) as stream:
            for chunk in iter_csv_chunks(stream, chunk_size=data.chunk_size, columns=[id_column, *features]):
                checked = validate_chunk(chunk, schema, id_column=id_column)
                total += len(chunk.frame) + len(chunk.malformed)
                if len(checked.bad):
                    bad += len(checked.bad)
                    outputs.append_with_header(BATCH_QUARANTINE_FILE, checked.bad)
                    examples.extend(f"line {r.line}: {r.reason}" for r in checked.bad.head(3).itertuples())
                if len(checked.good):
                    outputs.append(
                        f"{BATCH_PREFIX}/{DATA_FILE}", checked.good, label=id_column, features=features
                    )
        quarantine_uri = None
        if bad:
            quarantine_uri = upload_file(
                s3_client, outputs.files[BATCH_QUARANTINE_FILE], prefix + BATCH_QUARANTINE_FILE
            )
        _check_bad_share(bad, total, data.max_bad_row_share, quarantine_uri, examples)
        if bad == total:
            raise DataValidationError(f"all {total} batch rows failed validation; see {quarantine_uri}")
        upload_file(
            s3_client, outputs.files[f"{BATCH_PREFIX}/{DATA_FILE}"], f"{prefix}{BATCH_PREFIX}/{DATA_FILE}"
        )
    return BatchInputResult(
        uri=f"{prefix}{BATCH_PREFIX}/",
        rows=total - bad,
        bad_rows=bad,
        total_rows=total,
        quarantine_uri=quarantine_uri,
        id_column=id_column,
        feature_columns=features,
    )


def stage_source(
    cfg: PipelineConfig,
    ctx: RunContext,
    *,
    s3_client: Any,
    base_dir: Path | None = None,
    source_uri: str | None = None,
) -> dict[str, Any]:
    """Extract: stream the configured source into ``<run prefix>/raw/`` unchanged.

    Later steps (and their retries) then read one S3 object, whatever the source was, and the
    exact input of every run is kept next to its outputs. Streams with a multipart upload, so
    memory stays flat whatever the source's size.
    """
    uri = source_uri or cfg.data.source_uri
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "data.csv"
    target = f"{run_prefix(cfg, ctx).rstrip('/')}/raw/{name}"
    bucket, key = split_s3_uri(target)
    with open_source(uri, s3_client=s3_client, base_dir=base_dir) as stream:
        counter = _CountingReader(stream)
        s3_client.upload_fileobj(counter, bucket, key)
    if counter.size == 0:
        raise DataValidationError(f"{uri}: the source is empty")
    return {"source": uri, "uri": target, "bytes": counter.size}


class _CountingReader:
    """A file-like wrapper that counts what passes through it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.size += len(data)
        return data
