"""The rules that relate settings of different sections, in the order they are checked.

Each section checks itself (its module's validators); these rules need the whole environment: its
regions, whether it is production, and how one section's choice constrains another's. :data:`RULES`
lists them in the order :func:`check_rules` applies them, so when several are broken, the first one
listed is the one reported (a person fixes one and the next surfaces).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from infra.config.instance_types import family_unavailable, unavailable
from infra.config.regions import NO_DATA_API, ZoneError, zone_names
from infra.config.settings.base import LOG_RETENTION_DAYS, PRODUCTION_LOG_RETENTION_DAYS
from infra.config.settings.cache import CacheSettings
from infra.config.settings.database import GLOBAL_DATABASE_VERSIONS, DatabaseSettings, minor_upgrades
from infra.config.settings.eks import EksSettings
from infra.config.settings.github import GithubSettings
from infra.config.settings.network import NetworkSettings
from infra.config.settings.observability import ObservabilitySettings
from infra.config.settings.services import ServiceSettings


class Settings(Protocol):
    """What the rules read of an environment's settings (infra/config/settings/model.py's ``Settings``,
    which applies them: a protocol here, so that this module needs nothing of the model's)."""

    @property
    def region(self) -> str: ...
    @property
    def regions(self) -> list[str] | None: ...
    @property
    def retain_data(self) -> bool: ...
    @property
    def production(self) -> bool: ...
    @property
    def network(self) -> NetworkSettings: ...
    @property
    def eks(self) -> EksSettings: ...
    @property
    def database(self) -> DatabaseSettings: ...
    @property
    def cache(self) -> CacheSettings: ...
    @property
    def github(self) -> GithubSettings: ...
    @property
    def observability(self) -> ObservabilitySettings: ...
    @property
    def services(self) -> list[ServiceSettings]: ...

    @property
    def all_regions(self) -> list[str]: ...
    @property
    def other_regions(self) -> list[str]: ...
    @property
    def account_stack_region(self) -> str: ...
    @property
    def log_retentions(self) -> dict[str, int]: ...
    @property
    def name_prefix(self) -> str: ...


# Regions.


def primary_region_first(s: Settings) -> None:
    """`regions`, when given, starts with the primary region `region`."""
    if s.regions is not None and s.regions[0] != s.region:
        others = [r for r in s.regions if r != s.region]
        raise ValueError(
            f"setting 'regions' = {s.regions}: the first region is the primary, which is setting 'region' "
            f"= {s.region!r}; allowed: {[s.region, *others]}"
        )


def zones_exist_in_every_region(s: Settings) -> None:
    """Every region of the environment has the zones `network.zones` names."""
    for region in s.all_regions:
        try:
            zone_names(region, s.network.zones)
        except ZoneError as error:
            raise ValueError(f"setting 'network.zones' = {s.network.zones!r}: {error}") from None


def types_offered_in_every_region(s: Settings) -> None:
    """Every region offers the node group's instance types, a size of each Karpenter family, the cache's node
    type and the database's class."""
    wanted = [("eks.node_group.instance_types", "ec2", n) for n in s.eks.node_group.instance_types]
    if s.cache.kind == "replication-group" and s.cache.node_type:
        wanted.append(("cache.node_type", "elasticache", s.cache.node_type))
    if s.database.instance_class:
        wanted.append(
            ("database.instance_class", "aurora_postgresql", "db." + s.database.instance_class.removeprefix("db."))
        )
    for setting, kind, name in wanted:
        why = unavailable(kind, name, s.all_regions)
        if why:
            raise ValueError(f"setting '{setting}': {why}")
    karpenter = s.eks.karpenter
    if karpenter is None:
        return
    for family in karpenter.instance_families:
        why = family_unavailable(family, karpenter.instance_sizes, s.all_regions)
        if why:
            raise ValueError(f"setting 'eks.karpenter.instance_families': {why}")


