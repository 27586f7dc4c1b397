"""Names, locations and the deploy request of a BYOM run (pure: what boto3 and the provider's
``SageMakerEndpointOperator`` take)."""

from __future__ import annotations

import re
from typing import Any

from ..config import NAME_PATTERN, ConfigError, fill_template
from ..run import RunContext, sagemaker_name
from ..s3 import s3_uri
from .common import BYOM_SUBDIR, MODEL_TARBALL
from .config import ByomConfig, StageSettings


def endpoint_name(cfg: ByomConfig, stage: StageSettings) -> str:
    name = fill_template(cfg.serving.endpoint_name, {"name": cfg.name, "name_slug": cfg.slug, "stage": stage.stage})
    if not re.match(NAME_PATTERN, name):
        raise ConfigError(
            [f"{BYOM_SUBDIR}/{cfg.name}.yaml: serving.endpoint_name: {name!r} is not a valid SageMaker name"]
        )
    return name


def model_name(cfg: ByomConfig, stage: StageSettings, ctx: RunContext) -> str:
    """Per run (a retry rebuilds the same name and finds what its first try created)."""
    return sagemaker_name(cfg.slug, "byom", stage.stage, ctx.ts_nodash)


def endpoint_config_name(cfg: ByomConfig, stage: StageSettings, ctx: RunContext) -> str:
    return sagemaker_name(cfg.slug, "byom", stage.stage, ctx.ts_nodash)


def run_prefix(cfg: ByomConfig, stage: StageSettings, ctx: RunContext) -> str:
    """``s3://{bucket}/byom/{name}/{run_key}/``: everything one run writes."""
    return s3_uri(stage.aws.bucket, BYOM_SUBDIR, cfg.name, ctx.run_key, trailing_slash=True)


def run_uri(cfg: ByomConfig, stage: StageSettings, ctx: RunContext, what: str) -> str:
    return run_prefix(cfg, stage, ctx) + what.strip("/")


def model_data_uri(cfg: ByomConfig, stage: StageSettings, ctx: RunContext) -> str:
    return run_uri(cfg, stage, ctx, f"model/{MODEL_TARBALL}")


def image_uri(cfg: ByomConfig, stage: StageSettings) -> str:
    """The built-in XGBoost image of the stage's region, as the SageMaker SDK knows it (each region has
    its own registry account), or the configured ``serving.image_uri``."""
    if cfg.serving.image_uri:
        return fill_template(cfg.serving.image_uri, {"region": stage.aws.region, "account": stage.aws.account_id})
    from sagemaker.core import image_uris

    return image_uris.retrieve("xgboost", stage.aws.region, cfg.serving.xgboost_version)


def _tags(cfg: ByomConfig, stage: StageSettings, ctx: RunContext) -> list[dict[str, str]]:
    tags = {**stage.tags, "model": cfg.name, "stage": stage.stage, "airflow_run_id": ctx.run_id[:256]}
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def deploy_request(
    cfg: ByomConfig, stage: StageSettings, ctx: RunContext, *, model_data_url: str, image: str
) -> dict[str, Any]:
    """``{"Model", "EndpointConfig", "Endpoint"}`` as ``SageMakerEndpointOperator`` takes it.

    The model is the built-in image plus the uploaded tarball: no training job, no inference code.
    """
    if not model_data_url.startswith("s3://") or not model_data_url.endswith(".tar.gz"):
        raise ValueError(f"ModelDataUrl must be an s3:// URI of a .tar.gz (got {model_data_url!r})")
    model = model_name(cfg, stage, ctx)
    tags = _tags(cfg, stage, ctx)
    return {
        "Model": {
            "ModelName": model,
            "PrimaryContainer": {"Image": image, "ModelDataUrl": model_data_url},
            "ExecutionRoleArn": stage.aws.role_arn,
            "Tags": tags,
        },
        "EndpointConfig": {
            "EndpointConfigName": endpoint_config_name(cfg, stage, ctx),
            "ProductionVariants": [
                {
                    "VariantName": cfg.serving.variant_name,
                    "ModelName": model,
                    "InstanceType": cfg.serving.instance_type,
                    "InitialInstanceCount": cfg.serving.instance_count,
                    "InitialVariantWeight": 1.0,
                }
            ],
            "Tags": tags,
        },
        "Endpoint": {
            "EndpointName": endpoint_name(cfg, stage),
            "EndpointConfigName": endpoint_config_name(cfg, stage, ctx),
            "Tags": tags,
        },
    }
