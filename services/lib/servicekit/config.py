"""Configuration read from the environment the chart sets: the platform's ConfigMap (``platform``,
written by the services stack from the stacks' real values) and the service's own (``config:`` in
its Helm values). Nothing here names an environment; a missing required variable stops the service
at start with a message naming it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# The RDS global CA bundle, fetched at image build time (each Dockerfile's build stage).
RDS_CA_BUNDLE = "/app/certs/rds-global-bundle.pem"


class ConfigError(ValueError):
    """A variable is missing or has a value the service cannot use."""


class Env:
    """Typed reads of one environment mapping (``os.environ`` by default)."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.values = os.environ if values is None else values

    def text(self, name: str, default: str | None = None) -> str:
        value = self.values.get(name, "")
        if value:
            return str(value)
        if default is None:
            raise ConfigError(f"environment variable {name} is not set")
        return default

    def optional(self, name: str) -> str | None:
        return str(self.values.get(name) or "") or None

    def integer(self, name: str, default: int | None = None) -> int:
        text = self.text(name, None if default is None else str(default))
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"environment variable {name} = {text!r} is not an integer") from None

    def flag(self, name: str, default: bool) -> bool:
        text = self.text(name, "true" if default else "false").lower()
        if text not in {"true", "false", "1", "0", "yes", "no"}:
            raise ConfigError(f"environment variable {name} = {text!r} is not true or false")
        return text in {"true", "1", "yes"}

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in allowed:
            raise ConfigError(f"environment variable {name} = {value!r} must be one of {', '.join(allowed)}")
        return value


@dataclass(frozen=True)
class ServiceConfig:
    """What the chart's own ConfigMap and the pod spec give every service."""

    name: str
    environment: str
    port: int
    log_level: str

    @classmethod
    def from_env(cls, env: Env | None = None) -> ServiceConfig:
        env = env or Env()
        return cls(
            name=env.text("SERVICE_NAME"),
            environment=env.text("ENVIRONMENT"),
            port=env.integer("PORT", 8080),
            log_level=env.text("LOG_LEVEL", "info").lower(),
        )


@dataclass(frozen=True)
class DatabaseConfig:
    """Aurora PostgreSQL as the service's own user. ``auth``: ``iam`` (the platform's: a token from
    the pod's role, through IRSA or EKS Pod Identity) or ``password`` (local runs; empty password for trust auth)."""

    host: str
    port: int
    name: str
    user: str
    region: str
    auth: str
    password: str | None
    sslmode: str
    sslrootcert: str
    pool_max: int

    @classmethod
    def from_env(cls, env: Env | None = None) -> DatabaseConfig:
        env = env or Env()
        auth = env.choice("DATABASE_AUTH", "iam", ("iam", "password"))
        sslmode = env.choice(
            "DATABASE_SSLMODE", "verify-full", ("verify-full", "verify-ca", "require", "prefer", "disable")
        )
        if auth == "iam" and sslmode != "verify-full":
            # The token is a bearer credential for 15 minutes: only to a server whose name was verified.
            raise ConfigError(f"DATABASE_SSLMODE = {sslmode!r}: IAM authentication needs verify-full")
        return cls(
            host=env.text("DATABASE_HOST"),
            port=env.integer("DATABASE_PORT", 5432),
            name=env.text("DATABASE_NAME"),
            user=env.text("DATABASE_USER"),
            region=env.text("AWS_REGION") if auth == "iam" else env.text("AWS_REGION", ""),
            auth=auth,
            password=env.optional("DATABASE_PASSWORD"),
            sslmode=sslmode,
            sslrootcert=env.text("DATABASE_SSLROOTCERT", RDS_CA_BUNDLE),
            pool_max=env.integer("DATABASE_POOL_MAX", 4),
        )


@dataclass(frozen=True)
class CacheConfig:
    """ElastiCache for Valkey as the service's own IAM user. ``name``: the serverless cache's name or
    the replication group's id (the host of the IAM token); ``kind``: serverless or replication-group;
    ``auth``: ``iam`` (the platform's), ``password`` or ``none`` (local runs)."""

    host: str
    port: int
    name: str
    user: str
    kind: str
    cluster_mode: bool
    region: str
    auth: str
    password: str | None
    tls: bool
    key_prefix: str

    @classmethod
    def from_env(cls, service: str, env: Env | None = None) -> CacheConfig:
        env = env or Env()
        auth = env.choice("CACHE_AUTH", "iam", ("iam", "password", "none"))
        tls = env.flag("CACHE_TLS", True)
        if auth == "iam" and not tls:
            raise ConfigError("CACHE_TLS = false: IAM authentication needs TLS (ElastiCache requires it)")
        return cls(
            host=env.text("CACHE_HOST"),
            port=env.integer("CACHE_PORT", 6379),
            name=env.text("CACHE_NAME") if auth == "iam" else env.text("CACHE_NAME", ""),
            user=env.text("CACHE_USER") if auth == "iam" else env.text("CACHE_USER", "default"),
            kind=env.choice("CACHE_KIND", "serverless", ("serverless", "replication-group")),
            cluster_mode=env.flag("CACHE_CLUSTER_MODE", False),
            region=env.text("AWS_REGION") if auth == "iam" else env.text("AWS_REGION", ""),
            auth=auth,
            password=env.optional("CACHE_PASSWORD"),
            tls=tls,
            # The platform's cache user may touch only keys "<service>:*" (infra/constructs/valkey_cache.py).
            key_prefix=f"{service}:",
        )
