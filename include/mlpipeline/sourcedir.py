"""Framework script mode: the user's ``source_dir`` as the ``sourcedir.tar.gz`` SageMaker runs.

The SDK's ``Estimator(entry_point=..., source_dir=...)`` does the same: tar the folder, upload it,
and point ``sagemaker_submit_directory`` at it. The archive is reproducible (sorted entries, zero
mtimes, no owner names, no ``__pycache__``), so an unchanged folder gives byte-identical archives.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from typing import Any

from .config import PROJECT_ROOT
from .run import split_s3_uri

SKIP = ("__pycache__", ".pytest_cache", ".ipynb_checkpoints")


def package_source_dir(source_dir: str | Path, entry_point: str, base_dir: Path | None = None) -> bytes:
    """The ``.tar.gz`` bytes of ``source_dir`` (relative paths resolve against the project root).

    Raises:
        FileNotFoundError: the folder or the entry point in it does not exist.
    """
    root = Path(source_dir)
    if not root.is_absolute():
        root = (base_dir or PROJECT_ROOT) / root
    if not root.is_dir():
        raise FileNotFoundError(f"training.source_dir {source_dir}: no such folder ({root})")
    if not (root / entry_point).is_file():
        raise FileNotFoundError(f"training.entry_point {entry_point} is not in {root}")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if any(part in SKIP for part in rel.parts) or path.suffix == ".pyc" or not path.is_file():
                continue
            info = tarfile.TarInfo(rel.as_posix())
            info.size = path.stat().st_size
            info.mode = 0o644
            info.mtime = 0
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    return gzip.compress(raw.getvalue(), mtime=0)


def upload_source_dir(s3_client: Any, source_dir: str | Path, entry_point: str, uri: str) -> str:
    """Package and upload to ``uri`` (``sagemaker_requests.sourcedir_uri``); returns ``uri``."""
    bucket, key = split_s3_uri(uri)
    s3_client.put_object(Bucket=bucket, Key=key, Body=package_source_dir(source_dir, entry_point))
    return uri
