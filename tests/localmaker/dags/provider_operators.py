"""A DAG that drives localmaker only through the amazon provider's SageMaker operators.

Used by tests/localmaker/test_airflow_operators.py with `airflow dags test`; the configs are the
same dicts one would send to AWS (image and bucket from the environment).
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointConfigOperator,
    SageMakerEndpointOperator,
    SageMakerModelOperator,
    SageMakerTrainingOperator,
)
from airflow.sdk import DAG, chain

BUCKET = os.environ.get("LM_TEST_BUCKET", "airflow-ops")
IMAGE = os.environ.get("LM_TEST_IMAGE", "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny-algo:1")
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
JOB = "af-train-{{ ts_nodash | lower }}"
#: ``{"mode": "sleep", "seconds": "4"}`` keeps the job running long enough for a deferrable wait.
HYPERPARAMETERS = {"mode": os.environ.get("LM_TEST_TRAIN_MODE", "ok"), "seconds": "4"}

with DAG(
    dag_id="localmaker_provider_operators",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test", "localmaker"],
    default_args={"retries": 0},
):
    train = SageMakerTrainingOperator(
        task_id="train",
        print_log=True,
        check_interval=1,
        config={
            "TrainingJobName": JOB,
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "validation:rmse", "Regex": "validation:rmse=([0-9.]+)"}],
            },
            "RoleArn": ROLE,
            "HyperParameters": HYPERPARAMETERS,
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": f"s3://{BUCKET}/data/train/",
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        },
    )
    model = SageMakerModelOperator(
        task_id="model",
        config={
            "ModelName": "af-model-{{ ts_nodash | lower }}",
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {
                "Image": IMAGE,
                "ModelDataUrl": "{{ ti.xcom_pull(task_ids='train')['Training']['ModelArtifacts']['S3ModelArtifacts'] }}",
            },
        },
    )
    endpoint_config = SageMakerEndpointConfigOperator(
        task_id="endpoint_config",
        config={
            "EndpointConfigName": "af-config-{{ ts_nodash | lower }}",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "af-model-{{ ts_nodash | lower }}",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        },
    )
    endpoint = SageMakerEndpointOperator(
        task_id="endpoint",
        check_interval=1,
        config={"EndpointName": "af-endpoint", "EndpointConfigName": "af-config-{{ ts_nodash | lower }}"},
    )
    chain(train, model, endpoint_config, endpoint)
