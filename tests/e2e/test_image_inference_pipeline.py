"""`image_classifier_image_inference` end to end: a real image classifier behind a real endpoint,
real images in S3, the real DAG under `airflow dags test`.

One localmaker and one Airflow DB for the module. The endpoint is made here with boto3, as a user
would: a training job of the built-in ``image-classification:1`` image on three digit classes
(scikit-learn's ``load_digits`` 0/1/2 drawn as 32x32 RGB PNGs), a model, an endpoint config and
the endpoint the model's config names. Then, in order:

A. held-out clean digits plus one deliberately ambiguous image are classified. The threshold for
   the run (the ``image_inference.confidence_threshold`` param) is chosen from the endpoint's own
   answers beforehand, above the ambiguous image's confidence and below most clean ones, so the
   expected routing of every image is known exactly: the accepted JSON lines hold exactly the
   images at or above it, with the right class for nearly all, and the ambiguous image is in
   review with its probabilities;
B. the same logical date again: the run reuses its manifest and results, nothing is classified
   twice and nothing is added;
C. a later run finds only the newly uploaded file, which is not an image: the run fails, naming it,
   and leaves it unprocessed for the next run;
D. with that file removed, a run has nothing new: no classification task runs, the report still
   does (0 images) and the run succeeds.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from include.mlpipeline import image_inference as ii
from include.mlpipeline.config import PipelineConfig, load_config

from ..airflow_helpers import ROOT, airflow_env, dags_test, migrate, run_succeeded

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODEL = "image_classifier"
DAG_ID = f"{MODEL}_image_inference"
IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"
DIGITS = (0, 1, 2)
TRAIN_PER_CLASS, VALIDATION_PER_CLASS, CLEAN_PER_CLASS = 60, 20, 6
DATE_A = "2026-03-01T06:00:00+00:00"
DATE_C = "2026-03-02T06:00:00+00:00"
DATE_D = "2026-03-03T06:00:00+00:00"


@dataclass
class Stack:
    server: Any
    cfg: PipelineConfig
    airflow: dict[str, str]
    s3: Any
    sm: Any
    runtime: Any

    @property
    def bucket(self) -> str:
        return self.cfg.aws.bucket

    def run(self, logical_date: str, conf: dict[str, Any] | None = None) -> Any:
        return dags_test(DAG_ID, self.airflow, logical_date=logical_date, conf=conf, timeout=600)

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def probabilities(self, image: bytes) -> list[float]:
        body = self.runtime.invoke_endpoint(
            EndpointName=ii.endpoint_name(self.cfg), Body=image, ContentType="application/x-image",
            Accept="application/json",
        )["Body"].read()
        return ii.parse_probabilities(body)


def _png(pixels: Any) -> bytes:
    """An 8x8 digit (0..16) as a 32x32 RGB PNG: bright strokes on black, bilinear upscaling."""
    import numpy as np

    from smformats.imagelist import encode_image

    grey = np.clip(np.asarray(pixels, dtype=float) / 16.0, 0.0, 1.0)
    return encode_image(grey, "PNG", size=(32, 32), mode="RGB")


def _digits() -> dict[int, list[Any]]:
    """The 8x8 images of each digit, in the data set's order (deterministic splits)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return {d: [img for img, y in zip(data.images, data.target, strict=True) if y == d] for d in DIGITS}


