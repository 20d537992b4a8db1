"""Services stacks: per catalogue service, its namespace, IRSA service account and data grants.

The catalogue is split into shards by a stable hash of the service name (see
:func:`infra.stacks.sharding.shard_of`), one stack per non-empty shard, so that a catalogue of
hundreds of services stays far inside CloudFormation's per-stack limits (500 resources, 200
outputs, 1 MB) and adding or removing a service never moves another one between stacks.
"""

from __future__ import annotations

from typing import Any, cast

from aws_cdk import CfnOutput, RemovalPolicy
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config.settings import ServiceSettings
from infra.stacks.base import PlatformStack
from infra.stacks.cache import CacheStack
from infra.stacks.database import DatabaseStack


def namespace_of(service: str, environment: str) -> str:
    return f"{service}-{environment}"


class ServicesStack(PlatformStack):
    """For each service of one shard:

    - namespace ``<service>-<env>`` with the Pod Security ``restricted`` label;
    - service account ``<service>`` whose IRSA role trusts only
      ``system:serviceaccount:<service>-<env>:<service>`` (audience ``sts.amazonaws.com``);
    - the exact grants its catalogue entry's ``uses`` declares, nothing else.
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
        database: DatabaseStack,
        cache: CacheStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        # jsii's Python stubs miss a protocol member on Cluster; it is an ICluster at runtime.
        icluster = cast(eks.ICluster, cluster)
        self.service_accounts: dict[str, eks.ServiceAccount] = {}
        self.grants: dict[str, iam.ManagedPolicy] = {}
        for service in services:
            namespace = namespace_of(service.name, environment_name)
            manifest = eks.KubernetesManifest(
                self,
                f"Namespace-{service.name}",
                cluster=icluster,
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
                            },
                        },
                    }
                ],
            )
            account = eks.ServiceAccount(
                self,
                f"ServiceAccount-{service.name}",
                cluster=icluster,
                name=service.name,
                namespace=namespace,
                identity_type=eks.IdentityType.IRSA,
                removal_policy=RemovalPolicy.DESTROY,
            )
            account.node.add_dependency(manifest)
            self.service_accounts[service.name] = account
            statements = self._grants(service, database=database, cache=cache)
            if statements:
                self.grants[service.name] = iam.ManagedPolicy(
                    self,
                    f"Grants-{service.name}",
                    description=f"{service.name}: connect to the data stores it declares ({', '.join(service.uses)})",
                    statements=statements,
                    roles=[account.role],
                )
            CfnOutput(
                self,
                f"ServiceRoleArn-{service.name}",
                value=account.role.role_arn,
                description=f"IRSA role of {namespace}/{service.name}",
            )

    @staticmethod
    def _grants(service: ServiceSettings, *, database: DatabaseStack, cache: CacheStack) -> list[iam.PolicyStatement]:
        statements = []
        if "database" in service.uses:
            statements.append(
                iam.PolicyStatement(
                    sid="ConnectAsItsOwnDatabaseUser",
                    actions=["rds-db:connect"],
                    resources=[database.connect_arn(service.name)],
                )
            )
        if "cache" in service.uses:
            statements.append(
                iam.PolicyStatement(
                    sid="ConnectAsItsOwnCacheUser",
                    actions=["elasticache:Connect"],
                    resources=[cache.valkey.arn, cache.valkey.user_arn(service.name)],
                )
            )
        return statements
