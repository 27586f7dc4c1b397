"""Layered loading: ``base.yaml`` <- ``stages/<stage>.yaml`` <- ``models/<model>.yaml`` <- run
overrides, deep-merged, with the layer that last set each key remembered (its provenance), and
``{account}``-style placeholders filled.

Mappings merge key by key (except that a mapping changing its ``type``, such as a tuning range
turning categorical, replaces the old one); lists and scalars replace.
"""

from __future__ import annotations

import copy
import os
import string
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .checks import cross_checks
from .messages import ConfigError, KeyPath, source_for, validation_problems
from .schema import MODEL_NAME_PATTERN, PipelineConfig, slug

#: ``include/config``: where the YAML layers live.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
#: The project root (the directory holding ``include/``): ``file://`` data URIs resolve against it.
PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: The layer name used in error messages for values passed to :func:`load_config` directly.
OVERRIDES_SOURCE = "run overrides"
#: Environment variable a DAG file may read to pick the stage it is deployed as.
STAGE_ENV_VAR = "MLPIPELINE_STAGE"
#: Top-level keys :func:`load_config` sets from its arguments; no layer may set them.
RESERVED_KEYS = ("model", "stage")

#: Dotted keys whose string values may use ``{account}``, ``{region}``, ``{bucket}``, ``{model}``
#: (the model name as in its file), ``{model_slug}`` (the same with ``_`` as ``-``, legal in
#: SageMaker names) and ``{stage}``. Deliberately a short list: metric regexes and hyperparameters
#: legitimately contain braces.
TEMPLATED_KEYS = (
    "aws.bucket",
    "aws.role_arn",
    "training.image_uri",
    "endpoint.dev_name",
    "endpoint.prod_name",
    "endpoint.data_capture.destination_s3_uri",
    "registry.model_package_group_name",
    "data.source_uri",
    "data.batch_source_uri",
    "alerts.sns_topic_arn",
    "monitoring.image_uri",
    "image_inference.input_prefix",
    "image_inference.accepted_prefix",
    "image_inference.review_prefix",
)



def list_models(config_dir: Path | None = None) -> list[str]:
    """Names of the configured models (``models/*.yaml``), for one-DAG-per-model files."""
    return sorted(p.stem for p in ((config_dir or CONFIG_DIR) / "models").glob("*.yaml"))


def list_stages(config_dir: Path | None = None) -> list[str]:
    """Names of the configured stages (``stages/*.yaml``)."""
    return sorted(p.stem for p in ((config_dir or CONFIG_DIR) / "stages").glob("*.yaml"))


def default_stage(default: str = "dev") -> str:
    """The stage a deployment runs as (``MLPIPELINE_STAGE``), for DAG files' param defaults."""
    return os.environ.get(STAGE_ENV_VAR, default)


def load_config(
    model: str,
    stage: str,
    overrides: Mapping[str, Any] | None = None,
    config_dir: Path | None = None,
) -> PipelineConfig:
    """Merge ``base <- stages/<stage> <- models/<model> <- overrides`` and validate the result.

    Raises:
        ConfigError: unknown model or stage (listing the available ones), unreadable YAML, or
            invalid values; every problem names the layer that set the key and the dotted key.
    """
    config_dir = Path(config_dir) if config_dir is not None else CONFIG_DIR
    if not (config_dir / "base.yaml").is_file():
        raise ConfigError([f"base.yaml: not found in {config_dir}"])
    _check_choice("model", model, list_models(config_dir))
    _check_choice("stage", stage, list_stages(config_dir))

    layers: list[tuple[str, Mapping[str, Any]]] = [
        ("base.yaml", read_yaml(config_dir, "base.yaml")),
        (f"stages/{stage}.yaml", read_yaml(config_dir, f"stages/{stage}.yaml")),
        (f"models/{model}.yaml", read_yaml(config_dir, f"models/{model}.yaml")),
    ]
    if overrides:
        if not isinstance(overrides, Mapping):
            raise ConfigError([f"{OVERRIDES_SOURCE}: must be a mapping (got {type(overrides).__name__})"])
        layers.append((OVERRIDES_SOURCE, overrides))
    for label, layer in layers[2:]:
        airflow = layer.get("airflow")
        if isinstance(airflow, Mapping) and "pools" in airflow:
            raise ConfigError([
                f"{label}: airflow.pools: pools are shared by every model's DAGs and chosen when the DAG "
                "file is parsed; set them in base.yaml or stages/*.yaml"
            ])
    for label, layer in layers:
        for reserved in RESERVED_KEYS:
            if reserved in layer:
                raise ConfigError(
                    [f"{label}: {reserved}: reserved key, set by load_config() from its arguments"]
                )
    merged, sources = merge_layers(layers)

    fallback = f"models/{model}.yaml"
    variables = {
        "account": str(_section(merged, "aws").get("account_id", "")),
        "region": str(_section(merged, "aws").get("region", "")),
        "model": model,
        "model_slug": slug(model),
        "stage": stage,
    }
    fill_templates(merged, sources, TEMPLATED_KEYS, variables, fallback, exports={"aws.bucket": "bucket"})
    try:
        config = PipelineConfig.model_validate({**merged, "model": model, "stage": stage})
    except ValidationError as exc:
        raise validation_problems(
            exc, merged, sources, fallback, root=PipelineConfig, reserved=RESERVED_KEYS
        ) from None

    problems = [
        f"{source_for(key, sources, fallback)}: {'.'.join(key)}: {msg}" for key, msg in cross_checks(config)
    ]
    if problems:
        raise ConfigError(problems)
    return config


