"""The SageMaker control plane: resources, their validation, their AWS-shaped answers.

Each ``op_<Operation>`` takes the already-validated request dict and returns the response dict.
Messages for missing and duplicate resources are AWS's own, because clients match on them.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable
from typing import Any

import botocore.session

from . import training
from .aws import arn, now
from .context import Ctx
from .errors import AwsError, in_use, not_found, validation
from .hosting import HostingManager
from .validation import validate

log = logging.getLogger("localmaker.api")


@functools.lru_cache(maxsize=4)
def service_model(name: str) -> Any:
    return botocore.session.get_session().get_service_model(name)


def _lc(name: str) -> str:
    return name.lower()


class SageMakerApi:
    def __init__(self, ctx: Ctx, training_runner: training.TrainingRunner, hosting: HostingManager) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.region = ctx.region
        self.training = training_runner
        self.hosting = hosting
        self.extra: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}

    def handle(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        model = service_model("sagemaker")
        try:
            op = model.operation_model(action)
        except Exception as exc:
            raise AwsError("UnknownOperationException", f"Unknown operation {action}.") from exc
        fn = getattr(self, "op_" + action, None) or self.extra.get(action)
        if fn is None:
            raise AwsError(
                "UnknownOperationException", f"The operation {action} is not supported by localmaker.", status=400
            )
        validate(op.input_shape, params)
        self._check_quotas(action, params)
        return fn(params)

    # ---- quotas ----------------------------------------------------------------------------------------
    def _check_quotas(self, action: str, p: dict[str, Any]) -> None:
        """Instance counts above the configured quota are ResourceLimitExceeded, with AWS's message."""
        s = self.ctx.settings
        for usage, instance_type, count, limit in _instance_requests(action, p, s.max_instances_per_job,
                                                                     s.max_instances_per_variant):
            if isinstance(count, int) and not isinstance(count, bool) and count > limit:
                raise AwsError(
                    "ResourceLimitExceeded",
                    f"The account-level service limit '{instance_type} for {usage}' is {limit} Instances, with "
                    f"current utilization of 0 Instances and a request delta of {count} Instances. Please use "
                    "AWS Service Quotas to request an increase for this quota.",
                )

    # ---- common helpers -------------------------------------------------------------------------
    def arn(self, resource: str) -> str:
        return arn(self.region, resource)

    def _tags_on_create(self, resource_arn: str, p: dict[str, Any]) -> None:
        if p.get("Tags"):
            self.op_AddTags({"ResourceArn": resource_arn, "Tags": p["Tags"]})

    @staticmethod
    def _paginate(items: list[dict[str, Any]], p: dict[str, Any], key: str, default_max: int = 10) -> dict[str, Any]:
        start = 0
        if p.get("NextToken"):
            try:
                start = int(p["NextToken"])
            except ValueError as exc:
                raise validation("Invalid pagination token: NextToken is malformed.") from exc
        n = int(p.get("MaxResults", default_max))
        page = items[start : start + n]
        out: dict[str, Any] = {key: page}
        if start + n < len(items):
            out["NextToken"] = str(start + n)
        return out

    @staticmethod
    def _filter_sort(
        docs: list[dict[str, Any]],
        p: dict[str, Any],
        name_key: str,
        status_key: str | None = None,
        sort_default: str = "CreationTime",
    ) -> list[dict[str, Any]]:
        out = []
        for d in docs:
            if p.get("NameContains") and p["NameContains"].lower() not in d[name_key].lower():
                continue
            if status_key and p.get("StatusEquals") and d.get(status_key) != p["StatusEquals"]:
                continue
            if p.get("CreationTimeAfter") and d["CreationTime"] <= _ts(p["CreationTimeAfter"]):
                continue
            if p.get("CreationTimeBefore") and d["CreationTime"] >= _ts(p["CreationTimeBefore"]):
                continue
            if p.get("LastModifiedTimeAfter") and d.get("LastModifiedTime", 0) <= _ts(p["LastModifiedTimeAfter"]):
                continue
            if p.get("LastModifiedTimeBefore") and d.get("LastModifiedTime", 0) >= _ts(p["LastModifiedTimeBefore"]):
                continue
            out.append(d)
        sort_by = p.get("SortBy", sort_default)
        key = {"Name": name_key, "CreationTime": "CreationTime", "Status": status_key or name_key}.get(
            sort_by, "CreationTime"
        )
        out.sort(key=lambda d: (d.get(key) is None, d.get(key)), reverse=p.get("SortOrder", "Descending") == "Descending")
        return out

    # ---- training jobs -----------------------------------------------------------------------------
    def op_CreateTrainingJob(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["TrainingJobName"]
        doc = training.new_job_doc(p, self.region)
        algo = p["AlgorithmSpecification"]
        if not algo.get("TrainingImage") and not algo.get("AlgorithmName"):
            raise validation("Either TrainingImage or AlgorithmName must be specified in AlgorithmSpecification.")
        if int(p["ResourceConfig"].get("InstanceCount", 0) or 0) < 1 and not p["ResourceConfig"].get("InstanceGroups"):
            raise validation("ResourceConfig.InstanceCount must be at least 1 when InstanceGroups is not set.")
        if p["ResourceConfig"].get("InstanceGroups"):
            raise validation("ResourceConfig.InstanceGroups (heterogeneous clusters) is not supported by localmaker.")
        if algo.get("AlgorithmName") and not algo.get("TrainingImage"):
            raise validation("AlgorithmName (marketplace algorithms) is not supported by localmaker; give a TrainingImage.")
        self.store.insert_new(
            training.KIND,
            name,
            doc,
            lambda: in_use(
                "Training job names must be unique within an AWS account and region, and a training job with "
                f"this name already exists ({doc['TrainingJobArn']})"
            ),
        )
        self._tags_on_create(doc["TrainingJobArn"], p)
        self.training.start(name)
        return {"TrainingJobArn": doc["TrainingJobArn"]}

    def _training(self, name: str) -> dict[str, Any]:
        doc = self.store.get(training.KIND, name)
        if doc is None:
            raise not_found("Requested resource not found.")
        return doc

    def op_DescribeTrainingJob(self, p: dict[str, Any]) -> dict[str, Any]:
        return training.describe_view(self._training(p["TrainingJobName"]), self.ctx.images)

    def op_ListTrainingJobs(self, p: dict[str, Any]) -> dict[str, Any]:
        docs = self._filter_sort(self.store.list(training.KIND), p, "TrainingJobName", "TrainingJobStatus")
        summaries = [
            {
                k: d[k]
                for k in ("TrainingJobName", "TrainingJobArn", "CreationTime", "TrainingEndTime", "LastModifiedTime", "TrainingJobStatus", "SecondaryStatus")
                if k in d
            }
            for d in docs
        ]
        return self._paginate(summaries, p, "TrainingJobSummaries")

    def op_StopTrainingJob(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["TrainingJobName"]

        def fn(d: dict[str, Any]) -> None:
            d["TrainingJobStatus"] = "Stopping"
            training.set_secondary(d, "Stopping")

        with self.store.locked():  # check and set atomically: the run may be finishing right now
            doc = self._training(name)
            if doc["TrainingJobStatus"] != "InProgress":
                raise validation(
                    f"The request was rejected because the training job is in status {doc['TrainingJobStatus']}."
                )
            self.store.update(training.KIND, name, fn)
        self.training.stop(name)
        return {}

    # ---- models --------------------------------------------------------------------------------------
    def op_CreateModel(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["ModelName"]
        model_arn = self.arn(f"model/{_lc(name)}")
        if not p.get("PrimaryContainer") and not p.get("Containers"):
            raise validation("Either PrimaryContainer or Containers must be specified.")
        doc = {k: v for k, v in p.items() if k != "Tags"}
        doc.update({"ModelArn": model_arn, "CreationTime": now()})
        doc.setdefault("EnableNetworkIsolation", False)
        self.store.insert_new(
            "Model", name, doc, lambda: validation(f"Cannot create already existing model \"{model_arn}\".")
        )
        self._tags_on_create(model_arn, p)
        return {"ModelArn": model_arn}

    def _model(self, name: str) -> dict[str, Any]:
        doc = self.store.get("Model", name)
        if doc is None:
            raise validation(f"Could not find model \"{self.arn('model/' + _lc(name))}\".")
        return doc

    def op_DescribeModel(self, p: dict[str, Any]) -> dict[str, Any]:
        # AWS answers each container with its Mode and Environment even when the request left them out
        doc = copy.deepcopy(self._model(p["ModelName"]))
        for c in [doc.get("PrimaryContainer"), *(doc.get("Containers") or [])]:
            if isinstance(c, dict):
                c.setdefault("Mode", "SingleModel")
                c.setdefault("Environment", {})
        return doc

    def op_DeleteModel(self, p: dict[str, Any]) -> dict[str, Any]:
        self._model(p["ModelName"])
        self.store.delete("Model", p["ModelName"])
        return {}

    def op_ListModels(self, p: dict[str, Any]) -> dict[str, Any]:
        docs = self._filter_sort(self.store.list("Model"), p, "ModelName")
        return self._paginate(
            [{k: d[k] for k in ("ModelName", "ModelArn", "CreationTime")} for d in docs], p, "Models"
        )

    # ---- endpoint configs -------------------------------------------------------------------------------
    def op_CreateEndpointConfig(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["EndpointConfigName"]
        cfg_arn = self.arn(f"endpoint-config/{_lc(name)}")
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
        self.store.insert_new(
            "EndpointConfig",
            name,
            doc,
            lambda: validation(f"Cannot create already existing endpoint configuration \"{cfg_arn}\"."),
        )
        self._tags_on_create(cfg_arn, p)
        return {"EndpointConfigArn": cfg_arn}

    def _endpoint_config(self, name: str) -> dict[str, Any]:
        doc = self.store.get("EndpointConfig", name)
        if doc is None:
            raise validation(f"Could not find endpoint configuration \"{self.arn('endpoint-config/' + _lc(name))}\".")
        return doc

    def op_DescribeEndpointConfig(self, p: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(self._endpoint_config(p["EndpointConfigName"]))
        for pv in doc.get("ProductionVariants", []):
            if "ServerlessConfig" not in pv:
                pv.setdefault("InitialVariantWeight", 1.0)  # AWS's default weight, shown as it applies it
        return doc

    def op_DeleteEndpointConfig(self, p: dict[str, Any]) -> dict[str, Any]:
        self._endpoint_config(p["EndpointConfigName"])
        self.store.delete("EndpointConfig", p["EndpointConfigName"])
        return {}

    def op_ListEndpointConfigs(self, p: dict[str, Any]) -> dict[str, Any]:
        docs = self._filter_sort(self.store.list("EndpointConfig"), p, "EndpointConfigName")
        return self._paginate(
            [{k: d[k] for k in ("EndpointConfigName", "EndpointConfigArn", "CreationTime")} for d in docs],
            p,
            "EndpointConfigs",
        )

    # ---- endpoints -------------------------------------------------------------------------------------
    def op_CreateEndpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["EndpointName"]
        ep_arn = self.arn(f"endpoint/{_lc(name)}")
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
        self.store.insert_new(
            "Endpoint", name, doc, lambda: validation(f"Cannot create already existing endpoint \"{ep_arn}\".")
        )
        self._tags_on_create(ep_arn, p)
        self.hosting.create(name)
        return {"EndpointArn": ep_arn}

    def _endpoint(self, name: str) -> dict[str, Any]:
        doc = self.store.get("Endpoint", name)
        if doc is None:
            raise validation(f"Could not find endpoint \"{self.arn('endpoint/' + _lc(name))}\".")
        return doc

    def op_DescribeEndpoint(self, p: dict[str, Any]) -> dict[str, Any]:
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

    def op_UpdateEndpoint(self, p: dict[str, Any]) -> dict[str, Any]:
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

    def op_DeleteEndpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["EndpointName"]
        self._endpoint(name)
        self.store.update("Endpoint", name, lambda d: d.update(EndpointStatus="Deleting", LastModifiedTime=now()))
        self.hosting.delete(name)
        self.store.delete("Endpoint", name)
        return {}

    def op_ListEndpoints(self, p: dict[str, Any]) -> dict[str, Any]:
        docs = self._filter_sort(self.store.list("Endpoint"), p, "EndpointName", "EndpointStatus")
        return self._paginate(
            [
                {k: d[k] for k in ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")}
                for d in docs
            ],
            p,
            "Endpoints",
        )

    # ---- tags ----------------------------------------------------------------------------------------
    def op_AddTags(self, p: dict[str, Any]) -> dict[str, Any]:
        current = self.store.get("Tags", p["ResourceArn"]) or {"Tags": {}}
        for t in p["Tags"]:
            current["Tags"][t["Key"]] = t.get("Value", "")
        if len(current["Tags"]) > 50:
            raise AwsError("ResourceLimitExceeded", "A resource can have at most 50 tags.")
        self.store.put("Tags", p["ResourceArn"], current)
        return {"Tags": [{"Key": k, "Value": v} for k, v in current["Tags"].items()]}

    def op_ListTags(self, p: dict[str, Any]) -> dict[str, Any]:
        current = self.store.get("Tags", p["ResourceArn"]) or {"Tags": {}}
        return self._paginate(
            [{"Key": k, "Value": v} for k, v in current["Tags"].items()], p, "Tags", default_max=50
        )

    def op_DeleteTags(self, p: dict[str, Any]) -> dict[str, Any]:
        current = self.store.get("Tags", p["ResourceArn"]) or {"Tags": {}}
        for k in p["TagKeys"]:
            current["Tags"].pop(k, None)
        self.store.put("Tags", p["ResourceArn"], current)
        return {}

    # ---- model registry ---------------------------------------------------------------------------------
    def op_CreateModelPackageGroup(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["ModelPackageGroupName"]
        g_arn = self.arn(f"model-package-group/{_lc(name)}")
        doc = {
            "ModelPackageGroupName": name,
            "ModelPackageGroupArn": g_arn,
            "ModelPackageGroupDescription": p.get("ModelPackageGroupDescription", ""),
            "CreationTime": now(),
            "CreatedBy": {},
            "ModelPackageGroupStatus": "Completed",
        }
        self.store.insert_new(
            "ModelPackageGroup", name, doc, lambda: validation(f"Model Package Group already exists: {g_arn}")
        )
        self._tags_on_create(g_arn, p)
        return {"ModelPackageGroupArn": g_arn}

    def _group(self, name_or_arn: str) -> dict[str, Any]:
        name = name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn
        doc = self.store.get("ModelPackageGroup", name)
        if doc is None:
            raise validation(f"ModelPackageGroup {self.arn('model-package-group/' + _lc(name))} does not exist.")
        return doc

    def op_DescribeModelPackageGroup(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._group(p["ModelPackageGroupName"])

    def op_ListModelPackageGroups(self, p: dict[str, Any]) -> dict[str, Any]:
        docs = self._filter_sort(self.store.list("ModelPackageGroup"), p, "ModelPackageGroupName")
        return self._paginate(
            [
                {k: d[k] for k in ("ModelPackageGroupName", "ModelPackageGroupArn", "ModelPackageGroupDescription", "CreationTime", "ModelPackageGroupStatus")}
                for d in docs
            ],
            p,
            "ModelPackageGroupSummaryList",
        )

    def op_DeleteModelPackageGroup(self, p: dict[str, Any]) -> dict[str, Any]:
        g = self._group(p["ModelPackageGroupName"])
        if any(d.get("ModelPackageGroupName") == g["ModelPackageGroupName"] for d in self.store.list("ModelPackage")):
            raise validation(
                f"Model Package Group {g['ModelPackageGroupArn']} contains model packages; delete them first."
            )
        self.store.delete("ModelPackageGroup", g["ModelPackageGroupName"])
        return {}

    def op_CreateModelPackage(self, p: dict[str, Any]) -> dict[str, Any]:
        group = p.get("ModelPackageGroupName")
        t = now()
        if group:
            g = self._group(group)
            gname = g["ModelPackageGroupName"]
            with self.store.locked():
                versions = [d for d in self.store.list("ModelPackage") if d.get("ModelPackageGroupName") == gname]
                version = 1 + max((d["ModelPackageVersion"] for d in versions), default=0)
                key = f"{gname}/{version}"
                pkg_arn = self.arn(f"model-package/{_lc(gname)}/{version}")
                doc = self._package_doc(p, t)
                doc.update(
                    {
                        "ModelPackageName": gname,
                        "ModelPackageGroupName": gname,
                        "ModelPackageVersion": version,
                        "ModelPackageArn": pkg_arn,
                    }
                )
                doc.setdefault("ModelApprovalStatus", "PendingManualApproval")
                self.store.put("ModelPackage", key, doc)
        else:
            name = p.get("ModelPackageName")
            if not name:
                raise validation("Either ModelPackageName or ModelPackageGroupName must be specified.")
            pkg_arn = self.arn(f"model-package/{_lc(name)}")
            doc = self._package_doc(p, t)
            doc.update({"ModelPackageName": name, "ModelPackageArn": pkg_arn})
            self.store.insert_new(
                "ModelPackage", name, doc, lambda: validation(f"Model Package already exists: {pkg_arn}")
            )
        self._tags_on_create(pkg_arn, p)
        return {"ModelPackageArn": pkg_arn}

    @staticmethod
    def _package_doc(p: dict[str, Any], t: float) -> dict[str, Any]:
        doc = {k: v for k, v in p.items() if k not in ("Tags", "ClientToken")}
        doc.update(
            {
                "CreationTime": t,
                "LastModifiedTime": t,
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
                "CertifyForMarketplace": p.get("CertifyForMarketplace", False),
            }
        )
        return doc

    def _package_key(self, name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            tail = name_or_arn.split(":model-package/", 1)[-1]
            parts = tail.split("/")
            if len(parts) == 2:
                # ARNs are lower-cased: find the group by case-insensitive name
                for g in self.store.names("ModelPackageGroup"):
                    if g.lower() == parts[0]:
                        return f"{g}/{parts[1]}"
                return tail
            for n in self.store.names("ModelPackage"):
                if n.lower() == tail:
                    return n
            return tail
        return name_or_arn

    def _package(self, name_or_arn: str) -> tuple[str, dict[str, Any]]:
        key = self._package_key(name_or_arn)
        doc = self.store.get("ModelPackage", key)
        if doc is None:
            shown = name_or_arn if name_or_arn.startswith("arn:") else self.arn("model-package/" + _lc(name_or_arn))
            raise validation(f"ModelPackage {shown} does not exist.")
        return key, doc

    def op_DescribeModelPackage(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._package(p["ModelPackageName"])[1]

    def op_UpdateModelPackage(self, p: dict[str, Any]) -> dict[str, Any]:
        key, doc = self._package(p["ModelPackageArn"])

        def fn(d: dict[str, Any]) -> None:
            if "ModelApprovalStatus" in p:
                d["ModelApprovalStatus"] = p["ModelApprovalStatus"]
            if "ApprovalDescription" in p:
                d["ApprovalDescription"] = p["ApprovalDescription"]
            props = d.setdefault("CustomerMetadataProperties", {})
            props.update(p.get("CustomerMetadataProperties", {}))
            for k in p.get("CustomerMetadataPropertiesToRemove", []):
                props.pop(k, None)
            if not props:
                d.pop("CustomerMetadataProperties", None)
            for k in ("ModelCardStatus", "SourceUri", "InferenceSpecification", "ModelCard", "ModelLifeCycle"):
                if k in p:
                    d[k] = p[k]
            d["LastModifiedTime"] = now()

        self.store.update("ModelPackage", key, fn)
        return {"ModelPackageArn": doc["ModelPackageArn"]}

    def op_DeleteModelPackage(self, p: dict[str, Any]) -> dict[str, Any]:
        key, _ = self._package(p["ModelPackageName"])
        self.store.delete("ModelPackage", key)
        return {}

    def op_ListModelPackages(self, p: dict[str, Any]) -> dict[str, Any]:
        docs = self.store.list("ModelPackage")
        group = p.get("ModelPackageGroupName")
        if group:
            gname = self._group(group)["ModelPackageGroupName"]
            docs = [d for d in docs if d.get("ModelPackageGroupName") == gname]
        ptype = p.get("ModelPackageType", "Both")
        if ptype == "Versioned":
            docs = [d for d in docs if "ModelPackageGroupName" in d]
        elif ptype == "Unversioned":
            docs = [d for d in docs if "ModelPackageGroupName" not in d]
        if p.get("ModelApprovalStatus"):
            docs = [d for d in docs if d.get("ModelApprovalStatus") == p["ModelApprovalStatus"]]
        docs = self._filter_sort(docs, p, "ModelPackageName")
        keys = (
            "ModelPackageName",
            "ModelPackageGroupName",
            "ModelPackageVersion",
            "ModelPackageArn",
            "ModelPackageDescription",
            "CreationTime",
            "ModelPackageStatus",
            "ModelApprovalStatus",
        )
        return self._paginate(
            [{k: d[k] for k in keys if k in d} for d in docs], p, "ModelPackageSummaryList"
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


def _capture_summary(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "EnableCapture": bool(cfg.get("EnableCapture", True)),
        "CaptureStatus": "Started" if cfg.get("EnableCapture", True) else "Stopped",
        "CurrentSamplingPercentage": int(cfg.get("InitialSamplingPercentage", 100)),
        "DestinationS3Uri": cfg.get("DestinationS3Uri", ""),
        **({"KmsKeyId": cfg["KmsKeyId"]} if cfg.get("KmsKeyId") else {}),
    }


def _ts(v: Any) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    import datetime as dt

    return dt.datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()
