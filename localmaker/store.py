"""Durable resource state: one SQLite table of JSON documents, cached in memory.

Every change is written through before the API call answers, so whatever a client was told
exists survives a restart of localmaker (clean or not).
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
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS resources (kind TEXT NOT NULL, name TEXT NOT NULL, "
            "seq INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (kind, name))"
        )
        self._lock = threading.RLock()
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
            self._db.execute(
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
            self._db.execute("DELETE FROM resources WHERE kind = ? AND name = ?", (kind, name))
            return self._cache.get(kind, {}).pop(name, None) is not None

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
