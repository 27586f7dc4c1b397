"""The tasks of `<model>_training` against moto S3 and small SageMaker fakes."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from include.mlpipeline.pipelines import training as tasks

BUCKET = "mlpipeline-dev"


def test_data_channels_then_training_requests(dev_cfg, dev_ctx, clients, s3_read):
    raw = tasks.extract(dev_cfg, dev_ctx, clients)
    assert s3_read.keys(raw["uri"]), raw
    etl = tasks.validate_and_prepare(dev_cfg, dev_ctx, clients, raw)
    assert sum(etl["rows"].values()) > 400 and etl["prefix"].startswith(f"s3://{BUCKET}/")
    assert s3_read.keys(etl["channels"]["train"])
    reqs = tasks.training_requests(dev_cfg, dev_ctx, clients, etl)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in reqs["training"]["InputDataConfig"]}
    assert channels["train"] == etl["channels"]["train"]  # the request points at what ETL wrote
    assert (reqs["tuning"] is None) == (not dev_cfg.tuning.objective)


def test_unusable_data_fails_without_retries(dev_cfg, dev_ctx, clients):
    from airflow.sdk.exceptions import AirflowFailException

    clients.s3.put_object(Bucket=BUCKET, Key="raw/bad.csv", Body=b"colour\nblue\n")
    with pytest.raises(AirflowFailException, match="age"):
        tasks.validate_and_prepare(dev_cfg, dev_ctx, clients, {"uri": f"s3://{BUCKET}/raw/bad.csv"})


def _cfg(cfg: Any, section: str, **values: Any) -> Any:
    return cfg.model_copy(update={section: getattr(cfg, section).model_copy(update=values)})


def test_branches_name_real_grouped_task_ids(dev_cfg):
    assert tasks.train_or_tune(_cfg(dev_cfg, "tuning", enabled=False)) == tasks.TRAIN == "train.train"
    assert tasks.train_or_tune(_cfg(dev_cfg, "tuning", enabled=True)) == tasks.TUNE == "train.tune"
    assert tasks.approval_route(_cfg(dev_cfg, "run", auto_approve=True)) == tasks.AUTO_APPROVED
    assert tasks.approval_route(_cfg(dev_cfg, "run", auto_approve=False)) == tasks.APPROVE == "approve.approve"


JOB = {
    "TrainingJobName": "best-job",
    "ModelArtifacts": {"S3ModelArtifacts": "s3://b/best/model.tar.gz"},
    "HyperParameters": {"epochs": "30"},
    "FinalMetricDataList": [{"MetricName": "validation:rmse", "Value": 51.5}],
}


def test_candidate_is_whichever_of_train_and_tune_ran():
    described = []
    sm = SimpleNamespace(describe_training_job=lambda TrainingJobName: described.append(TrainingJobName) or JOB)  # noqa: N803
    pulled: list[str] = []

    def trained(task_ids: str) -> Any:
        pulled.append(task_ids)
        return {"Training": JOB} if task_ids == tasks.TRAIN else None

    cand = tasks.candidate(SimpleNamespace(sagemaker=sm), trained)
    assert cand == {"training_job": "best-job", "model_data_url": "s3://b/best/model.tar.gz",
                    "hyperparameters": {"epochs": "30"}, "final_metrics": {"validation:rmse": 51.5}}
    assert pulled == [tasks.TRAIN] and described == []

    def tuned(task_ids: str) -> Any:
        return {"Tuning": {"BestTrainingJob": {"TrainingJobName": "best-job"}}} if task_ids == tasks.TUNE else None

    assert tasks.candidate(SimpleNamespace(sagemaker=sm), tuned)["model_data_url"] == "s3://b/best/model.tar.gz"
    assert described == ["best-job"]


CAND = {"training_job": "job-1", "model_data_url": "s3://b/m.tar.gz", "hyperparameters": {}, "final_metrics": {}}


def test_evaluate_scores_gates_and_links_the_report(dev_cfg, dev_ctx, clients, s3_read, capsys):
    clients.s3.put_object(Bucket=BUCKET, Key="run/eval/test.csv.out", Body=b"100\n150\n200\n250\n")
    clients.s3.put_object(Bucket=BUCKET, Key="run/test_labels/data.csv", Body=b"101\n149\n202\n248\n")
    transformed = {"Transform": {"TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/run/eval/"}}}
    etl = {"channels": {"test_labels": f"s3://{BUCKET}/run/test_labels/"}}

    evaluation = tasks.evaluate(dev_cfg, dev_ctx, clients, CAND, transformed, etl)

    assert evaluation["metrics"]["rmse"] == pytest.approx(1.5811, abs=1e-3)
    assert evaluation["champion"] is None and evaluation["decision"]["passed"] is True
    report = json.loads(s3_read.text(evaluation["report"]["metrics_uri"]))
    assert report["training_job"] == "job-1" and report["gate"]["passed"] is True
    links = evaluation["links"]
    assert links["training_job_name"] == "job-1" and links["training_job"].endswith("/jobs/job-1")
    assert links["valid_hours"] == f"{dev_cfg.run.approval_timeout_hours + 2:g}"
    assert evaluation["report"]["plot_uri"].split("/", 3)[3] in links["plot"] and "Signature" in links["plot"]
    assert tasks.gate(evaluation) is True
    assert "gate: PASSED" in capsys.readouterr().out
    failed = {**evaluation, "decision": {"passed": False, "reasons": ["rmse 90 > 60"]}}
    assert tasks.gate(failed) is False and "gated out: rmse 90 > 60" in capsys.readouterr().out


def test_approval_body_renders_the_evaluate_tasks_metrics(dev_cfg):
    import jinja2

    metrics = list(dev_cfg.evaluation.metrics)
    ev = {"metrics": dict.fromkeys(metrics, 0.5), "champion": {metrics[0]: 0.25},
          "report": {"plot_uri": "s3://b/p.png"},
          "links": {"plot": "http://p", "model_quality": "http://q", "training_job": "http://j",
                    "training_job_name": "j-1", "valid_hours": "14"}}

    class TI:
        def xcom_pull(self, task_ids: str) -> Any:
            assert task_ids == tasks.EVALUATE
            return ev

    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(tasks.approval_body(dev_cfg)).render(ti=TI())
    assert f"| {metrics[0]} | 0.5 | 0.25 |" in text
    assert f"Unanswered within {dev_cfg.run.approval_timeout_hours:g} hours counts as **Reject**" in text


def test_registration_and_deployment_requests(dev_cfg, dev_ctx):
    evaluation = {"metrics": {"rmse": 50.0}, "report": {"model_quality_uri": "s3://b/q.json"},
                  "data_sha256": "d" * 64, "recipe_sha256": "r" * 64}
    package = tasks.package_request(dev_cfg, dev_ctx, CAND, evaluation)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    # the hashes travel with the package, for the next run's "no change" check
    props = package["CustomerMetadataProperties"]
    assert props["data.sha256"] == "d" * 64 and props["recipe.sha256"] == "r" * 64 and props["metric.rmse"]
    assert json.dumps(package).count("s3://b/q.json") == 1
    dev = tasks.deploy_request(dev_cfg, dev_ctx, CAND, "dev")
    prod = tasks.deploy_request(dev_cfg, dev_ctx, CAND, "prod", include_model=False)
    assert dev["Endpoint"]["EndpointName"] == dev_cfg.endpoint.dev_name and "Model" in dev
    assert prod["Endpoint"]["EndpointName"] == dev_cfg.endpoint.prod_name and "Model" not in prod


def test_promote_approves_the_package():
    calls = []
    sm = SimpleNamespace(update_model_package=lambda **kw: calls.append(kw))
    promoted = tasks.promote(SimpleNamespace(sagemaker=sm), "arn:pkg/3", {"metrics": {"rmse": 50.0}}, "run-1")
    assert promoted == {"champion": "arn:pkg/3", "metrics": {"rmse": 50.0}}
    assert calls == [{"ModelPackageArn": "arn:pkg/3", "ModelApprovalStatus": "Approved",
                      "ApprovalDescription": "deployed to prod by run run-1"}]


def _evaluate_once(dev_cfg, dev_ctx, clients, run: str, cand: dict[str, Any] = CAND) -> Any:
    """One evaluation over the same rows prepared under the run prefix ``run``."""
    put = clients.s3.put_object
    for channel, body in (("train", b"1,2\n3,4\n"), ("validation", b"5,6\n"), ("test", b"150,1\n250,2\n")):
        put(Bucket=BUCKET, Key=f"{run}/{channel}/data.csv", Body=body)
    put(Bucket=BUCKET, Key=f"{run}/eval/test.csv.out", Body=b"151\n249\n")
    put(Bucket=BUCKET, Key=f"{run}/test_labels/data.csv", Body=b"150\n250\n")
    transformed = {"Transform": {"TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/{run}/eval/"}}}
    etl = {"channels": {c: f"s3://{BUCKET}/{run}/{c}/" for c in ("train", "validation", "test", "test_labels")}}
    return tasks.evaluate(dev_cfg, dev_ctx, clients, cand, transformed, etl)


def _champion_from(clients, dev_cfg, dev_ctx, evaluation) -> None:
    """Register ``evaluation``'s candidate as champion, with the properties package_request writes."""
    group = dev_cfg.registry.model_package_group_name
    clients.sagemaker.approve(group, 1, metrics=evaluation["metrics"])
    clients.sagemaker.packages[-1]["props"] = tasks.package_request(dev_cfg, dev_ctx, CAND, evaluation)[
        "CustomerMetadataProperties"
    ]


