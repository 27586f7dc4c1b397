"""Write: local channel files in the algorithm's layout (label-first CSV, then RecordIO-protobuf
or images when ``data.format`` asks), appended chunk by chunk before upload."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smformats.csv import write_algorithm_csv, write_csv_with_header

from .common import CHANNELS, DATA_FILE

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


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
            from smformats.recordio import write_recordio_protobuf

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

    from smformats.imagelist import LstEntry, save_png, write_lst

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
