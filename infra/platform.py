"""Builds one environment's stacks from its settings. Only app.py and tests call this."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aws_cdk import App, Environment, Tags
from aws_cdk import aws_iam as iam

from infra.compliance.acknowledgements import Regional, acknowledge_platform
from infra.compliance.ledger import Ledger
from infra.config.helm_values import HELM_VALUES_DIR, load_addon_values
from infra.config.settings import Settings, environments_sharing_account
from infra.constructs.encryption_key import EncryptionKey
from infra.stacks.account import AccountStack, ReplicationRule
from infra.stacks.base import PlatformStack
from infra.stacks.cache import CacheStack
from infra.stacks.cicd import CicdStack, ClusterAccessStack
from infra.stacks.database import SECRET_REPLICA_PURPOSE, DatabaseStack, GlobalMembership
from infra.stacks.eks import EksStack
from infra.stacks.eks_addons import HELM_ADDONS
from infra.stacks.eks_karpenter import interruption_queue_name
from infra.stacks.network import NetworkStack
from infra.stacks.observability import ObservabilityStack, Watched, nat_gateway_ids
from infra.stacks.registry import RegistryStack, ReplicaRegistryStack, repository_name
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
    # The environment's other regions (setting `regions`), in order.
    other_regions: list[RegionalStacks]


def addon_values(environment: str, directory: Path = HELM_VALUES_DIR) -> dict[str, dict[str, Any]]:
    """Every add-on's ``helm_values/<environment>/<addon>.yaml``, checked against what it may tune."""
    return {
        a.name: load_addon_values(environment, a.name, tunable=a.tunable, computed=a.computed, directory=directory)
        for a in HELM_ADDONS
    }


def placed(settings: Settings, kind: str, what: str) -> dict[str, Any]:
    """Construct id, stack name, description, environment and zones of one of a region's stacks
    (``settings`` as that region sees them): ``<stack prefix>-<kind>``."""
    name = f"{settings.stack_prefix}-{kind}"
    return {
        "construct_id": name,
        "stack_name": name,
        "description": f"{settings.stack_prefix}: {what}",
        "env": Environment(account=settings.account, region=settings.region),
        "zones": settings.availability_zones,
    }


def network_stack(app: App, settings: Settings) -> NetworkStack:
    return NetworkStack(
        app,
        **placed(settings, "network", "VPC, subnets, NAT gateways, flow logs, endpoints"),
        termination_protection=settings.retain_data,
        network=settings.network,
        name_prefix=settings.name_prefix,
        retain_data=settings.retain_data,
    )


def cache_stack(app: App, settings: Settings, network: NetworkStack) -> CacheStack:
    what = f"ElastiCache for Valkey ({settings.cache.kind}), its key, users and security group"
    return CacheStack(
        app,
        **placed(settings, "cache", what),
        termination_protection=settings.retain_data,
        vpc=network.vpc,
        workload_security_group=network.workload_security_group,
        cache=settings.cache,
        clients=[s.name for s in settings.services if "cache" in s.uses],
        name_prefix=settings.name_prefix,
        retain_data=settings.retain_data,
    )


def observability_stack(
    app: App,
    settings: Settings,
    *,
    network: NetworkStack,
    cache: CacheStack,
    cluster_name: str,
    database_identifier: str | None,
    global_secondary: bool = False,
) -> ObservabilityStack:
    what = "alarms on the cluster, data stores, NAT and load balancers, their topic, a dashboard"
    return ObservabilityStack(
        app,
        **placed(settings, "observability", what),
        watched=Watched(
            cluster_name=cluster_name,
            node_group_max_size=settings.eks.node_group.max_size,
            database_identifier=database_identifier,
            database=settings.database,
            cache_name=cache.valkey.cache_name,
            replication_group_id=cache.valkey.replication_group_id,
            cache=settings.cache,
            nat_gateway_ids=nat_gateway_ids(network.vpc),
            global_secondary=global_secondary,
            karpenter_queue=interruption_queue_name(cluster_name) if settings.eks.autoscaling == "karpenter" else None,
        ),
        thresholds=settings.observability.alarms,
        notifications=settings.observability.notifications,
        name_prefix=settings.name_prefix,
        dashboard_name=settings.stack_prefix,
    )