def test_a_retrain_on_the_champions_data_and_recipe_is_no_change(dev_cfg, dev_ctx, clients, capsys):
    first = _evaluate_once(dev_cfg, dev_ctx, clients, "run-a")
    assert first["no_change"] is False and len(first["data_sha256"]) == 64
    _champion_from(clients, dev_cfg, dev_ctx, first)

    again = _evaluate_once(dev_cfg, dev_ctx, clients, "run-b")  # same rows, another run prefix
    assert again["data_sha256"] == first["data_sha256"] and again["no_change"] is True
    assert again["decision"]["passed"] is True  # as good as the champion, but it *is* the champion's model
    assert tasks.gate(again) is False
    assert "no change: the champion was trained on the same data" in capsys.readouterr().out

    other_recipe = {**CAND, "hyperparameters": {"epochs": "1"}}
    experiment = _evaluate_once(dev_cfg, dev_ctx, clients, "run-c", other_recipe)
    assert experiment["no_change"] is False and tasks.gate(experiment) is True


class _Pulls:
    def __init__(self, **by_task: Any) -> None:
        self.by_task = by_task

    def __call__(self, task_ids: str) -> Any:
        return self.by_task.get(task_ids)


EVAL = {"metrics": {"rmse": 50.0}, "champion": {"rmse": 52.0}, "data_sha256": "d" * 64, "no_change": False,
        "decision": {"passed": True, "reasons": ["rmse 50 <= max threshold 60"]}}


