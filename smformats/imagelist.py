"""Image-list (``.lst``) files and image files: SageMaker Image Classification's "image format".

The built-in Image Classification algorithm trains from four ``application/x-image`` channels:
``train`` and ``validation`` hold JPEG/PNG files, ``train_lst`` and ``validation_lst`` one ``.lst``
file each. A ``.lst`` row is ``index<TAB>label<TAB>relative/path.png`` (MXNet's im2rec list
format): the index is unique in the file, the label is a class index from 0, the path is relative
to the image channel's root. im2rec writes labels as floats (``1.000000``); readers accept that
when the value is integral.

This module writes and reads those files strictly (a bad row is named by file and line, because
a silently skipped row is a silently smaller training set), lists a class-per-folder tree as
im2rec ``--list --recursive`` does, and turns arrays into PNG/JPEG files or bytes. Pillow and
numpy are imported where used.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    from PIL import Image

CONTENT_TYPE = "application/x-image"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class LstError(ValueError):
    """A ``.lst`` row (or an entry about to be written) breaks the format."""


@dataclass(frozen=True)
class LstEntry:
    """One image: its unique index, its class label and its path relative to the channel root."""

    index: int
    label: int
    path: str


def _check_path(path: str, where: str) -> str:
    if not path or not path.strip():
        raise LstError(f"{where}: the image path is empty")
    if any(c in path for c in "\t\r\n"):
        raise LstError(f"{where}: the image path {path!r} contains a tab or newline")
    if "\\" in path:
        raise LstError(f"{where}: the image path {path!r} must use '/' separators")
    p = PurePosixPath(path)
    if p.is_absolute() or path.startswith("s3://"):
        raise LstError(f"{where}: the image path {path!r} must be relative to the image channel's root")
    if ".." in p.parts:
        raise LstError(f"{where}: the image path {path!r} must not contain '..'")
    return path


def _as_entry(item: LstEntry | Sequence[Any], where: str) -> LstEntry:
    if isinstance(item, LstEntry):
        entry = item
    else:
        if len(item) != 3:
            raise LstError(f"{where}: expected (index, label, path), got {len(item)} values")
        entry = LstEntry(*item)
    for name in ("index", "label"):
        value = getattr(entry, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LstError(f"{where}: {name} must be a non-negative integer, got {value!r}")
    _check_path(entry.path, where)
    return entry


def format_lst(entries: Iterable[LstEntry | Sequence[Any]]) -> str:
    """The ``.lst`` text for ``entries`` (validated; indices must be unique)."""
    seen: set[int] = set()
    lines = []
    for n, item in enumerate(entries, start=1):
        entry = _as_entry(item, f"entry {n}")
        if entry.index in seen:
            raise LstError(f"entry {n}: index {entry.index} is used twice; image indices must be unique")
        seen.add(entry.index)
        lines.append(f"{entry.index}\t{entry.label}\t{entry.path}\n")
    return "".join(lines)


def write_lst(path: str | Path, entries: Iterable[LstEntry | Sequence[Any]]) -> int:
    """Write a ``.lst`` file; returns the number of rows. Nothing is written if an entry is bad."""
    text = format_lst(entries)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return text.count("\n")


def _int_field(value: str, name: str, where: str) -> int:
    try:
        f = float(value)
    except ValueError:
        raise LstError(f"{where}: {name} {value!r} is not a number") from None
    if f != f or not f.is_integer() or f < 0:
        raise LstError(f"{where}: {name} {value!r} must be a non-negative integer")
    return int(f)


def parse_lst(text: str, source: str = "<lst>") -> list[LstEntry]:
    """Rows of a ``.lst`` text; blank lines are skipped, anything else malformed raises :class:`LstError`."""
    entries: list[LstEntry] = []
    seen: dict[int, int] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        where = f"{source} line {n}"
        cols = line.split("\t")
        if len(cols) < 3:
            raise LstError(
                f"{where}: expected 3 tab-separated columns (index, label, path), found {len(cols)}"
                + (" - columns must be separated by tabs, not spaces" if len(line.split()) >= 3 else "")
            )
        if len(cols) > 3:
            raise LstError(
                f"{where}: {len(cols) - 2} label columns; only single-label rows (index, label, path) are supported"
            )
        index = _int_field(cols[0].strip(), "index", where)
        label = _int_field(cols[1].strip(), "label", where)
        path = _check_path(cols[2].strip(), where)
        if index in seen:
            raise LstError(f"{where}: index {index} was already used on line {seen[index]}; indices must be unique")
        seen[index] = n
        entries.append(LstEntry(index, label, path))
    return entries


def read_lst(path: str | Path) -> list[LstEntry]:
    """Read and validate a ``.lst`` file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LstError(f"{p.name}: not a UTF-8 text file ({exc})") from None
    return parse_lst(text, p.name)