def _wait(describe: Any, done: Any, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = describe()
        if done(state):
            return state
        assert time.monotonic() < deadline, f"{what} not done within {timeout:.0f} s: {state}"
        time.sleep(1)


def _deploy_classifier(stack: Stack, digits: dict[int, list[Any]]) -> str:
    """Train image-classification on the digits (image format: images + .lst) and deploy it."""
    from smformats.imagelist import format_lst

    cfg, s3 = stack.cfg, stack.s3
    base = f"{cfg.model}/e2e-training"
    splits = {"train": (0, TRAIN_PER_CLASS), "validation": (TRAIN_PER_CLASS, TRAIN_PER_CLASS + VALIDATION_PER_CLASS)}
    for channel, (lo, hi) in splits.items():
        entries = []
        for label in DIGITS:
            for i, pixels in enumerate(digits[label][lo:hi]):
                path = f"{label}/{i:03d}.png"
                s3.put_object(Bucket=stack.bucket, Key=f"{base}/{channel}/{path}", Body=_png(pixels))
                entries.append((len(entries), label, path))
        s3.put_object(Bucket=stack.bucket, Key=f"{base}/{channel}_lst/{channel}.lst", Body=format_lst(entries).encode())

    def channel(name: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{stack.bucket}/{base}/{name}/",
                                            "S3DataDistributionType": "FullyReplicated"}},
            "ContentType": "application/x-image",
        }

    job = f"{cfg.model_slug}-e2e-train"
    stack.sm.create_training_job(
        TrainingJobName=job,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=cfg.aws.role_arn,
        HyperParameters={
            "num_classes": str(len(DIGITS)),
            "num_training_samples": str(TRAIN_PER_CLASS * len(DIGITS)),
            "image_shape": "3,32,32",
            "epochs": "12",
            "mini_batch_size": "16",
            "learning_rate": "0.05",
            "optimizer": "sgd",
            "use_pretrained_model": "0",
        },
        InputDataConfig=[channel(c) for c in ("train", "validation", "train_lst", "validation_lst")],
        OutputDataConfig={"S3OutputPath": f"s3://{stack.bucket}/{base}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    described = _wait(
        lambda: stack.sm.describe_training_job(TrainingJobName=job),
        lambda d: d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"),
        300,
        f"training job {job}",
    )
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in described.get("FinalMetricDataList", [])}
    print(f"trained {job}: {metrics}")

    endpoint = ii.endpoint_name(cfg)
    stack.sm.create_model(
        ModelName=job,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": described["ModelArtifacts"]["S3ModelArtifacts"]},
        ExecutionRoleArn=cfg.aws.role_arn,
    )
    stack.sm.create_endpoint_config(
        EndpointConfigName=job,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": job, "InitialInstanceCount": 1,
                             "InstanceType": "ml.m5.large"}],
    )
    stack.sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=job)
    status = _wait(
        lambda: stack.sm.describe_endpoint(EndpointName=endpoint),
        lambda d: d["EndpointStatus"] not in ("Creating", "Updating"),
        180,
        f"endpoint {endpoint}",
    )
    assert status["EndpointStatus"] == "InService", status.get("FailureReason")
    return endpoint


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from include.mlpipeline.bootstrap import provision_stage
    from localmaker.launcher import start

    home = tmp_path_factory.mktemp("image-inference-e2e")
    cfg = load_config(MODEL, "dev")
    assert cfg.image_inference is not None, f"models/{MODEL}.yaml has no image_inference section"
    server = start(home / "localmaker")
    try:
        s3 = server.client("s3", cfg.aws.region)
        provision_stage(cfg, s3, server.client("sns", cfg.aws.region))
        env = airflow_env(home / "airflow", ROOT / "dags", server.url)
        migrate(env)
        yield Stack(
            server=server,
            cfg=cfg,
            airflow=env,
            s3=s3,
            sm=server.client("sagemaker", cfg.aws.region),
            runtime=server.client("sagemaker-runtime", cfg.aws.region),
        )
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def images(stack: Stack) -> dict[str, Any]:
    """The deployed classifier, the images to classify (uploaded) and what the endpoint says of them."""
    import numpy as np

    digits = _digits()
    started = time.monotonic()
    _deploy_classifier(stack, digits)
    print(f"classifier trained and deployed in {time.monotonic() - started:.0f} s")

    offset = TRAIN_PER_CLASS + VALIDATION_PER_CLASS
    clean = {
        f"clean/{label}_{i}.png": (label, _png(pixels))
        for label in DIGITS
        for i, pixels in enumerate(digits[label][offset : offset + CLEAN_PER_CLASS])
    }
    # Candidates for "no digit in particular": the pixel-wise mean of every 1 and 2 (a blend of
    # two classes), the mean of all three classes, and a flat grey square. The one the endpoint is
    # least sure of is the ambiguous image; the threshold is placed from the endpoint's answers.
    means = {d: np.mean(digits[d][:TRAIN_PER_CLASS], axis=0) for d in DIGITS}
    candidates = {
        "blend_1_2": _png((means[1] + means[2]) / 2),
        "blend_0_1_2": _png((means[0] + means[1] + means[2]) / 3),
        "grey": _png(np.full((8, 8), 6.0)),
    }
    confidences = {name: max(stack.probabilities(body)) for name, body in candidates.items()}
    ambiguous_name = min(confidences, key=confidences.get)
    ambiguous_confidence = confidences[ambiguous_name]
    clean_probs = {key: stack.probabilities(body) for key, (_, body) in clean.items()}
    clean_conf = sorted(max(p) for p in clean_probs.values())
    # 80 % of the clean images must be at or above the threshold, the ambiguous one below it
    floor = clean_conf[int(0.2 * len(clean_conf))]
    print(f"ambiguous candidates {confidences}; clean confidences {[round(c, 3) for c in clean_conf]}")
    assert ambiguous_confidence < floor, (
        f"the most ambiguous candidate ({ambiguous_name}, p={ambiguous_confidence:.3f}) is not below 80 % of the "
        f"clean digits (p >= {floor:.3f}): the classifier did not learn the digits"
    )
    threshold = round((ambiguous_confidence + floor) / 2, 6)
    assert ambiguous_confidence < threshold <= floor

    prefix = stack.cfg.image_inference.input_prefix
    for key, (_, body) in clean.items():
        stack.s3.put_object(Bucket=stack.bucket, Key=prefix + key, Body=body)
    stack.s3.put_object(Bucket=stack.bucket, Key=prefix + "ambiguous.png", Body=candidates[ambiguous_name])
    stack.s3.put_object(Bucket=stack.bucket, Key=prefix + "README.txt", Body=b"not an image: ignored")
    return {
        "clean": {prefix + k: label for k, (label, _) in clean.items()},
        "clean_probs": {prefix + k: p for k, p in clean_probs.items()},
        "ambiguous": prefix + "ambiguous.png",
        "ambiguous_confidence": ambiguous_confidence,
        "threshold": threshold,
    }


