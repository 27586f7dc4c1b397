"""smformats/recordio.py against byte fixtures derived from the spec.

The fixtures are written out field by field from ``record.proto`` (field numbers: Record.features
= 1, Record.label = 2, map entry key = 1 / value = 2, Value.float32_tensor = 2,
Float32Tensor.values = 1) and MXNet's RecordIO framing, so a wrong field number or a missing
pad byte fails here. Independent cross-checks follow: the generated ``record_pb2`` against the
``.proto`` it was generated from; a descriptor built by hand from the same field numbers; the
bytes the hand-written encoder (before ``record_pb2``) wrote, frozen in ``data/``; and the
SageMaker Python SDK 2.x's own ``record_pb2``, reader and writer, from its virtual environment
(``.venv-sdk``, see tests/clients) or its source unpacked under /tmp/sm2, when either is there.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smformats import record_pb2
from smformats.recordio import (
    MAGIC,
    Record,
    RecordIOError,
    decode_record,
    encode_record,
    frame_record,
    from_recordio_protobuf,
    iter_recordio,
    read_recordio_protobuf,
    to_recordio_protobuf,
    write_recordio_protobuf,
)

VALUES = b"values".hex()  # 76616c756573
F1, F2, F3 = "0000803f", "00000040", "00004040"  # 1.0, 2.0, 3.0 as little-endian float32

# Record{features{"values": Value{float32_tensor{values: [1, 2]}}}, label{"values": ...[3]}}
PAYLOAD_FEATURES_AND_LABEL = bytes.fromhex(
    "0a16"  # field 1 (features entry), 22 bytes
    f"0a06{VALUES}"  # entry.key = "values"
    "120c"  # entry.value, 12 bytes
    "120a"  # Value.float32_tensor (field 2), 10 bytes
    f"0a08{F1}{F2}"  # Float32Tensor.values (field 1), packed, 8 bytes
    "1212"  # field 2 (label entry), 18 bytes
    f"0a06{VALUES}"
    "1208"
    "1206"
    f"0a04{F3}"
)
# The same record in RecordIO framing: magic, length 44 (cflag 0), payload, no padding needed.
FRAMED_FEATURES_AND_LABEL = bytes.fromhex("0a23d7ce2c000000") + PAYLOAD_FEATURES_AND_LABEL

# 30 zero features: lengths cross 127, so the payload (137 bytes) needs 3 bytes of padding.
PAYLOAD_30_ZEROS = bytes.fromhex(f"0a86010a06{VALUES}127c127a0a78") + b"\x00" * 120
FRAMED_30_ZEROS = bytes.fromhex("0a23d7ce89000000") + PAYLOAD_30_ZEROS + b"\x00\x00\x00"


def test_payload_matches_the_spec_bytes() -> None:
    assert encode_record([1.0, 2.0], 3.0) == PAYLOAD_FEATURES_AND_LABEL
    assert encode_record([1.0, 2.0], [3.0]) == PAYLOAD_FEATURES_AND_LABEL


def test_framing_matches_the_spec_bytes() -> None:
    assert frame_record(PAYLOAD_FEATURES_AND_LABEL) == FRAMED_FEATURES_AND_LABEL
    assert struct.unpack("<I", FRAMED_FEATURES_AND_LABEL[:4])[0] == MAGIC == 0xCED7230A


def test_padding_to_four_bytes_matches_the_spec() -> None:
    assert len(PAYLOAD_30_ZEROS) == 137
    assert to_recordio_protobuf([[0.0] * 30]) == FRAMED_30_ZEROS
    assert len(FRAMED_30_ZEROS) % 4 == 0


def test_numpy_and_list_inputs_encode_identically() -> None:
    rows = np.array([[1.0, 2.0], [0.5, -4.25]], dtype=np.float64)
    labels = np.array([3.0, 7.5])
    assert to_recordio_protobuf(rows, labels) == to_recordio_protobuf(rows.tolist(), labels.tolist())
    assert to_recordio_protobuf(rows[:1], labels[:1]) == FRAMED_FEATURES_AND_LABEL


def test_round_trip_features_only() -> None:
    records = from_recordio_protobuf(to_recordio_protobuf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    assert records == [Record((1.0, 2.0, 3.0), None), Record((4.0, 5.0, 6.0), None)]


def test_round_trip_features_and_labels() -> None:
    records = from_recordio_protobuf(to_recordio_protobuf([[1.0, 2.0], [0.25, 8.0]], [3.0, -1.5]))
    assert records == [Record((1.0, 2.0), (3.0,)), Record((0.25, 8.0), (-1.5,))]


def test_round_trip_many_records_through_a_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(2000, 13)).astype(np.float32)
    labels = rng.normal(size=2000).astype(np.float32)
    path = tmp_path / "train.rec"
    with open(path, "wb") as fh:
        assert write_recordio_protobuf(fh, features, labels) == 2000
    with open(path, "rb") as fh:
        records = list(read_recordio_protobuf(fh))
    assert len(records) == 2000
    np.testing.assert_array_equal(np.array([r.features for r in records], dtype=np.float32), features)
    np.testing.assert_array_equal(np.array([r.label[0] for r in records], dtype=np.float32), labels)  # type: ignore[index]


def test_writer_checks_label_count() -> None:
    with pytest.raises(ValueError, match="fewer labels than feature rows"):
        to_recordio_protobuf([[1.0], [2.0]], [1.0])
    with pytest.raises(ValueError, match="more labels than the 1 feature rows"):
        to_recordio_protobuf([[1.0]], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one feature"):
        encode_record([])


def test_bad_magic_names_the_record() -> None:
    good = to_recordio_protobuf([[1.0], [2.0]])
    assert len(good) == 56  # two records of 28 bytes
    corrupt = good + b"\x01\x02\x03\x04" + good[4:28]
    with pytest.raises(
        RecordIOError, match=r"record 2 at byte 56: bad magic 0x04030201 \(expected 0xced7230a\)"
    ):
        from_recordio_protobuf(corrupt)


def test_truncated_payload_and_header_name_the_record() -> None:
    data = to_recordio_protobuf([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(RecordIOError, match=r"record 1 at byte \d+: truncated payload \(10 of 24 bytes\)"):
        list(iter_recordio(io.BytesIO(data[:-14])))
    with pytest.raises(RecordIOError, match=r"record 1 at byte 32: truncated header \(3 of 8 bytes\)"):
        list(iter_recordio(io.BytesIO(data[:35])))
    with pytest.raises(RecordIOError, match="record 0 at byte 0: truncated padding"):
        list(iter_recordio(io.BytesIO(FRAMED_30_ZEROS[:-2])))


def test_multipart_records_are_refused() -> None:
    header = struct.pack("<II", MAGIC, (1 << 29) | 4)
    with pytest.raises(RecordIOError, match=r"record 0 at byte 0: multi-part records \(cflag=1\)"):
        list(iter_recordio(io.BytesIO(header + b"\x00" * 4)))


def test_invalid_protobuf_names_the_record() -> None:
    data = to_recordio_protobuf([[1.0]]) + frame_record(b"\x0a\x50\x00")  # claims 80 bytes, has 1
    with pytest.raises(RecordIOError, match="record 1: invalid aialgs.data.Record protobuf"):
        from_recordio_protobuf(data)


def test_reader_accepts_float64_labels_and_sparse_tensors() -> None:
    """The SDK writes float64 labels for float64 arrays; sparse rows carry keys + shape."""
    # Float32Tensor{values: [3.0], keys: [2], shape: [4]} under features["values"]
    sparse = bytes.fromhex(f"0a18 0a06{VALUES} 120e 120c 0a04{F3} 1201 02 1a01 04".replace(" ", ""))
    # Value.float64_tensor (field 3) {values: [2.5]} under label["values"]
    float64_label = bytes.fromhex(f"1216 0a06{VALUES} 120c 1a0a 0a08".replace(" ", "")) + struct.pack(
        "<d", 2.5
    )
    record = decode_record(sparse + float64_label)
    assert record == Record((0.0, 0.0, 3.0, 0.0), (2.5,))


def test_unknown_fields_are_skipped() -> None:
    uid = bytes.fromhex("1a03") + b"r-1"  # Record.uid (field 3)
    assert decode_record(PAYLOAD_FEATURES_AND_LABEL + uid) == Record((1.0, 2.0), (3.0,))


# ----------------------------------------------------------------------- protobuf cross-checks


def _record_class_from_descriptor() -> Any:
    """Build aialgs.data.Record with the protobuf runtime from field numbers in record.proto."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="mlpipeline_test_record.proto", package="mlpipeline_test.aialgs", syntax="proto2"
    )
    tensor = file.message_type.add(name="Float32Tensor")
    for name, number, kind in (
        ("values", 1, F.TYPE_FLOAT),
        ("keys", 2, F.TYPE_UINT64),
        ("shape", 3, F.TYPE_UINT64),
    ):
        field = tensor.field.add(name=name, number=number, type=kind, label=F.LABEL_REPEATED)
        field.options.packed = True
    value = file.message_type.add(name="Value")
    value.oneof_decl.add(name="value")
    value.field.add(
        name="float32_tensor",
        number=2,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_OPTIONAL,
        type_name=".mlpipeline_test.aialgs.Float32Tensor",
        oneof_index=0,
    )
    record = file.message_type.add(name="Record")
    for map_name, number in (("features", 1), ("label", 2)):
        entry = record.nested_type.add(name=f"{map_name.capitalize()}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        entry.field.add(
            name="value",
            number=2,
            type=F.TYPE_MESSAGE,
            label=F.LABEL_OPTIONAL,
            type_name=".mlpipeline_test.aialgs.Value",
        )
        record.field.add(
            name=map_name,
            number=number,
            type=F.TYPE_MESSAGE,
            label=F.LABEL_REPEATED,
            type_name=f".mlpipeline_test.aialgs.Record.{entry.name}",
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("mlpipeline_test.aialgs.Record"))


