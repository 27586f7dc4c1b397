"""The tasks of `<name>_byom` (``dags/byom_pipeline.py``): prepare data, train and package in the
task, the deploy request, and the check of the endpoint against the in-task predictions.

What each step does lives in :mod:`include.mlpipeline.byom`; each function here is one task's body.
Deterministic problems (same data, same model) fail without retries (``AirflowFailException``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypedDict


class PreparedData(TypedDict):
    train: str
    test: str
    rows: dict[str, int]
    features: list[str]


class Trained(TypedDict):
    model_data_url: str
    members: list[list[Any]]
    reference_uri: str
    metrics: dict[str, float]
    xgboost_version: str
    num_boost_round: int
    params: dict[str, Any]
    final_eval: dict[str, dict[str, float]]


def run_inputs(name: str, context: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """``(cfg, stage, ctx)``: the run's BYOM config, its stage settings and its naming context."""
    from ..byom import config_for_run
    from ..run import RunContext

    run_cfg, stage = config_for_run(name, context["params"])
    return run_cfg, stage, RunContext.from_airflow(context, model=name, stage=stage.stage)


def run_wait_settings(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """``context -> the run's stage airflow settings``: how the deploy operator waits."""

    def resolve(context: Mapping[str, Any]) -> Any:
        from ..byom import config_for_run

        return config_for_run(name, context["params"])[1].airflow

    return resolve


def fail(message: str) -> NoReturn:
    """Deterministic problems (same data, same model) fail without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(message)


def prepare_data(cfg: Any, stage: Any, ctx: Any, clients: Any) -> PreparedData:
    """Load the data set and write the run's deterministic train/test split to S3."""
    from .. import byom

    try:
        dataset = byom.load_dataset(cfg.data)
    except byom.BringYourOwnModelError as exc:
        fail(str(exc))
    train, test = byom.split_dataset(dataset, cfg.data.test_fraction, cfg.data.seed)
    s3 = clients.s3
    uris = {
        "train": byom.put_text(s3, byom.run_uri(cfg, stage, ctx, "data/train.csv"), byom.to_labelled_csv(train)),
        "test": byom.put_text(s3, byom.run_uri(cfg, stage, ctx, "data/test.csv"), byom.to_labelled_csv(test)),
    }
    print(f"{dataset.rows} rows of {cfg.data.source}: {train.rows} train, {test.rows} test -> {uris}")
    return {
        "train": uris["train"],
        "test": uris["test"],
        "rows": {"train": train.rows, "test": test.rows},
        "features": dataset.feature_names,
    }


def train_and_package(cfg: Any, stage: Any, ctx: Any, clients: Any, data: PreparedData) -> Trained:
    """Train in the task, gate on test quality, package as the built-in container loads it, upload."""
    import json
    import tempfile
    from pathlib import Path

    import xgboost

    from .. import byom

    try:
        byom.check_container_compatibility(xgboost.__version__, cfg.serving.xgboost_version)
    except byom.BringYourOwnModelError as exc:
        fail(str(exc))
    s3 = clients.s3
    train = byom.from_labelled_csv(byom.get_text(s3, data["train"]), data["features"])
    test = byom.from_labelled_csv(byom.get_text(s3, data["test"]), data["features"])
    booster, history = byom.train_booster(cfg.training, train, test)
    reference = byom.predict(booster, test.features)
    metrics = byom.classification_metrics(test.labels, reference)
    print(f"XGBoost {xgboost.__version__}, {cfg.training.num_boost_round} rounds; test metrics: {metrics}")
    reasons = byom.check_training_quality(cfg.training, metrics)
    if reasons:
        fail("model not deployed: " + "; ".join(reasons))
    with tempfile.TemporaryDirectory() as tmp:
        tarball = byom.package_model(booster, Path(tmp) / byom.MODEL_TARBALL)
        byom.verify_package(tarball, test.features, reference, tolerance=0.0)
        members = byom.tarball_members(tarball)
        model_data_url = byom.upload_file(s3, tarball, byom.model_data_uri(cfg, stage, ctx))
    reference_uri = byom.put_text(
        s3,
        byom.run_uri(cfg, stage, ctx, "evaluation/reference_predictions.csv"),
        "".join(f"{p!r}\n" for p in reference),
    )
    summary: Trained = {
        "model_data_url": model_data_url,
        "members": [list(m) for m in members],
        "reference_uri": reference_uri,
        "metrics": metrics,
        "xgboost_version": xgboost.__version__,
        "num_boost_round": cfg.training.num_boost_round,
        "params": dict(cfg.training.params),
        "final_eval": {k: {m: v[-1] for m, v in d.items()} for k, d in history.items()},
    }
    byom.put_text(
        s3, byom.run_uri(cfg, stage, ctx, "evaluation/training.json"), json.dumps(summary, indent=2),
        content_type="application/json",
    )
    print(f"packaged {members} -> {model_data_url}")
    return summary


def deploy_config(cfg: Any, stage: Any, ctx: Any, trained: Trained) -> dict[str, Any]:
    """Model (the real built-in image of the stage's region + the tarball), endpoint config, endpoint."""
    from .. import byom

    image = byom.image_uri(cfg, stage)
    print(f"serving with {image}")
    return byom.deploy_request(cfg, stage, ctx, model_data_url=trained["model_data_url"], image=image)


def check_endpoint(cfg: Any, stage: Any, ctx: Any, clients: Any, data: PreparedData, trained: Trained) -> dict[str, Any]:
    """The endpoint must answer what the in-task booster predicts, row for row."""
    import json

    from .. import byom

    s3 = clients.s3
    test = byom.from_labelled_csv(byom.get_text(s3, data["test"]), data["features"])
    reference = [float(v) for v in byom.get_text(s3, trained["reference_uri"]).split()]
    endpoint = byom.endpoint_name(cfg, stage)
    try:
        answers = byom.invoke_rows(clients.runtime, endpoint, byom.feature_rows_csv(test.features), cfg.check.batch_rows)
    except byom.EndpointCheckError as exc:
        fail(str(exc))
    result = byom.compare_with_reference(cfg.check, endpoint, answers, reference, test.labels)
    byom.put_text(
        s3, byom.run_uri(cfg, stage, ctx, "evaluation/endpoint_check.json"),
        json.dumps(result.to_dict(), indent=2), content_type="application/json",
    )
    print(f"endpoint check of {endpoint}: {'PASSED' if result.passed else 'FAILED'}: {result.to_dict()}")
    if not result.passed:
        fail(f"{endpoint}: " + "; ".join(result.reasons))
    return result.to_dict()
