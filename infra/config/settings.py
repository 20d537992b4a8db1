"""Typed, validated settings: one YAML file per environment.

Data flows one way: ``environments/<env>.yaml`` -> :class:`Settings` -> stacks. Only
``app.py`` calls :func:`load_settings`; stacks receive the parts they need as keyword
arguments. Every error a user can cause surfaces as one :class:`SettingsError` whose
message names the setting, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from infra.config.instance_types import unavailable
from infra.config.regions import AWS_REGIONS, NO_DATA_API, ZoneError, zone_names
from infra.config.subnets import SubnetPlanError, subnet_plan

if TYPE_CHECKING:
    from infra.config.delivery import Promotion

ENVIRONMENTS_DIR = Path(__file__).resolve().parent / "environments"
# The service catalogue every environment shares (an environment file may carry its own `services:`
# instead, for experiments such as `make bench`'s generated catalogues).
CATALOGUE_FILE = Path(__file__).resolve().parent / "services.yaml"

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip

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
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")
_ENVIRONMENT_NAME = re.compile(r"[a-z][a-z0-9]{1,9}")


def _check_log_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"must be one of CloudWatch Logs' retention periods: {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    return value


# Days a log group keeps its events: one of the periods CloudWatch Logs accepts.
LogRetentionDays = Annotated[int, AfterValidator(_check_log_retention)]
# Production keeps every log group at least a year (AWS Control Tower proactive control
# CT.CLOUDWATCH.PR.2, the NIST 800-53 AU-11 baseline many auditors ask for).
PRODUCTION_LOG_RETENTION_DAYS = 365


def _distinct_members(value: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    for item in value:
        if item not in allowed:
            raise ValueError(f"unknown {what} {item!r}; allowed: {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ValueError(f"must not list the same {what} twice")
    return value


class SettingsError(Exception):
    """A user-facing configuration error: the message is printed as is, without a traceback."""


class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one mapping: YAML would keep the last one silently."""


