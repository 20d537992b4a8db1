"""observability: Container Insights, container and function log retention, alarms and who hears them."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from infra.config.settings.base import LogRetentionDays, _Model

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
