"""Reading the ``train`` and ``validation`` CSV channels, refusing bad data with its location.

A channel is a folder of CSV files (SageMaker may hand a host several, in subfolders, and
``.gz``-compressed). Each file is label + features, label in the first column unless the
``label`` hyperparameter says otherwise, as the SageMaker built-ins expect. Rows and columns in
messages are 1-based and count lines of the file (header included), so a user can open the file
at the line we name. Validation happens before TensorFlow is imported: bad input fails in
milliseconds, not after a 5 s import.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ClientError

CSV_CONTENT_TYPES = ("text/csv", "csv", "text/x-csv", "application/csv")


@dataclass(frozen=True)
class CsvFile:
    """One parsed file: optional header and a float64 block of data rows."""

    display: str
    header: list[str] | None
    values: np.ndarray

    @property
    def n_columns(self) -> int:
        return int(self.values.shape[1])


@dataclass(frozen=True)
class Channel:
    """All files of one channel, stacked, with the first file kept as the reference for messages."""

    name: str
    files: list[CsvFile]
    values: np.ndarray

    @property
    def n_columns(self) -> int:
        return self.files[0].n_columns

    @property
    def header(self) -> list[str] | None:
        return next((f.header for f in self.files if f.header is not None), None)


@dataclass(frozen=True)
class Dataset:
    """Features and label of both channels, split the same way.

    Attributes:
        feature_names: feature columns in file order (label removed): the serving order.
        label_name / label_index: the label column and its 0-based index in the files.
        has_header: whether names came from a header row (else generated ``feature_<i>``).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_validation: np.ndarray
    y_validation: np.ndarray
    feature_names: list[str]
    label_name: str
    label_index: int
    has_header: bool
    train_files: list[str]
    validation_files: list[str]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


def _column_ref(j: int, names: list[str] | None) -> str:
    """``column 3 ('x2')``: 1-based position plus the header name when there is one."""
    if names is not None and j < len(names):
        return f"column {j + 1} ('{names[j]}')"
    return f"column {j + 1}"


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    # utf-8-sig drops the BOM spreadsheet exports put in front of the header.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _rows(path: Path, display: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank rows with their 1-based line numbers."""
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            try:
                for row in reader:
                    if row and any(cell.strip() for cell in row):
                        yield reader.line_num, row
            except csv.Error as exc:
                raise ClientError(f"{display} row {reader.line_num}: malformed CSV ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ClientError(
            f"{display} is not UTF-8 text CSV (undecodable byte at offset {exc.start})"
        ) from exc
    except (gzip.BadGzipFile, EOFError) as exc:
        raise ClientError(f"{display} is not a valid gzip file ({exc})") from exc
    except OSError as exc:
        raise ClientError(f"cannot read {display}: {exc.strerror or exc}") from exc


def _detect_header(first: list[str], line: int, display: str, mode: str) -> bool:
    if mode == "true":
        return True
    if mode == "false":
        return False
    cells = [c.strip() for c in first]
    text = [c for c in cells if c and not _is_number(c)]
    numbers = [c for c in cells if c and _is_number(c)]
    if text and numbers:
        raise ClientError(
            f"{display} row {line} mixes numbers and text, so it is neither clearly a header nor "
            f"data; set hyperparameter header to 'true' or 'false'"
        )
    return bool(text)


def _locate_bad_cell(
    rows: list[list[str]], lines: list[int], display: str, names: list[str] | None
) -> ClientError:
    for line, row in zip(lines, rows, strict=True):
        for j, cell in enumerate(row):
            stripped = cell.strip()
            if not stripped:
                return ClientError(
                    f"{display} row {line}, {_column_ref(j, names)} is empty; "
                    f"fill or drop missing values before training"
                )
            try:
                value = float(stripped)
            except ValueError:
                return ClientError(
                    f"{display} row {line}, {_column_ref(j, names)}: '{stripped[:40]}' is not a number; "
                    f"every column must be numeric (encode categories before training)"
                )
            if not math.isfinite(value):
                kind = "NaN" if math.isnan(value) else "infinite"
                return ClientError(
                    f"{display} row {line}, {_column_ref(j, names)} is {kind} ('{stripped}'); "
                    f"fill or drop missing values before training"
                )
    return ClientError(f"{display}: a cell is not a finite number")  # pragma: no cover - defensive


def read_csv_file(path: Path, display: str, header_mode: str) -> CsvFile:
    """Parse one file into floats; any empty, non-numeric or non-finite cell is an error."""
    lines: list[int] = []
    rows: list[list[str]] = []
    for line, row in _rows(path, display):
        lines.append(line)
        rows.append(row)
    if not rows:
        raise ClientError(f"{display} is empty; remove it or give it data rows")
    header: list[str] | None = None
    if _detect_header(rows[0], lines[0], display, header_mode):
        header = [c.strip() for c in rows[0]]
        for j, name in enumerate(header):
            if not name:
                raise ClientError(f"{display} header (row {lines[0]}) has an empty name in column {j + 1}")
        duplicates = sorted({n for n in header if header.count(n) > 1})
        if duplicates:
            raise ClientError(f"{display} header (row {lines[0]}) repeats column name(s) {duplicates}")
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise ClientError(f"{display} has a header row but no data rows")
    width = len(header) if header is not None else len(rows[0])
    reference = "the header" if header is not None else f"row {lines[0]}"
    for line, row in zip(lines, rows, strict=True):
        if len(row) != width:
            raise ClientError(
                f"{display} row {line} has {len(row)} columns, expected {width} (as in {reference})"
            )
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        raise _locate_bad_cell(rows, lines, display, header) from None
    if not np.isfinite(values).all():
        raise _locate_bad_cell(rows, lines, display, header)
    return CsvFile(display=display, header=header, values=values)