# libyaml's parser when PyYAML has it (the wheels do), else the pure-Python one; the same documents.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StrictLoader(_BaseLoader):  # type: ignore[misc]
    """YAML's safe loader that refuses a key given twice in one mapping (YAML itself keeps the last one,
    so a second ``nat_gateways:`` would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                continue  # the loader refuses an unhashable key itself
            if key in first:
                raise DuplicateKeyError(
                    f"line {line}: key {key!r} is given twice in one mapping (first on line {first[key]}); YAML "
                    "would keep only the last one; allowed: each key once"
                )
            first[key] = line
        return dict(super().construct_mapping(node, deep=deep))


def parse_yaml(text: str) -> Any:
    """A YAML document, duplicate keys refused (:class:`StrictLoader`)."""
    return yaml.load(text, Loader=StrictLoader)


def read_yaml(path: Path) -> Any:
    """The document in ``path``; a syntax error or a duplicate key is one SettingsError naming the file."""
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except DuplicateKeyError as error:
        raise SettingsError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{path}: not valid YAML: {error}") from None


class _Model(BaseModel):
    # Unknown keys are errors (a typo must not be silently ignored); settings are immutable.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NetworkSettings(_Model):
    vpc_cidr: str = "10.0.0.0/16"
    # A zone count (the region's first zones) or zone letters such as [a, c, d]; the names follow
    # from the region (infra/config/regions.py), so another region needs no edit and no lookup.
    zones: int | list[str]
    nat_gateways: Annotated[int, Field(ge=1)]
    interface_endpoints: list[str] = []
    flow_log_retention_days: LogRetentionDays

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


# EKS standard support windows (https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html,
# checked 2026-11-26). A version outside standard support costs extended-support fees and, once that
# ends too, can no longer be created; only these are accepted.
EKS_STANDARD_SUPPORT: dict[str, tuple[str, str]] = {
    "1.35": ("2026-01-27", "2027-03-27"),
    "1.36": ("2026-05-26", "2027-07-26"),
}
_SERVICE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$")


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


# Aurora PostgreSQL versions accepted: current minors of the supported majors, none deprecated
# (tests check this list against cfn-lint's deprecated-version data). 16.6 and older are deprecated.
AURORA_POSTGRES_VERSIONS: tuple[str, ...] = ("16.9", "16.10", "16.11", "16.13", "17.5", "17.6", "17.7", "17.9")
# Those that may form an Aurora global database (checked against the Aurora User Guide; see
# docs/decisions/0011-multi-region.md).
GLOBAL_DATABASE_VERSIONS: tuple[str, ...] = AURORA_POSTGRES_VERSIONS
_INSTANCE_CLASS = re.compile(r"^(db\.)?[a-z][a-z0-9-]*\.[a-z0-9]+$")


class ServerlessCapacity(_Model):
    """Aurora Serverless v2 capacity per instance, in ACUs (0.5 steps; 0 lets the writer auto-pause)."""

    min_acu: float
    max_acu: float

    @field_validator("min_acu", "max_acu", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("min_acu", "max_acu")
    @classmethod
    def _steps(cls, value: float) -> float:
        if not 0 <= value <= 256 or (value * 2) != int(value * 2):
            raise ValueError("must be between 0 and 256 ACUs in steps of 0.5")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ServerlessCapacity:
        if self.max_acu < max(self.min_acu, 1):
            raise ValueError(f"max_acu = {self.max_acu} must be at least 1 and at least min_acu ({self.min_acu})")
        return self


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def minor_upgrades(version: str) -> list[str]:
    """The accepted Aurora PostgreSQL versions a cluster at ``version`` may take in a minor upgrade."""
    return [
        v
        for v in AURORA_POSTGRES_VERSIONS
        if _version(v)[0] == _version(version)[0] and _version(v) > _version(version)
    ]


class DatabaseSettings(_Model):
    engine_version: str
    # Serverless v2 (default) or, for teams that need them, provisioned instances of this class.
    capacity: ServerlessCapacity | None = None
    instance_class: str | None = None
    readers: Annotated[int, Field(ge=0, le=15)]
    backup_retention_days: Annotated[int, Field(ge=1, le=35)]
    # Enhanced monitoring (OS metrics) interval; 0 turns it off.
    monitoring_interval_seconds: int
    performance_insights: bool
    log_retention_days: LogRetentionDays
    database_name: str = "app"
    # In an environment of several regions (setting `regions`): what each region other than the
    # primary gets. global: a read-only secondary cluster of an Aurora global database (production
    # requires it); regional: a cluster of its own, not replicated; none: no database there.
    other_regions: Literal["global", "regional", "none"] = "global"
    # A global database: the region whose cluster is the writer now. The primary region (`region`)
    # until a switchover or failover moves it (docs/regions.md, "Switchover and failover"); the stacks keep
    # their names and regions whatever it is, only what follows the writer changes.
    writer_region: str | None = None
    # A global database's minor upgrade, step one: the clusters of the regions other than the
    # writer's at this later minor (AWS upgrades a global database's secondaries before its primary);
    # step two sets engine_version to it and deletes this key.
    secondary_engine_version: str | None = None

    @field_validator("engine_version", "secondary_engine_version")
    @classmethod
    def _engine(cls, value: str | None) -> str | None:
        if value is not None and value not in AURORA_POSTGRES_VERSIONS:
            raise ValueError(
                f"is not an accepted Aurora PostgreSQL version; allowed: {', '.join(AURORA_POSTGRES_VERSIONS)}"
            )
        return value

    @field_validator("instance_class")
    @classmethod
    def _instance_class(cls, value: str | None) -> str | None:
        if value is not None and not _INSTANCE_CLASS.match(value):
            raise ValueError("must be a DB instance class such as r7g.large")
        return value

    @field_validator("monitoring_interval_seconds")
    @classmethod
    def _interval(cls, value: int) -> int:
        if value not in (0, 1, 5, 10, 15, 30, 60):
            raise ValueError("must be one of 0 (off), 1, 5, 10, 15, 30, 60")
        return value

    @field_validator("database_name")
    @classmethod
    def _database_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", value):
            raise ValueError("must be a PostgreSQL identifier: lowercase letters, digits, underscores")
        return value

    @model_validator(mode="after")
    def _one_capacity_model(self) -> DatabaseSettings:
        if (self.capacity is None) == (self.instance_class is None):
            raise ValueError(
                "set exactly one of database.capacity (Serverless v2: min_acu/max_acu) or "
                "database.instance_class (provisioned instances)"
            )
        return self


# Valkey engine versions a replication group may run, each with its parameter group family (valkey7,
# valkey8: ElastiCache "Parameter groups by engine", botocore's model). 9.0 and 9.1 exist (cfn-lint
# 1.58.0's engine-version list) but their family is not yet in AWS's documentation: added once it is.
VALKEY_VERSIONS: tuple[str, ...] = ("7.2", "8.0", "8.1", "8.2")
# Node families of the current generation: each supports encryption at rest and in transit, IAM
# authentication and Multi-AZ with automatic failover. Burstable (t4g, t3) are for dev and tests.
# Data-tiering r6gd nodes are left out: they need DataTieringEnabled and restrict the eviction policy.
CACHE_NODE_FAMILIES: tuple[str, ...] = ("t4g", "t3", "m7g", "m6g", "m5", "r7g", "r6g", "r5", "c7gn")
_CACHE_NODE_TYPE = re.compile(r"cache\.([a-z0-9]+)\.([a-z0-9]+)")
CACHE_KINDS = ("serverless", "replication-group")
_SERVERLESS_ONLY = ("max_data_storage_gb", "max_ecpu_per_second")
_REPLICATION_GROUP_ONLY = (
    "engine_version",
    "node_type",
    "cluster_mode",
    "shards",
    "replicas_per_shard",
    "multi_az",
    "parameters",
    "maintenance_window",
    "log_retention_days",
)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CacheSettings(_Model):
    """ElastiCache for Valkey: Serverless (usage limits) or a provisioned replication group (nodes).

    Both kinds have the same users (one IAM-authenticated user per client service, the default user
    off), the same key and TLS, so services and their grants do not change when the kind does.
    """

    kind: Literal["serverless", "replication-group"] = "serverless"
    snapshot_retention_days: Annotated[int, Field(ge=0, le=35)]
    daily_snapshot_time: str = "03:00"  # UTC; a replication group's snapshot window starts here (1 hour)
    # kind: serverless. ElastiCache Serverless bounds: 1-5000 GB of data, 1000-15,000,000 ECPU per second.
    max_data_storage_gb: Annotated[int, Field(ge=1, le=5000)] | None = None
    max_ecpu_per_second: Annotated[int, Field(ge=1000, le=15_000_000)] | None = None
    # kind: replication-group.
    engine_version: str | None = None
    node_type: str | None = None
    cluster_mode: bool = False  # on: data split over `shards`; off: one shard
    shards: Annotated[int, Field(ge=1, le=500)] = 1
    replicas_per_shard: Annotated[int, Field(ge=0, le=5)] = 1
    multi_az: bool | None = None  # Multi-AZ with automatic failover; default: on whenever there is a replica
    parameters: dict[str, str] = {}  # parameter group entries, e.g. {maxmemory-policy: allkeys-lru}
    maintenance_window: str = "sun:05:00-sun:06:00"  # UTC, ddd:HH:MM-ddd:HH:MM
    log_retention_days: LogRetentionDays = 30  # slow log and engine log

    @field_validator("daily_snapshot_time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("must be a UTC time HH:MM, e.g. 03:00")
        return value

    @field_validator("engine_version", mode="before")
    @classmethod
    def _engine_is_text(cls, value: object) -> object:
        if isinstance(value, float | int) and not isinstance(value, bool):
            raise ValueError(f'must be text: YAML reads an unquoted {value!r} as a number; write "{value}"')
        return value

    @field_validator("engine_version")
    @classmethod
    def _engine(cls, value: str | None) -> str | None:
        if value is not None and value not in VALKEY_VERSIONS:
            raise ValueError(f"is not an accepted Valkey version; allowed: {', '.join(VALKEY_VERSIONS)}")
        return value

    @field_validator("node_type")
    @classmethod
    def _node_type(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _CACHE_NODE_TYPE.fullmatch(value)
        if not match or match.group(1) not in CACHE_NODE_FAMILIES:
            raise ValueError(
                "must be a current-generation ElastiCache node type cache.<family>.<size>, family one of "
                f"{', '.join(CACHE_NODE_FAMILIES)} (e.g. cache.r7g.large)"
            )
        return value

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
                raise ValueError(f"parameter name {name!r} must be a Valkey parameter name such as maxmemory-policy")
        return value

    @field_validator("maintenance_window")
    @classmethod
    def _maintenance_window(cls, value: str) -> str:
        if _weekly_window(value) is None:
            raise ValueError(
                "must be a weekly UTC window ddd:HH:MM-ddd:HH:MM of at least 60 minutes, e.g. sun:05:00-sun:06:00"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CacheSettings:
        serverless = self.kind == "serverless"
        given = self.model_fields_set
        other = [f for f in (_REPLICATION_GROUP_ONLY if serverless else _SERVERLESS_ONLY) if f in given]
        if other:
            raise ValueError(
                f"cache.{other[0]} is a setting of the other kind; with kind {self.kind} allowed: "
                + ", ".join(
                    f
                    for f in type(self).model_fields
                    if f not in (_REPLICATION_GROUP_ONLY if serverless else _SERVERLESS_ONLY)
                )
            )
        required = _SERVERLESS_ONLY if serverless else ("engine_version", "node_type")
        missing = [f for f in required if getattr(self, f) is None]
        if missing:
            raise ValueError(f"cache.kind = {self.kind!r} requires cache.{missing[0]}")
        if serverless:
            return self
        if not self.cluster_mode and "shards" in given and self.shards != 1:
            raise ValueError(
                f"cache.shards = {self.shards} needs cache.cluster_mode: true (without cluster mode the data is one "
                "shard); allowed: 1, or turn cluster mode on"
            )
        if self.multi_az and self.replicas_per_shard == 0:
            raise ValueError(
                "cache.multi_az = true with cache.replicas_per_shard = 0: automatic failover needs a replica to "
                "promote; allowed: replicas_per_shard 1 to 5, or multi_az: false"
            )
        enabled = self.parameters.get("cluster-enabled")
        if enabled is not None and enabled != ("yes" if self.cluster_mode else "no"):
            raise ValueError(
                f"cache.parameters.cluster-enabled = {enabled!r} contradicts cache.cluster_mode = "
                f"{str(self.cluster_mode).lower()}; the platform sets it from cluster_mode: remove it"
            )
        start = int(self.daily_snapshot_time[:2]) * 60 + int(self.daily_snapshot_time[3:])
        window = _weekly_window(self.maintenance_window)
        assert window is not None
        for day in range(7):
            snap = (day * 1440 + start, day * 1440 + start + 60)
            if snap[0] < window[1] and window[0] < snap[1]:
                raise ValueError(
                    f"cache.daily_snapshot_time = {self.daily_snapshot_time!r} (a one-hour window) overlaps "
                    f"cache.maintenance_window = {self.maintenance_window!r}; ElastiCache refuses overlapping windows"
                )
        return self

    @property
    def failover(self) -> bool:
        """Multi-AZ with automatic failover (cluster mode needs automatic failover whatever the replicas)."""
        return self.replicas_per_shard > 0 if self.multi_az is None else self.multi_az

    @property
    def engine_family(self) -> str:
        return f"valkey{(self.engine_version or '').split('.')[0]}"


def _weekly_window(value: str) -> tuple[int, int] | None:
    """Minutes since Monday 00:00 of a ``ddd:HH:MM-ddd:HH:MM`` window of 60 minutes to 24 hours."""
    match = re.fullmatch(r"([a-z]{3}):(\d\d):(\d\d)-([a-z]{3}):(\d\d):(\d\d)", value)
    if not match or match.group(1) not in _WEEKDAYS or match.group(4) not in _WEEKDAYS:
        return None
    hours, minutes = (int(match.group(i)) for i in (2, 5)), (int(match.group(i)) for i in (3, 6))
    h1, h2 = hours
    m1, m2 = minutes
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        return None
    start = _WEEKDAYS.index(match.group(1)) * 1440 + h1 * 60 + m1
    end = _WEEKDAYS.index(match.group(4)) * 1440 + h2 * 60 + m2
    if end < start:
        end += 7 * 1440
    return (start, end) if 60 <= end - start <= 1440 else None


class RegistrySettings(_Model):
    """ECR lifecycle: untagged images go after a few days, only the newest tagged ones are kept, and
    an image that was ever deployed is kept by its own, larger count (it may be running, or be what a
    rollback needs)."""

    untagged_image_days: Annotated[int, Field(ge=1, le=90)]
    keep_tagged_images: Annotated[int, Field(ge=1, le=1000)]
    keep_deployed_images: Annotated[int, Field(ge=10, le=10000)] = 1000


class IngressCertificateSettings(_Model):
    """An ACM certificate for the environment's ingresses, validated through DNS in a Route 53 zone."""

    domain_name: str  # e.g. api.example.com or *.example.com
    hosted_zone_id: str  # the public hosted zone that answers for it
    hosted_zone_name: str  # e.g. example.com

    @field_validator("domain_name", "hosted_zone_name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not re.fullmatch(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", value):
            raise ValueError("must be a lowercase DNS name such as api.example.com (a leading *. is allowed)")
        return value

    @field_validator("hosted_zone_id")
    @classmethod
    def _zone_id(cls, value: str) -> str:
        if not re.fullmatch(r"Z[A-Z0-9]{1,31}", value):
            raise ValueError("must be a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ")
        return value

    @model_validator(mode="after")
    def _in_zone(self) -> IngressCertificateSettings:
        name = self.domain_name.removeprefix("*.")
        if name != self.hosted_zone_name and not name.endswith("." + self.hosted_zone_name):
            raise ValueError(
                f"ingress_certificate.domain_name {self.domain_name!r} is not in the hosted zone "
                f"{self.hosted_zone_name!r}; allowed: the zone's name or a name under it"
            )
        return self