def _check_against(record_class: Any) -> None:
    rng = np.random.default_rng(3)
    for width in (1, 2, 10, 31, 40):
        features = rng.normal(size=width).astype(np.float32)
        label = float(np.float32(rng.normal()))
        ours = encode_record(features, label)
        theirs = record_class()
        theirs.features["values"].float32_tensor.values.extend(features.tolist())
        theirs.label["values"].float32_tensor.values.extend([label])
        assert theirs.SerializeToString() == ours, width
        parsed = record_class()
        parsed.ParseFromString(ours)
        assert list(parsed.features["values"].float32_tensor.values) == features.tolist()
        assert decode_record(theirs.SerializeToString()) == Record(tuple(features.tolist()), (label,))


def test_cross_check_with_the_protobuf_runtime() -> None:
    pytest.importorskip("google.protobuf")
    _check_against(_record_class_from_descriptor())


ROOT = Path(__file__).resolve().parents[2]
SDK_VENV = Path(os.environ.get("LOCALMAKER_SDK_VENV", ROOT / ".venv-sdk"))
SDK_RECORD_PB2 = next(
    (
        p
        for p in (
            Path("/tmp/sm2/src/sagemaker/amazon/record_pb2.py"),
            *sorted(SDK_VENV.glob("lib/python3*/site-packages/sagemaker/amazon/record_pb2.py")),
        )
        if p.is_file()
    ),
    Path("/tmp/sm2/src/sagemaker/amazon/record_pb2.py"),
)


