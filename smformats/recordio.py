"""RecordIO-protobuf (``application/x-recordio-protobuf``), byte-compatible with SageMaker.

SageMaker's built-in algorithms (Linear Learner, k-means, PCA, factorization machines...) read
training data and batch input in this format; writing it ourselves avoids the SageMaker SDK (and
protobuf codegen) in Airflow workers. The layout, checked against ``record.proto`` of the SDK:

RecordIO framing (MXNet's), per record::

    uint32 LE  magic 0xced7230a
    uint32 LE  (cflag << 29) | length        cflag 0 = complete record
    bytes      payload (length bytes)
    bytes      zero padding to a multiple of 4

Payload, ``aialgs.data.Record`` (proto2)::

    Record        { map<string, Value> features = 1; map<string, Value> label = 2;
                    optional string uid = 3; metadata = 4; configuration = 5; }
    map entry     { string key = 1; Value value = 2; }
    Value         { oneof { Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3;
                            Int32Tensor int32_tensor = 7; Bytes bytes = 9; } }
    Float32Tensor { repeated float values = 1 [packed]; repeated uint64 keys = 2 [packed];
                    repeated uint64 shape = 3 [packed]; }

Dense vectors go under the map key ``"values"`` for both features and label, as the SDK's
``write_numpy_to_dense_tensor`` does. The writer emits float32 tensors; the reader also accepts
float64 / int32 tensors (the SDK writes float64 labels for float64 arrays) and sparse tensors
with a shape.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

CONTENT_TYPE = "application/x-recordio-protobuf"
MAGIC = 0xCED7230A
VALUES_KEY = "values"

_HEADER = struct.Struct("<II")
_LENGTH_MASK = (1 << 29) - 1

# field numbers from record.proto
_RECORD_FEATURES = 1
_RECORD_LABEL = 2
_ENTRY_KEY = 1
_ENTRY_VALUE = 2
_VALUE_FLOAT32 = 2
_VALUE_FLOAT64 = 3
_VALUE_INT32 = 7
_TENSOR_VALUES = 1
_TENSOR_KEYS = 2
_TENSOR_SHAPE = 3

_VARINT = 0
_FIXED64 = 1
_LEN = 2
_FIXED32 = 5


class RecordIOError(ValueError):
    """A RecordIO-protobuf stream is malformed; the message names the record index and offset."""


@dataclass(frozen=True)
class Record:
    """One decoded record: the dense feature vector and the label vector (or ``None``)."""

    features: tuple[float, ...]
    label: tuple[float, ...] | None = None


# ----------------------------------------------------------------------------------- encoding


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varints here are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _tag(field, _LEN) + _varint(len(payload)) + payload


def _float32_bytes(values: Any) -> bytes:
    if hasattr(values, "astype") and hasattr(values, "tobytes"):  # numpy, without importing it
        return values.astype("<f4", copy=False).ravel().tobytes()
    vals = list(values)
    return struct.pack(f"<{len(vals)}f", *vals)


def _value_message(packed_float32: bytes) -> bytes:
    tensor = _length_delimited(_TENSOR_VALUES, packed_float32) if packed_float32 else b""
    return _length_delimited(_VALUE_FLOAT32, tensor)


def _map_entry(field: int, key: str, value_message: bytes) -> bytes:
    entry = _length_delimited(_ENTRY_KEY, key.encode("utf-8")) + _length_delimited(
        _ENTRY_VALUE, value_message
    )
    return _length_delimited(field, entry)


def encode_record(features: Sequence[float] | Any, label: Sequence[float] | float | None = None) -> bytes:
    """The ``aialgs.data.Record`` protobuf bytes for one dense float32 row (no RecordIO framing)."""
    packed = _float32_bytes(features)
    if not packed:
        raise ValueError("a record needs at least one feature")
    payload = _map_entry(_RECORD_FEATURES, VALUES_KEY, _value_message(packed))
    if label is not None:
        labels = [label] if isinstance(label, int | float) else label
        payload += _map_entry(_RECORD_LABEL, VALUES_KEY, _value_message(_float32_bytes(labels)))
    return payload


def encode_labelled(fields: dict[str, float | Sequence[float]]) -> bytes:
    """A response record as built-in algorithms answer in RecordIO-protobuf: no features, one
    ``label`` map entry per output field (``closest_cluster``, ``score``, ``projection``...)."""
    if not fields:
        raise ValueError("a response record needs at least one field")
    payload = b""
    for key, value in fields.items():
        values = [value] if isinstance(value, int | float) else value
        payload += _map_entry(_RECORD_LABEL, key, _value_message(_float32_bytes(values)))
    return payload


def decode_label_map(payload: bytes) -> dict[str, list[float]]:
    """The ``label`` map of one record by key (the reverse of :func:`encode_labelled`)."""
    out: dict[str, list[float]] = {}
    for field, wire, value in _fields(payload):
        if field == _RECORD_LABEL and wire == _LEN:
            key, raw = "", b""
            for f, _w, v in _fields(value):
                if f == _ENTRY_KEY:
                    key = v.decode("utf-8")
                elif f == _ENTRY_VALUE:
                    raw = v
            out[key] = _decode_value(raw)
    return out


def frame_record(payload: bytes) -> bytes:
    """Wrap one payload in RecordIO framing: magic, length (cflag 0), payload, zero padding."""
    if len(payload) > _LENGTH_MASK:
        raise ValueError(f"record of {len(payload)} bytes exceeds RecordIO's 29-bit length")
    padding = -len(payload) % 4
    return _HEADER.pack(MAGIC, len(payload)) + payload + b"\x00" * padding


def write_recordio_protobuf(
    stream: BinaryIO,
    features: Iterable[Sequence[float] | Any],
    labels: Iterable[float | Sequence[float]] | None = None,
) -> int:
    """Write one record per feature row (with its label when ``labels`` is given); returns the count.

    Raises:
        ValueError: ``labels`` is shorter or longer than ``features``.
    """
    count = 0
    label_iter = iter(labels) if labels is not None else None
    for row in features:
        label = None
        if label_iter is not None:
            try:
                label = next(label_iter)
            except StopIteration:
                raise ValueError(
                    f"labels ran out at record {count}: fewer labels than feature rows"
                ) from None
        stream.write(frame_record(encode_record(row, label)))
        count += 1
    if label_iter is not None and next(label_iter, None) is not None:
        raise ValueError(f"more labels than the {count} feature rows")
    return count


def to_recordio_protobuf(
    features: Iterable[Sequence[float] | Any], labels: Iterable[Any] | None = None
) -> bytes:
    """:func:`write_recordio_protobuf` into bytes, e.g. for an endpoint payload."""
    import io

    buffer = io.BytesIO()
    write_recordio_protobuf(buffer, features, labels)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------- decoding


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(field, wire_type, value)``; value is an int or, for wire type 2, bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == _FIXED64:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == _FIXED32:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire} for field {field}")
        if pos > len(buf):
            raise ValueError(f"field {field} runs past the end of its message")
        yield field, wire, value


def _decode_tensor(buf: bytes, kind: int) -> tuple[list[float], list[int], list[int]]:
    values: list[float] = []
    keys: list[int] = []
    shape: list[int] = []
    for field, wire, value in _fields(buf):
        if field == _TENSOR_VALUES:
            if kind == _VALUE_FLOAT32:  # packed (wire type 2) or a single fixed32: same bytes
                values.extend(struct.unpack(f"<{len(value) // 4}f", value))
            elif kind == _VALUE_FLOAT64:
                values.extend(struct.unpack(f"<{len(value) // 8}d", value))
            elif wire == _LEN:  # int32, packed varints (negative numbers are 10-byte two's complement)
                pos = 0
                while pos < len(value):
                    number, pos = _read_varint(value, pos)
                    values.append(float(number - (1 << 64) if number >> 63 else number))
            else:
                values.append(float(value - (1 << 64) if value >> 63 else value))
        elif field in (_TENSOR_KEYS, _TENSOR_SHAPE):
            target = keys if field == _TENSOR_KEYS else shape
            if wire == _LEN:
                pos = 0
                while pos < len(value):
                    number, pos = _read_varint(value, pos)
                    target.append(number)
            else:
                target.append(value)
    return values, keys, shape


def _decode_value(buf: bytes) -> list[float]:
    for field, _wire, value in _fields(buf):
        if field in (_VALUE_FLOAT32, _VALUE_FLOAT64, _VALUE_INT32):
            values, keys, shape = _decode_tensor(value, field)
            if not keys:
                return values
            if not shape:
                raise ValueError("sparse tensor without a shape cannot be made dense")
            size = 1
            for dim in shape:
                size *= dim
            dense = [0.0] * size
            for k, v in zip(keys, values, strict=True):
                dense[k] = v
            return dense
        if field == 9:
            raise ValueError("Bytes values are not numeric tensors")
    return []


def _decode_map(entries: list[bytes]) -> list[float] | None:
    if not entries:
        return None
    found: dict[str, list[float]] = {}
    for entry in entries:
        key, value = "", b""
        for field, _wire, raw in _fields(entry):
            if field == _ENTRY_KEY:
                key = raw.decode("utf-8")
            elif field == _ENTRY_VALUE:
                value = raw
        found[key] = _decode_value(value)
    if VALUES_KEY not in found:
        raise ValueError(f"no {VALUES_KEY!r} entry (keys: {sorted(found)})")
    return found[VALUES_KEY]


def decode_record(payload: bytes) -> Record:
    """Parse one ``aialgs.data.Record`` payload; unknown fields (uid, metadata...) are skipped."""
    features: list[bytes] = []
    labels: list[bytes] = []
    for field, wire, value in _fields(payload):
        if field == _RECORD_FEATURES and wire == _LEN:
            features.append(value)
        elif field == _RECORD_LABEL and wire == _LEN:
            labels.append(value)
    feature_values = _decode_map(features)
    if feature_values is None:
        raise ValueError("record has no features")
    label_values = _decode_map(labels)
    return Record(tuple(feature_values), tuple(label_values) if label_values is not None else None)


def _frames(stream: BinaryIO) -> Iterator[tuple[int, bytes, int]]:
    """Yield ``(offset, payload, padding)`` per record, checking the framing of every record."""
    index = 0
    offset = 0
    while True:
        header = stream.read(_HEADER.size)
        if not header:
            return
        if len(header) < _HEADER.size:
            raise RecordIOError(
                f"record {index} at byte {offset}: truncated header ({len(header)} of {_HEADER.size} bytes)"
            )
        magic, word = _HEADER.unpack(header)
        if magic != MAGIC:
            raise RecordIOError(
                f"record {index} at byte {offset}: bad magic 0x{magic:08x} (expected 0x{MAGIC:08x}); "
                "not RecordIO, or the previous record's length is wrong"
            )
        cflag, length = word >> 29, word & _LENGTH_MASK
        if cflag != 0:
            raise RecordIOError(
                f"record {index} at byte {offset}: multi-part records (cflag={cflag}) are not supported"
            )
        payload = stream.read(length)
        if len(payload) < length:
            raise RecordIOError(
                f"record {index} at byte {offset}: truncated payload ({len(payload)} of {length} bytes)"
            )
        padding = -length % 4
        if padding and len(stream.read(padding)) < padding:
            raise RecordIOError(f"record {index} at byte {offset}: truncated padding")
        yield offset, payload, padding
        index += 1
        offset += _HEADER.size + length + padding


def iter_recordio(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the payloads of a RecordIO stream, checking the framing of every record.

    Raises:
        RecordIOError: bad magic, multi-part record, or a truncated header/payload/padding,
            naming the record index and its byte offset.
    """
    for _offset, payload, _padding in _frames(stream):
        yield payload


def split_recordio(data: bytes) -> list[bytes]:
    """The whole framed records of ``data`` (header + payload + padding), each a valid RecordIO
    stream on its own, so any run of them concatenated is one too (batch transform's ``SplitType:
    RecordIO``).

    Raises:
        RecordIOError: as :func:`iter_recordio`.
    """
    import io

    return [
        data[offset : offset + _HEADER.size + len(payload) + padding]
        for offset, payload, padding in _frames(io.BytesIO(data))
    ]


def read_recordio_protobuf(stream: BinaryIO) -> Iterator[Record]:
    """Yield the :class:`Record` of every RecordIO-protobuf record in ``stream``.

    Raises:
        RecordIOError: malformed framing or protobuf, naming the record index.
    """
    for index, payload in enumerate(iter_recordio(stream)):
        try:
            yield decode_record(payload)
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            raise RecordIOError(f"record {index}: invalid aialgs.data.Record protobuf: {exc}") from None


def from_recordio_protobuf(data: bytes) -> list[Record]:
    """All records of an in-memory RecordIO-protobuf payload (an endpoint response, a small file)."""
    import io

    return list(read_recordio_protobuf(io.BytesIO(data)))