# Labels of GitHub-hosted runners (docs.github.com, "GitHub-hosted runners"): they run outside the VPC.
GITHUB_HOSTED_LABEL_PREFIXES = ("ubuntu-", "windows-", "macos-")


class GithubSettings(_Model):
    """The repository whose GitHub Actions may deploy, through OIDC (no long-lived keys)."""

    owner: str
    repository: str
    # GitHub's numeric ids of the owner and the repository. Set both when the repository's OIDC tokens
    # carry immutable ids (repositories created or renamed after 2026-07-15, or opted in): the subject
    # is then repo:<owner>@<owner id>/<repo>@<repo id>:..., and the deploy role trusts only that form.
    owner_id: Annotated[int, Field(ge=1)] | None = None
    repository_id: Annotated[int, Field(ge=1)] | None = None
    # The runner labels deploy-service's deploy job runs on (its runs-on). A cluster whose API
    # endpoint is private is reachable only from inside the VPC: name self-hosted runners there (see
    # docs/delivery.md). {run_id} and {run_attempt} are replaced, for CodeBuild-hosted runners' labels.
    deploy_runs_on: Annotated[list[str], Field(min_length=1)] = ["ubuntu-latest"]

    @field_validator("deploy_runs_on")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not re.fullmatch(r"[A-Za-z0-9._{}-]{1,100}", label):
                raise ValueError(
                    f"{label!r} is not a runner label: letters, digits, '.', '_', '-', {{run_id}}, {{region}}"
                )
        return value

    @property
    def github_hosted_runner(self) -> bool:
        return all(label.startswith(GITHUB_HOSTED_LABEL_PREFIXES) for label in self.deploy_runs_on)

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?", value):
            raise ValueError("must be a GitHub user or organisation name: letters, digits, inner hyphens, no wildcards")
        return value

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", value) or value in (".", ".."):
            raise ValueError("must be a GitHub repository name: letters, digits, '.', '_', '-', no wildcards")
        return value

    @model_validator(mode="after")
    def _both_ids_or_neither(self) -> GithubSettings:
        if (self.owner_id is None) != (self.repository_id is None):
            raise ValueError(
                f"github.owner_id = {self.owner_id} and github.repository_id = {self.repository_id}: set both "
                "(`gh api repos/OWNER/REPO --jq '.owner.id, .id'`) or neither"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: object) -> object:
        if isinstance(data, dict) and "oidc_provider_arn" in data:
            raise ValueError(
                "github.oidc_provider_arn was replaced by account_stack.github_oidc_provider: existing (the "
                "provider's ARN follows from the account)"
            )
        return data


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,63}")
_HTTPS_URL = re.compile(r"https://[A-Za-z0-9.-]+(:\d{1,5})?(/\S*)?")


