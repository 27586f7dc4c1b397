"""Trigger-form parameters: what a DAG run's ``params`` / ``dag_run.conf`` change in the config."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .layers import OVERRIDES_SOURCE, deep_merge, default_stage, load_config
from .messages import ConfigError
from .schema import PipelineConfig

#: Flat trigger-form parameter -> the dotted config key it overrides.
PARAM_KEYS: dict[str, str] = {
    "instance_type": "training.instance_type",
    "instance_count": "training.instance_count",
    "max_runtime_seconds": "training.max_runtime_seconds",
    "hyperparameters": "training.hyperparameters",
    "tuning": "tuning.enabled",
    "tuning_max_jobs": "tuning.max_jobs",
    "tuning_max_parallel_jobs": "tuning.max_parallel_jobs",
    "endpoint_instance_type": "endpoint.instance_type",
    "endpoint_instance_count": "endpoint.initial_instance_count",
    "transform_instance_type": "transform.instance_type",
    "source_uri": "data.source_uri",
    "batch_source_uri": "data.batch_source_uri",
    "deploy": "run.deploy",
    "auto_approve": "run.auto_approve",
}
#: Parameters that choose what to load rather than override a value.
SELECTOR_PARAMS = frozenset({"stage", "model"})


def json_object_param(name: str, value: Any) -> dict[str, Any]:
    """A trigger param that holds an object: a mapping, or its JSON text as a form's text field
    sends it (empty text: ``{}``). Errors name the param and blame the run's overrides."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError([f"{OVERRIDES_SOURCE}: {name}: not a JSON object: {exc}"]) from None
    if not isinstance(value, Mapping):
        raise ConfigError([f"{OVERRIDES_SOURCE}: {name}: must be a JSON object (got {type(value).__name__})"])
    return dict(value)


def overrides_from_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Turn trigger-form params (``dag_run.conf`` / ``params``) into a nested overrides mapping.

    Accepted keys: the flat names in :data:`PARAM_KEYS`; dotted config keys
    (``"training.volume_size_gb": 50``); and ``"overrides"``, a nested mapping merged as is.
    ``stage``/``model`` are skipped (they select files), and ``None`` means "use the config"
    because that is what an untouched optional form field sends. ``hyperparameters`` may be a
    JSON object string, as a text field in the form would send it; hyperparameters given here
    merge into the configured ones instead of replacing them all.
    """
    result: dict[str, Any] = {}
    unknown: list[str] = []
    for name, value in params.items():
        if name in SELECTOR_PARAMS or value is None:
            continue
        if name == "overrides":
            if not isinstance(value, Mapping):
                raise ConfigError(
                    [f"{OVERRIDES_SOURCE}: overrides: must be a mapping (got {type(value).__name__})"]
                )
            result = deep_merge(result, value)
            continue
        if name == "hyperparameters" and isinstance(value, str):
            value = json_object_param(name, value)
        dotted = PARAM_KEYS.get(name) or (name if "." in name else None)
        if dotted is None:
            unknown.append(name)
            continue
        nested: Any = value
        for part in reversed(dotted.split(".")):
            nested = {part: nested}
        result = deep_merge(result, nested)
    if unknown:
        known = ", ".join(sorted([*PARAM_KEYS, "overrides", *SELECTOR_PARAMS]))
        raise ConfigError(
            [
                f"{OVERRIDES_SOURCE}: {name}: unknown trigger parameter (known: {known}, or a dotted config key)"
                for name in unknown
            ]
        )
    return result


def config_for_run(
    model: str,
    params: Mapping[str, Any] | None = None,
    *,
    config_dir: Path | None = None,
    stage: str | None = None,
) -> PipelineConfig:
    """Load the config a DAG run asked for: stage from ``params["stage"]`` (else ``stage``, else
    :func:`default_stage`), everything else from :func:`overrides_from_params`."""
    params = dict(params or {})
    chosen = params.get("stage") or stage or default_stage()
    return load_config(model, chosen, overrides_from_params(params), config_dir=config_dir)


def config_for_failed_run(
    model: str,
    params: Mapping[str, Any] | None = None,
    *,
    config_dir: Path | None = None,
    stage: str | None = None,
) -> tuple[PipelineConfig, str | None]:
    """The config to clean up and alert with after a failure: ``(config, problem)``.

    The run's own config (:func:`config_for_run`) when it loads; when the run's overrides are what
    broke it (``instance_type: ml.bogus``), the config without them, of the run's stage (so its
    resource names are the run's), else of the default stage; ``problem`` then says why. Only a
    model whose files themselves are broken raises.
    """
    try:
        return config_for_run(model, params, config_dir=config_dir, stage=stage), None
    except ConfigError as exc:
        problem = str(exc)
    chosen = dict(params or {}).get("stage") or stage or default_stage()
    try:
        return load_config(model, chosen, config_dir=config_dir), problem
    except ConfigError:
        return load_config(model, default_stage(), config_dir=config_dir), problem

