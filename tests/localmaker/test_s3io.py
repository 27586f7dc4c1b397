"""s3io.resolve_objects lays out S3Prefix data as SageMaker does: key minus the S3Uri's key prefix."""

from __future__ import annotations

from typing import Any

import pytest

from localmaker import s3io


class _Listing:
    """The part of a boto3 S3 client resolve_objects uses for S3Prefix: list_objects_v2 pages."""

    class exceptions:  # noqa: N801 - boto3's client attribute
        NoSuchBucket = LookupError

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        keys = self.keys

        class _Pages:
            def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:  # noqa: N803 - boto3's names
                return [{"Contents": [{"Key": k} for k in keys if k.startswith(Prefix)]}]

        return _Pages()


KEYS = ["data/train/part-1.csv", "data/train/part-2.csv", "data/train/sub/x.csv", "data/training.csv", "other/y.csv"]


@pytest.mark.parametrize("uri, expected", [
    # Session.upload_data returns the prefix without a trailing slash: same layout as with one
    ("s3://b/data/train", ["ing.csv", "part-1.csv", "part-2.csv", "sub/x.csv"]),
    ("s3://b/data/train/", ["part-1.csv", "part-2.csv", "sub/x.csv"]),
    ("s3://b/data/tr", ["ain/part-1.csv", "ain/part-2.csv", "ain/sub/x.csv", "aining.csv"]),
    ("s3://b/data/train/part-1.csv", ["part-1.csv"]),  # one object: its base name
    ("s3://b/data", ["train/part-1.csv", "train/part-2.csv", "train/sub/x.csv", "training.csv"]),
])
def test_channel_path_is_the_key_without_the_uri_prefix(uri: str, expected: list[str]) -> None:
    objects = s3io.resolve_objects(_Listing(KEYS), {"S3Uri": uri, "S3DataType": "S3Prefix"})
    assert sorted(rel for _, _, rel in objects) == expected
    assert all(key.endswith(rel) for _, key, rel in objects)


def test_a_double_slash_after_the_prefix_is_not_an_absolute_path() -> None:
    objects = s3io.resolve_objects(_Listing(["p//x.csv"]), {"S3Uri": "s3://b/p/", "S3DataType": "S3Prefix"})
    assert [rel for _, _, rel in objects] == ["x.csv"]


def test_a_key_leading_out_of_the_channel_is_refused() -> None:
    with pytest.raises(s3io.ChannelError, match="leads outside"):
        s3io.resolve_objects(_Listing(["p/../../x"]), {"S3Uri": "s3://b/p", "S3DataType": "S3Prefix"})