class AlarmThresholds(_Model):
    """When an alarm fires. Defaults suit both environments; each can be set per environment."""

    # Aurora: capacity near its maximum ACUs (Serverless v2), CPU, memory, reader lag, deadlocks, storage.
    database_capacity_percent: Annotated[int, Field(ge=50, le=100)] = 90
    database_cpu_percent: Annotated[int, Field(ge=50, le=100)] = 90
    database_freeable_memory_mib: Annotated[int, Field(ge=64, le=262_144)] = 256
    database_replica_lag_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    database_deadlocks_per_minute: Annotated[int, Field(ge=1, le=10_000)] = 5
    database_storage_gib: Annotated[int, Field(ge=1, le=131_072)] = 100
    # Cache: usage near its limits (Serverless: data and ECPU; nodes: memory), CPU, evictions, lag.
    cache_usage_percent: Annotated[int, Field(ge=50, le=100)] = 90
    cache_cpu_percent: Annotated[int, Field(ge=50, le=100)] = 80
    cache_evictions_per_5_minutes: Annotated[int, Field(ge=1, le=10_000_000)] = 1000
    cache_replication_lag_seconds: Annotated[int, Field(ge=1, le=3600)] = 10
    # NAT gateways: dropped packets (port-allocation errors alarm at the first one).
    nat_dropped_packets_per_5_minutes: Annotated[int, Field(ge=1, le=1_000_000_000)] = 1000
    # EKS control plane and the load balancers the controller creates.
    api_server_errors_per_5_minutes: Annotated[int, Field(ge=1, le=1_000_000)] = 50
    load_balancer_5xx_per_5_minutes: Annotated[int, Field(ge=1, le=1_000_000)] = 50


class NotificationSettings(_Model):
    """Who the environment's alarm topic notifies: email addresses, HTTPS endpoints (chat webhooks)."""

    emails: list[str] = []
    https_endpoints: list[str] = []

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not _EMAIL.fullmatch(address):
                raise ValueError(f"{address!r} is not an email address such as oncall@example.com")
        if len(set(value)) != len(value):
            raise ValueError("must not list an address twice")
        return value

    @field_validator("https_endpoints")
    @classmethod
    def _endpoints(cls, value: list[str]) -> list[str]:
        for url in value:
            if not _HTTPS_URL.fullmatch(url):
                raise ValueError(
                    f"{url!r} is not an HTTPS URL such as https://hooks.example.com/alarms (http:// is refused: "
                    "alarm text would cross the internet in clear)"
                )
        if len(set(value)) != len(value):
            raise ValueError("must not list an endpoint twice")
        return value

    @property
    def count(self) -> int:
        return len(self.emails) + len(self.https_endpoints)


class ObservabilitySettings(_Model):
    """Container Insights (the EKS add-on), container log retention, alarms and who hears them."""

    # Enhanced observability: per-pod and per-container metrics (priced per observation); off: the
    # cluster, node and namespace level metrics of standard Container Insights.
    enhanced_container_insights: bool = True
    container_log_retention_days: LogRetentionDays = 30
    # The platform's own deploy-time functions (log group adoption, database users).
    function_log_retention_days: LogRetentionDays = 30
    notifications: NotificationSettings = NotificationSettings()
    alarms: AlarmThresholds = AlarmThresholds()


class AccountStackSettings(_Model):
    """What exists once per AWS account, in the ``<project>-account`` stack (not once per environment)."""

    # Where the account stack lives. IAM is global, so every environment sharing an account must name
    # the same region. Default: the region in the settings file (never a --context region override).
    region: str | None = None
    # create: the account stack creates the GitHub OIDC provider; existing: the account already has one
    # (another project made it, or someone by hand), referenced by its ARN, which the account determines.
    github_oidc_provider: Literal["create", "existing"] = "create"

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return value if value is None else _aws_region(value)


DATA_STORES = ("database", "cache")


class ServiceSettings(_Model):
    """One microservice of the catalogue: its namespace is ``<name>-<env>``."""

    name: str
    port: Annotated[int, Field(ge=1024, le=65535)] = 8080
    ingress: bool
    # Data stores the service connects to; its IRSA role gets exactly the grants for these.
    uses: list[str] = []

    @field_validator("uses")
    @classmethod
    def _uses(cls, value: list[str]) -> list[str]:
        return _distinct_members(value, DATA_STORES, "data store")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SERVICE_NAME.match(value):
            raise ValueError(
                "must be a DNS label of 1-30 characters: lowercase letters, digits and hyphens, starting with a letter"
            )
        return value


