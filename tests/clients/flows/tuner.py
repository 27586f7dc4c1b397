"""HyperparameterTuner over the built-in XGBoost: fit, best training job, best_estimator().deploy(),
attach, analytics; as the SageMaker examples write it."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from lmsession import ROLE, session
from sagemaker import image_uris
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.serializers import CSVSerializer
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter

sess = session()
bucket = sess.default_bucket()
prefix = "sdk-tuner"

rng = np.random.default_rng(21)
X = rng.normal(size=(400, 4))
y = (X[:, 0] - X[:, 2] > 0).astype(int)
work = tempfile.mkdtemp()
for name, rows in (("train", slice(0, 300)), ("validation", slice(300, 400))):
    os.makedirs(f"{work}/{name}")
    np.savetxt(f"{work}/{name}/data.csv", np.column_stack([y[rows], X[rows]]), delimiter=",", fmt="%.6g")
train_uri = sess.upload_data(f"{work}/train", key_prefix=f"{prefix}/train")
validation_uri = sess.upload_data(f"{work}/validation", key_prefix=f"{prefix}/validation")

xgb = Estimator(
    image_uris.retrieve("xgboost", sess.boto_region_name, "1.7-1"),
    role=ROLE,
    instance_count=1,
    instance_type="ml.m5.large",
    output_path=f"s3://{bucket}/{prefix}/output",
    sagemaker_session=sess,
)
xgb.set_hyperparameters(objective="binary:logistic", num_round=10, eval_metric="auc")
tuner = HyperparameterTuner(
    xgb,
    objective_metric_name="validation:auc",
    hyperparameter_ranges={"eta": ContinuousParameter(0.05, 0.5), "max_depth": IntegerParameter(1, 4)},
    objective_type="Maximize",
    max_jobs=3,
    max_parallel_jobs=3,
)
tuner.fit(
    {
        "train": TrainingInput(train_uri, content_type="text/csv"),
        "validation": TrainingInput(validation_uri, content_type="text/csv"),
    },
    include_cls_metadata=False,
)
tuner.wait()
name = tuner.latest_tuning_job.name
desc = sess.sagemaker_client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
assert desc["HyperParameterTuningJobStatus"] == "Completed", desc.get("FailureReason")
assert desc["TrainingJobStatusCounters"]["Completed"] == 3, desc["TrainingJobStatusCounters"]
best = tuner.best_training_job()
trials = tuner.analytics().dataframe()
assert len(trials) == 3, trials
best_value = float(trials["FinalObjectiveValue"].max())
assert best == trials.loc[trials["FinalObjectiveValue"].idxmax(), "TrainingJobName"], (best, trials)
assert best_value > 0.9, trials

predictor = tuner.best_estimator().deploy(1, "ml.m5.large", serializer=CSVSerializer())
try:
    Xt = np.array([[2.0, 0, -2.0, 0], [-2.0, 0, 2.0, 0]])
    out = predictor.predict(Xt).decode().strip().replace("\n", ",").split(",")
    probs = [float(v) for v in out if v]
    assert len(probs) == 2 and probs[0] > 0.5 > probs[1], probs
finally:
    predictor.delete_model()
    predictor.delete_endpoint()

attached = HyperparameterTuner.attach(name, sagemaker_session=sess)
assert attached.best_training_job() == best
assert attached.objective_metric_name == "validation:auc" and attached.max_jobs == 3
assert set(attached.hyperparameter_ranges()) == {"ContinuousParameterRanges", "IntegerParameterRanges",
                                                 "CategoricalParameterRanges"}
attached_est = Estimator.attach(best, sagemaker_session=sess)
assert attached_est.model_data == sess.sagemaker_client.describe_training_job(
    TrainingJobName=best)["ModelArtifacts"]["S3ModelArtifacts"]

print("RESULT " + json.dumps({"tuning_job": name, "best": best, "best_auc": best_value, "probs": probs,
                              "trials": sorted(trials["TrainingJobName"])}))
