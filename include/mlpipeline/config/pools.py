"""The Airflow pools of a stage (``airflow.pools`` of ``base.yaml`` <- ``stages/<stage>.yaml``).

Pools belong to the whole Airflow deployment, not to one model, so a model file may not set them.
``make up``, the compose file's ``airflow-init`` and ``airflow_settings.yaml`` (Astro) create them;
the first two through this module's command line, which prints the file ``airflow pools import``
reads::

    python -m include.mlpipeline.config.pools --stage dev > pools.json && airflow pools import pools.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from .layers import CONFIG_DIR, _check_choice, list_models, list_stages, merge_layers, read_yaml
from .messages import ConfigError, validation_problems
from .schema import JOB_KINDS, PoolsSettings, Section


class _AirflowPools(Section):
    model_config = ConfigDict(extra="ignore", frozen=True)  # the other airflow.* keys: load_config's job
    pools: PoolsSettings = Field(default_factory=PoolsSettings)


class _Root(Section):
    model_config = ConfigDict(extra="ignore", frozen=True)
    airflow: _AirflowPools = Field(default_factory=_AirflowPools)


def stage_pools(stage: str, config_dir: Path | None = None) -> PoolsSettings:
    """The validated ``airflow.pools`` of ``stage``.

    Raises:
        ConfigError: unknown stage, invalid pool settings (naming the file and key), or a model
            file that sets ``airflow.pools`` (pools are shared by every model's DAGs).
    """
    config_dir = Path(config_dir) if config_dir is not None else CONFIG_DIR
    _check_choice("stage", stage, list_stages(config_dir))
    problems = [
        f"models/{model}.yaml: airflow.pools: pools are deployment-wide; set them in base.yaml or stages/*.yaml"
        for model in list_models(config_dir)
        if "pools" in (read_yaml(config_dir, f"models/{model}.yaml").get("airflow") or {})
    ]
    if problems:
        raise ConfigError(problems)
    layers = [
        ("base.yaml", read_yaml(config_dir, "base.yaml")),
        (f"stages/{stage}.yaml", read_yaml(config_dir, f"stages/{stage}.yaml")),
    ]
    merged, sources = merge_layers(layers)
    try:
        return _Root.model_validate(merged).airflow.pools
    except ValidationError as exc:
        raise validation_problems(exc, merged, sources, f"stages/{stage}.yaml", root=_Root) from None


def pools_import_file(pools: PoolsSettings) -> dict[str, dict[str, Any]]:
    """The mapping ``airflow pools import`` reads: deferred tasks occupy their pool slot."""
    return {
        getattr(pools, kind).name: {
            "slots": getattr(pools, kind).slots,
            "description": f"tasks running SageMaker {kind} work at once (include/config airflow.pools.{kind})",
            "include_deferred": True,
        }
        for kind in JOB_KINDS
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a stage's Airflow pools as `airflow pools import` reads them.")
    parser.add_argument("--stage", default="dev", help="stage file under include/config/stages (default dev)")
    args = parser.parse_args(argv)
    try:
        pools = stage_pools(args.stage)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json.dump(pools_import_file(pools), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
