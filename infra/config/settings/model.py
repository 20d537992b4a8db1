"""The whole of one environment's settings: every section, the top-level settings, and what follows
from them (regions, names). The checks that relate two sections are in :mod:`.rules`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

from pydantic import Field, PrivateAttr, field_validator, model_validator

from infra.config.regions import AWS_REGIONS, zone_names
from infra.config.settings.account import AccountStackSettings
from infra.config.settings.base import _NAME, ENVIRONMENTS_DIR, _aws_region, _Model
from infra.config.settings.cache import CacheSettings
from infra.config.settings.database import DatabaseSettings
from infra.config.settings.eks import EksSettings
from infra.config.settings.github import GithubSettings
from infra.config.settings.ingress import IngressCertificateSettings
from infra.config.settings.network import NetworkSettings
from infra.config.settings.observability import ObservabilitySettings
from infra.config.settings.registry import RegistrySettings
from infra.config.settings.rules import check_rules
from infra.config.settings.services import ServiceSettings

if TYPE_CHECKING:
    from infra.config.delivery import Promotion


class Settings(_Model):
    """One environment's settings. ``environment`` comes from the file name, not its content."""

    environment: Annotated[
        str,
        Field(
            description=(
                "The environment's name: the settings file's name (2-10 lowercase letters and digits); "
                "not written in the file."
            )
        ),
    ]
    project: Annotated[
        str,
        Field(
            description=(
                "Prefix of every stack and resource name and the project tag: 3-20 characters, lowercase "
                "letters, digits and hyphens, starting with a letter."
            )
        ),
    ]
    region: Annotated[
        str,
        Field(
            description=(
                "The primary region: an AWS region of the aws partition. Overridable with --context "
                "region= (make REGION=) for a single-region environment only."
            )
        ),
    ]
    regions: Annotated[
        list[str] | None,
        Field(
            description=(
                "Every region of the environment, the primary (region) first, each once, e.g. [us-east-1,"
                " us-west-2]. Left out: the primary alone. See docs/regions.md."
            )
        ),
    ] = None
    account: Annotated[
        str | None,
        Field(
            description=(
                "The 12-digit AWS account id, in quotes. Left out: --context account= or "
                "CDK_DEFAULT_ACCOUNT (set by the CDK CLI from the credentials)."
            )
        ),
    ] = None
    retain_data: Annotated[
        bool,
        Field(
            description=(
                "Keep stateful resources when their stacks are deleted, and give the stacks termination "
                "protection. Production requires true."
            )
        ),
    ]
    production: Annotated[
        bool,
        Field(
            description=(
                "Turn on the production guardrails: data retained, no API endpoint open to 0.0.0.0/0, a "
                "node in every zone, Aurora min 0.5 ACU, a reader, 14 days of backups, 7 days of cache "
                "snapshots, alarm notifications, cluster admins, every log group kept 365 days or more."
            )
        ),
    ]
    network: Annotated[NetworkSettings, Field(description="The VPC.")]
    eks: Annotated[EksSettings, Field(description="The EKS cluster.")]
    database: Annotated[DatabaseSettings, Field(description="The Aurora PostgreSQL database.")]
    cache: Annotated[CacheSettings, Field(description="The ElastiCache for Valkey cache.")]
    registry: Annotated[RegistrySettings, Field(description="The ECR repositories' lifecycle.")]
    github: Annotated[GithubSettings, Field(description="The GitHub repository that deploys.")]
    ingress_certificate: Annotated[
        IngressCertificateSettings | None,
        Field(
            description=(
                "Optional: the ACM certificate the platform creates for the ingresses (output "
                "CertificateArn of the cicd stack)."
            )
        ),
    ] = None
    account_stack: Annotated[AccountStackSettings, Field(description="What exists once per AWS account.")] = (
        AccountStackSettings()
    )
    observability: Annotated[
        ObservabilitySettings, Field(description="Container Insights, log retention, alarms and notifications.")
    ] = ObservabilitySettings()
    services: Annotated[
        list[ServiceSettings],
        Field(
            min_length=1,
            description=(
                "The service catalogue: at least one service, names unique. Not in the environment files:"
                " the shared infra/config/services.yaml serves every environment (an environment file may"
                " carry its own services: instead)."
            ),
        ),
    ]
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

    @property
    def writer_region(self) -> str:
        """The region whose database cluster is the writer: the primary region unless a switchover or
        failover moved it (``database.writer_region``)."""
        return self.database.writer_region or self.primary_region

    @field_validator("services")
    @classmethod
    def _unique_services(cls, value: list[ServiceSettings]) -> list[ServiceSettings]:
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError(f"service names must be unique, got {names}")
        return value

    @model_validator(mode="after")
    def _cross_section_rules(self) -> Settings:
        check_rules(self)
        return self

    @property
    def name_prefix(self) -> str:
        """Names resources in every region (regional names: the same in each)."""
        return f"{self.project}-{self.environment}"

    @property
    def stack_prefix(self) -> str:
        """Names this region's stacks: the primary's keep the names of a single-region environment."""
        return self.name_prefix if self.is_primary else f"{self.name_prefix}-{self.region}"