def build_platform(app: App, settings: Settings, *, addon_values: Mapping[str, Mapping[str, Any]]) -> Platform:
    """``addon_values``: Helm values per add-on from ``helm_values/<env>/`` (see infra.config.helm_values).

    One set of stacks per region of the environment: the primary's keep the names of a single-region
    environment; another region's are ``<project>-<env>-<region>-*`` (regional_stacks).
    """
    primary = regional_stacks(app, settings, addon_values=addon_values)
    names = [s.name for s in settings.services]
    others: list[RegionalStacks] = []
    for region in settings.other_regions:
        others.append(regional_stacks(app, settings.in_region(region), addon_values=addon_values, primary=primary))

    registries = registry_stacks(app, settings, names)
    namespaces = [namespace_of(name, settings.environment) for name in names]
    cicd = cicd_stack(app, settings, primary=primary, others=others, registries=registries, namespaces=namespaces)
    if primary.database is not None and primary.database.global_membership is not None:
        secret_replica_keys(primary.database, others)
    for other in others:
        other_region_access(app, other, names=names, namespaces=namespaces, deploy_role_arn=cicd.deploy_role_arn)
    account = account_stack(app, settings, cicd=cicd, others=others)

    for key, value in (("project", settings.project), ("managed-by", "cdk")):
        Tags.of(app).add(key, value)
    # Not on the account stack: every environment's app includes it and it must be the same in each.
    for stack in (*primary.stacks, *registries, cicd, *(s for r in others for s in r.stacks)):
        Tags.of(stack).add("environment", settings.environment)

    platform = Platform(
        settings=settings,
        network=primary.network,
        eks=primary.eks,
        database=cast(DatabaseStack, primary.database),
        cache=primary.cache,
        registries=registries,
        services=primary.services,
        cicd=cicd,
        observability=primary.observability,
        account=account,
        ledger=Ledger(),
        other_regions=others,
    )
    acknowledge_platform(
        platform.ledger,
        regions=[Regional(r.network, r.eks, r.database, r.cache) for r in (primary, *others)],
        cicd=cicd,
        retained=settings.retain_data,
        promoted_from=settings.promotion.previous,
    )
    return platform


def registry_stacks(app: App, settings: Settings, names: list[str]) -> list[RegistryStack]:
    """One registry stack per shard of the catalogue, in the primary region."""
    return [
        RegistryStack(
            app,
            **placed(settings, f"registry-{shard}", f"ECR repositories of the services in shard {shard}"),
            termination_protection=settings.retain_data,
            shard=shard,
            services=group,
            registry=settings.registry,
            name_prefix=settings.name_prefix,
            retain_data=settings.retain_data,
            pulled_by_account=promotion_reader(settings),
        )
        for shard, group in by_shard(names, settings.services).items()
    ]


def cicd_stack(
    app: App,
    settings: Settings,
    *,
    primary: RegionalStacks,
    others: list[RegionalStacks],
    registries: list[RegistryStack],
    namespaces: list[str],
) -> CicdStack:
    """The environment's GitHub roles: one deploy role for every region's cluster and repositories."""
    return CicdStack(
        app,
        **placed(settings, "cicd", "GitHub OIDC deploy role and its access to the cluster"),
        github=settings.github,
        environment_name=settings.environment,
        cluster=primary.eks.cluster,
        other_clusters={r.settings.region: r.eks.cluster_name for r in others},
        namespaces=namespaces,
        repository_groups=[[repository_name(settings.name_prefix, s) for s in r.repositories] for r in registries],
        ingress_certificate=settings.ingress_certificate,
        infrastructure_regions=sorted({*settings.all_regions, settings.account_stack_region}),
        # Every stack of the environment, in any of its regions, and the account stack.
        diffed_stacks=[f"{settings.name_prefix}-*", settings.account_stack_name],
        promoted_from=settings.promotion.previous,
    )