def list_class_folders(root: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> tuple[list[LstEntry], list[str]]:
    """Entries for a ``root/<class>/<image>`` tree, as im2rec ``--list --recursive`` makes them.

    Classes are the sub-folders in sorted order (label = position); images are sorted within a
    class and indexed from 0 across the whole list. Returns ``(entries, class_names)``.
    """
    base = Path(root)
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    entries: list[LstEntry] = []
    exts = tuple(e.lower() for e in extensions)
    for label, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(base / name):
            dirnames.sort()
            for fname in sorted(filenames):
                if fname.lower().endswith(exts) and not fname.startswith("."):
                    rel = (Path(dirpath) / fname).relative_to(base).as_posix()
                    entries.append(LstEntry(len(entries), label, rel))
    return entries, classes


# ---- images -------------------------------------------------------------------------------------------
def to_pil(array: np.ndarray, size: tuple[int, int] | None = None, mode: str | None = None) -> Image.Image:
    """A PIL image from an ``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4`` array.

    Integer arrays must hold 0..255; float arrays 0..1 (scaled by 255). ``size`` is (width, height)
    to resize to (bilinear); ``mode`` converts (e.g. ``"RGB"`` for a grey array).
    """
    import numpy as np
    from PIL import Image

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError("the array is empty")
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ValueError("float pixel values must be finite and within [0, 1]")
        a = np.rint(a * 255)
    elif np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        if a.min() < 0 or a.max() > 255:
            raise ValueError("integer pixel values must be within 0..255")
    else:
        raise ValueError(f"unsupported pixel dtype {a.dtype}")
    img = Image.fromarray(a.astype(np.uint8))
    if size is not None:
        img = img.resize(tuple(size), Image.Resampling.BILINEAR)
    if mode is not None and img.mode != mode:
        img = img.convert(mode)
    return img


def encode_image(array: np.ndarray, fmt: str = "PNG", size: tuple[int, int] | None = None,
                 mode: str | None = None, quality: int = 95) -> bytes:
    """PNG or JPEG bytes of an array (see :func:`to_pil`), e.g. an endpoint request body."""
    fmt = fmt.upper()
    if fmt not in ("PNG", "JPEG"):
        raise ValueError(f"format must be PNG or JPEG, got {fmt}")
    img = to_pil(array, size, mode)
    if fmt == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def save_image(path: str | Path, array: np.ndarray, size: tuple[int, int] | None = None,
               mode: str | None = None) -> Path:
    """Save an array as PNG or JPEG, chosen by the file extension; returns the path."""
    target = Path(path)
    ext = target.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"{target.name}: the extension must be one of {IMAGE_EXTENSIONS}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(encode_image(array, "PNG" if ext == ".png" else "JPEG", size, mode))
    return target


def save_png(path: str | Path, array: np.ndarray, size: tuple[int, int] | None = None,
             mode: str | None = None) -> Path:
    """Save an array as a PNG file (see :func:`to_pil` for accepted arrays)."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ValueError(f"{target.name}: a PNG file name must end in .png")
    return save_image(target, array, size, mode)