@pytest.mark.skipif(
    not SDK_RECORD_PB2.is_file(), reason="no SageMaker SDK 2.x: neither .venv-sdk nor /tmp/sm2"
)
def test_cross_check_with_the_sagemaker_sdk_record_pb2() -> None:
    pytest.importorskip("google.protobuf")
    spec = importlib.util.spec_from_file_location("sm2_record_pb2", SDK_RECORD_PB2)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # e.g. a protobuf runtime too new for that generated code
        pytest.skip(f"cannot load the SDK's record_pb2: {exc}")
    _check_against(module.Record)
    # the same record.proto: both generated modules describe one file, byte for byte
    assert module.DESCRIPTOR.serialized_pb == record_pb2.DESCRIPTOR.serialized_pb


def test_labelled_response_records_round_trip_by_key():
    from smformats.recordio import (
        decode_label_map,
        encode_labelled,
        frame_record,
        iter_recordio,
    )

    records = [{"closest_cluster": 3.0, "distance_to_cluster": 1.5}, {"projection": [0.25, -2.0]}]
    stream = b"".join(frame_record(encode_labelled(r)) for r in records)
    import io

    decoded = [decode_label_map(p) for p in iter_recordio(io.BytesIO(stream))]
    assert decoded == [{"closest_cluster": [3.0], "distance_to_cluster": [1.5]}, {"projection": [0.25, -2.0]}]
    # byte layout: label field (2, LEN) holding a map entry whose key is the field name
    one = encode_labelled({"score": 0.5})
    assert one[0] == (2 << 3) | 2 and b"score" in one


def test_split_recordio_keeps_whole_framed_records() -> None:
    from smformats.recordio import split_recordio

    data = to_recordio_protobuf([[1.0, 2.0], [0.0] * 30, [5.0]], [1.0, 0.0, 2.0])
    parts = split_recordio(data)
    assert len(parts) == 3 and b"".join(parts) == data
    assert all(len(p) % 4 == 0 for p in parts)  # padding stays with its record
    assert [from_recordio_protobuf(p)[0].features for p in parts] == [(1.0, 2.0), (0.0,) * 30, (5.0,)]
    assert split_recordio(b"") == []
    with pytest.raises(RecordIOError, match=r"record 1 at byte 52: truncated header \(3 of 8 bytes\)"):
        split_recordio(data[:55])


