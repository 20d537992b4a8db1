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

    min_acu: Annotated[
        float,
        Field(
            description=(
                "Fewest Aurora capacity units per instance: 0 to 256 in steps of 0.5; 0 lets the writer "
                "auto-pause when idle (production: 0.5 or more)."
            )
        ),
    ]
    max_acu: Annotated[
        float,
        Field(description="Most Aurora capacity units per instance: 1 to 256 in steps of 0.5, and at least min_acu."),
    ]

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
    """Aurora PostgreSQL: Serverless v2 (``capacity``) or provisioned instances (``instance_class``), with
    readers, backups and monitoring; in an environment of several regions, what the other regions get."""

    engine_version: Annotated[
        str,
        Field(
            description=(
                'Aurora PostgreSQL version, in quotes (e.g. "17.9"), from an allow-list of current, '
                "non-deprecated minors: 16.9, 16.10, 16.11, 16.13, 17.5, 17.6, 17.7, 17.9. A global "
                "database's minor upgrade goes through secondary_engine_version first."
            )
        ),
    ]
    capacity: Annotated[
        ServerlessCapacity | None,
        Field(
            description=("Serverless v2 capacity (min_acu, max_acu). Set exactly one of capacity and instance_class.")
        ),
    ] = None
    instance_class: Annotated[
        str | None,
        Field(
            description=(
                "Provisioned instances of this DB instance class (e.g. r7g.large; the db. prefix is "
                "optional), offered in every region of the environment, instead of Serverless v2. Set "
                "exactly one of capacity and instance_class. Not a T class when a service uses the "
                "database (the RDS Data API, which creates the services' database users, does not run on "
                "them)."
            )
        ),
    ] = None
    readers: Annotated[
        int,
        Field(
            ge=0,
            le=15,
            description=(
                "Reader instances besides the writer, 0 to 15; readers scale with the writer. Production:"
                " 1 or more (a reader in another zone)."
            ),
        ),
    ]
    backup_retention_days: Annotated[
        int,
        Field(
            ge=1,
            le=35,
            description=(
                "Days of automated backups, 1 to 35: point-in-time recovery over this window. Production: 14 or more."
            ),
        ),
    ]
    monitoring_interval_seconds: Annotated[
        int, Field(description="Enhanced monitoring (OS metrics) interval in seconds: 0 (off), 1, 5, 10, 15, 30 or 60.")
    ]
    performance_insights: Annotated[
        bool, Field(description="Performance Insights on the instances (encrypted with the database's key).")
    ]
    log_retention_days: Annotated[
        LogRetentionDays,
        Field(
            description=(
                "Days the database's PostgreSQL log group keeps its events: a CloudWatch Logs retention "
                "period. Production: 365 or more."
            )
        ),
    ]
    database_name: Annotated[
        str,
        Field(
            description=(
                "The database created in the cluster: a PostgreSQL identifier (lowercase letters, digits,"
                " underscores, starting with a letter, up to 63 characters)."
            )
        ),
    ] = "app"
    other_regions: Annotated[
        Literal["global", "regional", "none"],
        Field(
            description=(
                "With several regions (setting regions): what each region other than the primary gets. "
                "global: a read-only secondary cluster of an Aurora global database (required in "
                "production); regional: a cluster of its own, not replicated; none: no database there."
            )
        ),
    ] = "global"
    writer_region: Annotated[
        str | None,
        Field(
            description=(
                "A global database only: the region whose cluster is the writer now; left out, the "
                "primary region (region). Set after a switchover or failover moves the writer (docs/regions.md, "
                '"Switchover and failover"); the stacks keep their names and regions, only what follows '
                "the writer changes. One of the environment's regions."
            )
        ),
    ] = None
    secondary_engine_version: Annotated[
        str | None,
        Field(
            description=(
                "A global database's minor upgrade, step one: the clusters of the regions other than the "
                "writer's at this later minor of engine_version's major (AWS upgrades a global database's"
                " secondaries before its primary). Step two sets engine_version to it and deletes this "
                "key."
            )
        ),
    ] = None

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
