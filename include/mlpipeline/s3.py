"""The pipelines' one way to S3: URIs in, bytes / text / JSON out.

Every function takes the boto3 S3 client the caller already has (an Airflow hook's
``get_conn()``, or a test's moto client), so credentials and endpoint - AWS or localmaker - stay
the connection's business. Locations are ``s3://bucket/key`` URIs throughout; a URI ending in
``/`` is a prefix. A missing object is :class:`ObjectNotFound` (a :class:`FileNotFoundError`)
naming the URI, whatever botocore's error code for it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: SigV4 presigned URLs are valid for at most 7 days
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
#: botocore error codes that mean "there is no such object" (GetObject, HeadObject)
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket"})


class ObjectNotFound(FileNotFoundError):
    """No object at the URI (or no bucket for it)."""


# ------------------------------------------------------------------------------------ URIs


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/part`` -> ``("bucket", "key/part")``; rejects anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"S3 URI has no bucket: {uri!r}")
    return bucket, key


def s3_uri(bucket: str, *parts: str, trailing_slash: bool = False) -> str:
    """Join S3 key parts without doubled slashes; ``trailing_slash`` marks a prefix."""
    key = "/".join(p.strip("/") for p in parts if p.strip("/"))
    return f"s3://{bucket}/{key}" + ("/" if trailing_slash and key else "")


def as_prefix(uri: str) -> str:
    """``uri`` with exactly one trailing ``/``: the prefix of the objects "in" it."""
    return uri.rstrip("/") + "/"


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, Mapping) else None


# ------------------------------------------------------------------------------------ reads


def get_bytes(client: Any, uri: str) -> bytes:
    """The object's bytes; :class:`ObjectNotFound` when there is none."""
    with open_stream(client, uri) as body:
        return body.read()


def get_text(client: Any, uri: str) -> str:
    """The object as UTF-8 text."""
    return get_bytes(client, uri).decode("utf-8")


def get_json(client: Any, uri: str) -> Any:
    """The object parsed as JSON; a ValueError naming the URI when it is not JSON."""
    body = get_bytes(client, uri)
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{uri} is not valid JSON: {exc}") from None


@contextmanager
def open_stream(client: Any, uri: str) -> Iterator[Any]:
    """The object's streaming body (read as you go, closed on exit), for objects too big to hold."""
    bucket, key = split_s3_uri(uri)
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:  # botocore ClientError, without importing botocore here
        if _error_code(exc) in _MISSING_CODES:
            raise ObjectNotFound(f"no object at {uri} ({_error_code(exc)})") from None
        raise
    try:
        yield body
    finally:
        body.close()


def exists(client: Any, uri: str) -> bool:
    """Whether an object is at ``uri`` (a HEAD request; nothing is read)."""
    bucket, key = split_s3_uri(uri)
    try:
        client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # botocore ClientError
        if _error_code(exc) in _MISSING_CODES:
            return False
        raise
    return True


def list_keys(client: Any, uri: str, suffix: str = "") -> list[str]:
    """Keys under the prefix ``uri`` ending in ``suffix``, sorted; "folder" placeholders (keys
    ending in ``/``) are left out. All pages are read."""
    bucket, prefix = split_s3_uri(uri)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(
            o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(suffix) and not o["Key"].endswith("/")
        )
    return sorted(keys)


def list_uris(client: Any, uri: str, suffix: str = "") -> list[str]:
    """:func:`list_keys` as ``s3://`` URIs."""
    bucket, _ = split_s3_uri(uri)
    return [f"s3://{bucket}/{key}" for key in list_keys(client, uri, suffix)]


def has_objects(client: Any, uri: str) -> bool:
    """Whether anything is under the prefix ``uri`` (one listing of at most one key)."""
    bucket, prefix = split_s3_uri(uri)
    return bool(client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0))


# ----------------------------------------------------------------------------------- writes


def put_bytes(
    client: Any, uri: str, data: bytes, content_type: str | None = None, metadata: Mapping[str, str] | None = None
) -> str:
    """Store ``data`` at ``uri``; returns ``uri``."""
    bucket, key = split_s3_uri(uri)
    extra: dict[str, Any] = {}
    if content_type is not None:
        extra["ContentType"] = content_type
    if metadata is not None:
        extra["Metadata"] = dict(metadata)
    client.put_object(Bucket=bucket, Key=key, Body=data, **extra)
    return uri


def put_text(client: Any, uri: str, text: str, content_type: str | None = None) -> str:
    """Store ``text`` as UTF-8 at ``uri``; returns ``uri``."""
    return put_bytes(client, uri, text.encode("utf-8"), content_type)


def put_json(client: Any, uri: str, value: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Store ``value`` as ``application/json`` at ``uri``; returns ``uri``."""
    return put_bytes(
        client, uri, json.dumps(value, indent=indent, sort_keys=sort_keys).encode(), "application/json"
    )


def upload_file(client: Any, path: str | Path, uri: str, content_type: str | None = None) -> str:
    """Upload one local file (multipart for big ones, via boto3's transfer manager); returns ``uri``."""
    bucket, key = split_s3_uri(uri)
    extra = {"ExtraArgs": {"ContentType": content_type}} if content_type else {}
    client.upload_file(str(path), bucket, key, **extra)
    return uri


def upload_stream(client: Any, stream: Any, uri: str) -> str:
    """Upload a readable file-like object (multipart as it is read, so memory stays flat)."""
    bucket, key = split_s3_uri(uri)
    client.upload_fileobj(stream, bucket, key)
    return uri


def copy(
    client: Any, source_uri: str, target_uri: str, *, content_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> str:
    """Copy an object server-side; with ``content_type`` or ``metadata`` the copy gets those
    instead of the source's (S3's ``MetadataDirective=REPLACE``). Returns ``target_uri``."""
    source_bucket, source_key = split_s3_uri(source_uri)
    bucket, key = split_s3_uri(target_uri)
    extra: dict[str, Any] = {}
    if content_type is not None or metadata is not None:
        extra["MetadataDirective"] = "REPLACE"
        if content_type is not None:
            extra["ContentType"] = content_type
        extra["Metadata"] = dict(metadata or {})
    client.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key}, **extra)
    return target_uri


def presigned_url(client: Any, uri: str, expires_seconds: float) -> str:
    """A link to the object at ``uri`` that a person can open in a browser, valid ``expires_seconds``.

    Signed by the client itself, so it points where the client does: S3 on AWS, or the endpoint of
    the connection (localmaker) otherwise. Capped at S3's 7-day maximum.
    """
    bucket, key = split_s3_uri(uri)
    if not key:
        raise ValueError(f"{uri!r} names a bucket, not an object")
    expires = max(1, min(int(expires_seconds), MAX_PRESIGN_SECONDS))
    return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires)
