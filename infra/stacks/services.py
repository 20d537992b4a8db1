"""Services stacks: per catalogue service, its namespace, service account (IRSA or EKS Pod Identity) and
data grants.

The catalogue is split into shards by a stable hash of the service name (see
:func:`infra.stacks.sharding.shard_of`), one stack per non-empty shard, so that a catalogue of
hundreds of services stays far inside CloudFormation's per-stack limits (500 resources, 200
outputs, 1 MB) and adding or removing a service never moves another one between stacks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_rds as rds
from constructs import Construct

from infra.config.settings import ServiceSettings
from infra.constructs.irsa import service_account_condition
from infra.constructs.pod_identity import pod_identity_trust
from infra.constructs.valkey_cache import VALKEY_PORT
from infra.stacks.base import PlatformStack
from infra.stacks.cache import CacheStack
from infra.stacks.database import POSTGRES_PORT, DatabaseStack
from infra.stacks.eks import EksStack

# The ConfigMap each service namespace gets from the platform (charts/microservice: envFrom).
PLATFORM_CONFIG_MAP = "platform"


def namespace_of(service: str, environment: str) -> str:
    return f"{service}-{environment}"


class ServicesStack(PlatformStack):
    """For each service of one shard:

    - namespace ``<service>-<env>`` with the Pod Security ``restricted`` label;
    - service account ``<service>`` whose role trusts only ``<service>-<env>/<service>``: through IRSA
      (``system:serviceaccount:<service>-<env>:<service>``, audience ``sts.amazonaws.com``), or through
      EKS Pod Identity (an association, and a trust on its session tags: this cluster, namespace and
      service account), as ``eks.workload_identity`` says;
    - the exact grants its catalogue entry's ``uses`` declares, nothing else;
    - a ConfigMap ``platform`` with what the service needs to reach those data stores (endpoints,
      ports, user names, region; :class:`PlatformConfig`), which the chart passes to its pods as
      environment variables: nothing is copied into Helm values by hand.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        zones: list[str],
        cluster: eks.Cluster,
        services: list[ServiceSettings],
        environment_name: str,
        name_prefix: str,
        database: DatabaseStack | None,
        cache: CacheStack,
        workload_identity: str = "irsa",
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        self.pod_identity = workload_identity == "pod-identity"
        # jsii's Python stubs miss a protocol member on Cluster; it is an ICluster at runtime.
        icluster = cast(eks.ICluster, cluster)
        self.roles: dict[str, iam.CfnRole] = {}
        self.grants: dict[str, iam.CfnManagedPolicy] = {}
        trust = self._pod_identity_trust(cluster) if self.pod_identity else self._irsa_trust(cluster)
        # Per-service resources are L1 with plain JSON: one call into the CDK engine each instead of
        # a dozen, which keeps synth of a 150-service catalogue close to a 3-service one (make bench).
        arns = DataStoreArns(
            # No database in this region (database.other_regions: none): no database grant here.
            db_user_prefix=database.connect_arn("") if database else None,
            cache_arn=cache.valkey.arn,
            cache_user_prefix=cache.valkey.user_arn(""),
        )
        platform = PlatformConfig(region=self.region, database=database, cache=cache)
        cluster_name = cluster.cluster_name
        for service in services:
            namespace = namespace_of(service.name, environment_name)
            role = self._role(service.name, namespace, trust)
            role_arn = role.attr_arn
            if self.pod_identity:
                eks.CfnPodIdentityAssociation(
                    self,
                    f"Association-{service.name}",
                    cluster_name=cluster_name,
                    namespace=namespace,
                    service_account=service.name,
                    role_arn=role_arn,
                )
            self.roles[service.name] = role
            self._namespace(
                service,
                namespace,
                cluster=icluster,
                role_arn=None if self.pod_identity else role_arn,
                name_prefix=name_prefix,
                platform=platform,
            )
            statements = arns.grants(service)
            if statements:
                self.grants[service.name] = iam.CfnManagedPolicy(
                    self,
                    f"Grants-{service.name}",
                    description=f"{service.name}: connect to the data stores it declares ({', '.join(service.uses)})",
                    policy_document={"Version": "2012-10-17", "Statement": statements},
                    roles=[role.ref],
                )
            CfnOutput(
                self,
                f"ServiceRoleArn-{service.name}",
                value=role_arn,
                description=f"{self._kind} role of {namespace}/{service.name}",
            )

    @property
    def _kind(self) -> str:
        return "EKS Pod Identity" if self.pod_identity else "IRSA"

    def _irsa_trust(self, cluster: eks.Cluster) -> Callable[[str, str], dict[str, Any]]:
        provider_arn = cluster.open_id_connect_provider.open_id_connect_provider_arn
        issuer = cast(EksStack, Stack.of(cluster)).oidc_issuer_for(self)

        def trust(service: str, namespace: str) -> dict[str, Any]:
            conditions = service_account_condition(
                self, f"Trust-{service}", issuer=issuer, namespace=namespace, service_account=service
            )
            return {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": provider_arn},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {"StringEquals": conditions},
                    }
                ],
            }

        return trust

    @staticmethod
    def _pod_identity_trust(cluster: eks.Cluster) -> Callable[[str, str], dict[str, Any]]:
        cluster_arn = cluster.cluster_arn  # one jsii call for the stack, not one per service

        def trust(service: str, namespace: str) -> dict[str, Any]:
            return pod_identity_trust(cluster_arn=cluster_arn, namespace=namespace, service_account=service)

        return trust

    def _role(self, service: str, namespace: str, trust: Callable[[str, str], dict[str, Any]]) -> iam.CfnRole:
        """The service's role: only its own service account in its own namespace may assume it."""
        return iam.CfnRole(
            self,
            f"Role-{service}",
            description=f"{self._kind} role of {namespace}/{service}",
            assume_role_policy_document=trust(service, namespace),
        )

    def _namespace(
        self,
        service: ServiceSettings,
        namespace: str,
        *,
        cluster: eks.ICluster,
        role_arn: str | None,
        name_prefix: str,
        platform: PlatformConfig,
    ) -> eks.KubernetesManifest:
        """The service's namespace, its service account (annotated with its IRSA role; with Pod Identity,
        the association names it instead) and its ``platform`` ConfigMap."""
        account_metadata: dict[str, Any] = {
            "name": service.name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": service.name},
        }
        if role_arn is not None:
            account_metadata["annotations"] = {"eks.amazonaws.com/role-arn": role_arn}
        # Namespace and service account in one manifest (applied in order): one custom resource
        # per service instead of two.
        return eks.KubernetesManifest(
            self,
            f"Namespace-{service.name}",
            cluster=cluster,
            manifest=[
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": namespace,
                        "labels": {
                            "app.kubernetes.io/part-of": name_prefix,
                            # Pod Security admission: the chart's pods meet the restricted profile.
                            "pod-security.kubernetes.io/enforce": "restricted",
                            # A pod behind an ingress is Ready once its load balancer target is healthy
                            # (the load balancer controller's readiness gate): a rollout replaces no pod
                            # before its successor serves through the load balancer.
                            "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled",
                        },
                    },
                },
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": account_metadata,
                },
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": PLATFORM_CONFIG_MAP,
                        "namespace": namespace,
                        "labels": {
                            "app.kubernetes.io/name": service.name,
                            "app.kubernetes.io/part-of": name_prefix,
                        },
                    },
                    "data": platform.data(service),
                },
            ],
        )


