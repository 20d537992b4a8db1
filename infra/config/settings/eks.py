"""eks: the cluster, its API endpoint, its administrators and its node group."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from infra.config.settings.base import LogRetentionDays, _Model

# EKS standard support windows (https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html,
# checked 2026-11-26). A version outside standard support costs extended-support fees and, once that
# ends too, can no longer be created; only these are accepted.
EKS_STANDARD_SUPPORT: dict[str, tuple[str, str]] = {
    "1.35": ("2026-01-27", "2027-03-27"),
    "1.36": ("2026-05-26", "2027-07-26"),
}


def support_dates() -> str:
    return "; ".join(f"{v}: standard support {a} to {b}" for v, (a, b) in EKS_STANDARD_SUPPORT.items())


class EndpointSettings(_Model):
    # Empty: the API server is reachable only from inside the VPC.
    public_access_cidrs: list[str] = []

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.IPv4Network(cidr, strict=True)
            except ValueError:
                raise ValueError(f"{cidr!r} must be an IPv4 CIDR with host bits clear, e.g. 203.0.113.0/24") from None
        return value


class NodeGroupSettings(_Model):
    instance_types: Annotated[list[str], Field(min_length=1)]
    # on-demand, or spot: spare EC2 capacity at a discount, reclaimed at two minutes' notice. Give spot
    # several instance types of the same size, so a reclaimed type is replaced by another.
    capacity_type: Literal["on-demand", "spot"] = "on-demand"
    min_size: Annotated[int, Field(ge=0, le=450)]
    desired_size: Annotated[int, Field(ge=0, le=450)]
    max_size: Annotated[int, Field(ge=1, le=450)]
    disk_size_gib: Annotated[int, Field(ge=20, le=16384)] = 50
    # The nodes' Kubernetes minor: the cluster's by default. One minor behind it holds the nodes back
    # while a new control plane bakes (EKS can roll a control plane back within 7 days; nodes at the
    # previous minor need no rollback of their own).
    kubernetes_version: str | None = None

    @field_validator("instance_types")
    @classmethod
    def _instance_types(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", name):
                raise ValueError(f"{name!r} is not an EC2 instance type such as t3.large")
        return value

    @model_validator(mode="after")
    def _spot_needs_choice(self) -> NodeGroupSettings:
        if self.capacity_type == "spot" and len(self.instance_types) < 2:
            raise ValueError(
                f"eks.node_group.instance_types = {self.instance_types} with capacity_type spot: list several "
                "instance types of the same size (e.g. t3.large, t3a.large, m5.large), so that a reclaimed "
                "type can be replaced by another; allowed: 2 or more types"
            )
        return self

    @model_validator(mode="after")
    def _ordered(self) -> NodeGroupSettings:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"sizes must satisfy min_size <= desired_size <= max_size, got "
                f"{self.min_size} <= {self.desired_size} <= {self.max_size}"
            )
        return self


class EksSettings(_Model):
    kubernetes_version: str = "1.35"
    endpoint: EndpointSettings = EndpointSettings()
    # IAM roles given cluster-admin through access entries; nobody else is (not the deployer). A role
    # name (with its path, if any) is a role of the account deployed to; an ARN names any role.
    admin_roles: list[str] = []
    node_group: NodeGroupSettings
    # /aws/eks/<cluster>/cluster: created by the stack, KMS-encrypted, kept this many days.
    control_plane_log_retention_days: LogRetentionDays

    @field_validator("kubernetes_version")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in EKS_STANDARD_SUPPORT:
            raise ValueError(f"is not in EKS standard support; allowed: {support_dates()}")
        return value

    @property
    def node_version(self) -> str:
        return self.node_group.kubernetes_version or self.kubernetes_version

    @model_validator(mode="after")
    def _nodes_at_or_one_behind(self) -> EksSettings:
        nodes = self.node_group.kubernetes_version
        if nodes is None:
            return self
        major, minor = self.kubernetes_version.split(".")
        allowed = [self.kubernetes_version, f"{major}.{int(minor) - 1}"]
        if nodes not in allowed:
            raise ValueError(
                f"eks.node_group.kubernetes_version = {nodes!r}: nodes run the cluster's minor "
                f"({self.kubernetes_version}) or the one before it, while a new control plane bakes; "
                f"allowed: {allowed[0]!r}, {allowed[1]!r}, or leave it out (the cluster's)"
            )
        return self

    @field_validator("admin_roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        for role in value:
            if not (_ROLE_ARN.fullmatch(role) or _ROLE_NAME.fullmatch(role)):
                raise ValueError(
                    f"{role!r} must be an IAM role name of the account deployed to (e.g. platform-admin, with its "
                    "path if it has one) or a role ARN: arn:aws:iam::<12 digits>:role/<name>"
                )
        return value


_ROLE_NAME = re.compile(r"([\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
_ROLE_ARN = re.compile(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+")