class Settings(_Model):
    """One environment's settings. ``environment`` comes from the file name, not its content."""

    environment: str
    project: str
    region: str
    # Every region of the environment, the primary (`region`) first. Omitted: the primary alone.
    regions: list[str] | None = None
    account: str | None = None
    # Prod: stateful resources are retained on delete, stacks have termination protection.
    retain_data: bool
    # Production guardrails: no API endpoint open to the internet, a node in every zone.
    production: bool
    network: NetworkSettings
    eks: EksSettings
    database: DatabaseSettings
    cache: CacheSettings
    registry: RegistrySettings
    github: GithubSettings
    # Optional: the platform creates the ingresses' certificate (output CertificateArn of the cicd stack).
    ingress_certificate: IngressCertificateSettings | None = None
    account_stack: AccountStackSettings = AccountStackSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    services: Annotated[list[ServiceSettings], Field(min_length=1)]
    # The directory the settings file was read from (its neighbours share the account stack).
    _directory: Path = PrivateAttr(default=ENVIRONMENTS_DIR)
    # Where the environment stands in infra/config/delivery.yaml (set by load_settings).
    _promotion: Any = PrivateAttr(default=None)

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def promotion(self) -> Promotion:
        """The environments just before and after this one in the promotion order (infra/config/delivery.py)."""
        if self._promotion is None:
            from infra.config.delivery import promotion_of

            self._promotion = promotion_of(self.environment, self._directory)
        return cast("Promotion", self._promotion)

    @field_validator("project")
    @classmethod
    def _project_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 3-20 characters: lowercase letters, digits and hyphens, starting with a letter")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return _aws_region(value)

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must list at least the primary region (setting 'region'), or be left out")
        for item in value:
            if item not in AWS_REGIONS:
                raise ValueError(
                    f"must name AWS regions of the aws partition, and {item!r} is not one; allowed: "
                    f"{', '.join(sorted(AWS_REGIONS))}"
                )
        twice = sorted({r for r in value if value.count(r) > 1})
        if twice:
            raise ValueError(f"must list each region once, and lists {', '.join(twice)} twice")
        return value

    @model_validator(mode="after")
    def _primary_first(self) -> Settings:
        if self.regions is not None and self.regions[0] != self.region:
            others = [r for r in self.regions if r != self.region]
            raise ValueError(
                f"setting 'regions' = {self.regions}: the first region is the primary, which is setting 'region' "
                f"= {self.region!r}; allowed: {[self.region, *others]}"
            )
        return self

    @property
    def all_regions(self) -> list[str]:
        """The environment's regions, the primary first."""
        return list(self.regions) if self.regions else [self.region]

    @property
    def primary_region(self) -> str:
        return self.all_regions[0]

    @property
    def other_regions(self) -> list[str]:
        return self.all_regions[1:]

    @property
    def is_primary(self) -> bool:
        """Whether this view of the settings (:meth:`in_region`) is the primary region's."""
        return self.region == self.primary_region

    def in_region(self, region: str) -> Settings:
        """These settings as one region of the environment sees them: its zones, its stack names."""
        if region not in self.all_regions:
            raise ValueError(f"{region} is not a region of {self.environment}")
        return self.model_copy(update={"region": region})

    @property
    def account_stack_name(self) -> str:
        return f"{self.project}-account"

    @property
    def account_stack_region(self) -> str:
        return self.account_stack.region or self.region

    @field_validator("account", mode="before")
    @classmethod
    def _account_is_text(cls, value: object) -> object:
        if isinstance(value, int):
            raise ValueError("must be a 12-digit AWS account id in quotes (YAML reads an unquoted id as a number)")
        return value

    @field_validator("account")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{12}", value):
            raise ValueError("must be a 12-digit AWS account id")
        return value

    @model_validator(mode="after")
    def _zones_in_region(self) -> Settings:
        for region in self.all_regions:
            try:
                zone_names(region, self.network.zones)
            except ZoneError as error:
                raise ValueError(f"setting 'network.zones' = {self.network.zones!r}: {error}") from None
        return self

    @model_validator(mode="after")
    def _types_offered_in_every_region(self) -> Settings:
        wanted = [("eks.node_group.instance_types", "ec2", n) for n in self.eks.node_group.instance_types]
        if self.cache.kind == "replication-group" and self.cache.node_type:
            wanted.append(("cache.node_type", "elasticache", self.cache.node_type))
        if self.database.instance_class:
            wanted.append(
                (
                    "database.instance_class",
                    "aurora_postgresql",
                    "db." + self.database.instance_class.removeprefix("db."),
                )
            )
        for setting, kind, name in wanted:
            why = unavailable(kind, name, self.all_regions)
            if why:
                raise ValueError(f"setting '{setting}': {why}")
        return self

    @model_validator(mode="after")
    def _data_api_in_region(self) -> Settings:
        users = [s.name for s in self.services if "database" in s.uses]
        # Users are created where a writer is: the primary, and each region with a cluster of its own.
        writers = [self.region] + (self.other_regions if self.database.other_regions == "regional" else [])
        for region in writers:
            if region in NO_DATA_API and users:
                setting = f"'region' = {region!r}" if region == self.region else f"'regions' names {region!r}"
                raise ValueError(
                    f"setting {setting}: the RDS Data API, through which the platform creates "
                    f"the database users of {', '.join(users)}, is not available there; allowed: another region"
                    + ("" if region == self.region else " (or database.other_regions: global or none)")
                )
        klass = (self.database.instance_class or "").removeprefix("db.")
        if klass.startswith("t") and users:
            raise ValueError(
                f"setting 'database.instance_class' = {self.database.instance_class!r}: the RDS Data API, through "
                "which the platform creates the database users, does not run on T instance classes; allowed: "
                "another class (such as r7g.large) or Serverless v2 (database.capacity)"
            )
        return self

    @property
    def log_retentions(self) -> dict[str, int]:
        """Every log group retention the settings decide, by setting name (the cache's only for a
        replication group: a serverless cache has no log groups)."""
        retentions = {
            "network.flow_log_retention_days": self.network.flow_log_retention_days,
            "eks.control_plane_log_retention_days": self.eks.control_plane_log_retention_days,
            "database.log_retention_days": self.database.log_retention_days,
            "observability.container_log_retention_days": self.observability.container_log_retention_days,
            "observability.function_log_retention_days": self.observability.function_log_retention_days,
        }
        if self.cache.kind == "replication-group":
            retentions["cache.log_retention_days"] = self.cache.log_retention_days
        return retentions

    @property
    def availability_zones(self) -> list[str]:
        """The zone names: from the region and ``network.zones``, never from a lookup."""
        return zone_names(self.region, self.network.zones)

    @model_validator(mode="after")
    def _production_guardrails(self) -> Settings:
        if self.production:
            if not self.retain_data:
                raise ValueError(
                    "retain_data = False is not allowed in production: data stores would be deleted with their "
                    "stacks; allowed: true"
                )
            if "0.0.0.0/0" in self.eks.endpoint.public_access_cidrs:
                raise ValueError(
                    "eks.endpoint.public_access_cidrs: '0.0.0.0/0' is not allowed in production; "
                    "allowed: the CIDRs of your offices and CI runners, or [] for a private endpoint"
                )
            capacity = self.database.capacity
            if capacity is not None and capacity.min_acu < 0.5:
                raise ValueError(
                    f"database.capacity.min_acu = {capacity.min_acu} is not allowed in production "
                    "(auto-pause would make the first query after idle wait for the database); allowed: 0.5 or more"
                )
            if self.database.backup_retention_days < 14:
                raise ValueError(
                    f"database.backup_retention_days = {self.database.backup_retention_days} is below the "
                    "production minimum; allowed: 14 to 35"
                )
            if self.database.readers < 1:
                raise ValueError("database.readers = 0: production needs a reader in another zone; allowed: 1 to 15")
            if not self.eks.endpoint.public_access_cidrs and self.github.github_hosted_runner:
                raise ValueError(
                    f"github.deploy_runs_on = {self.github.deploy_runs_on}: GitHub-hosted runners cannot reach a "
                    "production cluster whose API endpoint is private (eks.endpoint.public_access_cidrs = []); "
                    "allowed: labels of self-hosted runners inside the VPC, "
                    f"e.g. [self-hosted, linux, {self.name_prefix}]"
                )
            if not self.observability.notifications.count:
                raise ValueError(
                    "observability.notifications: production needs someone who hears its alarms; allowed: one or "
                    "more emails (e.g. [oncall@example.com]) or https_endpoints (a chat webhook)"
                )
            if not self.eks.admin_roles:
                raise ValueError(
                    "eks.admin_roles = []: production needs someone who can operate the cluster (the deployer is "
                    "not admin); allowed: one or more IAM role names or ARNs, e.g. [platform-admin]"
                )
            year = PRODUCTION_LOG_RETENTION_DAYS
            for setting, days in self.log_retentions.items():
                if days < year:
                    raise ValueError(
                        f"{setting} = {days} is below the production minimum of {year} days "
                        "(AWS Control Tower control CT.CLOUDWATCH.PR.2: production log groups are kept a year); "
                        f"allowed: {', '.join(str(d) for d in LOG_RETENTION_DAYS if d >= year)}"
                    )
            zones = self.network.zone_count
            if self.eks.node_group.min_size < zones:
                raise ValueError(
                    f"eks.node_group.min_size = {self.eks.node_group.min_size} is below one node per zone "
                    f"({zones}) in production"
                )
        return self

    @model_validator(mode="after")
    def _global_writer_and_upgrade(self) -> Settings:
        database = self.database
        is_global = bool(self.other_regions) and database.other_regions == "global"
        for key, value in (
            ("writer_region", database.writer_region),
            ("secondary_engine_version", database.secondary_engine_version),
        ):
            if value is not None and not is_global:
                raise ValueError(
                    f"setting 'database.{key}' = {value!r} applies to a global database only (several regions "
                    "with database.other_regions: global); allowed: leave it out"
                )
        if database.writer_region is not None and database.writer_region not in self.all_regions:
            raise ValueError(
                f"setting 'database.writer_region' = {database.writer_region!r} is not a region of this "
                f"environment; allowed: one of {', '.join(self.all_regions)}"
            )
        later, current = database.secondary_engine_version, database.engine_version
        if later is not None and later not in minor_upgrades(current):
            raise ValueError(
                f"setting 'database.secondary_engine_version' = {later!r}: step one of a minor upgrade of the "
                f"global database from database.engine_version = {current!r}; allowed: a later minor of the "
                f"same major ({', '.join(minor_upgrades(current)) or 'none accepted'})"
            )
        return self

    @property
    def writer_region(self) -> str:
        """The region whose database cluster is the writer: the primary region unless a switchover or
        failover moved it (``database.writer_region``)."""
        return self.database.writer_region or self.primary_region

    @model_validator(mode="after")
    def _several_regions(self) -> Settings:
        if not self.other_regions:
            return self
        mode = self.database.other_regions
        if self.production and mode != "global":
            raise ValueError(
                f"setting 'database.other_regions' = {mode!r} is not allowed in production: a region outage would "
                "lose the database's recent writes and its service; allowed: global (an Aurora global database)"
            )
        if mode == "global" and self.database.engine_version not in GLOBAL_DATABASE_VERSIONS:
            raise ValueError(
                f"setting 'regions' = {self.regions} with database.other_regions = 'global': Aurora PostgreSQL "
                f"{self.database.engine_version} (setting 'database.engine_version') has no global database "
                f"support; allowed: one of {', '.join(GLOBAL_DATABASE_VERSIONS)}, or a single region"
            )
        private = not self.eks.endpoint.public_access_cidrs
        if (
            private
            and not self.github.github_hosted_runner
            and not any("{region}" in x for x in self.github.deploy_runs_on)
        ):
            raise ValueError(
                f"github.deploy_runs_on = {self.github.deploy_runs_on}: the clusters' API endpoints are private, so a "
                "deploy must run inside the region's VPC, but these labels name the same runners for every region; "
                "allowed: labels with {region}, which the deploy workflow replaces with the region deployed to, "
                f'e.g. [self-hosted, linux, "{self.name_prefix}-{{region}}"] (in quotes: YAML reads {{ as a mapping)'
            )
        if self.account_stack_region != self.region:
            raise ValueError(
                f"setting 'account_stack.region' = {self.account_stack_region!r}: an environment of several regions "
                f"({', '.join(self.all_regions)}) replicates its images from its primary region {self.region!r}, "
                "and the account stack holds the registry's replication rules in the region it lives in; allowed: "
                f"account_stack.region: {self.region}"
            )
        return self

    @model_validator(mode="after")
    def _production_cache(self) -> Settings:
        if not self.production:
            return self
        if self.cache.snapshot_retention_days < 7:
            raise ValueError(
                f"cache.snapshot_retention_days = {self.cache.snapshot_retention_days} is below the "
                "production minimum; allowed: 7 to 35"
            )
        if self.cache.kind == "replication-group" and self.cache.snapshot_retention_days < 15:
            raise ValueError(
                f"cache.snapshot_retention_days = {self.cache.snapshot_retention_days} is below the production "
                "minimum for a replication group (the NIST 800-53 and HIPAA packs ask 15 days of its backups); "
                "allowed: 15 to 35"
            )
        if self.cache.kind == "replication-group" and not self.cache.failover:
            raise ValueError(
                f"cache.multi_az = {str(self.cache.multi_az).lower()} with cache.replicas_per_shard = "
                f"{self.cache.replicas_per_shard} is not allowed in production: a node failure would lose the "
                "cache until it is replaced; allowed: replicas_per_shard 1 to 5 with multi_az true (the default)"
            )
        return self

    @field_validator("services")
    @classmethod
    def _unique_services(cls, value: list[ServiceSettings]) -> list[ServiceSettings]:
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError(f"service names must be unique, got {names}")
        return value

    @property
    def name_prefix(self) -> str:
        """Names resources in every region (regional names: the same in each)."""
        return f"{self.project}-{self.environment}"

    @property
    def stack_prefix(self) -> str:
        """Names this region's stacks: the primary's keep the names of a single-region environment."""
        return self.name_prefix if self.is_primary else f"{self.name_prefix}-{self.region}"