class DataStoreArns:
    """The resources a service may connect to, resolved once per stack: the same statements whatever the
    cache's kind (only the cache's own ARN differs)."""

    def __init__(self, *, db_user_prefix: str | None, cache_arn: str, cache_user_prefix: str) -> None:
        self.db_user_prefix = db_user_prefix
        self.cache_arn = cache_arn
        self.cache_user_prefix = cache_user_prefix

    def grants(self, service: ServiceSettings) -> list[dict[str, Any]]:
        statements: list[dict[str, Any]] = []
        if "database" in service.uses and self.db_user_prefix is not None:
            statements.append(
                {
                    "Sid": "ConnectAsItsOwnDatabaseUser",
                    "Effect": "Allow",
                    "Action": "rds-db:connect",
                    "Resource": self.db_user_prefix + service.name,
                }
            )
        if "cache" in service.uses:
            statements.append(
                {
                    "Sid": "ConnectAsItsOwnCacheUser",
                    "Effect": "Allow",
                    "Action": "elasticache:Connect",
                    "Resource": [self.cache_arn, self.cache_user_prefix + service.name],
                }
            )
        return statements


class PlatformConfig:
    """A service's view of the platform, as environment variables (the ConfigMap ``platform``): the
    region, and for each data store its catalogue entry ``uses`` (and that exists in this region),
    the endpoint, port and the service's own user. The endpoints are the data stacks' real values
    (weak cross-stack references, resolved when the services stack deploys: ADR 0007)."""

    def __init__(self, *, region: str, database: DatabaseStack | None, cache: CacheStack) -> None:
        self.region = region
        self.database = database
        self.cache = cache

    # The endpoints every service shares, read from the CDK engine once (each read is a call into it).
    @functools.cached_property
    def _database_endpoint(self) -> tuple[str, str]:
        """The database's host and name. In the writer's region, its cluster (writer) endpoint; in another
        region of a global database, the reader endpoint, which forwards writes to the writer's region:
        a secondary's cluster endpoint is inactive (Aurora user guide, "Connecting to an Aurora global
        database": one cluster endpoint, the primary's, for writes; a reader endpoint per cluster)."""
        database = self.database
        assert database is not None
        cluster = cast(rds.CfnDBCluster, database.cluster.node.default_child)
        writer_here = database.writer_region == database.region
        endpoint = database.cluster.cluster_endpoint if writer_here else database.cluster.cluster_read_endpoint
        return endpoint.hostname, str(cluster.database_name)

    @functools.cached_property
    def _cache_endpoint(self) -> tuple[str, str, str, str]:
        """The cache's host, name (the host of the IAM token: the serverless cache's name or the
        replication group's id), kind and whether cluster mode is on."""
        valkey = self.cache.valkey
        cluster_mode = str(getattr(valkey.cache, "cluster_mode", None) == "enabled").lower()
        return valkey.endpoint_address, valkey.replication_group_id or valkey.cache_name, valkey.kind, cluster_mode

    def data(self, service: ServiceSettings) -> dict[str, str]:
        data = {"AWS_REGION": self.region}
        if "database" in service.uses and self.database is not None:
            host, name = self._database_endpoint
            data |= {
                "DATABASE_HOST": host,
                "DATABASE_PORT": str(POSTGRES_PORT),
                "DATABASE_NAME": name,
                # The role the database stack's users function creates (ADR 0009): the service's name.
                "DATABASE_USER": service.name,
            }
        if "cache" in service.uses:
            host, name, kind, cluster_mode = self._cache_endpoint
            data |= {
                "CACHE_HOST": host,
                "CACHE_PORT": str(VALKEY_PORT),
                "CACHE_NAME": name,
                "CACHE_USER": self.cache.valkey.user_id(service.name),
                "CACHE_KIND": kind,
                "CACHE_CLUSTER_MODE": cluster_mode,
            }
        return data