def _run_layout(stack: Stack, logical_date: str) -> ii.Layout:
    """The DAG keys a run's outputs by its logical date (``ts_nodash``), not by its run id: two
    ``airflow dags test`` of one date are two runs (ids from the trigger time) of one date."""
    from datetime import datetime

    return ii.Layout.from_config(stack.cfg, datetime.fromisoformat(logical_date).strftime("%Y%m%dT%H%M%S"))


def _summary(stack: Stack, layout: ii.Layout) -> dict[str, Any]:
    return stack.json(layout.summary_key)


def test_a_confident_digits_are_accepted_and_the_ambiguous_image_goes_to_review(
    stack: Stack, images: dict[str, Any]
) -> None:
    cfg, threshold = stack.cfg, images["threshold"]
    names = cfg.image_inference.class_names
    started = time.monotonic()
    result = stack.run(DATE_A, conf={"image_inference.confidence_threshold": threshold, "images_per_task": 5})
    seconds = time.monotonic() - started
    assert run_succeeded(result), (result.stdout + result.stderr)[-8000:]
    print(f"image inference run over {len(images['clean']) + 1} images: {seconds:.1f} s")

    layout = _run_layout(stack, DATE_A)
    summary = _summary(stack, layout)
    total = len(images["clean"]) + 1
    expected_accepted = {k for k, p in images["clean_probs"].items() if max(p) >= threshold}
    assert summary["images"] == total and summary["failed"] == 0 and summary["threshold"] == threshold
    assert summary["accepted"] == len(expected_accepted) >= 0.8 * len(images["clean"])
    assert summary["review"] == total - len(expected_accepted)
    assert len(summary["results"]) == 4  # 19 images in chunks of 5: one JSON lines file per chunk

    # accepted: exactly the images at or above the threshold, with the endpoint's probabilities
    records = []
    for uri in summary["results"]:
        key = uri.split("/", 3)[3]
        body = stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read().decode()
        records += [json.loads(line) for line in body.splitlines()]
    by_key = {r["key"]: r for r in records}
    assert len(by_key) == len(records) and set(by_key) == expected_accepted
    for key, record in by_key.items():
        probs = images["clean_probs"][key]
        assert record["probabilities"] == pytest.approx(probs, abs=1e-6)
        assert record["confidence"] == pytest.approx(max(probs), abs=1e-6) and record["confidence"] >= threshold
        assert record["class_index"] == probs.index(max(probs))
        assert record["class_name"] == (names[record["class_index"]] if names else str(record["class_index"]))
    right = sum(r["class_index"] == images["clean"][k] for k, r in by_key.items())
    assert right >= 0.9 * len(by_key), f"only {right} of {len(by_key)} accepted digits have the right class"

    # review: the ambiguous image (and any clean one below the threshold), copied with its prediction
    ambiguous = images["ambiguous"]
    review_key = layout.review_key(ambiguous)
    reviewed = stack.keys(f"{cfg.image_inference.review_prefix}{layout.run_key}/")
    expected_review = sorted(set(images["clean"]) - expected_accepted | {ambiguous})
    assert reviewed == sorted([layout.review_key(k) for k in expected_review] +
                              [layout.sidecar_key(k) for k in expected_review])
    copy = stack.s3.get_object(Bucket=stack.bucket, Key=review_key)
    original = stack.s3.get_object(Bucket=stack.bucket, Key=ambiguous)["Body"].read()
    assert copy["Body"].read() == original and copy["ContentType"] == "image/png"
    assert float(copy["Metadata"]["confidence"]) == pytest.approx(images["ambiguous_confidence"], abs=1e-5)
    assert float(copy["Metadata"]["confidence"]) < threshold
    sidecar = stack.json(layout.sidecar_key(ambiguous))
    assert sidecar["outcome"] == "review" and sidecar["key"] == ambiguous
    assert max(sidecar["probabilities"]) == pytest.approx(images["ambiguous_confidence"], abs=1e-6)
    assert json.loads(copy["Metadata"]["probabilities"]) == pytest.approx(sidecar["probabilities"], abs=1e-5)

    # reported in the log, and as the report's XCom
    output = result.stdout + result.stderr
    assert f"{total} image(s): {summary['accepted']} accepted, {summary['review']} to review, 0 failed" in output
    counts = f"{{'images': {total}, 'accepted': {summary['accepted']}, 'review': {summary['review']}, 'failed': 0"
    assert f"Returned value was: {counts}" in output


