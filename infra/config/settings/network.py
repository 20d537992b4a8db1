"""network: the VPC, its zones, NAT gateways and interface endpoints."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from infra.config.settings.base import LogRetentionDays, _distinct_members, _Model
from infra.config.subnets import SubnetPlanError, subnet_plan

# Interface endpoints a cluster in private subnets commonly needs. Each costs money per AZ,
# so the list is a setting; the S3 gateway endpoint is free and always created.
INTERFACE_ENDPOINTS: tuple[str, ...] = (
    "ecr.api",
    "ecr.dkr",
    "sts",
    "logs",
    "secretsmanager",
    "kms",
    "ec2",
    "elasticloadbalancing",
    "autoscaling",
    "ssm",
    "eks",
    "eks-auth",
)

_RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class NetworkSettings(_Model):
    """The VPC: per zone a public subnet (the load balancers', /27 or larger), a private one (the nodes')
    and a data one (the database's and the cache's), NAT gateways for outbound traffic, and interface
    endpoints. Zone names follow from the region, never from a lookup."""

    vpc_cidr: Annotated[
        str,
        Field(
            description=(
                "The VPC's IPv4 range: a private RFC 1918 network (10/8, 172.16/12, 192.168/16) from /16 "
                "to /24, host bits clear. Each zone gets a public subnet (/27 or larger), a private one "
                "and a data one (infra/config/subnets.py); it must hold them all. Changing it replaces "
                "the VPC (CloudFormation cannot change a VPC's CIDR in place)."
            )
        ),
    ] = "10.0.0.0/16"
    zones: Annotated[
        int | list[str],
        Field(
            description=(
                "The availability zones: a count (the region's first zones, e.g. 3) or zone letters (e.g."
                " [a, c, d]); 2 to 6. Names follow from the region (infra/config/regions.py), never from "
                "a lookup; in us-west-1 letters are required. Every region of the environment must have "
                "them."
            )
        ),
    ]
    nat_gateways: Annotated[
        int,
        Field(
            ge=1,
            description=(
                "NAT gateways for the private subnets' outbound traffic: 1 (shared by every zone) up to one per zone."
            ),
        ),
    ]
    interface_endpoints: Annotated[
        list[str],
        Field(
            description=(
                "VPC interface endpoints to create, each at most once, from: ecr.api, ecr.dkr, sts, logs,"
                " secretsmanager, kms, ec2, elasticloadbalancing, autoscaling, ssm, eks, eks-auth. Each "
                "costs per zone-hour; the S3 gateway endpoint is free and always created."
            )
        ),
    ] = []
    flow_log_retention_days: Annotated[
        LogRetentionDays,
        Field(
            description=(
                "Days the VPC flow logs are kept: a CloudWatch Logs retention period. Production: 365 or more."
            )
        ),
    ]

    @field_validator("vpc_cidr")
    @classmethod
    def _private_cidr(cls, value: str) -> str:
        allowed = "a private RFC 1918 IPv4 network (10/8, 172.16/12, 192.168/16) from /16 to /24 with host bits clear"
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise ValueError(f"must be {allowed}") from None
        if not isinstance(network, ipaddress.IPv4Network) or not any(network.subnet_of(p) for p in _RFC1918):
            raise ValueError(f"must be {allowed}")
        if not 16 <= network.prefixlen <= 24:
            raise ValueError(f"must be {allowed}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        if isinstance(data, dict) and "availability_zones" in data:
            raise ValueError(
                "network.availability_zones was replaced by network.zones: a zone count such as 3, or zone "
                "letters such as [a, b, c]; the names follow from the region"
            )
        return data

    @field_validator("zones")
    @classmethod
    def _zones(cls, value: int | list[str]) -> int | list[str]:
        count = value if isinstance(value, int) else len(value)
        if not 2 <= count <= 6:
            raise ValueError("must be 2 to 6 zones: a count such as 3, or zone letters such as [a, b, c]")
        if isinstance(value, list):
            for letter in value:
                if not re.fullmatch(r"[a-z]", letter):
                    raise ValueError(f"{letter!r} is not a zone letter; allowed: one letter each, e.g. [a, b, c]")
            if len(set(value)) != len(value):
                raise ValueError("must not list a zone twice")
        return value

    @property
    def zone_count(self) -> int:
        return self.zones if isinstance(self.zones, int) else len(self.zones)

    @field_validator("interface_endpoints")
    @classmethod
    def _known_endpoints(cls, value: list[str]) -> list[str]:
        return _distinct_members(value, INTERFACE_ENDPOINTS, "endpoint")

    @model_validator(mode="after")
    def _subnets_fit(self) -> NetworkSettings:
        try:
            subnet_plan(self.vpc_cidr, self.zone_count)
        except SubnetPlanError as error:
            raise ValueError(f"vpc_cidr = {self.vpc_cidr!r} with zones = {self.zones!r}: {error}") from None
        return self

    @model_validator(mode="after")
    def _nat_within_zones(self) -> NetworkSettings:
        if self.nat_gateways > self.zone_count:
            raise ValueError(
                f"nat_gateways = {self.nat_gateways} is more than the {self.zone_count} "
                "availability zones; allowed: 1 (shared) up to one per zone"
            )
        return self