def secret_replica_keys(database: DatabaseStack, others: list[RegionalStacks]) -> None:
    """The keys of the master secret's copies: one in each other region of a global database."""
    # The master secret's copy in each other region is encrypted with a key of that region, made
    # by its network stack before the primary's database stack replicates the secret there.
    for other in others:
        replica_key = EncryptionKey(
            other.network,
            "MasterSecretReplicaKey",
            alias_prefix=other.settings.name_prefix,
            purpose=SECRET_REPLICA_PURPOSE,
            retain=other.settings.retain_data,
        ).key
        # Secrets Manager writes each new version into the copy with the permissions of whoever
        # changed the secret (the rotation function, among others): like the aws/secretsmanager
        # key's policy, any principal of this account, through Secrets Manager in this region only.
        replica_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="SecretsManagerOfThisAccount",
                principals=[iam.AnyPrincipal()],
                actions=["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "kms:CallerAccount": other.network.account,
                        "kms:ViaService": f"secretsmanager.{other.settings.region}.amazonaws.com",
                    }
                },
            )
        )
        database.add_stack_dependency(other.network, "encrypts the master secret's copy with its key")


def other_region_access(
    app: App, other: RegionalStacks, *, names: list[str], namespaces: list[str], deploy_role_arn: str
) -> None:
    """Another region's creation template of the image replicas, and the deploy role's access to its cluster."""
    s = other.settings
    other.registry = ReplicaRegistryStack(
        app,
        **placed(s, "registry", f"how ECR creates the replicas of {s.name_prefix}'s repositories here"),
        termination_protection=s.retain_data,
        services=names,
        registry=s.registry,
        name_prefix=s.name_prefix,
        retain_data=s.retain_data,
        tags={"project": s.project, "environment": s.environment, "managed-by": "cdk"},
    )
    other.cluster_access = ClusterAccessStack(
        app,
        **placed(s, "cicd", f"the {s.environment} deploy role's access to this region's cluster"),
        cluster=other.eks.cluster,
        deploy_role_arn=deploy_role_arn,
        namespaces=namespaces,
    )


def account_stack(
    app: App, settings: Settings, *, cicd: CicdStack, others: list[RegionalStacks]
) -> AccountStack | None:
    """The account's GitHub OIDC provider and image replication, when this environment needs either."""
    replication = replication_rules(settings)
    if not (settings.account_stack.github_oidc_provider == "create" or replication):
        return None
    account = AccountStack(
        app,
        settings.account_stack_name,
        stack_name=settings.account_stack_name,
        description=f"{settings.project}: resources that exist once per AWS account"
        + (" (GitHub OIDC provider, image replication)" if replication else " (GitHub OIDC provider)"),
        env=Environment(account=settings.account, region=settings.account_stack_region),
        github_oidc_provider=settings.account_stack.github_oidc_provider == "create",
        replication=replication,
    )
    cicd.add_stack_dependency(account, "trusts the account's GitHub OIDC provider")
    # A replica made before its region's creation template exists keeps ECR's defaults (mutable,
    # AES-256): the replication rules start only after this environment's templates exist.
    for other in others:
        account.add_stack_dependency(
            cast(ReplicaRegistryStack, other.registry), "replicates into repositories this template creates"
        )
    return account


@dataclass
class RegionalStacks:
    """The stacks of one region of an environment (the primary's registry and cicd are Platform's)."""

    settings: Settings  # as this region sees them (Settings.in_region)
    network: NetworkStack
    eks: EksStack
    database: DatabaseStack | None  # None: database.other_regions is none, outside the primary
    cache: CacheStack
    services: list[ServicesStack]
    observability: ObservabilityStack
    registry: ReplicaRegistryStack | None = None  # other regions: creation template of the replicas
    cluster_access: ClusterAccessStack | None = None  # other regions: the deploy role's access entry

    @property
    def stacks(self) -> list[PlatformStack]:
        optional = (self.database, self.registry, self.cluster_access)
        return [self.network, self.eks, self.cache, *self.services, self.observability, *(s for s in optional if s)]