# ------------------------------------------------------- the generated module and its .proto

PROTO = ROOT / "smformats" / "record.proto"
_SCALARS = {"float": "TYPE_FLOAT", "double": "TYPE_DOUBLE", "int32": "TYPE_INT32", "uint64": "TYPE_UINT64",
            "bytes": "TYPE_BYTES", "string": "TYPE_STRING"}


def _proto_fields() -> dict[str, dict[str, tuple[str, str, int, bool, str | None]]]:
    """message -> field -> (label, type, number, packed, oneof), read from record.proto's text.

    A small reader for the subset record.proto uses (proto2 messages, ``repeated``/``optional``,
    ``[packed = true]``, one ``oneof``, ``map<string, Value>``), independent of protoc.
    """
    text = re.sub(r"//[^\n]*", "", PROTO.read_text())
    messages: dict[str, dict[str, tuple[str, str, int, bool, str | None]]] = {}
    for name, body in re.findall(r"message\s+(\w+)\s*\{((?:[^{}]|\{[^{}]*\})*)\}", text):
        fields: dict[str, tuple[str, str, int, bool, str | None]] = {}
        oneofs = re.findall(r"oneof\s+(\w+)\s*\{([^}]*)\}", body)
        in_oneof = {m[1]: oneof for oneof, block in oneofs for m in re.findall(r"(\w+)\s+(\w+)\s*=", block)}
        flat = re.sub(r"oneof\s+\w+\s*\{", "", body).replace("}", "")
        for label, kind, field, number, options in re.findall(
            r"(repeated|optional)?\s*(map<\s*\w+\s*,\s*\w+\s*>|\w+)\s+(\w+)\s*=\s*(\d+)\s*(\[[^\]]*\])?\s*;", flat
        ):
            if kind.startswith("map<"):
                label, kind = "repeated", "map"
            fields[field] = (
                label or "optional",
                kind,
                int(number),
                "packed = true" in options.replace("  ", " "),
                in_oneof.get(field),
            )
        messages[name] = fields
    return messages


def test_the_generated_module_matches_record_proto() -> None:
    from google.protobuf.descriptor import FieldDescriptor

    expected = _proto_fields()
    assert set(expected) == {"Float32Tensor", "Float64Tensor", "Int32Tensor", "Bytes", "Value", "Record"}
    file = record_pb2.DESCRIPTOR
    assert file.package == "aialgs.data" and file.name == "record.proto"
    assert set(file.message_types_by_name) == set(expected)
    for message, fields in expected.items():
        descriptor = file.message_types_by_name[message]
        assert set(descriptor.fields_by_name) == set(fields), message
        for name, (label, kind, number, packed, oneof) in fields.items():
            field = descriptor.fields_by_name[name]
            where = f"{message}.{name}"
            assert field.number == number, where
            assert field.is_repeated == (label == "repeated"), where
            if kind == "map":
                entry = field.message_type
                assert entry.GetOptions().map_entry, where
                assert entry.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING, where
                assert entry.fields_by_name["value"].message_type.name == "Value", where
            elif kind in _SCALARS:
                assert field.type == getattr(FieldDescriptor, _SCALARS[kind]), where
            else:
                assert field.message_type.name == kind, where
            assert field.GetOptions().packed == packed, where
            assert (field.containing_oneof.name if field.containing_oneof else None) == oneof, where


