"""cache: ElastiCache for Valkey, Serverless or a provisioned replication group."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from infra.config.settings.base import LogRetentionDays, _Model

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

    kind: Annotated[
        Literal["serverless", "replication-group"],
        Field(
            description=(
                "serverless (ElastiCache Serverless, bounded by usage limits) or replication-group "
                "(provisioned nodes). Users, grants and outputs stay the same; switching replaces the "
                "cache (not its users)."
            )
        ),
    ] = "serverless"
    snapshot_retention_days: Annotated[
        int,
        Field(
            ge=0,
            le=35,
            description=(
                "Days automatic snapshots are kept, 0 to 35 (0: none). Production: 7 or more; 15 or more "
                "for a replication group (the NIST 800-53 and HIPAA packs)."
            ),
        ),
    ]
    daily_snapshot_time: Annotated[
        str,
        Field(
            description=(
                "UTC time HH:MM the daily snapshot starts; a replication group's one-hour snapshot window"
                " starts here and must not overlap maintenance_window."
            )
        ),
    ] = "03:00"
    max_data_storage_gb: Annotated[
        Annotated[int, Field(ge=1, le=5000)] | None,
        Field(description="kind serverless, required: most data stored, in GB (1 to 5000)."),
    ] = None
    max_ecpu_per_second: Annotated[
        Annotated[int, Field(ge=1000, le=15_000_000)] | None,
        Field(
            description=(
                "kind serverless, required: most ElastiCache Processing Units per second (1000 to 15,000,000)."
            )
        ),
    ] = None
    engine_version: Annotated[
        str | None,
        Field(description="kind replication-group, required: Valkey version, in quotes: 7.2, 8.0, 8.1 or 8.2."),
    ] = None
    node_type: Annotated[
        str | None,
        Field(
            description=(
                "kind replication-group, required: a current-generation node type cache.<family>.<size>, "
                "family one of t4g, t3, m7g, m6g, m5, r7g, r6g, r5, c7gn (e.g. cache.r7g.large), offered "
                "in every region of the environment."
            )
        ),
    ] = None
    cluster_mode: Annotated[
        bool,
        Field(
            description=(
                "kind replication-group: on, the data is split over `shards`; off, one shard. ElastiCache"
                " cannot switch a group's cluster mode in one update: the group is named by its mode "
                "(…-cache-rg, …-cache-cm), so switching creates a new, empty group and deletes the old "
                "one (production: after a final snapshot; the users stay)."
            )
        ),
    ] = False
    shards: Annotated[
        int,
        Field(
            ge=1,
            le=500,
            description="kind replication-group: shards (node groups), 1 to 500; more than 1 needs cluster_mode.",
        ),
    ] = 1
    replicas_per_shard: Annotated[
        int, Field(ge=0, le=5, description="kind replication-group: replicas per shard, 0 to 5. Production: 1 or more.")
    ] = 1
    multi_az: Annotated[
        bool | None,
        Field(
            description=(
                "kind replication-group: Multi-AZ with automatic failover; needs a replica. Left out: on "
                "whenever replicas_per_shard is above 0. Production requires it."
            )
        ),
    ] = None
    parameters: Annotated[
        dict[str, str],
        Field(
            description=(
                "kind replication-group: parameter group entries, e.g. {maxmemory-policy: allkeys-lru}. "
                "cluster-enabled follows cluster_mode and may be left out."
            )
        ),
    ] = {}
    maintenance_window: Annotated[
        str,
        Field(
            description=(
                "kind replication-group: the weekly UTC maintenance window ddd:HH:MM-ddd:HH:MM, 60 "
                "minutes to 24 hours, not overlapping the snapshot hour."
            )
        ),
    ] = "sun:05:00-sun:06:00"
    log_retention_days: Annotated[
        LogRetentionDays,
        Field(
            description=(
                "kind replication-group: days the slow log and engine log groups keep their events: a "
                "CloudWatch Logs retention period. Production: 365 or more."
            )
        ),
    ] = 30

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
