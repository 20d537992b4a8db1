"""Typed, validated settings: one YAML file per environment.

Data flows one way: ``environments/<env>.yaml`` -> :class:`Settings` -> stacks. Only
``app.py`` calls :func:`load_settings`; stacks receive the parts they need as keyword
arguments. Every error a user can cause surfaces as one :class:`SettingsError` whose
message names the setting, the bad value and what is allowed.

One module per section (``network``, ``eks``, ``database``, ``cache``, ``registry``, ``ingress``,
``github``, ``observability``, ``account``, ``services``); :mod:`.model` holds :class:`Settings`,
:mod:`.rules` the rules that relate sections, :mod:`.loading` the reading of the files and
:mod:`.errors` how a mistake reads. ``docs/settings.md`` is generated from the models
(``scripts/settings_reference.py``). Every name is importable from here.
"""

from infra.config.settings.account import AccountStackSettings
from infra.config.settings.base import (
    _ENVIRONMENT_NAME,
    CATALOGUE_FILE,
    ENVIRONMENTS_DIR,
    LOG_RETENTION_DAYS,
    PRODUCTION_LOG_RETENTION_DAYS,
    LogRetentionDays,
    SettingsError,
)
from infra.config.settings.cache import CACHE_KINDS, CACHE_NODE_FAMILIES, VALKEY_VERSIONS, CacheSettings
from infra.config.settings.database import (
    AURORA_POSTGRES_VERSIONS,
    GLOBAL_DATABASE_VERSIONS,
    DatabaseSettings,
    ServerlessCapacity,
    minor_upgrades,
)
from infra.config.settings.eks import (
    EKS_STANDARD_SUPPORT,
    EksSettings,
    EndpointSettings,
    KarpenterSettings,
    NodeGroupSettings,
    support_dates,
)
from infra.config.settings.errors import Sources, format_validation_error
from infra.config.settings.files import DuplicateKeyError, StrictLoader, known_environments, parse_yaml, read_yaml
from infra.config.settings.github import GITHUB_HOSTED_LABEL_PREFIXES, GithubSettings
from infra.config.settings.ingress import IngressCertificateSettings
from infra.config.settings.loading import (
    check_one_provider_per_account,
    command_line_overrides,
    command_line_sources,
    environments_sharing_account,
    load_catalogue,
    load_settings,
)
from infra.config.settings.model import Settings
from infra.config.settings.network import INTERFACE_ENDPOINTS, NetworkSettings
from infra.config.settings.observability import AlarmThresholds, NotificationSettings, ObservabilitySettings
from infra.config.settings.registry import RegistrySettings
from infra.config.settings.services import _SERVICE_NAME, DATA_STORES, ServiceSettings

__all__ = [
    "AURORA_POSTGRES_VERSIONS",
    "CACHE_KINDS",
    "CACHE_NODE_FAMILIES",
    "CATALOGUE_FILE",
    "DATA_STORES",
    "EKS_STANDARD_SUPPORT",
    "ENVIRONMENTS_DIR",
    "GITHUB_HOSTED_LABEL_PREFIXES",
    "GLOBAL_DATABASE_VERSIONS",
    "INTERFACE_ENDPOINTS",
    "LOG_RETENTION_DAYS",
    "PRODUCTION_LOG_RETENTION_DAYS",
    "VALKEY_VERSIONS",
    "_ENVIRONMENT_NAME",
    "_SERVICE_NAME",
    "AccountStackSettings",
    "AlarmThresholds",
    "CacheSettings",
    "DatabaseSettings",
    "DuplicateKeyError",
    "EksSettings",
    "EndpointSettings",
    "GithubSettings",
    "IngressCertificateSettings",
    "KarpenterSettings",
    "LogRetentionDays",
    "NetworkSettings",
    "NodeGroupSettings",
    "NotificationSettings",
    "ObservabilitySettings",
    "RegistrySettings",
    "ServerlessCapacity",
    "ServiceSettings",
    "Settings",
    "SettingsError",
    "Sources",
    "StrictLoader",
    "check_one_provider_per_account",
    "command_line_overrides",
    "command_line_sources",
    "environments_sharing_account",
    "format_validation_error",
    "known_environments",
    "load_catalogue",
    "load_settings",
    "minor_upgrades",
    "parse_yaml",
    "read_yaml",
    "support_dates",
]
