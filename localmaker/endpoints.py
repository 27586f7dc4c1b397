"""Models, endpoint configurations and endpoints: their control plane over :class:`HostingManager`.

The operations validate and store the resources; the hosting manager runs the endpoints' processes.
Messages for missing and duplicate resources are AWS's own, because clients match on them (the
provider switches CreateEndpoint to UpdateEndpoint on "Cannot create already existing endpoint").
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from . import controlplane
from .aws import now
from .context import Ctx
from .errors import validation
from .hosting import HostingManager
from .service import Handler


class HostingService(controlplane.ResourceService):
    """CreateModel ... ListEndpoints; endpoints' processes come back at start and stop with localmaker."""

    def __init__(self, ctx: Ctx, hosting: HostingManager) -> None:
        super().__init__(ctx)
        self.hosting = hosting

    def operations(self) -> Mapping[str, Handler]:
        return {
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "DeleteModel": self.delete_model,
            "ListModels": self.list_models,
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": self.describe_endpoint_config,
            "DeleteEndpointConfig": self.delete_endpoint_config,
            "ListEndpointConfigs": self.list_endpoint_configs,
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "UpdateEndpoint": self.update_endpoint,
            "DeleteEndpoint": self.delete_endpoint,
            "ListEndpoints": self.list_endpoints,
        }

    def resume(self) -> None:
        self.hosting.restore()

    def shutdown(self) -> None:
        self.hosting.shutdown()

    # ---- models --------------------------------------------------------------------------------------
    def create_model(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["ModelName"]
        model_arn = self.resource_arn("model", name)
        if not p.get("PrimaryContainer") and not p.get("Containers"):
            raise validation("Either PrimaryContainer or Containers must be specified.")
        doc = {k: v for k, v in p.items() if k != "Tags"}
        doc.update({"ModelArn": model_arn, "CreationTime": now()})
        doc.setdefault("EnableNetworkIsolation", False)
        self.insert("Model", name, doc, p, lambda: validation(f"Cannot create already existing model \"{model_arn}\"."))
        return {"ModelArn": model_arn}

    def _model(self, name: str) -> dict[str, Any]:
        return self.get_or_fail(
            "Model", name, lambda: validation(f"Could not find model \"{self.resource_arn('model', name)}\".")
        )

    def describe_model(self, p: dict[str, Any]) -> dict[str, Any]:
        # AWS answers each container with its Mode and Environment even when the request left them out
        doc = copy.deepcopy(self._model(p["ModelName"]))
        for c in [doc.get("PrimaryContainer"), *(doc.get("Containers") or [])]:
            if isinstance(c, dict):
                c.setdefault("Mode", "SingleModel")
                c.setdefault("Environment", {})
        return doc

    def delete_model(self, p: dict[str, Any]) -> dict[str, Any]:
        self._model(p["ModelName"])
        self.store.delete("Model", p["ModelName"])
        return {}

    def list_models(self, p: dict[str, Any]) -> dict[str, Any]:
        docs = controlplane.filter_sort(self.store.list("Model"), p, "ModelName")
        return controlplane.paginate(
            [{k: d[k] for k in ("ModelName", "ModelArn", "CreationTime")} for d in docs], p, "Models"
        )

    # ---- endpoint configs -------------------------------------------------------------------------------
    def create_endpoint_config(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["EndpointConfigName"]
        cfg_arn = self.resource_arn("endpoint-config", name)
        seen = set()
        for pv in p["ProductionVariants"]:
            if pv["VariantName"] in seen:
                raise validation(f"Duplicate VariantName '{pv['VariantName']}' in ProductionVariants.")
            seen.add(pv["VariantName"])
            if not pv.get("ModelName"):
                raise validation("ModelName is required for each production variant.")
            self._model(pv["ModelName"])
            if "ServerlessConfig" not in pv and not pv.get("InitialInstanceCount"):
                raise validation(
                    f"InitialInstanceCount is required for production variant {pv['VariantName']} "
                    "when ServerlessConfig is not specified."
                )
        cap = p.get("DataCaptureConfig")
        if cap and not cap.get("DestinationS3Uri", "").startswith("s3://"):
            raise validation("DataCaptureConfig.DestinationS3Uri must be an s3:// URI.")
        out_cfg = (p.get("AsyncInferenceConfig") or {}).get("OutputConfig")
        if out_cfg is not None and not out_cfg.get("S3OutputPath"):  # where InvokeEndpointAsync writes results
            raise validation("AsyncInferenceConfig.OutputConfig.S3OutputPath is required.")
        doc = {k: v for k, v in p.items() if k != "Tags"}
        doc.update({"EndpointConfigArn": cfg_arn, "CreationTime": now()})
        self.insert("EndpointConfig", name, doc, p, lambda: validation(f"Cannot create already existing endpoint configuration \"{cfg_arn}\"."))
        return {"EndpointConfigArn": cfg_arn}

    def _endpoint_config(self, name: str) -> dict[str, Any]:
        return self.get_or_fail(
            "EndpointConfig", name, lambda: validation(f"Could not find endpoint configuration \"{self.resource_arn('endpoint-config', name)}\".")
        )

    def describe_endpoint_config(self, p: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(self._endpoint_config(p["EndpointConfigName"]))
        for pv in doc.get("ProductionVariants", []):
            if "ServerlessConfig" not in pv:
                pv.setdefault("InitialVariantWeight", 1.0)  # AWS's default weight, shown as it applies it
        return doc

    def delete_endpoint_config(self, p: dict[str, Any]) -> dict[str, Any]:
        self._endpoint_config(p["EndpointConfigName"])
        self.store.delete("EndpointConfig", p["EndpointConfigName"])
        return {}

    def list_endpoint_configs(self, p: dict[str, Any]) -> dict[str, Any]:
        docs = controlplane.filter_sort(self.store.list("EndpointConfig"), p, "EndpointConfigName")
        return controlplane.paginate(
            [{k: d[k] for k in ("EndpointConfigName", "EndpointConfigArn", "CreationTime")} for d in docs],
            p,
            "EndpointConfigs",
        )

    # ---- endpoints -------------------------------------------------------------------------------------
    def create_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["EndpointName"]
        ep_arn = self.resource_arn("endpoint", name)
        if self.store.exists("Endpoint", name):
            raise validation(f"Cannot create already existing endpoint \"{ep_arn}\".")
        cfg = self._endpoint_config(p["EndpointConfigName"])
        t = now()
        doc: dict[str, Any] = {
            "EndpointName": name,
            "EndpointArn": ep_arn,
            "EndpointConfigName": p["EndpointConfigName"],
            "EndpointStatus": "Creating",
            "CreationTime": t,
            "LastModifiedTime": t,
        }
        if cfg.get("DataCaptureConfig"):
            doc["DataCaptureConfig"] = _capture_summary(cfg["DataCaptureConfig"])
        self.insert("Endpoint", name, doc, p, lambda: validation(f"Cannot create already existing endpoint \"{ep_arn}\"."))
        self.hosting.create(name)
        return {"EndpointArn": ep_arn}

    def _endpoint(self, name: str) -> dict[str, Any]:
        return self.get_or_fail(
            "Endpoint", name, lambda: validation(f"Could not find endpoint \"{self.resource_arn('endpoint', name)}\".")
        )

    def describe_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(self._endpoint(p["EndpointName"]))
        if "DataCaptureConfig" in doc:
            doc["DataCaptureConfig"].setdefault("KmsKeyId", "")
        self._deployed_images(doc)
        return doc

    def _deployed_images(self, doc: dict[str, Any]) -> None:
        """Each deployed variant's ``DeployedImages`` (AWS lists the image of every container it runs):
        SpecifiedImage is the model's image as given; there is no registry to resolve a digest from, so
        ResolvedImage is that same reference; ResolutionTime is when the variant went into service."""
        variants = [v for v in doc.get("ProductionVariants", []) if not v.get("DeployedImages")]
        if not variants:
            return
        cfg = self.store.get("EndpointConfig", doc.get("EndpointConfigName", "")) or {}
        by_name = {pv["VariantName"]: pv for pv in cfg.get("ProductionVariants", [])}
        for v in variants:
            model = self.store.get("Model", (by_name.get(v["VariantName"]) or {}).get("ModelName", "")) or {}
            containers = [model["PrimaryContainer"]] if model.get("PrimaryContainer") else model.get("Containers", [])
            images = [c["Image"] for c in containers if c.get("Image")]
            v["DeployedImages"] = [
                {"SpecifiedImage": i, "ResolvedImage": i, "ResolutionTime": doc["LastModifiedTime"]} for i in images
            ]

    def update_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["EndpointName"]
        doc = self._endpoint(name)
        cfg = self._endpoint_config(p["EndpointConfigName"])
        if doc["EndpointStatus"] in ("Creating", "Updating", "Deleting", "SystemUpdating", "RollingBack"):
            raise validation(f"Cannot update in-progress endpoint \"{doc['EndpointArn']}\".")
        if doc["EndpointStatus"] == "Failed" and not self.hosting.fleets.get(name):
            # AWS refuses to update an endpoint that never came up; it must be deleted and recreated
            raise validation(
                f"Cannot update failed endpoint \"{doc['EndpointArn']}\". Delete it and create it again."
            )

        def fn(d: dict[str, Any]) -> None:
            d["EndpointStatus"] = "Updating"
            d["LastModifiedTime"] = now()
            d.pop("FailureReason", None)
            if cfg.get("DataCaptureConfig"):
                d["DataCaptureConfig"] = _capture_summary(cfg["DataCaptureConfig"])
            else:
                d.pop("DataCaptureConfig", None)

        self.store.update("Endpoint", name, fn)
        self.hosting.update(name, p["EndpointConfigName"])
        return {"EndpointArn": doc["EndpointArn"]}

    def delete_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["EndpointName"]
        self._endpoint(name)
        self.store.update("Endpoint", name, lambda d: d.update(EndpointStatus="Deleting", LastModifiedTime=now()))
        self.hosting.delete(name)
        self.store.delete("Endpoint", name)
        return {}

    def list_endpoints(self, p: dict[str, Any]) -> dict[str, Any]:
        docs = controlplane.filter_sort(self.store.list("Endpoint"), p, "EndpointName", "EndpointStatus")
        return controlplane.paginate(
            [
                {k: d[k] for k in ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")}
                for d in docs
            ],
            p,
            "Endpoints",
        )


def _capture_summary(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "EnableCapture": bool(cfg.get("EnableCapture", True)),
        "CaptureStatus": "Started" if cfg.get("EnableCapture", True) else "Stopped",
        "CurrentSamplingPercentage": int(cfg.get("InitialSamplingPercentage", 100)),
        "DestinationS3Uri": cfg.get("DestinationS3Uri", ""),
        **({"KmsKeyId": cfg["KmsKeyId"]} if cfg.get("KmsKeyId") else {}),
    }
