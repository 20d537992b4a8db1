"""eks: the cluster, its API endpoint, its administrators, its node group, how it scales (the cluster
autoscaler or Karpenter) and how pods get AWS credentials (IRSA or EKS Pod Identity)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from infra.config.settings.base import LogRetentionDays, _distinct, _Model

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
        int,
        Field(
            ge=0,
            le=450,
            description=(
                "Nodes to start with, 0 to 450, between min_size and max_size. The autoscaler owns the count "
                "afterwards: a change here resets the group to it on the next deploy (EKS resizes, terminating "
                "nodes if lower), so change min_size or max_size instead."
            ),
        ),
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


# Graviton (arm64) families: a letter prefix, the generation, then "g" (m7g, c6gn, r8g, t4g, x2gd, im4gn).
# Karpenter's nodes here are amd64 (the services' images are built for it), so these are refused.
_GRAVITON_FAMILY = re.compile(r"[a-z]+\d+g[a-z]*")
_DURATION = re.compile(r"(\d+h)?(\d+m)?(\d+s)?")


class KarpenterSettings(_Model):
    """Karpenter's NodePool and EC2NodeClass (eks.autoscaling: karpenter): which instances it may launch,
    how much in all, how it consolidates and replaces them, and their AMI and volume."""

    instance_families: Annotated[
        list[str],
        Field(
            min_length=1,
            description=(
                "EC2 instance families Karpenter may launch, e.g. [m7i, m6i, c7i, r7i]: several, so Spot and "
                "on-demand capacity are found in some. amd64 families only (Graviton families such as m7g are "
                "refused: the services' images are built for amd64). Each must offer one of instance_sizes in "
                "every region of the environment."
            ),
        ),
    ]
    instance_sizes: Annotated[
        list[str],
        Field(
            min_length=1,
            description="Instance sizes Karpenter may launch, e.g. [large, xlarge, 2xlarge].",
        ),
    ]
    capacity_types: Annotated[
        list[Literal["spot", "on-demand"]],
        Field(
            min_length=1,
            description=(
                "spot, on-demand or both. With both, Karpenter launches Spot where it can and on-demand when "
                "no Spot capacity fits; Spot nodes are drained on the two-minute interruption notice (the "
                "interruption queue). The cost report prices Spot at an assumed fraction of on-demand."
            ),
        ),
    ] = ["on-demand"]
    max_vcpus: Annotated[
        int,
        Field(
            ge=2,
            le=100000,
            description=(
                "The NodePool's limit: the most vCPUs of all Karpenter's nodes together. Karpenter launches no "
                "node past it (pods stay Pending): the ceiling of the bill."
            ),
        ),
    ]
    max_memory_gib: Annotated[
        int,
        Field(ge=4, le=400000, description="The NodePool's limit on the memory of all Karpenter's nodes, in GiB."),
    ]
    consolidation_policy: Annotated[
        Literal["WhenEmptyOrUnderutilized", "WhenEmpty"],
        Field(
            description=(
                "WhenEmptyOrUnderutilized: Karpenter removes or replaces nodes whose pods fit elsewhere "
                "(cheapest); WhenEmpty: only nodes without workload pods (fewest pod moves)."
            )
        ),
    ] = "WhenEmptyOrUnderutilized"
    consolidate_after: Annotated[
        str,
        Field(description="How long a node must be consolidatable before Karpenter acts: e.g. 30s, 5m."),
    ] = "1m"
    expire_after: Annotated[
        str,
        Field(
            description=("Age at which a node is replaced (fresh AMI, patched kernel), e.g. 720h (30 days), or Never.")
        ),
    ] = "720h"
    termination_grace_period: Annotated[
        str,
        Field(
            description=(
                "How long Karpenter lets a node's pods leave (PodDisruptionBudgets respected) before it ends the "
                "node anyway, e.g. 1h: bounds how long one PodDisruptionBudget can hold up a consolidation, an "
                "expiry or the environment's deletion."
            )
        ),
    ] = "1h"
    ami_family: Annotated[
        Literal["al2023", "bottlerocket"],
        Field(description="The nodes' EKS-optimized AMI: al2023 (Amazon Linux 2023) or bottlerocket."),
    ] = "al2023"
    ami_version: Annotated[
        str,
        Field(
            description=(
                "latest: the newest EKS-optimized AMI of the family for the cluster's minor, nodes replaced "
                "(drift) when AWS publishes one; or a pinned release, e.g. v20251120 (al2023) or v1.50.0 "
                "(bottlerocket), moved on purpose. Karpenter's documentation advises pinning in production."
            )
        ),
    ] = "latest"
    disk_size_gib: Annotated[
        int,
        Field(
            ge=20,
            le=16384,
            description=(
                "Each node's encrypted gp3 volume, in GiB (al2023: the root volume; bottlerocket: the data "
                "volume, beside a 4 GiB OS volume)."
            ),
        ),
    ] = 50

    @field_validator("instance_families")
    @classmethod
    def _families(cls, value: list[str]) -> list[str]:
        for family in value:
            if not re.fullmatch(r"[a-z][a-z0-9-]*", family):
                raise ValueError(f"{family!r} is not an EC2 instance family such as m7i")
            if _GRAVITON_FAMILY.fullmatch(family):
                raise ValueError(
                    f"{family!r} is a Graviton (arm64) family; Karpenter's nodes here are amd64 (the services' "
                    "images are built for amd64); allowed: amd64 families such as m7i, m6a, c7i, r7i"
                )
        return _distinct(value, "family")

    @field_validator("instance_sizes")
    @classmethod
    def _sizes(cls, value: list[str]) -> list[str]:
        for size in value:
            if not re.fullmatch(r"nano|micro|small|medium|large|\d*xlarge|metal(-\d+xl)?", size):
                raise ValueError(f"{size!r} is not an EC2 instance size such as large, xlarge or 2xlarge")
        return _distinct(value, "size")

    @field_validator("capacity_types")
    @classmethod
    def _capacity_types(cls, value: list[str]) -> list[str]:
        return _distinct(value, "capacity type")

    @field_validator("consolidate_after", "termination_grace_period", "expire_after")
    @classmethod
    def _duration(cls, value: str, info: ValidationInfo) -> str:
        never = info.field_name == "expire_after"  # the only one a node may do without
        if (never and value == "Never") or (value and _DURATION.fullmatch(value) and value != "0s"):
            return value
        allowed = "a duration such as 30s, 5m or 720h" + (", or Never" if never else "")
        raise ValueError(f"eks.karpenter.{info.field_name} = {value!r} is not {allowed}")

    @model_validator(mode="after")
    def _ami_version(self) -> KarpenterSettings:
        pattern = {"al2023": r"v\d{8}", "bottlerocket": r"v\d+\.\d+\.\d+"}[self.ami_family]
        if self.ami_version != "latest" and not re.fullmatch(pattern, self.ami_version):
            example = {"al2023": "v20251120", "bottlerocket": "v1.50.0"}[self.ami_family]
            raise ValueError(
                f"eks.karpenter.ami_version = {self.ami_version!r} is not a release of the {self.ami_family} "
                f"AMI; allowed: latest, or a release such as {example}"
            )
        return self

    @property
    def instance_types(self) -> list[str]:
        """Every family.size the NodePool admits (what the region checks and the cost report read)."""
        return [f"{family}.{size}" for family in self.instance_families for size in self.instance_sizes]

    def ami_parameter(self, kubernetes_version: str) -> str | None:
        """The public SSM parameter of the pinned AMI release for ``kubernetes_version`` (amd64, standard), as
        Karpenter 1.14 resolves the alias (pkg/providers/amifamily); None for ``latest``."""
        if self.ami_version == "latest":
            return None
        if self.ami_family == "al2023":
            name = f"amazon-eks-node-al2023-x86_64-standard-{kubernetes_version}-{self.ami_version}"
            return (
                f"/aws/service/eks/optimized-ami/{kubernetes_version}/amazon-linux-2023/x86_64/standard/{name}/image_id"
            )
        release = self.ami_version.removeprefix("v")
        return f"/aws/service/bottlerocket/aws-k8s-{kubernetes_version}/x86_64/{release}/image_id"

    @property
    def ami_alias(self) -> str:
        """The EC2NodeClass's amiSelectorTerms alias: <family>@<version>."""
        return f"{self.ami_family}@{self.ami_version}"


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
    autoscaling: Annotated[
        Literal["cluster-autoscaler", "karpenter"],
        Field(
            description=(
                "What adds and removes nodes. cluster-autoscaler: resizes the managed node group "
                "(eks.node_group). karpenter: launches and consolidates EC2 instances from eks.karpenter; the "
                "managed node group then runs Karpenter itself and the system add-ons (size it small). "
                "Switching replaces no data and no cluster: docs/compute-and-identity.md."
            )
        ),
    ] = "cluster-autoscaler"
    karpenter: Annotated[
        KarpenterSettings | None,
        Field(description="Karpenter's NodePool and EC2NodeClass: required with autoscaling karpenter, else absent."),
    ] = None
    workload_identity: Annotated[
        Literal["irsa", "pod-identity"],
        Field(
            description=(
                "How pods get AWS credentials. irsa: IAM roles for service accounts (an OIDC trust per "
                "role). pod-identity: EKS Pod Identity (the agent add-on and an association per service "
                "account; roles trust pods.eks.amazonaws.com). The platform's add-ons and the services use "
                "it alike, with the same policies. Karpenter's controller always uses Pod Identity."
            )
        ),
    ] = "irsa"
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

    @model_validator(mode="after")
    def _karpenter_section(self) -> EksSettings:
        if self.autoscaling == "karpenter" and self.karpenter is None:
            raise ValueError(
                "eks.autoscaling = 'karpenter' needs eks.karpenter (instance_families, instance_sizes, max_vcpus, "
                "max_memory_gib; docs/settings.md); allowed: add the section, or autoscaling: cluster-autoscaler"
            )
        if self.autoscaling == "karpenter" and self.node_group.min_size < 2:
            raise ValueError(
                f"eks.node_group.min_size = {self.node_group.min_size} with eks.autoscaling karpenter: the managed "
                "node group runs Karpenter's two replicas, each on a node of its own (the chart's anti-affinity), "
                "and Karpenter never runs on nodes it launched; allowed: 2 or more"
            )
        if self.autoscaling != "karpenter" and self.karpenter is not None:
            raise ValueError(
                f"eks.karpenter is set but eks.autoscaling = {self.autoscaling!r}: the section would be ignored; "
                "allowed: autoscaling: karpenter, or remove eks.karpenter"
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