@pytest.mark.parametrize(
    ("pulls", "outcome"),
    [
        ({tasks.EVALUATE: EVAL, tasks.DEPLOY_ENABLED: True, tasks.APPROVE: {"chosen_options": ["Approve"]},
          tasks.PROMOTE: {"champion": "arn:pkg/2", "metrics": {"rmse": 50.0}}}, "promoted"),
        ({tasks.EVALUATE: EVAL, tasks.DEPLOY_ENABLED: True, tasks.APPROVE: {"chosen_options": ["Reject"]}}, "rejected"),
        ({tasks.EVALUATE: {**EVAL, "decision": {"passed": False, "reasons": ["rmse 90 is above 60"]}}}, "gated out"),
        ({tasks.EVALUATE: {**EVAL, "no_change": True}}, "no change"),
        ({tasks.EVALUATE: EVAL, tasks.DEPLOY_ENABLED: False}, "not deployed"),
        ({}, "failed"),
    ],
)
def test_run_outcome_from_the_deciding_tasks(pulls: dict[str, Any], outcome: str) -> None:
    result = tasks.run_outcome(_Pulls(**pulls), "run-9")
    assert result["outcome"] == result["event"]["outcome"] == outcome
    assert result["note"].startswith(f"**{outcome}**")
    assert result["event"]["run_id"] == "run-9"
    assert result["event"]["metrics"] == (pulls[tasks.EVALUATE]["metrics"] if pulls else {})
    if outcome == "promoted":
        assert result["event"]["champion"] == "arn:pkg/2"
    if outcome == "gated out":
        assert "- rmse 90 is above 60" in result["note"]
    json.dumps(result)  # an XCom and an asset event's extra: JSON only
