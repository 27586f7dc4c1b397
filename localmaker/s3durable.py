"""S3 that survives ``kill -9``: every acknowledged S3 write is on disk before its response is sent.

moto keeps S3 in memory. This module makes it durable without changing how moto answers:

* :func:`attach` loads ``<home>/s3/_objects`` into moto's S3 backend on start (and, once, the
  snapshot the previous version wrote on a clean stop, ``<home>/s3/buckets.json``, which it then
  migrates and removes), and wraps moto's WSGI app.
* While a mutating request (PUT, POST, DELETE) runs, the S3 backend's mutating methods
  (``put_object`` - which copy and multipart complete go through -, ``delete_object`` - which the
  batch delete goes through -, ``create_bucket``, ``delete_bucket``, ``put_object_tagging``)
  note what they touch and what was there before. When moto has answered (its response is held
  back, not yet sent), the current state of every touched bucket and key is written to disk:
  a temporary file, ``fsync``, ``rename``, ``fsync`` of the directory. Only then does the client
  get its response. Metadata, content type, tags and ETag are set by moto after ``put_object``
  returns; persisting after the response is built captures them.
* If a write fails (a full disk), the in-memory change is undone (the object reads as before:
  the old version or 404) and the client gets an S3 error, ``507 InsufficientStorage``
  "localmaker could not store the object: No space left on device" (``500 InternalError`` for
  other I/O errors). Earlier objects are untouched: a write never truncates an existing file.

Layout (bucket names cannot contain ``_``, so ``_objects`` never meets an old snapshot's bucket)::

    <home>/s3/_objects/<sha256(bucket)[:32]>/bucket.json        {"name", "region", "account", ...}
    <home>/s3/_objects/<sha256(bucket)[:32]>/o-<sha256(key)>    one file per object: a JSON header
                                                               line (key, metadata, ETag, ...) + bytes

One file per object means one ``rename`` publishes the header and the bytes together.

Limits: only the latest version of a key is kept (versioned buckets lose older versions and
delete markers across a restart, as the old snapshot did); bucket configuration (policy, CORS,
versioning, lifecycle) and in-progress multipart uploads (uploaded parts) are not persisted; ACLs
are not persisted. Objects still live in moto's memory (moto spools values over ~5 MB to
temporary files), loaded from disk at start.
"""

from __future__ import annotations

import datetime
import errno
import functools
import hashlib
import json
import logging
import os
import shutil
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import edge

log = logging.getLogger("localmaker.s3durable")

STORE_DIR = "_objects"
MAGIC = b"LMS3 1\n"
_ABSENT = object()  # the state "no such key / bucket"


class PersistError(Exception):
    """A write could not be made durable; the in-memory change was undone."""

    def __init__(self, what: str, exc: OSError) -> None:
        self.what = what
        self.errno = exc.errno
        super().__init__(f"localmaker could not store the {what}: {exc.strerror or exc}")


# ---- small durable-file helpers -------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, chunks: Callable[[Any], None]) -> None:
    """Write a file through ``chunks(f)`` to a temporary name, fsync, rename over ``path``, fsync dir."""
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "xb") as f:
            chunks(f)
            f.flush()
            os.fdatasync(f.fileno()) if hasattr(os, "fdatasync") else os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _bucket_dir(root: Path, name: str) -> Path:
    return root / hashlib.sha256(name.encode()).hexdigest()[:32]


