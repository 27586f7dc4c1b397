"""Remove what a failed run half-made, and never anything an endpoint still uses."""

from __future__ import annotations

from typing import Any

from .config import PipelineConfig
from .run import RunContext
from .sagemaker_requests import endpoint_config_name, model_name, training_job_name, transform_job_name


def _in_use(sm: Any) -> tuple[set[str], set[str]]:
    """(endpoint config names, model names) that some endpoint currently serves."""
    configs: set[str] = set()
    models: set[str] = set()
    for page in sm.get_paginator("list_endpoints").paginate():
        for ep in page["Endpoints"]:
            desc = sm.describe_endpoint(EndpointName=ep["EndpointName"])
            configs.add(desc["EndpointConfigName"])
    for name in configs:
        try:
            cfg = sm.describe_endpoint_config(EndpointConfigName=name)
        except sm.exceptions.ClientError:
            continue
        models.update(v["ModelName"] for v in cfg["ProductionVariants"])
    return configs, models


def clean_up_run(cfg: PipelineConfig, ctx: RunContext, sm: Any) -> dict[str, list[str]]:
    """Stop this run's unfinished jobs; delete its endpoint configs and model unless in use."""
    removed: dict[str, list[str]] = {"stopped_jobs": [], "endpoint_configs": [], "models": []}
    job = training_job_name(cfg, ctx)
    try:
        if sm.describe_training_job(TrainingJobName=job)["TrainingJobStatus"] == "InProgress":
            sm.stop_training_job(TrainingJobName=job)
            removed["stopped_jobs"].append(job)
    except sm.exceptions.ClientError:
        pass
    for purpose in ("eval",):
        tjob = transform_job_name(cfg, ctx, purpose)
        try:
            if sm.describe_transform_job(TransformJobName=tjob)["TransformJobStatus"] == "InProgress":
                sm.stop_transform_job(TransformJobName=tjob)
                removed["stopped_jobs"].append(tjob)
        except sm.exceptions.ClientError:
            pass
    used_configs, used_models = _in_use(sm)
    for target in ("dev", "prod"):
        name = endpoint_config_name(cfg, ctx, target)
        if name in used_configs:
            continue
        try:
            sm.delete_endpoint_config(EndpointConfigName=name)
            removed["endpoint_configs"].append(name)
        except sm.exceptions.ClientError:
            pass
    name = model_name(cfg, ctx)
    if name not in used_models:
        try:
            sm.delete_model(ModelName=name)
            removed["models"].append(name)
        except sm.exceptions.ClientError:
            pass
    return removed
