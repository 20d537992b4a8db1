"""Access stack: each service's exact grants on the data stores, attached to its IRSA role.

A stack of its own so that neither side waits for the other: the database and cache stacks do not
depend on the EKS stack (they deploy in parallel with the cluster), and the EKS stack does not
depend on them. Only this small IAM-only stack waits for both.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config.settings import ServiceSettings
from infra.stacks.base import PlatformStack
from infra.stacks.cache import CacheStack
from infra.stacks.database import DatabaseStack


class AccessStack(PlatformStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        zones: list[str],
        services: list[ServiceSettings],
        service_roles: dict[str, iam.IRole],
        database: DatabaseStack,
        cache: CacheStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        self.policies: dict[str, iam.ManagedPolicy] = {}
        for service in services:
            statements: list[iam.PolicyStatement] = []
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
            if not statements:
                continue
            self.policies[service.name] = iam.ManagedPolicy(
                self,
                f"Grants-{service.name}",
                description=f"{service.name}: connect to the data stores it declares ({', '.join(service.uses)})",
                statements=statements,
                roles=[service_roles[service.name]],
            )
