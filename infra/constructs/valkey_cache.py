"""ElastiCache for Valkey, Serverless or a provisioned replication group; CDK has only the L1s.

Whichever the kind, the cache has the same users: one IAM-authenticated user per client service and
the ``default`` user switched off, in one user group, at the same construct paths (so the same
logical ids). Switching ``cache.kind`` replaces the cache, never the users: services, their user
ids and their grants stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config.settings import CacheSettings
from infra.constructs.log_retention import log_key, retention
from infra.constructs.removal import KEPT

VALKEY_PORT = 6379
# ElastiCache Serverless serves reads from replicas, in the client's zone where it can, on a second
# port of the same endpoint (ElastiCache user guide, "Best Practices for using Read Replicas").
SERVERLESS_READ_PORT = 6380


def access_string(client: str) -> str:
    """What a client's user may do: only its own key space and channels (``<client>:*``), no admin commands."""
    return f"on ~{client}:* &{client}:* +@all -@dangerous"


def cache_ports(kind: str) -> list[int]:
    """The ports a client of a cache of this kind connects to."""
    return [VALKEY_PORT, SERVERLESS_READ_PORT] if kind == "serverless" else [VALKEY_PORT]


VALKEY_MAJOR_VERSION = "8"  # Serverless: the major version only; ElastiCache applies minor versions itself
# Users and user group of engine "redis": ElastiCache's RBAC page says a Valkey cache accepts user groups
# of either engine, that a "VALKEY" group may hold only users with a password or IAM (so not the
# no-password `default` user switched off here), and that a "REDIS" group must hold a user named
# `default`. The redis-engine group is the one that can hold both the IAM users and the disabled default.
USER_ENGINE = "redis"


