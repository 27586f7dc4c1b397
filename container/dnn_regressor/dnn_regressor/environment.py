"""Where the SageMaker training contract puts things, resolved once.

SageMaker (and localmaker, which mimics it with local processes) lays a host out as
``/opt/ml``: config JSON under ``input/config``, one folder per channel under ``input/data``,
the model goes to ``model/``, a failure reason to ``output/failure``. The sagemaker-training
toolkit's ``SM_*`` variables, when set, win over the derived paths, because script-mode users and
localmaker set them and expect them to be honoured.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ClientError

DEFAULT_BASE_DIR = "/opt/ml"


def base_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The ``/opt/ml`` root; ``SAGEMAKER_BASE_DIR`` moves it (localmaker, tests)."""
    return Path(environ.get("SAGEMAKER_BASE_DIR") or DEFAULT_BASE_DIR)


def output_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("SM_OUTPUT_DIR") or base_dir(environ) / "output")


def failure_file(environ: Mapping[str, str] = os.environ) -> Path:
    """Resolvable without reading any config, so even a broken config can be reported."""
    return output_dir(environ) / "failure"


def model_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where training writes and serving reads the model (``SM_MODEL_DIR`` overrides)."""
    return Path(environ.get("SM_MODEL_DIR") or base_dir(environ) / "model")


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClientError(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientError(
            f"{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc


@dataclass(frozen=True)
class TrainingEnvironment:
    """Everything ``train`` needs to know about the host it runs on.

    Attributes:
        base_dir: the ``/opt/ml`` root of this host.
        model_dir: where the chief writes ``model.keras`` and ``metadata.json``.
        output_data_dir: extra artefacts (training history) that become ``output.tar.gz``.
        failure_file: the one-line reason SageMaker reports when the job fails.
        hyperparameters: raw values as SageMaker passes them (strings).
        input_data_config: ``inputdataconfig.json`` (channel -> ContentType, ...).
        current_host / hosts: from ``resourceconfig.json``; the first host is the chief.
        environ: the process environment the paths were derived from.
    """

    base_dir: Path
    model_dir: Path
    output_data_dir: Path
    failure_file: Path
    hyperparameters: dict[str, str]
    input_data_config: dict[str, Any]
    current_host: str
    hosts: list[str]
    environ: Mapping[str, str] = field(repr=False, default_factory=dict)

    @property
    def is_chief(self) -> bool:
        return self.current_host == self.hosts[0]

    @property
    def is_distributed(self) -> bool:
        return len(self.hosts) > 1

    def channel_dir(self, channel: str) -> Path:
        """``SM_CHANNEL_<NAME>`` if set, else ``input/data/<channel>``."""
        override = self.environ.get(f"SM_CHANNEL_{channel.upper()}")
        return Path(override) if override else self.base_dir / "input" / "data" / channel

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TrainingEnvironment:
        base = base_dir(environ)
        config = base / "input" / "config"
        hps = _read_json(config / "hyperparameters.json", "hyperparameters file")
        if hps is None:
            hps = {}
        if not isinstance(hps, dict):
            raise ClientError(
                f"hyperparameters file {config / 'hyperparameters.json'} must hold a JSON object, "
                f"got {type(hps).__name__}"
            )
        data_config = _read_json(config / "inputdataconfig.json", "input data config") or {}
        if not isinstance(data_config, dict):
            raise ClientError(f"input data config {config / 'inputdataconfig.json'} must hold a JSON object")
        current_host, hosts = _hosts(config / "resourceconfig.json", environ)
        return cls(
            base_dir=base,
            model_dir=model_dir(environ),
            output_data_dir=Path(environ.get("SM_OUTPUT_DATA_DIR") or output_dir(environ) / "data"),
            failure_file=failure_file(environ),
            hyperparameters={str(k): v if isinstance(v, str) else json.dumps(v) for k, v in hps.items()},
            input_data_config=data_config,
            current_host=current_host,
            hosts=hosts,
            environ=dict(environ),
        )


def _hosts(resource_config: Path, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Current host and the ordered host list; a missing file means a single host.

    ``SM_HOSTS``/``SM_CURRENT_HOST`` are the fallback because script-mode launchers set them
    even when they do not write ``resourceconfig.json``.
    """
    rc = _read_json(resource_config, "resource config")
    if rc is None:
        hosts_env = environ.get("SM_HOSTS")
        hosts = json.loads(hosts_env) if hosts_env else ["algo-1"]
        current = environ.get("SM_CURRENT_HOST") or hosts[0]
    else:
        if not isinstance(rc, dict):
            raise ClientError(f"resource config {resource_config} must hold a JSON object")
        hosts = rc.get("hosts") or [rc.get("current_host") or "algo-1"]
        current = rc.get("current_host") or hosts[0]
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise ClientError(f"resource config {resource_config}: 'hosts' must be a list of host names")
    if len(set(hosts)) != len(hosts):
        raise ClientError(f"resource config {resource_config}: 'hosts' lists a host twice: {hosts}")
    if current not in hosts:
        raise ClientError(
            f"resource config {resource_config}: current_host '{current}' is not in hosts {hosts}"
        )
    return current, list(hosts)
