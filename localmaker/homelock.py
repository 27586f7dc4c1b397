"""One localmaker per home: an exclusive ``flock`` on ``<home>/localmaker.lock``.

The file holds the holder's pid and, once it listens, its URL, so a second server can name the one
in its way. The kernel drops the lock when the holder's process ends, however it ends (``kill -9``
included), so there is never a stale lock to clean up. The lock file itself is never deleted
(deleting it would let two servers lock two different files).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import reaper

LOCK_FILE = "localmaker.lock"


class HomeInUse(ValueError):
    """Another localmaker holds this home (a ValueError: ``python -m localmaker`` exits 2 with it)."""


class HomeLock:
    def __init__(self, home: Path) -> None:
        import fcntl

        self.home = Path(home)
        self.path = self.home / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # close-on-exec: children never hold it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise HomeInUse(
                f"home {self.home} is in use by another localmaker (pid {holder.get('pid', '?')}, "
                f"{holder.get('url') or 'still starting'}); stop it or use another --home"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        self._write({"pid": os.getpid(), "url": None})
        reaper.register_home(self.home)

    def announce(self, url: str) -> None:
        """Record the URL this server listens on, for the message a second server prints."""
        self._write({"pid": os.getpid(), "url": url})

    def _write(self, doc: dict[str, object]) -> None:
        if self._fd is None:
            return
        data = json.dumps(doc).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is None:
            return
        reaper.unregister_home(self.home)
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    def __del__(self) -> None:  # an abandoned in-process server must not keep its home locked
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)  # type: ignore[arg-type]
            except OSError:
                pass


def _read(fd: int) -> dict[str, object]:
    try:
        raw = os.pread(fd, 4096, 0)
        doc = json.loads(raw.decode("utf-8", "replace")) if raw.strip() else {}
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}
