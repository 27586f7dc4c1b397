"""Model Monitor's own analyzer image, driven with boto3 only: CreateProcessingJob with
``sagemaker-model-monitor-analyzer`` (another region's account) and the analyzer's environment
contract, as DefaultModelMonitor and a monitoring schedule send it; results checked in S3.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import ROLE, unique
from .test_processing import get_json, keys_under, wait_processing

# what image_uris.retrieve("model-monitor", "eu-west-1") returns (the SDK's model-monitor.json)
ANALYZER = "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer"
N_TRAIN = 400


def analyzer_job(name, bucket, inputs, output_uri, env):
    return {
        "ProcessingJobName": name,
        "ProcessingInputs": [
            {
                "InputName": input_name,
                "S3Input": {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix", "S3InputMode": "File",
                            "S3DataDistributionType": "FullyReplicated"},
            }
            for input_name, uri, local in inputs
        ],
        "ProcessingOutputConfig": {"Outputs": [{
            "OutputName": "monitoring_output",
            "S3Output": {"S3Uri": output_uri, "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"},
        }]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                                  "VolumeSizeInGB": 20}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "AppSpecification": {"ImageUri": ANALYZER},
        "Environment": env,
        "RoleArn": ROLE,
    }


@pytest.fixture(scope="module")
def training(s3, bucket):
    rng = np.random.default_rng(3)
    age = rng.integers(20, 80, N_TRAIN)
    bmi = rng.normal(26.0, 4.0, N_TRAIN).round(1)
    region = rng.choice(["north", "south"], N_TRAIN)
    body = "age,bmi,region\n" + "".join(f"{a},{b},{r}\n" for a, b, r in zip(age, bmi, region, strict=True))
    s3.put_object(Bucket=bucket, Key="mma/train/train.csv", Body=body.encode())
    return {"age": float(age.mean()), "bmi": float(bmi.mean())}


@pytest.fixture(scope="module")
def baseline(sm, s3, bucket, training):
    """What suggest_baseline sends: no baseline, a CSV dataset_format, the input under baseline_dataset_input."""
    name = unique("mma-baseline")
    sm.create_processing_job(**analyzer_job(
        name, bucket,
        [("baseline_dataset_input", f"s3://{bucket}/mma/train/train.csv",
          "/opt/ml/processing/input/baseline_dataset_input")],
        f"s3://{bucket}/mma/baseline",
        {"dataset_format": json.dumps({"csv": {"header": True, "output_columns_position": "START"}}),
         "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
         "output_path": "/opt/ml/processing/output",
         "publish_cloudwatch_metrics": "Disabled"},
    ))
    desc = wait_processing(sm, name, timeout=120)
    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    return name


def test_baseline_job_writes_statistics_and_constraints_to_s3(s3, bucket, training, baseline):
    assert keys_under(s3, bucket, "mma/baseline/") == ["mma/baseline/constraints.json", "mma/baseline/statistics.json"]
    stats = get_json(s3, bucket, "mma/baseline/statistics.json")
    assert stats["dataset"]["item_count"] == N_TRAIN
    features = {f["name"]: f for f in stats["features"]}
    assert {n: f["inferred_type"] for n, f in features.items()} == {
        "age": "Integral", "bmi": "Fractional", "region": "String"}
    for name, mean in training.items():
        assert features[name]["numerical_statistics"]["mean"] == pytest.approx(mean, abs=1e-9)
        assert features[name]["numerical_statistics"]["common"]["num_present"] == N_TRAIN
    constraints = get_json(s3, bucket, "mma/baseline/constraints.json")
    assert sorted(c["name"] for c in constraints["features"]) == ["age", "bmi", "region"]


def test_monitoring_job_with_the_baseline_reports_drift(sm, s3, bucket, baseline):
    """What a monitoring schedule's job sends: captures, the baseline files, a window."""
    rng = np.random.default_rng(4)
    lines = []
    for i in range(200):
        row = f"{rng.integers(20, 80)},{rng.normal(36.0, 4.0):.1f},{rng.choice(['north', 'south'])}"
        lines.append(json.dumps({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": row, "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "0.5",
                                   "encoding": "CSV"}},
            "eventMetadata": {"eventId": str(i), "inferenceTime": f"2026-11-23T12:{i % 60:02d}:07Z"},
            "eventVersion": "0"}))
    s3.put_object(Bucket=bucket, Key="mma/capture/ep/AllTraffic/2026/11/23/12/00-00-000-abc.jsonl",
                  Body=("\n".join(lines) + "\n").encode())
    name = unique("mma-monitor")
    sm.create_processing_job(**analyzer_job(
        name, bucket,
        [("endpoint_input", f"s3://{bucket}/mma/capture/ep/AllTraffic", "/opt/ml/processing/input/endpoint"),
         ("baseline", f"s3://{bucket}/mma/baseline", "/opt/ml/processing/baseline")],
        f"s3://{bucket}/mma/monitor",
        {"dataset_format": json.dumps({"sagemakerCaptureJson": {
            "captureIndexNames": ["endpointInput", "endpointOutput"]}}),
         "dataset_source": "/opt/ml/processing/input/endpoint",
         "output_path": "/opt/ml/processing/output",
         "baseline_constraints": "/opt/ml/processing/baseline/constraints.json",
         "baseline_statistics": "/opt/ml/processing/baseline/statistics.json",
         "start_time": "2026-11-23T12:00:00Z", "end_time": "2026-11-23T13:00:00Z",
         "publish_cloudwatch_metrics": "Enabled", "sagemaker_endpoint_name": "ep",
         "analysis_type": "DATA_QUALITY"},
    ))
    desc = wait_processing(sm, name, timeout=120)
    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    stats = get_json(s3, bucket, "mma/monitor/statistics.json")
    assert stats["dataset"]["item_count"] == 200
    bmi = next(f for f in stats["features"] if f["name"] == "bmi")
    assert bmi["numerical_statistics"]["mean"] == pytest.approx(36.0, abs=1.0)
    violations = get_json(s3, bucket, "mma/monitor/constraint_violations.json")["violations"]
    drifted = {v["feature_name"] for v in violations if v["constraint_check_type"] == "baseline_drift_check"}
    assert drifted == {"bmi"}, violations


def test_other_analysis_types_fail_with_a_reason(sm, bucket, training):
    name = unique("mma-quality")
    sm.create_processing_job(**analyzer_job(
        name, bucket,
        [("baseline_dataset_input", f"s3://{bucket}/mma/train/train.csv",
          "/opt/ml/processing/input/baseline_dataset_input")],
        f"s3://{bucket}/mma/quality",
        {"dataset_format": json.dumps({"csv": {"header": True}}),
         "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
         "output_path": "/opt/ml/processing/output", "analysis_type": "MODEL_QUALITY",
         "problem_type": "BinaryClassification", "inference_attribute": "prediction"},
    ))
    desc = wait_processing(sm, name, timeout=120)
    assert desc["ProcessingJobStatus"] == "Failed"
    assert "analysis_type=MODEL_QUALITY is not supported" in desc["FailureReason"], desc["FailureReason"]
