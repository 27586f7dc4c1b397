"""The tasks of `<model>_image_inference` against moto S3, a fake endpoint status and a stub runtime."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from include.mlpipeline.pipelines import image_inference as tasks
from include.mlpipeline.run import RunContext
from tests.mlpipeline.test_image_inference import (  # noqa: F401  (fixtures)
    BUCKET,
    MODEL,
    RUN_A,
    StubRuntime,
    cfg,
    ic_config_dir,
    read_json,
    upload,
)

CTX = RunContext(model=MODEL, stage="dev", run_id=RUN_A, ts_nodash="20260301T000000")


@pytest.fixture
def world(s3: Any, cfg: Any, clients: Any) -> SimpleNamespace:  # noqa: F811
    clients.sagemaker.serve("image-classifier-prod", "s3://b/ic.tar.gz")
    upload(s3, cfg, {"a.png": b"A", "b.png": b"B", "c.png": b"C"})
    clients.runtime = StubRuntime({b"A": [0.05, 0.9, 0.05], b"B": [0.5, 0.3, 0.2], b"C": [0.0, 0.0, 1.0]})
    return SimpleNamespace(cfg=cfg, clients=clients, pushed={})


def _push(world: SimpleNamespace) -> Any:
    return lambda key, value: world.pushed.__setitem__(key, value)


def test_a_run_finds_classifies_and_reports(world):
    chunks = tasks.find_new_images(world.cfg, CTX, world.clients, 2)
    assert [c["chunk_index"] for c in chunks] == [0, 1] and [len(c["keys"]) for c in chunks] == [2, 1]
    assert {(c["endpoint"], c["threshold"]) for c in chunks} == {("image-classifier-prod", 0.8)}
    assert tasks.chunk_label(chunks[1]).startswith("chunk 1: 1 from ")
    results = [tasks.classify(world.cfg, CTX, world.clients, c, tries_left=True) for c in chunks]
    report = tasks.report(world.cfg, CTX, world.clients, chunks, results, push=_push(world))
    assert {k: report[k] for k in ("images", "accepted", "review", "failed")} == {
        "images": 3, "accepted": 2, "review": 1, "failed": 0
    }
    assert read_json(world.clients.s3, report["summary"].removeprefix(f"s3://{BUCKET}/"))["accepted"] == 2
    assert world.pushed == {}


def _valid_seconds(query: dict[str, list[str]]) -> float:
    """How long a presigned URL stays valid, SigV4 (``X-Amz-Expires``) or SigV2 (``Expires``, an epoch),
    checking that it is signed."""
    import time

    assert query.get("X-Amz-Signature") or query.get("Signature"), query
    if "X-Amz-Expires" in query:
        return float(query["X-Amz-Expires"][0])
    return float(query["Expires"][0]) - time.time()


def test_the_report_logs_links_a_person_can_open(world, capsys):
    import urllib.parse

    chunks = tasks.find_new_images(world.cfg, CTX, world.clients, 2)
    results = [tasks.classify(world.cfg, CTX, world.clients, c, tries_left=True) for c in chunks]
    report = tasks.report(world.cfg, CTX, world.clients, chunks, results, push=_push(world))
    out = capsys.readouterr().out
    region = world.cfg.aws.region
    opened = [line.split("open", 1)[1].split(": ", 1)[1] for line in out.splitlines() if line.strip().startswith("open")]
    assert len(opened) == 1 + len(report["results"]) >= 2, out
    for uri, url in zip([report["summary"], *report["results"]], opened, strict=True):
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        assert parts.scheme in ("http", "https") and parts.path.endswith(uri.removeprefix(f"s3://{BUCKET}")), (uri, url)
        assert 86400 - 60 < _valid_seconds(query) <= 86400, url
    review = next(line for line in out.splitlines() if "in the S3 console: " in line).split(": ", 1)[1]
    assert review.startswith(f"https://s3.console.aws.amazon.com/s3/buckets/{BUCKET}?region={region}&prefix="), review
    assert f"endpoint image-classifier-prod in the SageMaker console: https://{region}.console.aws.amazon.com/" in out


def test_an_endpoint_not_in_service_stops_before_any_image(world):
    from include.mlpipeline.image_inference import ImageInferenceError

    world.clients.sagemaker.serve("image-classifier-prod", "s3://b/ic.tar.gz", status="Creating")
    with pytest.raises(ImageInferenceError, match="is Creating, not InService"):
        tasks.find_new_images(world.cfg, CTX, world.clients, 2)


def test_failed_images_fail_the_run_with_their_counts_pushed(world):
    from airflow.sdk.exceptions import AirflowFailException

    world.clients.runtime.answers[b"B"] = b"not json"
    chunks = tasks.find_new_images(world.cfg, CTX, world.clients, 5)
    results = [tasks.classify(world.cfg, CTX, world.clients, c, tries_left=True) for c in chunks]
    with pytest.raises(AirflowFailException, match="b.png"):
        tasks.report(world.cfg, CTX, world.clients, chunks, results, push=_push(world))
    counts = world.pushed["counts"]
    assert (counts["images"], counts["accepted"], counts["failed"]) == (3, 2, 1)
    assert [k.endswith("b.png") for k in counts["failed_images"]] == [True]


def test_transient_errors_retry_the_chunk_while_tries_are_left(world):
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"},
                             "ResponseMetadata": {"HTTPStatusCode": 400}}, "InvokeEndpoint")
    world.clients.runtime.answers[b"C"] = throttled
    (chunk,) = tasks.find_new_images(world.cfg, CTX, world.clients, 5)
    with pytest.raises(RuntimeError, match=r"1 image\(s\) met errors that may pass .*c.png.*retrying the chunk"):
        tasks.classify(world.cfg, CTX, world.clients, chunk, tries_left=True)
    last = tasks.classify(world.cfg, CTX, world.clients, chunk, tries_left=False)  # the last try records it
    assert (last["accepted"], last["review"], len(last["failed"]), last["reused"]) == (1, 1, 1, 2)
