"""fit() with its default log streaming, then estimator.training_job_analytics over a built-in XGBoost
job: the metrics the algorithm logged, read back from CloudWatch (namespace
/aws/sagemaker/TrainingJobs) as a DataFrame."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from lmsession import ROLE, session
from sagemaker import image_uris
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput

sess = session()
bucket = sess.default_bucket()
prefix = "sdk-analytics"

rng = np.random.default_rng(1)
X = rng.normal(size=(200, 3))
y = X @ np.array([2.0, -1.0, 0.5]) + rng.normal(scale=0.1, size=200)
work = tempfile.mkdtemp()
for name, rows in (("train", slice(0, 150)), ("validation", slice(150, 200))):
    os.makedirs(f"{work}/{name}")
    np.savetxt(f"{work}/{name}/{name}.csv", np.column_stack([y[rows], X[rows]]), delimiter=",", fmt="%.6g")

xgb = Estimator(
    image_uris.retrieve("xgboost", sess.boto_region_name, "1.7-1"),
    role=ROLE,
    instance_count=1,
    instance_type="ml.m5.large",
    output_path=f"s3://{bucket}/{prefix}/output",
    sagemaker_session=sess,
)
xgb.set_hyperparameters(objective="reg:squarederror", num_round=15, eval_metric="rmse")
xgb.fit({
    "train": TrainingInput(sess.upload_data(f"{work}/train", key_prefix=f"{prefix}/train"), content_type="text/csv"),
    "validation": TrainingInput(sess.upload_data(f"{work}/validation", key_prefix=f"{prefix}/validation"),
                                content_type="text/csv"),
})

metrics = xgb.training_job_analytics.dataframe()
names = set(metrics["metric_name"])
assert {"train:rmse", "validation:rmse"} <= names, metrics
val = metrics[metrics["metric_name"] == "validation:rmse"]
assert len(val) >= 1 and (val["value"] > 0).all(), val
# the SDK reads one-minute averages (GetMetricStatistics): rmse of a fitted model, far below the spread
# of the target, and never below the best the job reached
final = {m["MetricName"]: m["Value"] for m in xgb.latest_training_job.describe()["FinalMetricDataList"]}
assert (val["value"] < y.std()).all() and (val["value"] >= final["validation:rmse"] * 0.5).all(), (val, final)

print("RESULT " + json.dumps({"job": xgb.latest_training_job.name, "metrics": sorted(names), "rows": len(metrics)}))
