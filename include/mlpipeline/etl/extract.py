"""Extract: open ``file://``, ``s3://``, ``http(s)://`` or ``sklearn://`` data as a stream, parse
it into chunks of strings, or stage it unchanged under the run's prefix."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .. import s3
from ..config import PROJECT_ROOT, PipelineConfig
from ..run import RunContext
from ..sagemaker_requests import run_prefix
from .common import _LINE, DataValidationError, RawChunk

log = logging.getLogger(__name__)


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
        with s3.open_stream(s3_client, uri) as body:
            yield body
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
    with open_source(uri, s3_client=s3_client, base_dir=base_dir) as stream:
        counter = _CountingReader(stream)
        s3.upload_stream(s3_client, counter, target)
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
