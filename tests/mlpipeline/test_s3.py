"""include/mlpipeline/s3.py against moto's S3: what is written is what is read back, listings
page, a missing object is one error naming its URI."""

from __future__ import annotations

from typing import Any

import pytest

from include.mlpipeline import s3 as facade

B = "s3://mlpipeline-dev"


def test_uris_split_and_join() -> None:
    assert facade.split_s3_uri("s3://bucket/a/b.csv") == ("bucket", "a/b.csv")
    assert facade.split_s3_uri("s3://bucket") == ("bucket", "")
    for bad in ("https://bucket/a", "bucket/a", "s3:///a"):
        with pytest.raises(ValueError, match="s3:// URI|no bucket"):
            facade.split_s3_uri(bad)
    assert facade.s3_uri("b", "/m/", "run/", "x") == "s3://b/m/run/x"
    assert facade.s3_uri("b", "m", "", trailing_slash=True) == "s3://b/m/"
    assert facade.s3_uri("b") == "s3://b/"
    assert facade.as_prefix("s3://b/p") == facade.as_prefix("s3://b/p/") == "s3://b/p/"


def test_bytes_text_and_json_round_trip_with_their_content_types(s3: Any) -> None:
    assert facade.put_bytes(s3, f"{B}/a/raw.bin", b"\x00\xff", metadata={"k": "v"}) == f"{B}/a/raw.bin"
    assert facade.get_bytes(s3, f"{B}/a/raw.bin") == b"\x00\xff"
    assert s3.head_object(Bucket="mlpipeline-dev", Key="a/raw.bin")["Metadata"] == {"k": "v"}
    facade.put_text(s3, f"{B}/a/t.csv", "x,ü\n", "text/csv")
    assert facade.get_text(s3, f"{B}/a/t.csv") == "x,ü\n"
    assert s3.head_object(Bucket="mlpipeline-dev", Key="a/t.csv")["ContentType"] == "text/csv"
    facade.put_json(s3, f"{B}/a/d.json", {"b": 1, "a": [1.5]}, sort_keys=True)
    assert facade.get_json(s3, f"{B}/a/d.json") == {"a": [1.5], "b": 1}
    assert facade.get_text(s3, f"{B}/a/d.json").startswith('{\n  "a"')
    assert s3.head_object(Bucket="mlpipeline-dev", Key="a/d.json")["ContentType"] == "application/json"
    with pytest.raises(ValueError, match=r"s3://mlpipeline-dev/a/t.csv is not valid JSON"):
        facade.get_json(s3, f"{B}/a/t.csv")
    with facade.open_stream(s3, f"{B}/a/t.csv") as body:
        assert body.read(1) == b"x"


def test_missing_objects_and_buckets_are_file_not_found_naming_the_uri(s3: Any) -> None:
    with pytest.raises(FileNotFoundError, match=r"no object at s3://mlpipeline-dev/nope.txt \(NoSuchKey\)"):
        facade.get_bytes(s3, f"{B}/nope.txt")
    with pytest.raises(facade.ObjectNotFound, match="NoSuchBucket"):
        facade.get_json(s3, "s3://no-such-bucket/x.json")
    facade.put_text(s3, f"{B}/here.txt", "1")
    assert facade.exists(s3, f"{B}/here.txt") and not facade.exists(s3, f"{B}/there.txt")


def test_listing_reads_every_page_sorted_without_folder_markers(s3: Any) -> None:
    for i in reversed(range(1005)):  # more than one page of list_objects_v2
        s3.put_object(Bucket="mlpipeline-dev", Key=f"many/{i:04d}.out", Body=b"")
    s3.put_object(Bucket="mlpipeline-dev", Key="many/folder/", Body=b"")
    s3.put_object(Bucket="mlpipeline-dev", Key="many/summary.json", Body=b"")
    keys = facade.list_keys(s3, f"{B}/many/", ".out")
    assert len(keys) == 1005 and keys[0] == "many/0000.out" and keys == sorted(keys)
    assert "many/folder/" not in facade.list_keys(s3, f"{B}/many/")
    assert facade.list_uris(s3, f"{B}/many/", "summary.json") == [f"{B}/many/summary.json"]
    assert facade.has_objects(s3, f"{B}/many/") and not facade.has_objects(s3, f"{B}/few/")


def test_copy_keeps_or_replaces_metadata(s3: Any) -> None:
    facade.put_bytes(s3, f"{B}/in/cat.png", b"png", "image/png", {"a": "1"})
    facade.copy(s3, f"{B}/in/cat.png", f"{B}/same/cat.png")
    same = s3.head_object(Bucket="mlpipeline-dev", Key="same/cat.png")
    assert (same["ContentType"], same["Metadata"]) == ("image/png", {"a": "1"})
    facade.copy(s3, f"{B}/in/cat.png", "s3://mlpipeline-prod/review/cat.png", content_type="image/x", metadata={"b": "2"})
    replaced = s3.head_object(Bucket="mlpipeline-prod", Key="review/cat.png")
    assert (replaced["ContentType"], replaced["Metadata"]) == ("image/x", {"b": "2"})
    assert facade.get_bytes(s3, "s3://mlpipeline-prod/review/cat.png") == b"png"


def test_uploads_from_a_file_and_a_stream(s3: Any, tmp_path) -> None:
    import io

    path = tmp_path / "plot.png"
    path.write_bytes(b"\x89PNG")
    facade.upload_file(s3, path, f"{B}/r/plot.png", content_type="image/png")
    assert s3.head_object(Bucket="mlpipeline-dev", Key="r/plot.png")["ContentType"] == "image/png"
    facade.upload_stream(s3, io.BytesIO(b"a,b\n" * 1000), f"{B}/r/raw.csv")
    assert facade.get_bytes(s3, f"{B}/r/plot.png") == b"\x89PNG"
    assert len(facade.get_bytes(s3, f"{B}/r/raw.csv")) == 4000
