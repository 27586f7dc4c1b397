"""A DAG that drives localmaker's processing and tuning jobs through the amazon provider's operators.

Used by tests/localmaker/test_tuning.py with `airflow dags test`; the configs are the dicts one
would send to AWS (bucket from the environment). Processing prepares a report, then a tuning job
searches the tune-algo image's hyperparameters and the best trial's name goes to XCom.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerProcessingOperator,
    SageMakerTuningOperator,
)
from airflow.sdk import DAG, chain

BUCKET = os.environ.get("LM_TEST_BUCKET", "airflow-ops")
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"

with DAG(
    dag_id="localmaker_tuning_processing",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test", "localmaker"],
    default_args={"retries": 0},
):
    process = SageMakerProcessingOperator(
        task_id="process",
        check_interval=1,
        config={
            "ProcessingJobName": "af-proc-{{ ts_nodash | lower }}",
            "ProcessingInputs": [
                {
                    "InputName": "data",
                    "S3Input": {
                        "S3Uri": f"s3://{BUCKET}/data/train/",
                        "LocalPath": "/opt/ml/processing/input/data",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                        "S3DataDistributionType": "FullyReplicated",
                    },
                }
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "report",
                        "S3Output": {
                            "S3Uri": f"s3://{BUCKET}/processed/{{{{ ts_nodash | lower }}}}",
                            "LocalPath": "/opt/ml/processing/output/report",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
            "ProcessingResources": {
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
            "AppSpecification": {
                "ImageUri": f"{REGISTRY}/proc-algo:1",
                "ContainerArguments": ["--input", "/opt/ml/processing/input/data",
                                       "--output", "/opt/ml/processing/output/report"],
            },
            "RoleArn": ROLE,
        },
    )
    tune = SageMakerTuningOperator(
        task_id="tune",
        check_interval=1,
        config={
            "HyperParameterTuningJobName": "af-tune-{{ ts_nodash | lower }}",
            "HyperParameterTuningJobConfig": {
                "Strategy": "Bayesian",
                "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
                "ParameterRanges": {
                    "IntegerParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "6"}],
                    "ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.01", "MaxValue": "1"}],
                    "CategoricalParameterRanges": [{"Name": "opt", "Values": ["adam", "sgd"]}],
                },
            },
            "TrainingJobDefinition": {
                "StaticHyperParameters": {"sleep": "0"},
                "AlgorithmSpecification": {
                    "TrainingImage": f"{REGISTRY}/tune-algo:1",
                    "TrainingInputMode": "File",
                    "MetricDefinitions": [{"Name": "validation:rmse", "Regex": "validation:rmse=([-+0-9.eE]+)"}],
                },
                "RoleArn": ROLE,
                "InputDataConfig": [
                    {
                        "ChannelName": "train",
                        "DataSource": {
                            "S3DataSource": {
                                "S3DataType": "S3Prefix",
                                "S3Uri": f"s3://{BUCKET}/processed/{{{{ ts_nodash | lower }}}}/",
                                "S3DataDistributionType": "FullyReplicated",
                            }
                        },
                    }
                ],
                "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/tuning"},
                "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
                "StoppingCondition": {"MaxRuntimeInSeconds": 300},
            },
        },
    )
    chain(process, tune)
