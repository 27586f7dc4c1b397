"""image_classification: reading the training channels and request payloads."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from localmaker import safepath
from localmaker.builtins.runtime import (
    ClientError,
    TrainingEnv,
)
from smformats.imagelist import LstEntry, LstError, read_lst

from .model import MEAN_RGB, STD_RGB, Net, load_model

IMAGE_TYPES = ("application/x-image", "image/jpeg", "image/png")
RECORDIO_TYPE = "application/x-recordio"


def decode_image(data: bytes, shape: tuple[int, int, int], resize: int | None = None) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 (C, H, W) array of ``shape``; ``ValueError`` if not an image."""
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"not a decodable JPEG/PNG image ({type(exc).__name__}: {exc})") from None
    img = img.convert("RGB" if c == 3 else "L")
    if resize is not None:
        iw, ih = img.size
        scale = resize / min(iw, ih)
        nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
        img = img.resize((nw, nh), Image.Resampling.BILINEAR)
        if nw >= w and nh >= h:
            left, top = (nw - w) // 2, (nh - h) // 2
            img = img.crop((left, top, left + w, top + h))
    if img.size != (w, h):
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    if c == 1:
        return arr[None, :, :]
    return arr.transpose(2, 0, 1).copy()


def normalise(batch: np.ndarray) -> np.ndarray:
    """(N, C, H, W) pixels 0..255 -> float32 standardised with the ImageNet channel statistics."""
    c = batch.shape[1]
    mean = np.array(MEAN_RGB if c == 3 else (float(np.mean(MEAN_RGB)),), dtype=np.float32)
    std = np.array(STD_RGB if c == 3 else (float(np.mean(STD_RGB)),), dtype=np.float32)
    return (batch.astype(np.float32) - mean[None, :, None, None]) / std[None, :, None, None]


def _single_lst(env: TrainingEnv, channel: str) -> Path:
    files = env.channel_files(channel)
    if len(files) != 1:
        names = ", ".join(p.name for p in files[:5])
        raise ClientError(
            f"Channel '{channel}' must hold exactly one .lst file; found {len(files)} files ({names})."
        )
    return files[0]


def load_split(env: TrainingEnv, images: str, lst: str, hp: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Decode every image a channel's .lst names -> (uint8 images (N,C,H,W), int labels)."""
    lst_file = _single_lst(env, lst)
    try:
        entries: list[LstEntry] = read_lst(lst_file)
    except LstError as exc:
        raise ClientError(f"Channel '{lst}': {exc}") from None
    if not entries:
        raise ClientError(f"Channel '{lst}': {lst_file.name} lists no images.")
    k = hp["num_classes"]
    for n, e in enumerate(entries, start=1):
        if e.label >= k:
            raise ClientError(
                f"Channel '{lst}': {lst_file.name} row {n} (index {e.index}, {e.path}) has label {e.label}, "
                f"outside [0, num_classes) = [0, {k}). Labels are class indices from 0; check num_classes."
            )
    root = env.channel_dir(images)
    if not root.is_dir():
        raise ClientError(f"Channel '{images}' has no data directory {root}.")
    shape = hp["image_shape"]
    out = np.empty((len(entries), *shape), dtype=np.uint8)
    for i, e in enumerate(entries):
        try:
            f = safepath.inside(root, e.path)
        except safepath.PathEscape as exc:
            raise ClientError(
                f"Image '{e.path}' listed in channel '{lst}' ({lst_file.name}, index {e.index}) is not a path "
                f"inside channel '{images}': it {exc.reason}. Paths in a .lst file are relative to the image "
                "channel's S3 prefix."
            ) from None
        if not f.is_file():
            raise ClientError(
                f"Image '{e.path}' listed in channel '{lst}' ({lst_file.name}, index {e.index}) was not found in "
                f"channel '{images}'. Paths in a .lst file are relative to the image channel's S3 prefix."
            )
        try:
            out[i] = decode_image(f.read_bytes(), shape, hp["resize"])
        except ValueError as exc:
            raise ClientError(f"Channel '{images}': image '{e.path}' is {exc}") from None
    labels = np.array([e.label for e in entries], dtype=np.int64)
    return out, labels


def check_channels(env: TrainingEnv) -> None:
    """The image format's four channels, in a content type this image reads."""
    for name, cfg in env.channels.items():
        if name == "model":
            continue
        ctype = env.content_type(name, "application/x-image")
        if (cfg.get("RecordWrapperType") or "None") == "RecordIO":
            raise ClientError(
                f"Channel '{name}' uses an augmented manifest (RecordWrapperType RecordIO), which the local "
                "image-classification image does not read (no MXNet). Use the image format: JPEG/PNG files in "
                "'train'/'validation' with .lst files in 'train_lst'/'validation_lst', ContentType application/x-image."
            )
        if ctype == RECORDIO_TYPE:
            raise ClientError(
                f"Channel '{name}' has ContentType {RECORDIO_TYPE}: MXNet RecordIO (.rec) input is not supported by "
                "the local image-classification image (no MXNet). Use the image format: JPEG/PNG files in "
                "'train'/'validation' and one .lst file each in 'train_lst'/'validation_lst', ContentType "
                "application/x-image."
            )
        if ctype not in IMAGE_TYPES:
            raise ClientError(
                f"Channel '{name}' has ContentType {ctype}; the image format needs one of {list(IMAGE_TYPES)}."
            )
    missing = [c for c in ("train", "validation", "train_lst", "validation_lst") if not env.has_channel(c)]
    if missing:
        raise ClientError(
            f"Missing channel(s) {missing}. Training with the image format needs the channels 'train' and "
            "'validation' (JPEG/PNG files) and 'train_lst' and 'validation_lst' (one .lst file each)."
        )


def load_previous(env: TrainingEnv, hp: dict[str, Any]) -> Net | None:
    """Incremental training: the weights of a model.tar.gz this algorithm wrote, from channel 'model'."""
    if not env.has_channel("model"):
        return None
    files = env.channel_files("model")
    tars = [f for f in files if tarfile.is_tarfile(f)]
    if tars:
        target = env.base / "previous-model"
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tars[0]) as tf:
            tf.extractall(target, filter="data")
        root = target
    else:
        root = env.channel_dir("model")
    try:
        net = load_model(root)
    except (OSError, ValueError, KeyError) as exc:
        raise ClientError(f"Channel 'model': not a model trained by this image-classification algorithm ({exc})") from None
    if net.num_classes != hp["num_classes"] or net.shape != hp["image_shape"]:
        raise ClientError(
            "Channel 'model': the pretrained model has num_classes="
            f"{net.num_classes}, image_shape={','.join(map(str, net.shape))}; the new job must use the same values "
            f"(got num_classes={hp['num_classes']}, image_shape={','.join(map(str, hp['image_shape']))})."
        )
    return net