class Valkey(Construct):
    """A Valkey cache where only IAM-authenticated users can connect.

    - encrypted at rest with ``key``, TLS in transit (required);
    - a user group holding one IAM-auth user per client (user id = user name, as IAM auth requires)
      and a ``default`` user switched off (``off -@all``), so an unauthenticated client gets nothing;
    - ``serverless``: usage limits cap data storage and ECPU/s; daily snapshots;
    - ``replication-group``: nodes of ``node_type`` in shards with replicas, Multi-AZ with automatic
      failover, a parameter group, daily snapshots, slow and engine logs to encrypted log groups.
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
        settings: CacheSettings,
        clients: Sequence[str],
        removal_policy: RemovalPolicy,
        alias_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cache_name = cache_name
        self.kind = settings.kind
        self._stack = Stack.of(self)
        self._users(clients)
        common = {"subnets": subnets, "security_group": security_group, "key": key, "settings": settings}
        if settings.kind == "serverless":
            self.cache: elasticache.CfnServerlessCache | elasticache.CfnReplicationGroup = self._serverless(**common)  # type: ignore[arg-type]
            self.replication_group_id: str | None = None
        else:
            # The mode is in the name: ElastiCache cannot switch a group's cluster mode in one update, so
            # turning it on or off makes a new group (created before the old one is deleted).
            self.replication_group_id = f"{cache_name}-{'cm' if settings.cluster_mode else 'rg'}"
            self.cache = self._replication_group(**common, alias_prefix=alias_prefix, removal_policy=removal_policy)  # type: ignore[arg-type]
        self.cache.node.add_dependency(self.user_group)
        # Users and user group share the cache's fate: a retained cache keeps using them, and a stack
        # delete could not remove a user group that a cache still uses.
        for resource in (self.cache, self.user_group, *self.all_users):
            resource.apply_removal_policy(removal_policy)
        if settings.kind == "replication-group" and removal_policy == KEPT:
            # Kept data is a final snapshot, not a running group: a group this template no longer
            # holds (a cluster-mode switch, a kind switch, a deleted stack) is deleted after ElastiCache
            # snapshots it, so nothing is left billing, and its subnet group and parameter group go too.
            self.cache.apply_removal_policy(RemovalPolicy.SNAPSHOT)

    def _users(self, clients: Sequence[str]) -> None:
        disabled_default = elasticache.CfnUser(
            self,
            "DefaultUserDisabled",
            engine=USER_ENGINE,
            user_id=f"{self.cache_name}-default-off",
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
                engine=USER_ENGINE,
                user_id=user_id,
                user_name=user_id,
                access_string=access_string(client),
                authentication_mode={"Type": "iam"},
            )
        self.all_users = [disabled_default, *self.users.values()]
        self.user_group = elasticache.CfnUserGroup(
            self,
            "UserGroup",
            engine=USER_ENGINE,
            user_group_id=f"{self.cache_name}-users",
            user_ids=[u.user_id for u in self.all_users],
        )
        for user in self.all_users:
            self.user_group.node.add_dependency(user)

    def _serverless(
        self,
        *,
        subnets: Sequence[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        key: kms.IKey,
        settings: CacheSettings,
    ) -> elasticache.CfnServerlessCache:
        assert settings.max_data_storage_gb is not None
        assert settings.max_ecpu_per_second is not None
        return elasticache.CfnServerlessCache(
            self,
            "Resource",
            serverless_cache_name=self.cache_name,
            engine="valkey",
            major_engine_version=VALKEY_MAJOR_VERSION,
            description=f"{self.cache_name}: Valkey, IAM auth only, TLS",
            subnet_ids=[s.subnet_id for s in subnets],
            security_group_ids=[security_group.security_group_id],
            kms_key_id=key.key_arn,
            user_group_id=self.user_group.user_group_id,
            snapshot_retention_limit=settings.snapshot_retention_days,
            daily_snapshot_time=settings.daily_snapshot_time,
            cache_usage_limits=elasticache.CfnServerlessCache.CacheUsageLimitsProperty(
                data_storage=elasticache.CfnServerlessCache.DataStorageProperty(
                    unit="GB", maximum=settings.max_data_storage_gb
                ),
                ecpu_per_second=elasticache.CfnServerlessCache.ECPUPerSecondProperty(
                    maximum=settings.max_ecpu_per_second
                ),
            ),
        )

    def _replication_group(
        self,
        *,
        subnets: Sequence[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        key: kms.IKey,
        settings: CacheSettings,
        alias_prefix: str,
        removal_policy: RemovalPolicy,
    ) -> elasticache.CfnReplicationGroup:
        assert self.replication_group_id is not None
        name = self.replication_group_id
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "SubnetGroup",
            cache_subnet_group_name=name,
            description=f"{name}: the isolated data subnets",
            subnet_ids=[s.subnet_id for s in subnets],
        )
        # A group of the other mode gets a parameter group of its own (cluster-enabled cannot change
        # while the running group uses it); the mode-off id is the one groups have had from the start.
        parameters = elasticache.CfnParameterGroup(
            self,
            "ClusterModeParameters" if settings.cluster_mode else "Parameters",
            cache_parameter_group_family=settings.engine_family,
            description=f"{name}: cluster mode {'on' if settings.cluster_mode else 'off'}, entries of cache.parameters",
            properties=_parameters(settings.parameters, cluster_mode=settings.cluster_mode),
        )
        deliveries = self._log_deliveries(settings, alias_prefix=alias_prefix, removal_policy=removal_policy)
        delivery_policy = self._log_delivery_policy(name)
        group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_id=name,
            replication_group_description=f"{name}: Valkey {settings.engine_version}, IAM auth only, TLS required",
            engine="valkey",
            engine_version=settings.engine_version,
            cache_node_type=settings.node_type,
            cluster_mode="enabled" if settings.cluster_mode else "disabled",
            num_node_groups=settings.shards if settings.cluster_mode else None,
            replicas_per_node_group=settings.replicas_per_shard if settings.cluster_mode else None,
            num_cache_clusters=None if settings.cluster_mode else 1 + settings.replicas_per_shard,
            # Cluster mode requires automatic failover; otherwise it needs a replica (settings check this).
            automatic_failover_enabled=settings.failover or settings.cluster_mode,
            multi_az_enabled=settings.failover,
            cache_parameter_group_name=parameters.ref,
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[security_group.security_group_id],
            port=VALKEY_PORT,
            at_rest_encryption_enabled=True,
            kms_key_id=key.key_arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            user_group_ids=[self.user_group.user_group_id],
            snapshot_retention_limit=settings.snapshot_retention_days,
            snapshot_window=_one_hour_from(settings.daily_snapshot_time),
            preferred_maintenance_window=settings.maintenance_window,
            auto_minor_version_upgrade=True,
            log_delivery_configurations=deliveries,
        )
        group.node.add_dependency(delivery_policy)  # the log groups by Ref, the subnet group too
        return group

    def _log_deliveries(
        self, settings: CacheSettings, *, alias_prefix: str, removal_policy: RemovalPolicy
    ) -> list[elasticache.CfnReplicationGroup.LogDeliveryConfigurationRequestProperty]:
        """The slow and engine log groups (``self.log_groups``), under a key of their own, as the group's
        log delivery configurations."""
        logs_key = log_key(
            self,
            "LogKey",
            purpose="valkey-logs",
            alias_prefix=alias_prefix,
            retain=removal_policy == KEPT,
            log_group_name=None,
        )
        self.log_groups: dict[str, logs.LogGroup] = {}
        deliveries = []
        for log_type in ("slow-log", "engine-log"):
            log_group = logs.LogGroup(
                self,
                "SlowLog" if log_type == "slow-log" else "EngineLog",
                encryption_key=logs_key,
                retention=retention(settings.log_retention_days),
                removal_policy=removal_policy,
            )
            self.log_groups[log_type] = log_group
            deliveries.append(
                elasticache.CfnReplicationGroup.LogDeliveryConfigurationRequestProperty(
                    destination_type="cloudwatch-logs",
                    destination_details=elasticache.CfnReplicationGroup.DestinationDetailsProperty(
                        cloud_watch_logs_details=elasticache.CfnReplicationGroup.CloudWatchLogsDestinationDetailsProperty(
                            log_group=log_group.log_group_name
                        )
                    ),
                    log_format="json",
                    log_type=log_type,
                )
            )
        return deliveries

    def _log_delivery_policy(self, name: str) -> logs.CfnResourcePolicy:
        """The log groups' resource policy that lets CloudWatch Logs' delivery service write the logs."""
        # ElastiCache delivers logs as a "vended log" source: CloudWatch Logs' delivery service writes into
        # the groups when their resource policy lets it (CloudWatch Logs user guide, "Enabling logging from
        # AWS services"); declared here rather than left to a caller that may not hold logs:PutResourcePolicy.
        stack = Stack.of(self)
        return logs.CfnResourcePolicy(
            self,
            "LogDeliveryPolicy",
            policy_name=f"{name}-log-delivery",
            policy_document=stack.to_json_string(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "ElastiCacheLogDelivery",
                            "Effect": "Allow",
                            "Principal": {"Service": "delivery.logs.amazonaws.com"},
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                            "Resource": [f"{g.log_group_arn}" for g in self.log_groups.values()],
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": stack.account},
                                "ArnLike": {
                                    "aws:SourceArn": stack.format_arn(
                                        service="logs", resource="*", arn_format=ArnFormat.NO_RESOURCE_NAME
                                    )
                                },
                            },
                        }
                    ],
                }
            ),
        )

    def user_id(self, client: str) -> str:
        return f"{self.cache_name}-{client}"

    @property
    def arn(self) -> str:
        """The resource ``elasticache:Connect`` names besides the user."""
        if isinstance(self.cache, elasticache.CfnServerlessCache):
            return self.cache.attr_arn
        # A replication group has no ARN attribute: arn:<partition>:elasticache:<region>:<account>:replicationgroup:<id>
        return self._stack.format_arn(
            service="elasticache",
            resource="replicationgroup",
            resource_name=self.replication_group_id,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    @property
    def endpoint_address(self) -> str:
        if isinstance(self.cache, elasticache.CfnServerlessCache):
            return self.cache.attr_endpoint_address
        if self.cache.cluster_mode == "enabled":
            return self.cache.attr_configuration_end_point_address
        return self.cache.attr_primary_end_point_address

    def user_arn(self, client: str) -> str:
        # arn:<partition>:elasticache:<region>:<account>:user:<user id>
        return self._stack.format_arn(
            service="elasticache",
            resource="user",
            resource_name=self.user_id(client),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )


def _parameters(parameters: Mapping[str, str], *, cluster_mode: bool) -> dict[str, str]:
    return {**parameters, "cluster-enabled": "yes" if cluster_mode else "no"}


def _one_hour_from(start: str) -> str:
    hour, minute = int(start[:2]), start[3:]
    return f"{start}-{(hour + 1) % 24:02d}:{minute}"