def _key_file(bdir: Path, key: str) -> Path:
    return bdir / ("o-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest())


# ---- what a request touched -----------------------------------------------------------------------
class _Tx:
    """The buckets and keys one request touched, with what was there before (for undo)."""

    def __init__(self) -> None:
        # (bucket, key) -> [backend, prior key list, produced object]
        self.keys: dict[tuple[str, str], list[Any]] = {}
        # bucket -> [backend, prior FakeBucket or _ABSENT, produced FakeBucket or _ABSENT]
        self.buckets: dict[str, list[Any]] = {}

    def __bool__(self) -> bool:
        return bool(self.keys or self.buckets)


_tls = threading.local()


def _tx() -> _Tx | None:
    return getattr(_tls, "tx", None)


def _prior_keys(backend: Any, bucket_name: str, key_name: str) -> list[Any] | None:
    bucket = backend.buckets.get(bucket_name)
    if bucket is None:
        return None
    return list(bucket.keys.getlist(key_name, []))


def _note_key(tx: _Tx, backend: Any, bucket_name: str, key_name: str) -> bool:
    """Remember a key's state before its first change in this request; True if newly noted."""
    k = (bucket_name, key_name)
    if k in tx.keys:
        return False
    prior = _prior_keys(backend, bucket_name, key_name)
    if prior is None:
        return False
    tx.keys[k] = [backend, prior, _ABSENT]
    return True


def _latest(backend: Any, bucket_name: str, key_name: str) -> Any:
    bucket = backend.buckets.get(bucket_name)
    if bucket is None:
        return _ABSENT
    versions = bucket.keys.getlist(key_name, [])
    return versions[-1] if versions else _ABSENT


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Wrap S3Backend's mutating methods (once per process); a no-op outside a tracked request."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from moto.s3.models import S3Backend

        def key_op(orig: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(orig)
            def wrapper(self: Any, bucket_name: str, key_name: str, *a: Any, **kw: Any) -> Any:
                tx = _tx()
                if tx is None:
                    return orig(self, bucket_name, key_name, *a, **kw)
                new = _note_key(tx, self, bucket_name, key_name)
                try:
                    result = orig(self, bucket_name, key_name, *a, **kw)
                except BaseException:
                    if new:
                        del tx.keys[(bucket_name, key_name)]
                    raise
                note = tx.keys.get((bucket_name, key_name))
                if note is not None:
                    note[2] = _latest(self, bucket_name, key_name)
                return result

            return wrapper

        def bucket_op(orig: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(orig)
            def wrapper(self: Any, bucket_name: str, *a: Any, **kw: Any) -> Any:
                tx = _tx()
                if tx is None:
                    return orig(self, bucket_name, *a, **kw)
                new = bucket_name not in tx.buckets
                if new:
                    tx.buckets[bucket_name] = [self, self.buckets.get(bucket_name, _ABSENT), _ABSENT]
                try:
                    result = orig(self, bucket_name, *a, **kw)
                except BaseException:
                    if new:
                        del tx.buckets[bucket_name]
                    raise
                tx.buckets[bucket_name][2] = self.buckets.get(bucket_name, _ABSENT)
                return result

            return wrapper

        orig_tagging = S3Backend.put_object_tagging

        @functools.wraps(orig_tagging)
        def put_object_tagging(self: Any, key: Any, *a: Any, **kw: Any) -> Any:
            tx = _tx()
            if tx is not None and getattr(key, "bucket_name", None):
                k = (key.bucket_name, key.name)
                if k not in tx.keys and _note_key(tx, self, key.bucket_name, key.name):
                    tx.keys[k][2] = _latest(self, key.bucket_name, key.name)
            return orig_tagging(self, key, *a, **kw)

        S3Backend.put_object = key_op(S3Backend.put_object)  # type: ignore[method-assign]
        S3Backend.delete_object = key_op(S3Backend.delete_object)  # type: ignore[method-assign]
        S3Backend.create_bucket = bucket_op(S3Backend.create_bucket)  # type: ignore[method-assign]
        S3Backend.delete_bucket = bucket_op(S3Backend.delete_bucket)  # type: ignore[method-assign]
        S3Backend.delete_object_tagging = key_op(S3Backend.delete_object_tagging)  # type: ignore[method-assign]
        S3Backend.put_object_tagging = put_object_tagging  # type: ignore[method-assign]
        _installed = True


# ---- the on-disk store ----------------------------------------------------------------------------
class DurableS3:
    """The on-disk copy of moto's S3 under ``root`` (``<home>/s3``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.dir = self.root / STORE_DIR
        self._locks = [threading.Lock() for _ in range(64)]

    def _lock(self, bucket: str, key: str | None = None) -> threading.Lock:
        return self._locks[hash((bucket, key)) % len(self._locks)]

    # ---- writing ------------------------------------------------------------------------------
    def persist_bucket(self, backend: Any, name: str) -> None:
        """Make the disk agree with memory about bucket ``name`` (exists or not)."""
        bdir = _bucket_dir(self.dir, name)
        bucket = backend.buckets.get(name)
        if bucket is not None:
            if (bdir / "bucket.json").exists():
                return
            self.dir.mkdir(parents=True, exist_ok=True)
            bdir.mkdir(exist_ok=True)
            _fsync_dir(self.dir)
            doc = {
                "name": name,
                "region": bucket.region_name,
                "account": bucket.account_id,
                "created": bucket.creation_date.isoformat() if hasattr(bucket, "creation_date") else None,
            }
            _write_atomic(bdir / "bucket.json", lambda f: f.write(json.dumps(doc).encode()))
        elif bdir.exists():
            # gone in memory: retire the directory with one rename, then clean it up
            grave = self.dir / f".deleted-{uuid.uuid4().hex}"
            os.rename(bdir, grave)
            _fsync_dir(self.dir)
            shutil.rmtree(grave, ignore_errors=True)

    def persist_key(self, backend: Any, bucket_name: str, key_name: str) -> None:
        """Make the disk agree with memory about one key (its latest version, or its absence)."""
        bdir = _bucket_dir(self.dir, bucket_name)
        path = _key_file(bdir, key_name)
        if bucket_name in backend.buckets and not (bdir / "bucket.json").exists():
            # a bucket this store has not seen (moto's memory is per process: another in-process
            # LocalMaker on another home made it): store it first
            self.persist_bucket(backend, bucket_name)
        for _ in range(100):
            latest = _latest(backend, bucket_name, key_name)
            if latest is _ABSENT or not hasattr(latest, "_value_buffer"):  # gone, or a delete marker
                try:
                    path.unlink()
                except FileNotFoundError:
                    return
                _fsync_dir(bdir)
                return
            try:
                self._write_key(backend, latest, path)
                return
            except ValueError:
                # a newer write replaced (and closed) this version while we copied it: write that one
                if not getattr(latest, "disposed", False) and not latest._value_buffer.closed:
                    raise
        raise RuntimeError(f"s3://{bucket_name}/{key_name} kept changing while being stored")

    @staticmethod
    def _write_key(backend: Any, key: Any, path: Path) -> None:
        tags = backend.tagger.get_tag_dict_for_resource(key.arn)
        with key.lock:  # moto reads the buffer under this lock too
            header = {
                "key": key.name,
                "size": key.size,
                "etag": key.etag.strip('"'),
                "last_modified": key.last_modified.isoformat(),
                "metadata": dict(key.metadata or {}),
                "storage_class": key.storage_class,
                "encryption": key.encryption,
                "kms_key_id": key.kms_key_id,
                "bucket_key_enabled": key.bucket_key_enabled,
                "checksum_algorithm": key.checksum_algorithm,
                "checksum_value": key.checksum_value,
                "checksum_type": key.checksum_type,  # COMPOSITE for a multipart upload's "crc-N"
                "checksum_parts": key.checksum_parts,
                "website_redirect_location": key.website_redirect_location,
                "tags": tags,
            }

            def body(f: Any) -> None:
                f.write(MAGIC)
                f.write(json.dumps(header).encode() + b"\n")
                key._value_buffer.seek(0)
                shutil.copyfileobj(key._value_buffer, f, 1 << 20)

            _write_atomic(path, body)

    def commit(self, tx: _Tx) -> None:
        """Persist everything ``tx`` touched; on failure undo what is not on disk and raise PersistError."""
        present = [b for b, n in tx.buckets.items() if n[2] is not _ABSENT]
        absent = [b for b, n in tx.buckets.items() if n[2] is _ABSENT]
        done_buckets: set[str] = set()
        done_keys: set[tuple[str, str]] = set()
        what = "bucket"
        try:
            for b in present:
                with self._lock(b):
                    self.persist_bucket(tx.buckets[b][0], b)
                done_buckets.add(b)
            what = "object"
            for (b, k), note in tx.keys.items():
                with self._lock(b, k):
                    self.persist_key(note[0], b, k)
                done_keys.add((b, k))
            what = "bucket"
            for b in absent:
                with self._lock(b):
                    self.persist_bucket(tx.buckets[b][0], b)
                done_buckets.add(b)
        except OSError as exc:
            log.error("S3 write could not be made durable, undoing it: %s", exc)
            self._undo(tx, done_buckets, done_keys)
            raise PersistError(what, exc) from exc

    def _undo(self, tx: _Tx, done_buckets: set[str], done_keys: set[tuple[str, str]]) -> None:
        """Bring memory back to what the disk holds for everything ``tx`` touched but did not store."""
        from moto.s3.models import s3_backends

        for (b, k), (backend, prior, produced) in tx.keys.items():
            if (b, k) in done_keys:
                continue
            with self._lock(b, k):
                bucket = backend.buckets.get(b)
                if bucket is None or _latest(backend, b, k) is not produced:
                    continue  # someone changed it since; their request stores their state
                if prior and not any(getattr(v, "disposed", False) for v in prior):
                    bucket.keys.setlist(k, prior)  # versioned: the older versions are still intact
                    continue
                # moto closed the replaced version: the disk still has it (a failed write never
                # touches the existing file)
                path = _key_file(_bucket_dir(self.dir, b), k)
                try:
                    _load_object(backend, b, path)
                except FileNotFoundError:
                    if k in bucket.keys:
                        bucket.keys.pop(k)
                except (OSError, ValueError, KeyError) as exc:
                    log.error("cannot restore s3://%s/%s from %s: %s", b, k, path, exc)
                    if k in bucket.keys:
                        bucket.keys.pop(k)
        for b, (backend, prior, produced) in tx.buckets.items():
            if b in done_buckets:
                continue
            with self._lock(b):
                current = backend.buckets.get(b, _ABSENT)
                if current is not produced:
                    continue
                if prior is _ABSENT:
                    if current is not _ABSENT and not current.keys:
                        backend.buckets.pop(b, None)
                        s3_backends.bucket_accounts.pop(b, None)
                else:
                    backend.buckets[b] = prior
                    s3_backends.bucket_accounts[b] = (prior.partition, prior.account_id)

    # ---- loading ------------------------------------------------------------------------------
    def load(self) -> int:
        """Load the store (migrating an old snapshot first) into moto's S3; returns the object count."""
        install()
        count = self._load_store()
        legacy = self.root / "buckets.json"
        if legacy.exists():
            count += self._migrate_legacy(legacy)
        return count

    def _load_store(self) -> int:
        from moto.s3.models import s3_backends

        from .aws import ACCOUNT

        if not self.dir.is_dir():
            return 0
        count = 0
        for bdir in sorted(self.dir.iterdir()):
            if bdir.name.startswith(".deleted-"):
                shutil.rmtree(bdir, ignore_errors=True)
                continue
            if not bdir.is_dir():
                continue
            for tmp in bdir.glob(".tmp-*"):
                tmp.unlink(missing_ok=True)  # a write that never finished was never acknowledged
            manifest = bdir / "bucket.json"
            if not manifest.exists():
                if not any(bdir.iterdir()):
                    bdir.rmdir()  # a CreateBucket that never finished
                else:
                    log.error("S3 store directory %s has objects but no bucket.json; skipped", bdir)
                continue
            meta = json.loads(manifest.read_text())
            backend = s3_backends[meta.get("account") or ACCOUNT]["global"]
            if meta["name"] not in backend.buckets:
                backend.create_bucket(meta["name"], meta["region"])
            for f in bdir.iterdir():
                if f.name.startswith("o-"):
                    try:
                        _load_object(backend, meta["name"], f)
                        count += 1
                    except (OSError, ValueError, KeyError) as exc:
                        log.error("S3 object file %s is unreadable, skipped: %s", f, exc)
        for tmp in self.dir.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)
        return count

    def _migrate_legacy(self, manifest: Path) -> int:
        """Load the clean-stop snapshot of the previous version, store it durably, then remove it."""
        from moto.s3.models import s3_backends

        from .aws import ACCOUNT

        backend = s3_backends[ACCOUNT]["global"]
        count = 0
        buckets = json.loads(manifest.read_text())
        for b in buckets:
            if b["name"] not in backend.buckets:
                backend.create_bucket(b["name"], b["region"])
            self.persist_bucket(backend, b["name"])
            bdir = self.root / urllib.parse.quote(b["name"], safe="")
            index = bdir / "index.json"
            for item in json.loads(index.read_text()) if index.exists() else []:
                key = backend.put_object(b["name"], item["key"], (bdir / item["file"]).read_bytes())
                if item.get("metadata"):
                    key.set_metadata(item["metadata"])
                self.persist_key(backend, b["name"], item["key"])
                count += 1
        manifest.unlink()  # from here on the store is the truth
        _fsync_dir(self.root)
        for b in buckets:
            shutil.rmtree(self.root / urllib.parse.quote(b["name"], safe=""), ignore_errors=True)
        log.info("migrated %d S3 objects from the old snapshot in %s", count, self.root)
        return count


def _load_object(backend: Any, bucket_name: str, path: Path) -> None:
    with open(path, "rb") as f:
        if f.readline() != MAGIC:
            raise ValueError("not a localmaker S3 object file")
        h = json.loads(f.readline())
        value = f.read()
    if len(value) != h["size"]:
        raise ValueError(f"size {len(value)} != {h['size']}")
    key = backend.put_object(
        bucket_name,
        h["key"],
        value,
        storage=h.get("storage_class"),
        etag=h.get("etag"),
        encryption=h.get("encryption"),
        kms_key_id=h.get("kms_key_id"),
        bucket_key_enabled=h.get("bucket_key_enabled"),
        checksum_value=h.get("checksum_value"),
        disable_notification=True,
    )
    key.set_metadata(dict(h.get("metadata") or {}))
    if h.get("last_modified"):
        key.last_modified = datetime.datetime.fromisoformat(h["last_modified"])
    key.checksum_algorithm = h.get("checksum_algorithm")
    key.checksum_type = h.get("checksum_type")
    key.checksum_parts = h.get("checksum_parts")
    key.website_redirect_location = h.get("website_redirect_location")
    if h.get("tags"):
        backend.tagger.tag_resource(key.arn, backend.tagger.convert_dict_to_tags_input(h["tags"]))


# ---- the WSGI side --------------------------------------------------------------------------------
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class DurableApp:
    """Wraps moto's WSGI app: a mutating request's response goes out only once its writes are durable."""

    def __init__(self, app: Callable[..., Iterable[bytes]], store: DurableS3) -> None:
        self.app = app
        self.store = store

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") in _READS:
            return self.app(environ, start_response)
        tx = _Tx()
        held: dict[str, Any] = {}
        written: list[bytes] = []

        def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            held["status"], held["headers"] = status, headers
            return written.append

        _tls.tx = tx
        failure: BaseException | None = None
        body = b""
        try:
            result = self.app(environ, hold)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # noqa: BLE001 - whatever moto did to memory must reach the disk first
            failure = exc
        finally:
            _tls.tx = None
        if tx:
            try:
                self.store.commit(tx)
            except PersistError as err:
                return _error(start_response, environ, err)
        if failure is not None:
            raise failure
        start_response(held["status"], held["headers"])
        return [b"".join(written) + body]


def _error(start_response: Callable[..., Any], environ: dict[str, Any], err: PersistError) -> list[bytes]:
    full = err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    status, code = (507, "InsufficientStorage") if full else (500, "InternalError")
    return edge.error_response(environ, start_response, status, code, str(err), kind="s3")


def attach(root: Path, app: Callable[..., Iterable[bytes]]) -> tuple[DurableApp, int]:
    """Load ``root`` into moto's S3 and return (moto's app made durable, objects loaded)."""
    store = DurableS3(root)
    n = store.load()
    return DurableApp(app, store), n
