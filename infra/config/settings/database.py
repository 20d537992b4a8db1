"""database: Aurora PostgreSQL, Serverless v2 or provisioned, in one region or several."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from infra.config.settings.base import LogRetentionDays, _Model

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
    # until a switchover or failover moves it (README, "Switchover and failover"); the stacks keep
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