def test_record_pb2_regenerates_identically_when_protoc_is_at_hand(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools not installed (see record.proto)")
    assert protoc.main(["protoc", f"-I{PROTO.parent}", f"--python_out={tmp_path}", "record.proto"]) == 0
    spec = importlib.util.spec_from_file_location("regenerated_record_pb2", tmp_path / "record_pb2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.DESCRIPTOR.serialized_pb == record_pb2.DESCRIPTOR.serialized_pb


# ------------------------------------------------- the hand encoder's bytes, frozen in data/

DATA = Path(__file__).parent / "data"


def _frozen_inputs() -> dict[str, Any]:
    return json.loads((DATA / "frozen_inputs.json").read_text())


@pytest.mark.parametrize("case", sorted(json.loads((DATA / "frozen_inputs.json").read_text())["dense"]))
def test_dense_records_are_byte_identical_to_the_hand_encoder(case: str) -> None:
    """``frozen_<case>.rec`` was written by the hand encoder this module had before ``record_pb2``
    (``smformats/recordio.py`` in the parent of the commit that added ``record_pb2.py``) as
    ``to_recordio_protobuf(np.array(features, dtype=float64), labels)``."""
    spec = _frozen_inputs()["dense"][case]
    frozen = (DATA / f"frozen_{case}.rec").read_bytes()
    with np.errstate(over="ignore"):
        features = np.array(spec["features"], dtype=np.float64)
    assert to_recordio_protobuf(features, spec["labels"]) == frozen
    # and the reader gives back what was written, as float32
    records = from_recordio_protobuf(frozen)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(
            np.array([r.features for r in records], dtype=np.float32), features.astype(np.float32)
        )


def test_labelled_responses_are_byte_identical_to_the_hand_encoder() -> None:
    from smformats.recordio import decode_label_map, encode_labelled

    labelled = _frozen_inputs()["labelled"]
    frozen = (DATA / "frozen_labelled.rec").read_bytes()
    assert b"".join(frame_record(encode_labelled(fields)) for fields in labelled) == frozen
    decoded = [decode_label_map(p) for p in iter_recordio(io.BytesIO(frozen))]
    assert decoded == [{k: v if isinstance(v, list) else [v] for k, v in f.items()} for f in labelled]
    # map entries keep the caller's order on the wire (a protobuf map alone would hash-order them)
    keys = [k.decode() for k in re.findall(rb"\x0a[\x01-\x7f]([a-z_]+)\x12", frozen[8:])]
    assert keys[:2] == ["closest_cluster", "distance_to_cluster"]


# ------------------------------------------------- the SageMaker SDK 2.x reads and writes the same

SDK_PYTHON = SDK_VENV / "bin" / "python"
_SDK_SCRIPT = """
import io, json, sys
import numpy as np
from sagemaker.amazon.common import read_records, write_numpy_to_dense_tensor
from sagemaker.amazon.record_pb2 import Record
from sagemaker.serializer_utils import _write_recordio
import smformats.record_pb2  # the same record.proto in one process: must load next to the SDK's

ours = open(sys.argv[1], "rb").read()
records = read_records(io.BytesIO(ours))
features = np.array(json.loads(sys.argv[2]), dtype=np.float32)
labels = np.array(json.loads(sys.argv[3]), dtype=np.float32)
dense, sparse = io.BytesIO(), io.BytesIO()
write_numpy_to_dense_tensor(dense, features, labels)
for row, label in zip(features, labels):  # as write_spmatrix_to_sparse_tensor (needs scipy) writes
    record = Record()
    keys = np.flatnonzero(row)
    record.features["values"].float32_tensor.values.extend(row[keys])
    record.features["values"].float32_tensor.keys.extend(keys.astype(np.uint64))
    record.features["values"].float32_tensor.shape.extend([len(row)])
    record.label["values"].float32_tensor.values.extend([label])
    _write_recordio(sparse, record.SerializeToString())
print(json.dumps({
    "features": [list(r.features["values"].float32_tensor.values) for r in records],
    "labels": [list(r.label["values"].float32_tensor.values) for r in records],
    "dense": dense.getvalue().hex(),
    "sparse": sparse.getvalue().hex(),
}))
"""


@pytest.mark.skipif(not SDK_PYTHON.exists(), reason=f"no SageMaker SDK 2.x venv at {SDK_VENV} (tests/clients makes it)")
def test_the_sagemaker_sdk_reads_what_we_write_and_writes_what_we_write(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    features = rng.normal(size=(25, 7)).astype(np.float32)
    features[features < -0.5] = 0.0  # some zeros, so the sparse form differs from the dense one
    labels = rng.integers(0, 3, size=25).astype(np.float32)
    path = tmp_path / "ours.rec"
    with open(path, "wb") as fh:
        write_recordio_protobuf(fh, features, labels)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
           "SAGEMAKER_SUPPRESS_V2_WARNING": "1", "HOME": str(tmp_path)}
    out = subprocess.run(
        [str(SDK_PYTHON), "-c", _SDK_SCRIPT, str(path), json.dumps(features.tolist()), json.dumps(labels.tolist())],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    sdk = json.loads(out.stdout.strip().splitlines()[-1])
    # the SDK's reader sees our records
    np.testing.assert_array_equal(np.array(sdk["features"], dtype=np.float32), features)
    np.testing.assert_array_equal(np.array(sdk["labels"], dtype=np.float32)[:, 0], labels)
    # the SDK's dense writer writes our bytes, and we read its sparse records back densely
    assert bytes.fromhex(sdk["dense"]) == path.read_bytes()
    records = from_recordio_protobuf(bytes.fromhex(sdk["sparse"]))
    np.testing.assert_array_equal(np.array([r.features for r in records], dtype=np.float32), features)
    assert [r.label for r in records] == [(float(v),) for v in labels]