def data_api_where_database_users_are_made(s: Settings) -> None:
    """A service uses the database only where the RDS Data API runs: each writer's region, no T class."""
    users = [svc.name for svc in s.services if "database" in svc.uses]
    # Users are created where a writer is: the primary, and each region with a cluster of its own.
    writers = [s.region] + (s.other_regions if s.database.other_regions == "regional" else [])
    for region in writers:
        if region in NO_DATA_API and users:
            setting = f"'region' = {region!r}" if region == s.region else f"'regions' names {region!r}"
            raise ValueError(
                f"setting {setting}: the RDS Data API, through which the platform creates "
                f"the database users of {', '.join(users)}, is not available there; allowed: another region"
                + ("" if region == s.region else " (or database.other_regions: global or none)")
            )
    klass = (s.database.instance_class or "").removeprefix("db.")
    if klass.startswith("t") and users:
        raise ValueError(
            f"setting 'database.instance_class' = {s.database.instance_class!r}: the RDS Data API, through "
            "which the platform creates the database users, does not run on T instance classes; allowed: "
            "another class (such as r7g.large) or Serverless v2 (database.capacity)"
        )


# Production.


def production_retains_data(s: Settings) -> None:
    """Production has `retain_data: true`."""
    if s.production and not s.retain_data:
        raise ValueError(
            "retain_data = False is not allowed in production: data stores would be deleted with their "
            "stacks; allowed: true"
        )


def production_api_not_open_to_the_internet(s: Settings) -> None:
    """Production's `eks.endpoint.public_access_cidrs` does not hold 0.0.0.0/0."""
    if s.production and "0.0.0.0/0" in s.eks.endpoint.public_access_cidrs:
        raise ValueError(
            "eks.endpoint.public_access_cidrs: '0.0.0.0/0' is not allowed in production; "
            "allowed: the CIDRs of your offices and CI runners, or [] for a private endpoint"
        )


def production_database_does_not_pause(s: Settings) -> None:
    """Production's Serverless v2 database has `database.capacity.min_acu` 0.5 or more (no auto-pause)."""
    capacity = s.database.capacity
    if s.production and capacity is not None and capacity.min_acu < 0.5:
        raise ValueError(
            f"database.capacity.min_acu = {capacity.min_acu} is not allowed in production "
            "(auto-pause would make the first query after idle wait for the database); allowed: 0.5 or more"
        )


def production_keeps_two_weeks_of_backups(s: Settings) -> None:
    """Production has `database.backup_retention_days` 14 or more."""
    if s.production and s.database.backup_retention_days < 14:
        raise ValueError(
            f"database.backup_retention_days = {s.database.backup_retention_days} is below the "
            "production minimum; allowed: 14 to 35"
        )


def production_has_a_database_reader(s: Settings) -> None:
    """Production has `database.readers` 1 or more."""
    if s.production and s.database.readers < 1:
        raise ValueError("database.readers = 0: production needs a reader in another zone; allowed: 1 to 15")


def production_deploys_reach_a_private_endpoint(s: Settings) -> None:
    """Production with a private API endpoint deploys from self-hosted runners, not GitHub-hosted ones."""
    if s.production and not s.eks.endpoint.public_access_cidrs and s.github.github_hosted_runner:
        raise ValueError(
            f"github.deploy_runs_on = {s.github.deploy_runs_on}: GitHub-hosted runners cannot reach a "
            "production cluster whose API endpoint is private (eks.endpoint.public_access_cidrs = []); "
            "allowed: labels of self-hosted runners inside the VPC, "
            f"e.g. [self-hosted, linux, {s.name_prefix}]"
        )


def production_alarms_notify_someone(s: Settings) -> None:
    """Production has at least one email or HTTPS endpoint in `observability.notifications`."""
    if s.production and not s.observability.notifications.count:
        raise ValueError(
            "observability.notifications: production needs someone who hears its alarms; allowed: one or "
            "more emails (e.g. [oncall@example.com]) or https_endpoints (a chat webhook)"
        )