def regional_stacks(
    app: App,
    settings: Settings,
    *,
    addon_values: Mapping[str, Mapping[str, Any]],
    primary: RegionalStacks | None = None,
) -> RegionalStacks:
    """``settings``: the region's view (Settings.in_region); ``primary``: the primary's stacks, for another region."""
    name_prefix = settings.name_prefix
    network = network_stack(app, settings)
    eks = EksStack(
        app,
        **placed(settings, "eks", "EKS cluster, managed nodes, core add-ons, access entries, in-cluster add-ons"),
        termination_protection=settings.production,
        vpc=network.vpc,
        workload_security_group=network.workload_security_group,
        eks_settings=settings.eks,
        name_prefix=name_prefix,
        retain_data=settings.retain_data,
        addon_values=addon_values,
        observability=settings.observability,
    )
    database = database_stack(app, settings, network, primary=primary.database if primary else None)
    cache = cache_stack(app, settings, network)
    names = [s.name for s in settings.services]
    identity = "EKS Pod Identity" if settings.eks.workload_identity == "pod-identity" else "IRSA"
    services = [
        ServicesStack(
            app,
            **placed(
                settings,
                f"services-{shard}",
                f"namespaces, {identity} service accounts and grants of the services in shard {shard}",
            ),
            workload_identity=settings.eks.workload_identity,
            cluster=eks.cluster,
            services=group,
            environment_name=settings.environment,
            name_prefix=name_prefix,
            database=database,
            cache=cache,
        )
        for shard, group in by_shard(names, settings.services).items()
    ]
    observability = observability_stack(
        app,
        settings,
        network=network,
        cache=cache,
        cluster_name=eks.cluster_name,
        database_identifier=database.cluster_identifier if database else None,
        # Not the writer of a global database (a secondary, or the primary region's cluster after a switchover).
        global_secondary=bool(database and database.global_membership and settings.region != settings.writer_region),
    )
    # Alarms name the resources by the names these stacks give them: created after them, gone before.
    for watched in (eks, database, cache):
        if watched is not None:
            observability.add_stack_dependency(watched, "its alarms watch this stack's resources by name")
    return RegionalStacks(settings, network, eks, database, cache, services, observability)


def database_stack(
    app: App, settings: Settings, network: NetworkStack, *, primary: DatabaseStack | None
) -> DatabaseStack | None:
    """The primary's cluster (global when the other regions' are its secondaries), or another region's."""
    mode = settings.database.other_regions if settings.other_regions else None
    if primary is None:
        membership = GlobalMembership(f"{settings.name_prefix}-global", primary=True) if mode == "global" else None
    elif mode == "none":
        return None
    elif mode == "global":
        # The global cluster's id from the primary's stack: a cross-region reference (Fn::GetStackOutput),
        # which also makes this stack wait for the primary's database.
        membership = GlobalMembership(cast(str, primary.global_cluster_id), primary=False)
    else:
        membership = None
    role = {
        None: "",
        True: ", primary of its global database",
        False: ", read-only secondary of the global database",
    }[membership.primary if membership else None]
    return DatabaseStack(
        app,
        **placed(settings, "database", f"Aurora PostgreSQL{role}, its keys, logs and security group"),
        termination_protection=settings.retain_data,
        vpc=network.vpc,
        workload_security_group=network.workload_security_group,
        database=settings.database,
        name_prefix=settings.name_prefix,
        retain_data=settings.retain_data,
        users=[s.name for s in settings.services if "database" in s.uses],
        function_log_retention_days=settings.observability.function_log_retention_days,
        global_membership=membership,
        # A global database's minor upgrade, step one: the clusters outside the writer's region first.
        engine_version=(
            settings.database.secondary_engine_version
            if membership and settings.region != settings.writer_region
            else None
        ),
        writer_region=settings.writer_region if membership else None,
        secret_replica_regions=settings.other_regions if membership and membership.primary else (),
    )


def promotion_reader(settings: Settings) -> str | None:
    """The account of the environment after this one in the promotion order, when it may be another one:
    its settings name an account and this environment's name none or a different one. Its deploy role
    copies this environment's images (same account: its own policy is enough)."""
    following = settings.promotion.next
    if following is None or following.account is None or following.account == settings.account:
        return None
    return following.account


def replication_rules(settings: Settings) -> list[ReplicationRule]:
    """The account stack's replication rules: one per environment of several regions sharing its account."""
    return [
        ReplicationRule(repository_prefix=f"{project}-{environment}/", regions=regions)
        for project, environment, regions in environments_sharing_account(settings)
        if regions
    ]
