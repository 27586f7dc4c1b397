"""smformats/recordio.py against byte fixtures derived from the spec.

The fixtures are written out field by field from ``record.proto`` (field numbers: Record.features
= 1, Record.label = 2, map entry key = 1 / value = 2, Value.float32_tensor = 2,
Float32Tensor.values = 1) and MXNet's RecordIO framing, so a wrong field number or a missing
pad byte fails here. Two independent cross-checks follow: the ``protobuf`` runtime with a
descriptor built from the same .proto, and, when its source is unpacked under /tmp/sm2, the
SageMaker Python SDK 2.x's own generated ``record_pb2``.
"""

from __future__ import annotations

import importlib.util
import io
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

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


SDK_RECORD_PB2 = Path("/tmp/sm2/src/sagemaker/amazon/record_pb2.py")


@pytest.mark.skipif(
    not SDK_RECORD_PB2.is_file(), reason="SageMaker SDK 2.x source not unpacked under /tmp/sm2"
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