def production_has_cluster_admins(s: Settings) -> None:
    """Production has at least one role in `eks.admin_roles`."""
    if s.production and not s.eks.admin_roles:
        raise ValueError(
            "eks.admin_roles = []: production needs someone who can operate the cluster (the deployer is "
            "not admin); allowed: one or more IAM role names or ARNs, e.g. [platform-admin]"
        )


def production_keeps_logs_a_year(s: Settings) -> None:
    """Production keeps every log group the settings decide 365 days or more."""
    if not s.production:
        return
    year = PRODUCTION_LOG_RETENTION_DAYS
    for setting, days in s.log_retentions.items():
        if days < year:
            raise ValueError(
                f"{setting} = {days} is below the production minimum of {year} days "
                "(AWS Control Tower control CT.CLOUDWATCH.PR.2: production log groups are kept a year); "
                f"allowed: {', '.join(str(d) for d in LOG_RETENTION_DAYS if d >= year)}"
            )


def production_has_a_node_per_zone(s: Settings) -> None:
    """Production's `eks.node_group.min_size` is at least the number of zones."""
    zones = s.network.zone_count
    if s.production and s.eks.node_group.min_size < zones:
        raise ValueError(
            f"eks.node_group.min_size = {s.eks.node_group.min_size} is below one node per zone ({zones}) in production"
        )


# A global database's writer and minor upgrade.


def writer_settings_need_a_global_database(s: Settings) -> None:
    """`database.writer_region` and `database.secondary_engine_version` apply to a global database only."""
    database = s.database
    is_global = bool(s.other_regions) and database.other_regions == "global"
    for key, value in (
        ("writer_region", database.writer_region),
        ("secondary_engine_version", database.secondary_engine_version),
    ):
        if value is not None and not is_global:
            raise ValueError(
                f"setting 'database.{key}' = {value!r} applies to a global database only (several regions "
                "with database.other_regions: global); allowed: leave it out"
            )


def writer_region_is_a_region_of_the_environment(s: Settings) -> None:
    """`database.writer_region` is one of the environment's regions."""
    writer = s.database.writer_region
    if writer is not None and writer not in s.all_regions:
        raise ValueError(
            f"setting 'database.writer_region' = {writer!r} is not a region of this "
            f"environment; allowed: one of {', '.join(s.all_regions)}"
        )


def secondary_version_is_a_minor_upgrade(s: Settings) -> None:
    """`database.secondary_engine_version` is a later minor of `database.engine_version`'s major."""
    later, current = s.database.secondary_engine_version, s.database.engine_version
    if later is not None and later not in minor_upgrades(current):
        raise ValueError(
            f"setting 'database.secondary_engine_version' = {later!r}: step one of a minor upgrade of the "
            f"global database from database.engine_version = {current!r}; allowed: a later minor of the "
            f"same major ({', '.join(minor_upgrades(current)) or 'none accepted'})"
        )


# Several regions.


def production_regions_share_a_global_database(s: Settings) -> None:
    """Production in several regions has `database.other_regions: global`."""
    mode = s.database.other_regions
    if s.other_regions and s.production and mode != "global":
        raise ValueError(
            f"setting 'database.other_regions' = {mode!r} is not allowed in production: a region outage would "
            "lose the database's recent writes and its service; allowed: global (an Aurora global database)"
        )


def global_database_version_supported(s: Settings) -> None:
    """A global database (several regions, `database.other_regions: global`) runs a version that supports one."""
    is_global = bool(s.other_regions) and s.database.other_regions == "global"
    if is_global and s.database.engine_version not in GLOBAL_DATABASE_VERSIONS:
        raise ValueError(
            f"setting 'regions' = {s.regions} with database.other_regions = 'global': Aurora PostgreSQL "
            f"{s.database.engine_version} (setting 'database.engine_version') has no global database "
            f"support; allowed: one of {', '.join(GLOBAL_DATABASE_VERSIONS)}, or a single region"
        )