def _check_choice(kind: str, value: str, available: list[str]) -> None:
    if value not in available:
        listing = ", ".join(available) if available else "none"
        raise ConfigError([f"unknown {kind} {value!r}; available {kind}s: {listing}"])
    if kind == "model" and not MODEL_NAME_PATTERN.match(value):
        raise ConfigError([f"models/{value}.yaml: model names may hold letters, digits, '_' and '-' only"])


def read_yaml(config_dir: Path, relative: str) -> dict[str, Any]:
    """One layer file as a mapping (empty for an empty file); problems name ``relative``."""
    path = config_dir / relative
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{relative}: cannot read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{relative}: invalid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{relative}: top level must be a mapping of sections (got {type(data).__name__})"]
        )
    return data


def merge_layers(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    """Deep-merge ``(label, mapping)`` layers in order: the merged tree and, for every key path,
    the label of the layer that last set it (what error messages name)."""
    merged: dict[str, Any] = {}
    sources: dict[KeyPath, str] = {}
    for label, layer in layers:
        _merge_into(merged, layer, (), label, sources)
    return merged, sources


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: mappings merge recursively, lists and scalars replace."""
    result = copy.deepcopy(dict(base))
    _merge_into(result, override, (), "", {})
    return result


def _merge_into(
    target: dict[str, Any],
    layer: Mapping[str, Any],
    prefix: KeyPath,
    label: str,
    sources: dict[KeyPath, str],
) -> None:
    for key, value in layer.items():
        key = str(key)
        path = (*prefix, key)
        sources[path] = label
        if (
            isinstance(value, Mapping)
            and isinstance(target.get(key), dict)
            and not _changes_type(target[key], value)
        ):
            _merge_into(target[key], value, path, label, sources)
            continue
        for stale in [p for p in sources if p[: len(path)] == path and len(p) > len(path)]:
            del sources[stale]
        target[key] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else copy.deepcopy(value)
        if isinstance(value, Mapping):
            _record_sources(value, path, label, sources)


def _changes_type(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A mapping that switches its ``type`` (a tuning range going from continuous to categorical)
    replaces the old one: merging would mix keys of both kinds (``min`` next to ``values``)."""
    return "type" in new and "type" in current and new["type"] != current["type"]


def _record_sources(
    value: Mapping[str, Any], prefix: KeyPath, label: str, sources: dict[KeyPath, str]
) -> None:
    for key, child in value.items():
        path = (*prefix, str(key))
        sources[path] = label
        if isinstance(child, Mapping):
            _record_sources(child, path, label, sources)


def _section(tree: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = tree.get(name)
    return value if isinstance(value, Mapping) else {}


def _get(tree: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = tree
    for part in parents:
        node = node[part]
    node[last] = value


def placeholders(template: str, known: Iterable[str]) -> list[str]:
    """The ``{name}`` placeholders of ``template``, checked against ``known``.

    Raises:
        ValueError: a malformed or unknown placeholder, with a message naming it and the known ones.
    """
    allowed = sorted(known)
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"malformed placeholder in {template!r}: {exc}") from None
    unknown = sorted({n for n in names if n not in allowed})
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}} (known: {', '.join(allowed)})")
    return names


def fill_template(template: str, variables: Mapping[str, str]) -> str:
    """``template`` with its placeholders filled; an unknown one raises (see :func:`placeholders`)."""
    placeholders(template, variables)
    return template.format_map(dict(variables))


def fill_templates(
    merged: dict[str, Any],
    sources: Mapping[KeyPath, str],
    keys: Iterable[str],
    variables: Mapping[str, str],
    fallback: str,
    *,
    exports: Mapping[str, str] | None = None,
) -> None:
    """Fill the placeholders of the string values at the dotted ``keys``, in order, in place.

    ``exports`` makes a filled value a variable of the keys after it (``aws.bucket`` -> ``{bucket}``).
    Every unknown placeholder is reported against the layer that set its key.
    """
    known = dict(variables)
    problems: list[str] = []
    for dotted in keys:
        found, value = _get(merged, dotted)
        if found and isinstance(value, str):
            try:
                _set(merged, dotted, fill_template(value, known))
            except ValueError as exc:
                problems.append(f"{source_for(tuple(dotted.split('.')), sources, fallback)}: {dotted}: {exc}")
                continue
        if exports and dotted in exports:
            known[exports[dotted]] = str(_get(merged, dotted)[1] or "")
    if problems:
        raise ConfigError(problems)
