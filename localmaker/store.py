"""Durable resource state: one SQLite table of JSON documents, cached in memory.

Every change is written through before the API call answers, so whatever a client was told
exists survives a restart of localmaker (clean or not). The database runs in WAL mode with
``synchronous=FULL``: each commit is fsynced into the WAL before ``put``/``delete`` return, so it
survives ``kill -9`` (which NORMAL also would: the OS keeps written pages) *and* a power loss or
kernel crash (which NORMAL would not: it syncs only at checkpoints). A write that fails (``database
or disk is full``) raises and leaves the cached document as it was, so memory never claims more
than the disk holds; ``last_error`` keeps the failure for callers that retry.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Doc = dict[str, Any]


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS resources (kind TEXT NOT NULL, name TEXT NOT NULL, "
            "seq INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (kind, name))"
        )
        self._lock = threading.RLock()
        self.last_error: str | None = None  # the last write that failed (e.g. "database or disk is full")
        self._cache: dict[str, dict[str, Doc]] = {}
        self._seq = 0
        for kind, name, seq, doc in self._db.execute("SELECT kind, name, seq, doc FROM resources ORDER BY seq"):
            self._cache.setdefault(kind, {})[name] = json.loads(doc)
            self._seq = max(self._seq, seq)

    def get(self, kind: str, name: str) -> Doc | None:
        with self._lock:
            doc = self._cache.get(kind, {}).get(name)
            return copy.deepcopy(doc) if doc is not None else None

    def exists(self, kind: str, name: str) -> bool:
        with self._lock:
            return name in self._cache.get(kind, {})

    def put(self, kind: str, name: str, doc: Doc) -> None:
        with self._lock:
            self._seq += 1
            stored = copy.deepcopy(doc)
            self._write(
                "INSERT INTO resources (kind, name, seq, doc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(kind, name) DO UPDATE SET doc = excluded.doc",
                (kind, name, self._seq, json.dumps(stored)),
            )
            self._cache.setdefault(kind, {})[name] = stored

    def insert_new(self, kind: str, name: str, doc: Doc, on_exists: Callable[[], Exception]) -> None:
        """Insert unless present; the check and the write are one atomic step."""
        with self._lock:
            if name in self._cache.get(kind, {}):
                raise on_exists()
            self.put(kind, name, doc)

    def update(self, kind: str, name: str, fn: Callable[[Doc], None]) -> Doc | None:
        """Apply ``fn`` to the stored document in place and persist it; None if it is gone."""
        with self._lock:
            doc = self.get(kind, name)
            if doc is None:
                return None
            fn(doc)
            self.put(kind, name, doc)
            return copy.deepcopy(doc)

    def delete(self, kind: str, name: str) -> bool:
        with self._lock:
            self._write("DELETE FROM resources WHERE kind = ? AND name = ?", (kind, name))
            return self._cache.get(kind, {}).pop(name, None) is not None

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            self.last_error = str(exc)
            raise

    def list(self, kind: str) -> list[Doc]:
        """Documents of one kind in insertion order."""
        with self._lock:
            return [copy.deepcopy(d) for d in self._cache.get(kind, {}).values()]

    def names(self, kind: str) -> list[str]:
        with self._lock:
            return list(self._cache.get(kind, {}))

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def close(self) -> None:
        with self._lock:
            self._db.close()
