"""The model tarball the built-in XGBoost container loads: the container-version check, packaging,
and reloading it the way the container does to verify it before upload."""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import _CONTAINER_VERSION, MODEL_FILE, BringYourOwnModelError
from .train import max_abs_diff, predict


def container_xgboost_version(container_version: str) -> tuple[int, int]:
    """``"1.7-1"`` -> ``(1, 7)``: the XGBoost release the built-in container ships."""
    match = _CONTAINER_VERSION.match(container_version)
    if not match:
        raise ValueError(f"not a built-in XGBoost container version such as '3.2-0': {container_version!r}")
    return int(match.group(1)), int(match.group(2))


def check_container_compatibility(library_version: str, container_version: str) -> None:
    """Refuse a container older than the XGBoost that trains the model.

    Saved models are backward compatible only; forward compatibility fails *silently* (see the
    module doc: 1.7 reads a 3.x model's base score as 0.5).
    """
    match = re.match(r"^(\d+)\.(\d+)", library_version)
    if not match:
        raise ValueError(f"cannot read an XGBoost version from {library_version!r}")
    trained = int(match.group(1)), int(match.group(2))
    served = container_xgboost_version(container_version)
    if served < trained:
        raise BringYourOwnModelError(
            f"the model is trained with XGBoost {library_version} but serving.xgboost_version "
            f"{container_version!r} runs XGBoost {served[0]}.{served[1]}: XGBoost loads models only from "
            f"its own or older releases (a 3.x model loads in 1.7 with a wrong base score). Set "
            f"serving.xgboost_version to {trained[0]}.{trained[1]}-x or newer, or train with "
            f"xgboost=={served[0]}.{served[1]}.*"
        )


def package_model(booster: Any, target: Path) -> Path:
    """Write ``model.tar.gz`` holding one top-level file, :data:`MODEL_FILE`, in XGBoost's JSON format.

    ``Booster.save_model`` picks the format from the extension, so it writes ``*.json`` and the file is
    renamed: the container's loader sniffs the content, not the name. Nothing else goes in the archive:
    the container would try to load any other top-level file as a model too.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / f"{MODEL_FILE}.json"
        booster.save_model(str(saved))
        with tarfile.open(target, "w:gz") as tar:
            info = tar.gettarinfo(str(saved), arcname=MODEL_FILE)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with saved.open("rb") as fh:
                tar.addfile(info, fh)
    return target


def tarball_members(path: Path) -> list[tuple[str, str, int]]:
    """``(name, kind, size)`` of every member: what a reviewer (or a test) checks the layout with."""
    kinds = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink"}
    with tarfile.open(path, "r:gz") as tar:
        return [(m.name, kinds.get(m.type, "other"), m.size) for m in tar.getmembers()]


def load_packaged_model(path: Path) -> list[Any]:
    """Load the tarball the way the built-in container does: extract it, then every regular top-level
    file with ``Booster.load_model`` (pickles are not accepted here: :func:`package_model` writes none)."""
    import xgboost as xgb

    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        boosters = []
        for entry in sorted(os.listdir(tmp)):
            file = Path(tmp) / entry
            if file.is_file():
                booster = xgb.Booster()
                with warnings.catch_warnings():  # XGBoost >= 2.1 notes it guesses JSON for a name without extension
                    warnings.filterwarnings("ignore", message=".*Unknown file format.*")
                    booster.load_model(str(file))
                boosters.append(booster)
    if not boosters:
        raise BringYourOwnModelError(f"{path}: no model file at the top of the archive")
    return boosters


def verify_package(path: Path, features: Any, expected: Sequence[float], tolerance: float) -> float:
    """Reload the tarball as the container would and require the same predictions; returns the
    largest difference. Catches a wrong layout or format before anything is uploaded."""
    members = tarball_members(path)
    if [(name, kind) for name, kind, _ in members] != [(MODEL_FILE, "file")]:
        raise BringYourOwnModelError(f"{path}: expected exactly one file {MODEL_FILE!r}, found {members}")
    [booster] = load_packaged_model(path)
    reloaded = predict(booster, features)
    worst = max_abs_diff(reloaded, expected)
    if worst > tolerance:
        raise BringYourOwnModelError(f"{path}: the reloaded model predicts up to {worst:g} off the trained one")
    return worst