def _aws_region(value: str) -> str:
    if value not in AWS_REGIONS:
        raise ValueError(f"is not an AWS region of the aws partition; allowed: {', '.join(sorted(AWS_REGIONS))}")
    return value


def command_line_overrides(context: Callable[[str], Any], environ: Mapping[str, str]) -> dict[str, str | None]:
    """``region`` and ``account`` from ``--context``; the account falls back to ``CDK_DEFAULT_ACCOUNT``,
    which the CDK CLI sets whenever it finds credentials. A context value wins over the variable."""
    return {
        "region": context("region"),
        "account": context("account") or environ.get("CDK_DEFAULT_ACCOUNT") or None,
    }


def command_line_sources(context: Callable[[str], Any], environ: Mapping[str, str]) -> dict[str, str]:
    """How a person wrote each value of :func:`command_line_overrides`, for its error messages."""
    sources = {}
    if context("region"):
        sources["region"] = f"--context region={context('region')} (make: REGION={context('region')})"
    if context("account"):
        sources["account"] = f"--context account={context('account')}"
    elif environ.get("CDK_DEFAULT_ACCOUNT"):
        sources["account"] = (
            f"CDK_DEFAULT_ACCOUNT={environ['CDK_DEFAULT_ACCOUNT']} (the CDK CLI sets it from your credentials)"
        )
    return sources


