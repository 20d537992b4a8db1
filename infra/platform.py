"""Builds one environment's stacks from its settings. Only app.py and tests call this."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Tags

from infra.compliance.acknowledgements import acknowledge_platform
from infra.compliance.ledger import Ledger
from infra.config.helm_values import HELM_VALUES_DIR, load_addon_values
from infra.config.settings import Settings
from infra.stacks.account import AccountStack
from infra.stacks.cache import CacheStack
from infra.stacks.cicd import CicdStack
from infra.stacks.database import DatabaseStack
from infra.stacks.eks import EksStack
from infra.stacks.eks_addons import HELM_ADDONS
from infra.stacks.network import NetworkStack
from infra.stacks.observability import ObservabilityStack, Watched, nat_gateway_ids
from infra.stacks.registry import RegistryStack, repository_name
from infra.stacks.services import ServicesStack, namespace_of
from infra.stacks.sharding import by_shard


@dataclass
class Platform:
    settings: Settings
    network: NetworkStack
    eks: EksStack
    database: DatabaseStack
    cache: CacheStack
    registries: list[RegistryStack]
    services: list[ServicesStack]
    cicd: CicdStack
    observability: ObservabilityStack
    # None when the account's GitHub OIDC provider exists already (account_stack.github_oidc_provider).
    account: AccountStack | None
    ledger: Ledger


def addon_values(environment: str, directory: Path = HELM_VALUES_DIR) -> dict[str, dict[str, Any]]:
    """Every add-on's ``helm_values/<environment>/<addon>.yaml``, checked against what it may tune."""
    return {
        a.name: load_addon_values(environment, a.name, tunable=a.tunable, computed=a.computed, directory=directory)
        for a in HELM_ADDONS
    }


def network_stack(app: App, settings: Settings, env: Environment) -> NetworkStack:
    prefix = settings.stack_prefix
    return NetworkStack(
        app,
        f"{prefix}-network",
        stack_name=f"{prefix}-network",
        description=f"{prefix}: VPC, subnets, NAT gateways, flow logs, endpoints",
        env=env,
        termination_protection=settings.retain_data,
        zones=settings.availability_zones,
        network=settings.network,
        name_prefix=prefix,
        retain_data=settings.retain_data,
    )


def cache_stack(app: App, settings: Settings, env: Environment, network: NetworkStack) -> CacheStack:
    prefix = settings.stack_prefix
    return CacheStack(
        app,
        f"{prefix}-cache",
        stack_name=f"{prefix}-cache",
        description=f"{prefix}: ElastiCache for Valkey ({settings.cache.kind}), its key, users and security group",
        env=env,
        termination_protection=settings.retain_data,
        vpc=network.vpc,
        workload_security_group=network.workload_security_group,
        zones=settings.availability_zones,
        cache=settings.cache,
        clients=[s.name for s in settings.services if "cache" in s.uses],
        name_prefix=prefix,
        retain_data=settings.retain_data,
    )


def observability_stack(
    app: App,
    settings: Settings,
    env: Environment,
    *,
    network: NetworkStack,
    cache: CacheStack,
    cluster_name: str,
    database_identifier: str,
) -> ObservabilityStack:
    prefix = settings.stack_prefix
    return ObservabilityStack(
        app,
        f"{prefix}-observability",
        stack_name=f"{prefix}-observability",
        description=f"{prefix}: alarms on the cluster, data stores, NAT and load balancers, their topic, a dashboard",
        env=env,
        zones=settings.availability_zones,
        watched=Watched(
            cluster_name=cluster_name,
            node_group_max_size=settings.eks.node_group.max_size,
            database_identifier=database_identifier,
            database=settings.database,
            cache_name=cache.valkey.cache_name,
            replication_group_id=cache.valkey.replication_group_id,
            cache=settings.cache,
            nat_gateway_ids=nat_gateway_ids(network.vpc),
        ),
        thresholds=settings.observability.alarms,
        notifications=settings.observability.notifications,
        name_prefix=prefix,
    )