def test_b_the_same_logical_date_again_classifies_nothing_twice(stack: Stack, images: dict[str, Any]) -> None:
    layout = _run_layout(stack, DATE_A)
    first = _summary(stack, layout)
    outputs_before = stack.keys(layout.results_prefix) + stack.keys(layout.review_prefix)
    parts_before = {k: stack.s3.get_object(Bucket=stack.bucket, Key=k)["Body"].read() for k in stack.keys(layout.results_prefix)}

    result = stack.run(DATE_A, conf={"image_inference.confidence_threshold": images["threshold"], "images_per_task": 5})
    assert run_succeeded(result), (result.stdout + result.stderr)[-8000:]
    output = result.stdout + result.stderr
    assert "re-run of this logical date: reusing its manifest" in output
    again = _summary(stack, layout)
    assert again["reused"] == first["images"]  # every result came from the first run, none from the endpoint
    assert {k: again[k] for k in ("images", "accepted", "review", "failed")} == {
        k: first[k] for k in ("images", "accepted", "review", "failed")
    }
    assert stack.keys(layout.results_prefix) + stack.keys(layout.review_prefix) == outputs_before
    assert {k: stack.s3.get_object(Bucket=stack.bucket, Key=k)["Body"].read() for k in parts_before} == parts_before


def test_c_a_later_run_takes_only_new_files_and_fails_naming_the_unreadable_one(
    stack: Stack, images: dict[str, Any]
) -> None:
    broken = stack.cfg.image_inference.input_prefix + "late/broken.png"
    stack.s3.put_object(Bucket=stack.bucket, Key=broken, Body=b"these bytes are not a PNG")
    result = stack.run(DATE_C)
    output = result.stdout + result.stderr
    assert not run_succeeded(result), output[-8000:]
    assert f"1 of 1 image(s) could not be classified by {ii.endpoint_name(stack.cfg)}:" in output
    assert broken in output and "client error (400)" in output

    layout = _run_layout(stack, DATE_C)
    summary = _summary(stack, layout)
    assert (summary["images"], summary["accepted"], summary["review"], summary["failed"]) == (1, 0, 0, 1)
    assert list(summary["failed_images"]) == [broken]
    assert broken not in ii.processed_keys(stack.s3, layout)  # the next run tries it again
    assert stack.keys(layout.results_prefix) == []


def test_d_a_run_without_new_images_reports_zero_and_succeeds(stack: Stack, images: dict[str, Any]) -> None:
    stack.s3.delete_object(Bucket=stack.bucket, Key=stack.cfg.image_inference.input_prefix + "late/broken.png")
    result = stack.run(DATE_D)
    output = result.stdout + result.stderr
    assert run_succeeded(result), output[-8000:]
    assert "0 new image(s)" in output and "0 image(s): 0 accepted, 0 to review, 0 failed" in output
    summary = _summary(stack, _run_layout(stack, DATE_D))
    assert (summary["images"], summary["accepted"], summary["review"], summary["failed"]) == (0, 0, 0, 0)