def private_regions_deploy_from_their_own_runners(s: Settings) -> None:
    """Several regions, private endpoints, self-hosted runners: `github.deploy_runs_on` holds `{region}`."""
    private = not s.eks.endpoint.public_access_cidrs
    if (
        s.other_regions
        and private
        and not s.github.github_hosted_runner
        and not any("{region}" in x for x in s.github.deploy_runs_on)
    ):
        raise ValueError(
            f"github.deploy_runs_on = {s.github.deploy_runs_on}: the clusters' API endpoints are private, so a "
            "deploy must run inside the region's VPC, but these labels name the same runners for every region; "
            "allowed: labels with {region}, which the deploy workflow replaces with the region deployed to, "
            f'e.g. [self-hosted, linux, "{s.name_prefix}-{{region}}"] (in quotes: YAML reads {{ as a mapping)'
        )


def account_stack_in_the_primary_region(s: Settings) -> None:
    """Several regions: the account stack (the registry's replication rules) is in the primary region."""
    if s.other_regions and s.account_stack_region != s.region:
        raise ValueError(
            f"setting 'account_stack.region' = {s.account_stack_region!r}: an environment of several regions "
            f"({', '.join(s.all_regions)}) replicates its images from its primary region {s.region!r}, "
            "and the account stack holds the registry's replication rules in the region it lives in; allowed: "
            f"account_stack.region: {s.region}"
        )


# Production's cache.


def production_keeps_a_week_of_cache_snapshots(s: Settings) -> None:
    """Production has `cache.snapshot_retention_days` 7 or more."""
    if s.production and s.cache.snapshot_retention_days < 7:
        raise ValueError(
            f"cache.snapshot_retention_days = {s.cache.snapshot_retention_days} is below the "
            "production minimum; allowed: 7 to 35"
        )


def production_replication_group_keeps_15_days_of_snapshots(s: Settings) -> None:
    """Production's replication group has `cache.snapshot_retention_days` 15 or more."""
    if s.production and s.cache.kind == "replication-group" and s.cache.snapshot_retention_days < 15:
        raise ValueError(
            f"cache.snapshot_retention_days = {s.cache.snapshot_retention_days} is below the production "
            "minimum for a replication group (the NIST 800-53 and HIPAA packs ask 15 days of its backups); "
            "allowed: 15 to 35"
        )


def production_replication_group_fails_over(s: Settings) -> None:
    """Production's replication group has a replica per shard and Multi-AZ with automatic failover."""
    if s.production and s.cache.kind == "replication-group" and not s.cache.failover:
        raise ValueError(
            f"cache.multi_az = {str(s.cache.multi_az).lower()} with cache.replicas_per_shard = "
            f"{s.cache.replicas_per_shard} is not allowed in production: a node failure would lose the "
            "cache until it is replaced; allowed: replicas_per_shard 1 to 5 with multi_az true (the default)"
        )


# The order of checking: when several rules are broken, the first listed is reported.
RULES: tuple[Callable[[Settings], None], ...] = (
    primary_region_first,
    zones_exist_in_every_region,
    types_offered_in_every_region,
    data_api_where_database_users_are_made,
    production_retains_data,
    production_api_not_open_to_the_internet,
    production_database_does_not_pause,
    production_keeps_two_weeks_of_backups,
    production_has_a_database_reader,
    production_deploys_reach_a_private_endpoint,
    production_alarms_notify_someone,
    production_has_cluster_admins,
    production_keeps_logs_a_year,
    production_has_a_node_per_zone,
    writer_settings_need_a_global_database,
    writer_region_is_a_region_of_the_environment,
    secondary_version_is_a_minor_upgrade,
    production_regions_share_a_global_database,
    global_database_version_supported,
    private_regions_deploy_from_their_own_runners,
    account_stack_in_the_primary_region,
    production_keeps_a_week_of_cache_snapshots,
    production_replication_group_keeps_15_days_of_snapshots,
    production_replication_group_fails_over,
)


def check_rules(settings: Settings) -> None:
    """Apply :data:`RULES` in order; the first broken one raises its ValueError."""
    for rule in RULES:
        rule(settings)