def known_environments(directory: Path = ENVIRONMENTS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_settings(
    environment: str | None,
    *,
    overrides: Mapping[str, str | None] | None = None,
    directory: Path = ENVIRONMENTS_DIR,
    catalogue: Path = CATALOGUE_FILE,
    sources: Mapping[str, str] | None = None,
) -> Settings:
    """Read and validate ``<directory>/<environment>.yaml``.

    ``overrides`` holds values from the command line (``region``, ``account``); ``None``
    values are ignored; ``sources`` says how each was written (:func:`command_line_sources`).
    Raises :class:`SettingsError` with a message for a person.
    """
    known = known_environments(directory)
    if not environment:
        raise SettingsError(
            f"setting 'env' is missing: pass --context env=<name> (known environments: {', '.join(known)})"
        )
    if environment not in known:
        raise SettingsError(
            f"setting 'env' = {environment!r} is not a known environment; allowed: {', '.join(known)} "
            f"(one file each in {directory})"
        )
    path = directory / f"{environment}.yaml"
    if not _ENVIRONMENT_NAME.fullmatch(environment):
        # It names stacks, the cluster, namespaces (<service>-<env>) and the cache (limited lengths).
        raise SettingsError(
            f"setting 'env' = {environment!r} (file {path.name}) is not a valid environment name; allowed: "
            "2-10 lowercase letters and digits, starting with a letter"
        )
    raw = read_yaml(path)
    if raw is None:
        raise SettingsError(
            f"{path}: the file is empty; it holds the settings of environment {environment!r} (start from a copy "
            "of another environment's file)"
        )
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: must be a mapping of settings, got {type(raw).__name__}")
    if "environment" in raw:
        raise SettingsError(f"{path}: setting 'environment' is not allowed: the environment is the file name")
    data: dict[str, Any] = {**raw, "environment": environment}
    data["account_stack"] = _account_stack_of(raw)
    if "services" not in raw:
        data["services"] = load_catalogue(catalogue)
    written = {key: f"--context {key}={value}" for key, value in (overrides or {}).items() if value is not None}
    written.update(sources or {})
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    region = (overrides or {}).get("region")
    if region is not None and isinstance(raw.get("regions"), list):
        if len(raw["regions"]) > 1:
            raise SettingsError(
                f"{path}: --context region={region}: environment {environment!r} spans the regions "
                f"{', '.join(map(str, raw['regions']))} (setting 'regions'); a region override moves a single-region "
                "environment only; allowed: edit 'region' and 'regions' in the settings file, without the override"
            )
        data["regions"] = None  # [the file's region] -> the override alone
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        where = Sources(path, None if "services" in raw else catalogue, written)
        raise SettingsError(format_validation_error(path, error, data, where)) from None
    settings._directory = directory
    check_one_provider_per_account(settings, directory)
    settings.promotion  # noqa: B018 (validates infra/config/delivery.yaml: every synth refuses a bad one)
    return settings


def load_catalogue(path: Path = CATALOGUE_FILE) -> Any:
    """The raw ``services`` list of the shared catalogue (validated with the settings that use it)."""
    if not path.exists():
        raise SettingsError(f"{path}: the service catalogue is missing; it lists `services:`")
    raw = read_yaml(path)
    if raw is None:
        raise SettingsError(f"{path}: the file is empty; it lists the services: `services:` and one entry per service")
    if not isinstance(raw, dict) or set(raw) != {"services"}:
        raise SettingsError(f"{path}: must be a mapping with one key, `services:` (the list of services)")
    return raw["services"]


def _account_stack_of(raw: Mapping[str, Any]) -> Any:
    """``account_stack`` with its region defaulting to the file's own region (not an override)."""
    section = raw.get("account_stack", {})
    # Only a region the file names validly: a bad `region` is reported once, as itself.
    if isinstance(section, dict) and "region" not in section and raw.get("region") in AWS_REGIONS:
        return {**section, "region": raw["region"]}
    return section


def _may_share_account(settings: Settings, directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """The other environments (name, raw settings) that may deploy to the same account: they name the
    same one, or either names none (the account then comes from whoever deploys)."""
    out = []
    for other in known_environments(directory):
        if other == settings.environment:
            continue
        try:
            raw = read_yaml(directory / f"{other}.yaml")
        except SettingsError:
            continue  # reported when that environment is synthesized
        if not isinstance(raw, dict):
            continue
        account = raw.get("account")
        if settings.account and account and str(account) != settings.account:
            continue
        out.append((other, raw))
    return out


def check_one_provider_per_account(settings: Settings, directory: Path = ENVIRONMENTS_DIR) -> None:
    """Refuse settings under which two account stacks would create the account's one GitHub OIDC provider.

    Environments may share an account when they name the same one, or when either names none (the
    account then comes from the credentials of whoever deploys). Sharing environments that create the
    provider must agree on the account stack: the same project (stack name) and the same region.
    """
    mine = (settings.project, settings.account_stack_region, settings.account_stack.github_oidc_provider)
    for other, raw in _may_share_account(settings, directory):
        account = raw.get("account")
        stack = _account_stack_of(raw)
        stack = stack if isinstance(stack, dict) else {}
        theirs = (raw.get("project"), stack.get("region"), stack.get("github_oidc_provider", "create"))
        if "create" in (mine[2], theirs[2]) and mine != theirs:
            raise SettingsError(
                f"environments {settings.environment!r} and {other!r} may share an AWS account "
                f"({'both name ' + settings.account if settings.account and account else 'one names none'}) "
                "but disagree on the account stack, so the account's one GitHub OIDC provider would be created "
                f"twice or deleted: {settings.environment}: project {mine[0]}, account_stack.region {mine[1]}, "
                f"github_oidc_provider {mine[2]}; {other}: project {theirs[0]}, account_stack.region {theirs[1]}, "
                f"github_oidc_provider {theirs[2]}. Allowed: the same project, account_stack.region and "
                "github_oidc_provider in both, or github_oidc_provider: existing in both, or different accounts "
                "named with `account:`"
            )


def environments_sharing_account(settings: Settings) -> list[tuple[str, str, list[str]]]:
    """(project, environment, other regions) of every environment whose account stack is this one's: the
    same project, account and account-stack region; this environment included, sorted by name.

    The account stack's replication rules come from here, so every such environment renders the same
    account stack. Another environment's regions are read as its file lists them (it is validated when
    it is synthesized itself).
    """
    found = {settings.environment: (settings.project, settings.other_regions)}
    for other, raw in _may_share_account(settings, settings.directory):
        stack = _account_stack_of(raw)
        region = stack.get("region") if isinstance(stack, dict) else None
        if raw.get("project") != settings.project or region != settings.account_stack_region:
            continue
        regions = raw.get("regions")
        listed = [str(r) for r in regions[1:]] if isinstance(regions, list) else []
        found[other] = (settings.project, listed)
    return [(project, name, regions) for name, (project, regions) in sorted(found.items())]


@dataclass(frozen=True)
class Sources:
    """Where the values being validated came from, so that each error names its own source."""

    settings_file: Path
    catalogue: Path | None = None  # None: the settings file lists its own services
    command_line: Mapping[str, str] = dataclasses.field(default_factory=dict)  # key -> "--context key=value"


def format_validation_error(
    path: Path, error: ValidationError, data: Mapping[str, Any], sources: Sources | None = None
) -> str:
    """One line per mistake, under the file (or the command line) the value came from."""
    sources = sources or Sources(path)
    groups: dict[tuple[int | str, ...], list[Any]] = {}
    for item in error.errors():
        keep_last = item["type"] in ("extra_forbidden", "missing")
        groups.setdefault(_field_location(item["loc"], keep_last=keep_last), []).append(item)
    # A misspelt key is one mistake, not two: the unknown key (with the name it resembles) says it all,
    # so the required key it was meant to be is not also reported missing.
    for location, items in list(groups.items()):
        if items[0]["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(location[-1]), _allowed_keys(location), n=1)
            sibling = (*location[:-1], near[0]) if near else None
            if sibling in groups and groups[sibling][0]["type"] == "missing":
                del groups[sibling]
    by_source: dict[str, list[str]] = {}
    for location, items in groups.items():
        header, line = _describe(location, items, data, sources)
        by_source.setdefault(header, []).append(line)
    return "\n".join(f"{header}\n" + "\n".join(f"  {line}" for line in lines) for header, lines in by_source.items())


def _describe(
    location: tuple[int | str, ...], items: list[Any], data: Mapping[str, Any], sources: Sources
) -> tuple[str, str]:
    """(the header naming the source, the line describing the mistake) for one setting's errors."""
    item = items[0]
    top = location[0] if location else None
    if top in sources.command_line and data.get(str(top)) == item["input"]:
        message = str(item["msg"]).removeprefix("Value error, ")
        return "invalid command line", f"{sources.command_line[str(top)]} {_as_clause(message)}"
    if top == "services" and sources.catalogue is not None:
        where = "services" + _dotted(location).removeprefix("services")
        if len(location) > 1 and isinstance(location[1], int):
            entries = data.get("services")
            entry = entries[location[1]] if isinstance(entries, list) and len(entries) > location[1] else None
            name = entry.get("name") if isinstance(entry, dict) else None
            tail = _dotted(location[2:])
            where = f"services[{location[1]}]" + (f" ({name})" if name else "") + (f".{tail}" if tail else "")
        return f"{sources.catalogue}: invalid service catalogue", _mistake(location, items, where)
    return f"{sources.settings_file}: invalid settings", _mistake(location, items, _dotted(location))


def _mistake(location: tuple[int | str, ...], items: list[Any], dotted: str) -> str:
    item = items[0]
    message = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        allowed = _allowed_keys(location)
        near = difflib.get_close_matches(str(location[-1]), allowed, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return f"setting '{dotted}' is not a known setting{hint}; allowed here: {', '.join(allowed)}"
    if item["type"] == "missing":
        return f"setting '{dotted}' is required but missing"
    if not dotted:
        return message
    if isinstance(item["input"], dict) and len(items) == 1 and item["type"] not in _TYPE_NAMES:
        # A check across a section's fields: its message names them; the whole mapping is noise.
        return f"setting '{dotted}': {message}"
    if len(items) > 1 or item["type"] in _TYPE_NAMES:
        # The wrong kind of value (or none of a union's kinds): say which kinds the setting takes.
        takes = _TAKES.get(_dotted(tuple(p for p in location if not isinstance(p, int))))
        kinds = takes or " or ".join(dict.fromkeys(_TYPE_NAMES.get(i["type"], i["type"]) for i in items))
        return f"setting '{dotted}' = {item['input']!r} is invalid: must be {kinds}{_yaml_hint(items)}"
    return f"setting '{dotted}' = {item['input']!r} {_as_clause(message)}{_yaml_hint(items)}"


# What pydantic's type errors ask for, in a user's words.
_TYPE_NAMES = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list such as [a, b]",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
}
# Settings that take more than one kind of value, described as a person would.
_TAKES = {
    "network.zones": "a zone count such as 3, or zone letters such as [a, b, c]",
    "database.capacity": "a mapping {min_acu: ..., max_acu: ...} (or left out, with database.instance_class)",
    "regions": "a list of regions such as [us-east-1, us-west-2], the primary first",
}


def _yaml_hint(items: list[Any]) -> str:
    """Why YAML gave the wrong type: quotes made a number text, or no quotes made a version a number."""
    value = items[0]["input"]
    wanted = {i["type"] for i in items}
    numeric = {"int_type", "int_parsing", "float_type", "float_parsing"}
    if wanted & numeric and isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
        return f" (the quotes make it text in YAML: write {value.strip()} without quotes)"
    if "string_type" in wanted and isinstance(value, int | float) and not isinstance(value, bool):
        return f' (YAML reads an unquoted {value!r} as a number: write it in quotes, "{value}")'
    return ""


def _as_clause(message: str) -> str:
    # pydantic's own messages read "Input should be ..."; ours already read "must be ...".
    if message.startswith("Input should be"):
        return "is invalid: " + message.replace("Input should be", "must be", 1)
    if message.startswith(("must", "is ", "unknown")):
        return message
    return "is invalid: " + message


def _dotted(location: tuple[int | str, ...]) -> str:
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings model an annotation holds: itself, the items of a list, a member of a union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def _field_location(location: tuple[int | str, ...], *, keep_last: bool = False) -> tuple[int | str, ...]:
    """The location of an error as settings name it: pydantic's union member tags (``int``,
    ``list[str]``, a model's name) left out; a mapping's keys and a list's indices kept. ``keep_last``:
    the last part is a key of the input (an unknown or a missing one), kept whatever it is."""
    model: type[BaseModel] | None = Settings
    mapping = False  # the field is a dict: its next part is one of its keys
    out: list[int | str] = []
    for index, part in enumerate(location):
        if isinstance(part, int) or mapping or (keep_last and index == len(location) - 1):
            out.append(part)
            mapping = False
        elif model is not None and part in model.model_fields:
            out.append(part)
            annotation = model.model_fields[part].annotation
            model = _model_of(annotation)
            mapping = typing.get_origin(annotation) is dict
    return tuple(out)


def _allowed_keys(location: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] | None = Settings
    for part in location[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part))
        model = _model_of(field.annotation) if field else None
    return sorted(name for name in (model or Settings).model_fields if name != "environment")