def build_platform(app: App, settings: Settings, *, addon_values: Mapping[str, Mapping[str, Any]]) -> Platform:
    """``addon_values``: Helm values per add-on from ``helm_values/<env>/`` (see infra.config.helm_values)."""
    env = Environment(account=settings.account, region=settings.region)
    prefix = settings.stack_prefix

    network = network_stack(app, settings, env)

    eks = EksStack(
        app,
        f"{prefix}-eks",
        stack_name=f"{prefix}-eks",
        description=f"{prefix}: EKS cluster, managed nodes, core add-ons, access entries, in-cluster add-ons",
        env=env,
        termination_protection=settings.production,
        vpc=network.vpc,
        workload_security_group=network.workload_security_group,
        zones=settings.availability_zones,
        eks_settings=settings.eks,
        name_prefix=prefix,
        retain_data=settings.retain_data,
        addon_values=addon_values,
        observability=settings.observability,
    )

    database = DatabaseStack(
        app,
        f"{prefix}-database",
        stack_name=f"{prefix}-database",
        description=f"{prefix}: Aurora PostgreSQL, its keys, logs and security group",
        env=env,
        termination_protection=settings.retain_data,
        vpc=network.vpc,
        workload_security_group=network.workload_security_group,
        zones=settings.availability_zones,
        database=settings.database,
        name_prefix=prefix,
        retain_data=settings.retain_data,
        users=[s.name for s in settings.services if "database" in s.uses],
    )
    cache = cache_stack(app, settings, env, network)
    names = [s.name for s in settings.services]
    registries = [
        RegistryStack(
            app,
            f"{prefix}-registry-{shard}",
            stack_name=f"{prefix}-registry-{shard}",
            description=f"{prefix}: ECR repositories of the services in shard {shard}",
            env=env,
            termination_protection=settings.retain_data,
            zones=settings.availability_zones,
            shard=shard,
            services=group,
            registry=settings.registry,
            name_prefix=prefix,
            retain_data=settings.retain_data,
        )
        for shard, group in by_shard(names, settings.services).items()
    ]
    services = [
        ServicesStack(
            app,
            f"{prefix}-services-{shard}",
            stack_name=f"{prefix}-services-{shard}",
            description=f"{prefix}: namespaces, IRSA service accounts and grants of the services in shard {shard}",
            env=env,
            zones=settings.availability_zones,
            cluster=eks.cluster,
            services=group,
            environment_name=settings.environment,
            name_prefix=prefix,
            database=database,
            cache=cache,
        )
        for shard, group in by_shard(names, settings.services).items()
    ]
    cicd = CicdStack(
        app,
        f"{prefix}-cicd",
        stack_name=f"{prefix}-cicd",
        description=f"{prefix}: GitHub OIDC deploy role and its access to the cluster",
        env=env,
        zones=settings.availability_zones,
        github=settings.github,
        environment_name=settings.environment,
        cluster=eks.cluster,
        namespaces=[namespace_of(name, settings.environment) for name in names],
        repository_groups=[[repository_name(prefix, s) for s in r.repositories] for r in registries],
        ingress_certificate=settings.ingress_certificate,
    )

    observability = observability_stack(
        app,
        settings,
        env,
        network=network,
        cache=cache,
        cluster_name=eks.cluster_name,
        database_identifier=database.cluster_identifier,
    )
    # Alarms name the resources by the names these stacks give them: created after them, gone before.
    for watched in (eks, database, cache):
        observability.add_stack_dependency(watched, "its alarms watch this stack's resources by name")

    account: AccountStack | None = None
    if settings.account_stack.github_oidc_provider == "create":
        account = AccountStack(
            app,
            settings.account_stack_name,
            stack_name=settings.account_stack_name,
            description=f"{settings.project}: resources that exist once per AWS account (GitHub OIDC provider)",
            env=Environment(account=settings.account, region=settings.account_stack_region),
        )
        cicd.add_stack_dependency(account, "trusts the account's GitHub OIDC provider")

    for key, value in (("project", settings.project), ("managed-by", "cdk")):
        Tags.of(app).add(key, value)
    # Not on the account stack: every environment's app includes it and it must be the same in each.
    for stack in (network, eks, database, cache, *registries, *services, cicd, observability):
        Tags.of(stack).add("environment", settings.environment)

    platform = Platform(
        settings=settings,
        network=network,
        eks=eks,
        database=database,
        cache=cache,
        registries=registries,
        services=services,
        cicd=cicd,
        observability=observability,
        account=account,
        ledger=Ledger(),
    )
    acknowledge_platform(platform)
    return platform
