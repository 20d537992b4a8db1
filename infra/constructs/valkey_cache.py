"""ElastiCache Serverless for Valkey: CDK has only the L1, this is the small construct around it."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_kms as kms
from constructs import Construct

VALKEY_PORT = 6379
VALKEY_MAJOR_VERSION = "8"


class ServerlessValkey(Construct):
    """A serverless Valkey cache where only IAM-authenticated users can connect.

    - encrypted at rest with ``key``; in transit TLS is always on for serverless caches;
    - a user group holding one IAM-auth user per client (user id = user name, as IAM auth requires)
      and a ``default`` user switched off (``off -@all``), so an unauthenticated client gets nothing;
    - usage limits cap data storage and ECPU/s; daily snapshots kept ``snapshot_retention_days``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cache_name: str,
        subnets: Sequence[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        key: kms.IKey,
        max_data_storage_gb: int,
        max_ecpu_per_second: int,
        snapshot_retention_days: int,
        daily_snapshot_time: str,
        clients: Sequence[str],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cache_name = cache_name
        self._stack = Stack.of(self)

        disabled_default = elasticache.CfnUser(
            self,
            "DefaultUserDisabled",
            engine="valkey",
            user_id=f"{cache_name}-default-off",
            user_name="default",
            access_string="off -@all",
            authentication_mode={"Type": "no-password-required"},
        )
        self.users: dict[str, elasticache.CfnUser] = {}
        for client in clients:
            user_id = self.user_id(client)
            self.users[client] = elasticache.CfnUser(
                self,
                f"User-{client}",
                engine="valkey",
                user_id=user_id,
                user_name=user_id,
                # Each client sees only its own key space and channels, and no admin commands.
                access_string=f"on ~{client}:* &{client}:* +@all -@dangerous",
                authentication_mode={"Type": "iam"},
            )
        self.user_group = elasticache.CfnUserGroup(
            self,
            "UserGroup",
            engine="valkey",
            user_group_id=f"{cache_name}-users",
            user_ids=[disabled_default.user_id, *(u.user_id for u in self.users.values())],
        )
        for user in [disabled_default, *self.users.values()]:
            self.user_group.node.add_dependency(user)

        self.cache = elasticache.CfnServerlessCache(
            self,
            "Resource",
            serverless_cache_name=cache_name,
            engine="valkey",
            major_engine_version=VALKEY_MAJOR_VERSION,
            description=f"{cache_name}: Valkey, IAM auth only, TLS",
            subnet_ids=[s.subnet_id for s in subnets],
            security_group_ids=[security_group.security_group_id],
            kms_key_id=key.key_arn,
            user_group_id=self.user_group.user_group_id,
            snapshot_retention_limit=snapshot_retention_days,
            daily_snapshot_time=daily_snapshot_time,
            cache_usage_limits=elasticache.CfnServerlessCache.CacheUsageLimitsProperty(
                data_storage=elasticache.CfnServerlessCache.DataStorageProperty(unit="GB", maximum=max_data_storage_gb),
                ecpu_per_second=elasticache.CfnServerlessCache.ECPUPerSecondProperty(maximum=max_ecpu_per_second),
            ),
        )
        self.cache.node.add_dependency(self.user_group)
        # Users and user group share the cache's fate: a retained cache keeps using them, and a stack
        # delete could not remove a user group that a cache still uses.
        for resource in (self.cache, self.user_group, disabled_default, *self.users.values()):
            resource.apply_removal_policy(removal_policy)

    def user_id(self, client: str) -> str:
        return f"{self.cache_name}-{client}"

    @property
    def arn(self) -> str:
        return self.cache.attr_arn

    @property
    def endpoint_address(self) -> str:
        return self.cache.attr_endpoint_address

    def user_arn(self, client: str) -> str:
        # arn:<partition>:elasticache:<region>:<account>:user:<user id>
        return self._stack.format_arn(
            service="elasticache",
            resource="user",
            resource_name=self.user_id(client),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
