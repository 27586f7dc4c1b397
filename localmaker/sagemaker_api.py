"""The JSON 1.1 APIs' front: an operation's request validated, checked against quotas, handed to its service.

:class:`JsonApi` answers one botocore service (``sagemaker``, ``logs``) from the operations the
services built by :class:`~localmaker.server.LocalMaker` declare; an operation no service declares is
``UnknownOperationException``. Every request is validated against the operation's input shape first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from .context import Settings
from .controlplane import service_model
from .errors import AwsError
from .service import Handler, Service
from .validation import validate

log = logging.getLogger("localmaker.api")


class JsonApi:
    """The operations of one botocore service, gathered from the services that answer them."""

    def __init__(self, api: str, services: Iterable[Service], settings: Settings,
                 unsupported: str = "The operation {} is not supported by localmaker.") -> None:
        self.api = api
        self.settings = settings
        self.unsupported = unsupported
        self.operations: dict[str, Handler] = {}
        for svc in services:
            if svc.api != api:
                continue
            for name, fn in svc.operations().items():
                if name in self.operations:
                    raise ValueError(f"two services answer {api} operation {name}")
                self.operations[name] = fn

    def handle(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            op = service_model(self.api).operation_model(action)
        except Exception as exc:
            raise AwsError("UnknownOperationException", f"Unknown operation {action}.") from exc
        fn = self.operations.get(action)
        if fn is None:
            raise AwsError("UnknownOperationException", self.unsupported.format(action), status=400)
        validate(op.input_shape, params)
        self._check_quotas(action, params)
        return fn(params)

    def _check_quotas(self, action: str, p: dict[str, Any]) -> None:
        """Instance counts above the configured quota are ResourceLimitExceeded, with AWS's message."""
        s = self.settings
        for usage, instance_type, count, limit in _instance_requests(action, p, s.max_instances_per_job,
                                                                     s.max_instances_per_variant):
            if isinstance(count, int) and not isinstance(count, bool) and count > limit:
                raise AwsError(
                    "ResourceLimitExceeded",
                    f"The account-level service limit '{instance_type} for {usage}' is {limit} Instances, with "
                    f"current utilization of 0 Instances and a request delta of {count} Instances. Please use "
                    "AWS Service Quotas to request an increase for this quota.",
                )


def _instance_requests(
    action: str, p: dict[str, Any], per_job: int, per_variant: int
) -> list[tuple[str, str, Any, int]]:
    """(usage, instance type, requested count, quota) for every instance count an operation asks for."""
    out: list[tuple[str, str, Any, int]] = []

    def add(usage: str, cfg: Any, key: str, limit: int) -> None:
        if isinstance(cfg, dict) and key in cfg:
            out.append((usage, str(cfg.get("InstanceType") or "ml.m5.large"), cfg[key], limit))

    if action == "CreateTrainingJob":
        add("training job usage", p.get("ResourceConfig"), "InstanceCount", per_job)
    elif action == "CreateProcessingJob":
        add("processing job usage", (p.get("ProcessingResources") or {}).get("ClusterConfig"), "InstanceCount", per_job)
    elif action == "CreateTransformJob":
        add("transform job usage", p.get("TransformResources"), "InstanceCount", per_job)
    elif action == "CreateHyperParameterTuningJob":
        for d in [p.get("TrainingJobDefinition"), *(p.get("TrainingJobDefinitions") or [])]:
            if isinstance(d, dict):
                add("training job usage", d.get("ResourceConfig"), "InstanceCount", per_job)
                add("training job usage", d.get("HyperParameterTuningResourceConfig"), "InstanceCount", per_job)
    elif action == "CreateEndpointConfig":
        for v in [*(p.get("ProductionVariants") or []), *(p.get("ShadowProductionVariants") or [])]:
            add("endpoint usage", v, "InitialInstanceCount", per_variant)
    return out
