"""S3 as jobs see it: channel downloads, artifact uploads, and S3 state that outlives the server.

Runners talk to S3 through boto3 against localmaker's own edge port (moto behind it), i.e. the
same API a real job's platform side uses, so S3Prefix/ManifestFile semantics are exercised
against real listings. Persistence snapshots moto's in-memory S3 to ``<home>/s3`` on a clean
stop and loads it on start.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import tarfile
import urllib.parse
from pathlib import Path
from typing import Any

from . import safepath

log = logging.getLogger("localmaker.s3")


class ChannelError(Exception):
    """A channel's data cannot be fetched; the message becomes the job's FailureReason."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    p = urllib.parse.urlparse(uri)
    if p.scheme != "s3" or not p.netloc:
        raise ChannelError(f"'{uri}' is not an s3:// URI")
    return p.netloc, p.path.lstrip("/")


def list_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []))
    except client.exceptions.NoSuchBucket as exc:
        raise ChannelError(f"S3 bucket '{bucket}' does not exist") from exc
    return sorted(k for k in keys if not k.endswith("/"))


def resolve_objects(client: Any, source: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(bucket, key, relative path in the channel) for an S3DataSource, in S3 key order.

    As SageMaker lays out a channel (and names a transform's outputs): an object's path is its key
    with the S3Uri's key prefix removed, then any leading ``/`` stripped, so ``s3://b/data/train``
    and ``s3://b/data/train/`` both put ``data/train/part.csv`` at ``part.csv`` (what
    ``Session.upload_data`` returns has no trailing slash), and ``s3://b/data/tr`` puts it at
    ``ain/part.csv``. An S3Uri naming one object gives that object's base name."""
    uri = source["S3Uri"]
    data_type = source.get("S3DataType", "S3Prefix")
    bucket, key = parse_s3_uri(uri)
    if data_type == "S3Prefix":
        keys = list_keys(client, bucket, key)
        if not keys:
            raise ChannelError(f"No S3 objects found under S3 URL \"{uri}\" given in input data source.")
        # 'p//x' under 'p/' is the file x of the channel (not the absolute path /x)
        return [(bucket, k, _channel_path(bucket, k, k[len(key) :].lstrip("/") or k.rsplit("/", 1)[-1])) for k in keys]
    if data_type == "ManifestFile":
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey as exc:
            raise ChannelError(f"Manifest file {uri} does not exist") from exc
        try:
            manifest = json.loads(body)
            prefix_uri = manifest[0]["prefix"]
            rels = manifest[1:]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ChannelError(
                f"Manifest file {uri} is not a JSON list starting with {{\"prefix\": \"s3://...\"}}"
            ) from exc
        if not isinstance(prefix_uri, str):
            raise ChannelError(f"Manifest file {uri}: \"prefix\" must be an s3:// URI string")
        pbucket, pkey = parse_s3_uri(prefix_uri)
        out = []
        for i, rel in enumerate(rels, start=1):
            if not isinstance(rel, str):
                raise ChannelError(f"Manifest file {uri}: entry {i} ({json.dumps(rel)[:100]}) is not a string")
            out.append((pbucket, pkey + rel, _channel_path(pbucket, pkey + rel, rel, f"manifest {uri} entry {rel!r}")))
        return out
    if data_type == "AugmentedManifestFile":
        raise ChannelError("S3DataType AugmentedManifestFile is not supported by localmaker")
    raise ChannelError(f"Unknown S3DataType '{data_type}'")


def _channel_path(bucket: str, key: str, rel: str, what: str | None = None) -> str:
    """The path of an object relative to its channel directory, which it must not leave (S3 keys
    like ``p/../../x`` are legal; written under ``/opt/ml/input/data/<channel>`` they are not)."""
    try:
        safepath.relative(rel)
    except safepath.PathEscape as exc:
        raise ChannelError(
            f"S3 object s3://{bucket}/{key} ({what or 'relative path ' + repr(rel)}) cannot be downloaded: "
            f"its local path {exc.reason}."
        ) from exc
    return rel


def shard(objects: list[Any], distribution: str, host_index: int, n_hosts: int) -> list[Any]:
    """ShardedByS3Key gives host i the keys i, i+N, ... (each host a disjoint share)."""
    if distribution == "ShardedByS3Key" and n_hosts > 1:
        return objects[host_index::n_hosts]
    return objects


def download_objects(
    client: Any, objects: list[tuple[str, str, str]], dest: Path, compression: str | None
) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    for bucket, key, rel in objects:
        if compression == "Gzip" and rel.endswith(".gz") and not rel.endswith("/.gz") and rel != ".gz":
            rel = rel[:-3]
        try:
            # resolved, so a symbolic link or '..' cannot carry the write out of the channel
            target = safepath.inside(dest, rel)
        except safepath.PathEscape as exc:
            raise ChannelError(
                f"S3 object s3://{bucket}/{key} cannot be downloaded: its local path {exc.part} {exc.reason}."
            ) from exc
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey as exc:
            raise ChannelError(f"S3 object s3://{bucket}/{key} does not exist") from exc
        if compression == "Gzip":
            try:
                body = gzip.decompress(body)
            except OSError as exc:
                raise ChannelError(f"s3://{bucket}/{key} is not gzip data (CompressionType Gzip)") from exc
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
        except OSError as exc:  # e.g. keys 'a' and 'a/b' in one channel: 'a' cannot be a file and a directory
            raise ChannelError(f"S3 object s3://{bucket}/{key} cannot be written to the channel: {exc.strerror}") from exc
        total += len(body)
    return total


def tar_dir(src: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for child in sorted(src.iterdir()) if src.exists() else []:
            tar.add(child, arcname=child.name)
    return buf.getvalue()


def upload_bytes(client: Any, uri: str, data: bytes) -> None:
    bucket, key = parse_s3_uri(uri)
    client.put_object(Bucket=bucket, Key=key, Body=data)


def fetch_model(client: Any, uri: str, dest: Path) -> None:
    """Extract a model.tar.gz (or copy a single file / prefix) into ``dest``."""
    bucket, key = parse_s3_uri(uri)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (client.exceptions.NoSuchKey, client.exceptions.NoSuchBucket) as exc:
        raise ChannelError(f"Failed to download model data from {uri}: the object does not exist.") from exc
    if key.endswith((".tar.gz", ".tgz")):
        try:
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                tar.extractall(dest, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise ChannelError(f"Model data {uri} is not a valid tar.gz archive: {exc}") from exc
    else:
        name = key.rsplit("/", 1)[-1]
        try:
            target = safepath.inside(dest, name)
        except safepath.PathEscape as exc:
            raise ChannelError(f"Failed to download model data from {uri}: the file name {exc.part} {exc.reason}.") from exc
        target.write_bytes(body)

