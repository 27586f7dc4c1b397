"""Links a person can open: presigned S3 URLs (fetched for real from localmaker) and console URLs."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest

from include.mlpipeline.run import s3_console_url, sagemaker_console_url
from include.mlpipeline.s3 import MAX_PRESIGN_SECONDS, presigned_url


@pytest.fixture(scope="module")
def localmaker(tmp_path_factory):
    from localmaker.launcher import start

    server = start(tmp_path_factory.mktemp("lm-links"), images=[])
    yield server
    server.stop()


def test_a_presigned_report_link_opens_in_a_browser_and_only_with_its_signature(localmaker):
    import boto3

    s3 = boto3.client("s3", endpoint_url=localmaker.url, region_name="us-east-1",
                      aws_access_key_id="links", aws_secret_access_key="links")
    s3.create_bucket(Bucket="links")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    s3.put_object(Bucket="links", Key="m/run/evaluation/evaluation.png", Body=png, ContentType="image/png")

    url = presigned_url(s3, "s3://links/m/run/evaluation/evaluation.png", 3600)
    with urllib.request.urlopen(url, timeout=30) as resp:  # no credentials: just the URL
        assert resp.read() == png
    unsigned = url.split("?", 1)[0]
    assert unsigned.startswith(localmaker.url) and unsigned.endswith("/links/m/run/evaluation/evaluation.png")


def test_presigned_expiry_is_capped_and_bucket_only_uris_are_refused():
    import boto3

    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b",
                      config=__import__("botocore.config").config.Config(signature_version="s3v4"))
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(presigned_url(s3, "s3://b/k.png", 10**9)).query)
    assert query["X-Amz-Expires"] == [str(MAX_PRESIGN_SECONDS)]
    with pytest.raises(ValueError, match="names a bucket"):
        presigned_url(s3, "s3://b/", 60)


def test_sagemaker_console_urls():
    assert sagemaker_console_url("eu-west-1", "training", "diabetes-dnn-dev-1") == (
        "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/diabetes-dnn-dev-1")
    assert sagemaker_console_url("us-east-1", "endpoint", "e").endswith("#/endpoints/e")
    with pytest.raises(ValueError, match="unknown SageMaker resource kind"):
        sagemaker_console_url("us-east-1", "notebook", "x")


def test_s3_console_urls_of_folders():
    assert s3_console_url("eu-west-1", "s3://bkt/images/review/20260301T000000/") == (
        "https://s3.console.aws.amazon.com/s3/buckets/bkt?region=eu-west-1"
        "&prefix=images/review/20260301T000000/&showversions=false"
    )
    assert "&prefix=a%20b/%26c/&" in s3_console_url("us-east-1", "s3://b/a b/&c/")