def channel_files(directory: Path) -> list[Path]:
    """Data files of a channel, in a stable order.

    Names starting with ``.`` or ``_`` are skipped (Hadoop/Spark convention for markers such as
    ``_SUCCESS`` and editor or checkpoint folders), at any depth.
    """
    found = []
    for path in directory.rglob("*"):
        rel = path.relative_to(directory).parts
        if any(part.startswith((".", "_")) for part in rel):
            continue
        if path.is_file():
            found.append(path)
    return sorted(found)


def check_content_type(channel: str, data_config: dict[str, Any]) -> None:
    """Refuse channels declared in a format we do not read (e.g. RecordIO-protobuf)."""
    declared = (data_config.get(channel) or {}).get("ContentType")
    if not declared:
        return
    base = str(declared).split(";")[0].strip().lower()
    if base not in CSV_CONTENT_TYPES:
        raise ClientError(
            f"channel '{channel}' has ContentType '{declared}', but this algorithm reads text/csv; "
            f"convert the data to CSV or set ContentType to text/csv"
        )


def load_channel(name: str, directory: Path, header_mode: str) -> Channel:
    """Read every file of a channel and check they agree with each other."""
    if not directory.is_dir():
        raise ClientError(
            f"channel '{name}' is missing: no folder {directory}; give the training job a "
            f"'{name}' input channel (this algorithm needs 'train' and 'validation')"
        )
    paths = channel_files(directory)
    if not paths:
        raise ClientError(f"channel '{name}' has no data files in {directory}")
    files: list[CsvFile] = []
    for path in paths:
        display = f"{name}/{path.relative_to(directory).as_posix()}"
        parsed = read_csv_file(path, display, header_mode)
        if files:
            first = files[0]
            if parsed.n_columns != first.n_columns:
                raise ClientError(
                    f"{parsed.display} has {parsed.n_columns} columns but {first.display} has "
                    f"{first.n_columns}; all files of channel '{name}' need the same columns"
                )
            reference = next((f for f in files if f.header is not None), None)
            if parsed.header is not None and reference is not None and parsed.header != reference.header:
                raise ClientError(
                    f"{parsed.display} header {parsed.header} differs from {reference.display} "
                    f"header {reference.header}"
                )
        files.append(parsed)
    values = files[0].values if len(files) == 1 else np.concatenate([f.values for f in files])
    return Channel(name=name, files=files, values=values)


def resolve_label(spec: str, n_columns: int, header: list[str] | None, where: str) -> int:
    """Turn the ``label`` hyperparameter into a column index (names need a header)."""
    try:
        index = int(spec)
    except ValueError:
        index = None
    if index is None:
        if header is None:
            raise ClientError(
                f"hyperparameter label='{spec}' names a column, but {where} has no header row; "
                f"pass a 0-based column index or set header=true"
            )
        if spec not in header:
            raise ClientError(
                f"hyperparameter label='{spec}' is not a column of {where}; columns are {header}"
            )
        return header.index(spec)
    if not -n_columns <= index < n_columns:
        raise ClientError(
            f"hyperparameter label={spec} is out of range: {where} has {n_columns} columns "
            f"(valid indexes 0..{n_columns - 1}, or negative from the end)"
        )
    return index % n_columns


def build_dataset(train: Channel, validation: Channel, label: str) -> Dataset:
    """Split both channels into features/label the same way, after checking they line up."""
    if validation.n_columns != train.n_columns:
        raise ClientError(
            f"channel 'validation' has {validation.n_columns} columns ({validation.files[0].display}) "
            f"but 'train' has {train.n_columns} ({train.files[0].display}); both need the same "
            f"columns in the same order"
        )
    if train.n_columns < 2:
        raise ClientError(
            f"{train.files[0].display} has a single column; the files need the label and at least one feature"
        )
    header = train.header
    if header is not None and validation.header is not None and validation.header != header:
        raise ClientError(
            f"validation header {validation.header} differs from train header {header}; "
            f"both channels need the same columns in the same order"
        )
    header = header or validation.header
    label_index = resolve_label(label, train.n_columns, header, f"channel 'train' ({train.files[0].display})")
    keep = [j for j in range(train.n_columns) if j != label_index]
    if header is not None:
        feature_names = [header[j] for j in keep]
        label_name = header[label_index]
    else:
        feature_names = [f"feature_{i}" for i in range(len(keep))]
        label_name = "label"
    return Dataset(
        x_train=train.values[:, keep],
        y_train=train.values[:, label_index],
        x_validation=validation.values[:, keep],
        y_validation=validation.values[:, label_index],
        feature_names=feature_names,
        label_name=label_name,
        label_index=label_index,
        has_header=header is not None,
        train_files=[f.display for f in train.files],
        validation_files=[f.display for f in validation.files],
    )
