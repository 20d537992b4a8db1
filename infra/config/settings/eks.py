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
    """Who may reach the cluster's API server from outside the VPC."""

    public_access_cidrs: Annotated[
        list[str],
        Field(
            description=(
                "IPv4 CIDRs (host bits clear) that may reach the Kubernetes API server from the internet,"
                " e.g. your offices' and CI runners' ranges. Empty: the endpoint is private, reachable "
                "only from inside the VPC. Production refuses 0.0.0.0/0; with a private endpoint, deploys"
                " must run on self-hosted runners inside the VPC (github.deploy_runs_on)."
            )
        ),
    ] = []

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
    """The cluster's managed node group: instance types, On-Demand or Spot, sizes and root volume."""

    instance_types: Annotated[
        list[str],
        Field(
            min_length=1,
            description=(
                "EC2 instance types of the managed node group, e.g. [m6i.xlarge]; at least one, each "
                "offered in every region of the environment. With capacity_type spot: 2 or more of the "
                "same size."
            ),
        ),
    ]
    capacity_type: Annotated[
        Literal["on-demand", "spot"],
        Field(
            description=(
                "on-demand, or spot: spare EC2 capacity at a discount, reclaimed at two minutes' notice "
                "(list several instance types of the same size, so a reclaimed type is replaced by "
                "another). The cost report prices Spot at an assumed fraction of on-demand."
            )
        ),
    ] = "on-demand"
    min_size: Annotated[
        int, Field(ge=0, le=450, description="Fewest nodes, 0 to 450. Production: at least one per zone.")
    ]
    desired_size: Annotated[
        int, Field(ge=0, le=450, description="Nodes to start with, 0 to 450, between min_size and max_size.")
    ]
    max_size: Annotated[int, Field(ge=1, le=450, description="Most nodes, 1 to 450; at least desired_size.")]
    disk_size_gib: Annotated[
        int, Field(ge=20, le=16384, description="Each node's root volume, in GiB: 20 to 16384.")
    ] = 50
    kubernetes_version: Annotated[
        str | None,
        Field(
            description=(
                "The nodes' Kubernetes minor: the cluster's (eks.kubernetes_version) when left out, or "
                "the one before it, to hold the nodes back while a new control plane bakes (EKS can roll "
                "a control plane back within 7 days; nodes at the previous minor need no rollback of "
                "their own)."
            )
        ),
    ] = None

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
    """The EKS cluster: its Kubernetes version, API endpoint, administrators, node group and control plane
    logs."""

    kubernetes_version: Annotated[
        str,
        Field(
            description=(
                'The cluster\'s Kubernetes minor, in quotes (e.g. "1.35"): only versions in EKS standard '
                "support (1.35, 1.36), each with its kubectl layer pinned in requirements.txt. Upgrading:"
                " docs/operations.md, 'Upgrading Kubernetes'."
            )
        ),
    ] = "1.35"
    endpoint: Annotated[
        EndpointSettings, Field(description="Who may reach the cluster's API server from outside the VPC.")
    ] = EndpointSettings()
    admin_roles: Annotated[
        list[str],
        Field(
            description=(
                "IAM roles given cluster-admin through EKS access entries; nobody else is (not the "
                "deployer). A role name (with its path, if any) is a role of the account deployed to; an "
                "ARN (arn:aws:iam::<12 digits>:role/<name>) names any role. Production requires at least "
                "one."
            )
        ),
    ] = []
    node_group: Annotated[NodeGroupSettings, Field(description="The cluster's managed node group.")]
    control_plane_log_retention_days: Annotated[
        LogRetentionDays,
        Field(
            description=(
                "Days the control plane's log group /aws/eks/<cluster>/cluster (created by the stack, "
                "KMS-encrypted) keeps its events: a CloudWatch Logs retention period. Production: 365 or "
                "more."
            )
        ),
    ]

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
