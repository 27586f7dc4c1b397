"""The model registry: model package groups and (versioned or unversioned) model packages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import controlplane
from .aws import now
from .errors import validation
from .service import Handler


class RegistryService(controlplane.ResourceService):
    """CreateModelPackageGroup ... ListModelPackages."""

    def operations(self) -> Mapping[str, Handler]:
        return {
            "CreateModelPackageGroup": self.create_model_package_group,
            "DescribeModelPackageGroup": self.describe_model_package_group,
            "ListModelPackageGroups": self.list_model_package_groups,
            "DeleteModelPackageGroup": self.delete_model_package_group,
            "CreateModelPackage": self.create_model_package,
            "DescribeModelPackage": self.describe_model_package,
            "UpdateModelPackage": self.update_model_package,
            "DeleteModelPackage": self.delete_model_package,
            "ListModelPackages": self.list_model_packages,
        }

    # ---- model registry ---------------------------------------------------------------------------------
    def create_model_package_group(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["ModelPackageGroupName"]
        g_arn = self.resource_arn("model-package-group", name)
        doc = {
            "ModelPackageGroupName": name,
            "ModelPackageGroupArn": g_arn,
            "ModelPackageGroupDescription": p.get("ModelPackageGroupDescription", ""),
            "CreationTime": now(),
            "CreatedBy": {},
            "ModelPackageGroupStatus": "Completed",
        }
        self.insert("ModelPackageGroup", name, doc, p, lambda: validation(f"Model Package Group already exists: {g_arn}"))
        return {"ModelPackageGroupArn": g_arn}

    def _group(self, name_or_arn: str) -> dict[str, Any]:
        name = name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn
        return self.get_or_fail(
            "ModelPackageGroup", name, lambda: validation(f"ModelPackageGroup {self.resource_arn('model-package-group', name)} does not exist.")
        )

    def describe_model_package_group(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._group(p["ModelPackageGroupName"])

    def list_model_package_groups(self, p: dict[str, Any]) -> dict[str, Any]:
        docs = controlplane.filter_sort(self.store.list("ModelPackageGroup"), p, "ModelPackageGroupName")
        return controlplane.paginate(
            [
                {k: d[k] for k in ("ModelPackageGroupName", "ModelPackageGroupArn", "ModelPackageGroupDescription", "CreationTime", "ModelPackageGroupStatus")}
                for d in docs
            ],
            p,
            "ModelPackageGroupSummaryList",
        )

    def delete_model_package_group(self, p: dict[str, Any]) -> dict[str, Any]:
        g = self._group(p["ModelPackageGroupName"])
        if any(d.get("ModelPackageGroupName") == g["ModelPackageGroupName"] for d in self.store.list("ModelPackage")):
            raise validation(
                f"Model Package Group {g['ModelPackageGroupArn']} contains model packages; delete them first."
            )
        self.store.delete("ModelPackageGroup", g["ModelPackageGroupName"])
        return {}

    def create_model_package(self, p: dict[str, Any]) -> dict[str, Any]:
        group = p.get("ModelPackageGroupName")
        t = now()
        if group:
            g = self._group(group)
            gname = g["ModelPackageGroupName"]
            with self.store.locked():
                versions = [d for d in self.store.list("ModelPackage") if d.get("ModelPackageGroupName") == gname]
                version = 1 + max((d["ModelPackageVersion"] for d in versions), default=0)
                key = f"{gname}/{version}"
                pkg_arn = self.resource_arn("model-package", f"{gname}/{version}")
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
            controlplane.tag_on_create(self.store, pkg_arn, p)
        else:
            name = p.get("ModelPackageName")
            if not name:
                raise validation("Either ModelPackageName or ModelPackageGroupName must be specified.")
            pkg_arn = self.resource_arn("model-package", name)
            doc = self._package_doc(p, t)
            doc.update({"ModelPackageName": name, "ModelPackageArn": pkg_arn})
            self.insert("ModelPackage", name, doc, p, lambda: validation(f"Model Package already exists: {pkg_arn}"))
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
            shown = name_or_arn if name_or_arn.startswith("arn:") else self.resource_arn("model-package", name_or_arn)
            raise validation(f"ModelPackage {shown} does not exist.")
        return key, doc

    def describe_model_package(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._package(p["ModelPackageName"])[1]

    def update_model_package(self, p: dict[str, Any]) -> dict[str, Any]:
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

    def delete_model_package(self, p: dict[str, Any]) -> dict[str, Any]:
        key, _ = self._package(p["ModelPackageName"])
        self.store.delete("ModelPackage", key)
        return {}

    def list_model_packages(self, p: dict[str, Any]) -> dict[str, Any]:
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
        docs = controlplane.filter_sort(docs, p, "ModelPackageName")
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
        return controlplane.paginate(controlplane.summaries(docs, keys), p, "ModelPackageSummaryList")
