"""DefaultModelMonitor.suggest_baseline on a CSV with a header, read back the SDK's way.

The SDK picks Model Monitor's own analyzer image for the session's region
(``156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer``) and starts a
Processing job with its environment contract; the baseline is then read with
``baseline_statistics()`` and ``suggested_constraints()``, as a notebook does before it creates a
monitoring schedule.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from lmsession import ROLE, session
from sagemaker.model_monitor import DefaultModelMonitor
from sagemaker.model_monitor.dataset_format import DatasetFormat
from sagemaker.s3 import S3Uploader

sess = session()
bucket = sess.default_bucket()
prefix = "sdk-model-monitor"

# 200 rows: two numeric features with known means, one integral count, one categorical column
rng = np.random.default_rng(11)
n = 200
age = rng.normal(40.0, 5.0, n).round(2)
income = rng.normal(1000.0, 100.0, n).round(2)
visits = rng.integers(0, 10, n)
plan = rng.choice(["basic", "pro"], n)
lines = ["age,income,visits,plan"] + [f"{a},{i},{v},{p}" for a, i, v, p in zip(age, income, visits, plan, strict=True)]
data_uri = S3Uploader.upload_string_as_file_body(
    "\n".join(lines) + "\n", f"s3://{bucket}/{prefix}/data/train.csv", sagemaker_session=sess
)

# Model Monitor's post-analytics hook: postprocess_handler() runs after the results are written
post_script = os.path.join(tempfile.mkdtemp(), "post_analytics.py")
with open(post_script, "w") as handle:
    handle.write(
        "import json, os\n"
        "def postprocess_handler():\n"
        "    out = os.environ['output_path']\n"
        "    with open(os.path.join(out, 'statistics.json')) as f:\n"
        "        n = json.load(f)['dataset']['item_count']\n"
        "    with open(os.path.join(out, 'post_analytics.json'), 'w') as f:\n"
        "        json.dump({'item_count': n}, f)\n"
    )

monitor = DefaultModelMonitor(
    role=ROLE,
    instance_count=1,
    instance_type="ml.m5.xlarge",
    volume_size_in_gb=20,
    max_runtime_in_seconds=600,
    sagemaker_session=sess,
)
assert monitor.image_uri.endswith(".dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"), monitor.image_uri
job = monitor.suggest_baseline(
    baseline_dataset=data_uri,
    dataset_format=DatasetFormat.csv(header=True),
    output_s3_uri=f"s3://{bucket}/{prefix}/baseline",
    post_analytics_processor_script=post_script,
    wait=True,
    logs=False,
)
desc = job.describe()
assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")

statistics = monitor.baseline_statistics().body_dict
constraints = monitor.suggested_constraints().body_dict
features = {f["name"]: f for f in statistics["features"]}
assert set(features) == {"age", "income", "visits", "plan"}, list(features)
assert statistics["dataset"]["item_count"] == n, statistics["dataset"]
assert features["age"]["inferred_type"] == "Fractional" and features["visits"]["inferred_type"] == "Integral"
assert features["plan"]["inferred_type"] == "String"
age_stats = features["age"]["numerical_statistics"]
assert age_stats["common"]["num_present"] == n and age_stats["common"]["num_missing"] == 0
assert abs(age_stats["mean"] - float(age.mean())) < 1e-6, (age_stats["mean"], age.mean())
assert abs(features["income"]["numerical_statistics"]["mean"] - float(income.mean())) < 1e-6
assert {c["name"]: c["inferred_type"] for c in constraints["features"]} == {
    "age": "Fractional", "income": "Fractional", "visits": "Integral", "plan": "String"}

print("RESULT " + json.dumps({
    "job": desc["ProcessingJobName"],
    "image": desc["AppSpecification"]["ImageUri"],
    "environment": desc.get("Environment", {}),
    "inputs": [i["S3Input"]["LocalPath"] for i in desc["ProcessingInputs"]],
    "outputs": [o["S3Output"]["S3Uri"] for o in desc["ProcessingOutputConfig"]["Outputs"]],
    "item_count": statistics["dataset"]["item_count"],
    "means": {k: f["numerical_statistics"]["mean"] for k, f in features.items() if "numerical_statistics" in f},
    "expected_means": {"age": float(age.mean()), "income": float(income.mean()), "visits": float(visits.mean())},
    "plan_distinct": features["plan"]["string_statistics"]["distinct_count"],
    "constraint_features": sorted(c["name"] for c in constraints["features"]),
    "monitoring_config": constraints.get("monitoring_config", {}),
}))
