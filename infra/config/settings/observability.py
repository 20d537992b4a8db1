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

    database_capacity_percent: Annotated[
        int,
        Field(
            ge=50,
            le=100,
            description="Aurora Serverless v2: alarm when capacity reaches this percentage of max_acu, 50 to 100.",
        ),
    ] = 90
    database_cpu_percent: Annotated[
        int, Field(ge=50, le=100, description="Aurora: alarm on CPU utilisation at this percentage, 50 to 100.")
    ] = 90
    database_freeable_memory_mib: Annotated[
        int,
        Field(
            ge=64,
            le=262_144,
            description="Aurora: alarm when freeable memory falls below this many MiB, 64 to 262,144.",
        ),
    ] = 256
    database_replica_lag_seconds: Annotated[
        int,
        Field(
            ge=1, le=3600, description="Aurora: alarm when a reader lags the writer by this many seconds, 1 to 3600."
        ),
    ] = 30
    database_deadlocks_per_minute: Annotated[
        int, Field(ge=1, le=10_000, description="Aurora: alarm at this many deadlocks per minute, 1 to 10,000.")
    ] = 5
    database_storage_gib: Annotated[
        int,
        Field(
            ge=1,
            le=131_072,
            description="Aurora: alarm when the cluster's storage reaches this many GiB, 1 to 131,072.",
        ),
    ] = 100
    cache_usage_percent: Annotated[
        int,
        Field(
            ge=50,
            le=100,
            description=(
                "Cache: alarm when usage reaches this percentage of its limits (Serverless: data and "
                "ECPU; nodes: memory), 50 to 100."
            ),
        ),
    ] = 90
    cache_cpu_percent: Annotated[
        int, Field(ge=50, le=100, description="Cache: alarm on CPU utilisation at this percentage, 50 to 100.")
    ] = 80
    cache_evictions_per_5_minutes: Annotated[
        int,
        Field(ge=1, le=10_000_000, description="Cache: alarm at this many evictions in 5 minutes, 1 to 10,000,000."),
    ] = 1000
    cache_replication_lag_seconds: Annotated[
        int, Field(ge=1, le=3600, description="Cache: alarm when a replica lags by this many seconds, 1 to 3600.")
    ] = 10
    nat_dropped_packets_per_5_minutes: Annotated[
        int,
        Field(
            ge=1,
            le=1_000_000_000,
            description=(
                "NAT gateways: alarm at this many dropped packets in 5 minutes, 1 to 1,000,000,000 "
                "(port-allocation errors alarm at the first one)."
            ),
        ),
    ] = 1000
    api_server_errors_per_5_minutes: Annotated[
        int,
        Field(
            ge=1,
            le=1_000_000,
            description=(
                "EKS control plane: alarm when the Kubernetes API answers more than this many requests "
                "with 5xx in 5 minutes, 1 to 1,000,000."
            ),
        ),
    ] = 50
    load_balancer_5xx_per_5_minutes: Annotated[
        int,
        Field(
            ge=1,
            le=1_000_000,
            description=(
                "Load balancers the controller creates: alarm at this many 5xx responses in 5 minutes, 1 to 1,000,000."
            ),
        ),
    ] = 50


class NotificationSettings(_Model):
    """Who the environment's alarm topic notifies: email addresses, HTTPS endpoints (chat webhooks)."""

    emails: Annotated[
        list[str],
        Field(
            description=(
                "Email addresses subscribed to the alarm topic, each once; each confirms the subscription"
                " AWS sends. Production needs an email or an HTTPS endpoint."
            )
        ),
    ] = []
    https_endpoints: Annotated[
        list[str],
        Field(
            description=(
                "HTTPS URLs (e.g. chat webhooks) subscribed to the alarm topic, each once; http:// is "
                "refused (alarm text would cross the internet in clear)."
            )
        ),
    ] = []

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

    enhanced_container_insights: Annotated[
        bool,
        Field(
            description=(
                "Container Insights with enhanced observability: per-pod and per-container metrics "
                "(priced per observation); off: the cluster, node and namespace level metrics of standard"
                " Container Insights."
            )
        ),
    ] = True
    container_log_retention_days: Annotated[
        LogRetentionDays,
        Field(
            description=(
                "Days the containers' log groups keep their events: a CloudWatch Logs retention period. "
                "Production: 365 or more."
            )
        ),
    ] = 30
    function_log_retention_days: Annotated[
        LogRetentionDays,
        Field(
            description=(
                "Days the log groups of the platform's own deploy-time functions (log group adoption, "
                "database users) keep their events: a CloudWatch Logs retention period. Production: 365 "
                "or more."
            )
        ),
    ] = 30
    notifications: Annotated[NotificationSettings, Field(description="Who the environment's alarm topic notifies.")] = (
        NotificationSettings()
    )
    alarms: Annotated[AlarmThresholds, Field(description="When each alarm fires.")] = AlarmThresholds()
