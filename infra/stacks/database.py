"""Database stack: Aurora PostgreSQL (Serverless v2 or provisioned) in the isolated data subnets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import jsii
from aws_cdk import ArnFormat, CfnOutput, Duration, Fn, RemovalPolicy
from aws_cdk import aws_backup as backup
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct, IConstruct

from infra.config.settings import DatabaseSettings
from infra.config.subnets import DATA as DATA_SUBNETS
from infra.config.subnets import PRIVATE as PRIVATE_SUBNETS
from infra.constructs.data_store_access import security_group_admitting
from infra.constructs.database_users import DatabaseUsers, Writer
from infra.constructs.encryption_key import EncryptionKey
from infra.constructs.removal import KEPT
from infra.constructs.service_log_group import ServiceLogGroup
from infra.stacks.base import PlatformStack

POSTGRES_PORT = 5432
# Not the well-known "postgres": a guessable admin name halves the work of anyone trying passwords.
# Fixed at creation: changing it later replaces the cluster.
MASTER_USERNAME = "platform_admin"
# How often Secrets Manager rotates a generated master password (a global database's primary).
MASTER_PASSWORD_ROTATION_DAYS = 30
# The key of the master secret's copy in a global database's other regions (in their network stacks).
SECRET_REPLICA_PURPOSE = "aurora-master-secret-replica"
# Characters a generated master password leaves out, at creation and at each rotation alike: CDK's
# default for RDS secrets (DatabaseSecret), which the rotation application must be told as well.
PASSWORD_EXCLUDE_CHARACTERS = " %+~`#$&*()|[]{}:;<>?!'/@\"\\"


def secret_replica_alias(name_prefix: str) -> str:
    """The alias of the key that encrypts the master secret's copy in a secondary region."""
    return f"alias/{name_prefix}/{SECRET_REPLICA_PURPOSE}"


# The logs the cluster exports to CloudWatch Logs (Aurora PostgreSQL: instance, postgresql, iam-db-auth-error;
# RDS API reference, CreateDBCluster EnableCloudwatchLogsExports), each into a group the stack creates first:
# (log type, construct id, key id, key purpose). The first keeps the ids it had as the only one.
LOG_EXPORTS = (
    ("postgresql", "PostgresLogGroup", "LogKey", "aurora-logs"),
    ("iam-db-auth-error", "IamAuthErrorLogGroup", "IamAuthErrorLogKey", "aurora-iam-auth-error-logs"),
)


@dataclass(frozen=True)
class GlobalMembership:
    """The cluster's place in an Aurora global database (an environment of several regions)."""

    identifier: str  # the global cluster's id: a cross-region reference for a secondary
    primary: bool  # the writer's region; the others hold read-only secondaries


@jsii.implements(ec2.IConnectable)
class _PostgresPort:
    """The database's security group with PostgreSQL's port as a number: the rule the rotation function
    gets then names 5432, not the cluster's port attribute (which the rule packs cannot read)."""

    def __init__(self, security_group: ec2.ISecurityGroup) -> None:
        self._connections = ec2.Connections(security_groups=[security_group], default_port=ec2.Port.tcp(POSTGRES_PORT))

    @property
    def connections(self) -> ec2.Connections:
        return self._connections


class DatabaseStack(PlatformStack):
    """Aurora PostgreSQL reachable only from the workload security group, on 5432, over TLS.

    Applications authenticate with IAM database authentication as their own database user (named
    after the service, created at deploy time with a schema it owns: ``DatabaseUsers``); the master
    password is generated, stored and rotated by RDS in Secrets Manager under a customer-managed key,
    and no workload or person is granted it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        workload_security_group: ec2.ISecurityGroup,
        zones: list[str],
        database: DatabaseSettings,
        name_prefix: str,
        retain_data: bool,
        users: list[str],
        function_log_retention_days: int,
        global_membership: GlobalMembership | None = None,
        engine_version: str | None = None,
        writer_region: str | None = None,
        secret_replica_regions: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        """``engine_version``: this cluster's, when not ``database.engine_version`` (a global database's
        minor upgrade, secondaries first); ``writer_region``: the global database's writer region when
        a switchover moved it away from this one; ``secret_replica_regions``: where the primary's master
        secret is copied (the regions a switchover can make the writer: the users are made there)."""
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        self.cluster_identifier = f"{name_prefix}-db"
        self.global_membership = global_membership
        self.writer_region = writer_region or self.region
        engine_version = engine_version or database.engine_version
        secondary = global_membership is not None and not global_membership.primary
        self.readers = database.readers
        self.deletion_protection = retain_data
        self._keys_and_log_group(
            database,
            vpc=vpc,
            name_prefix=name_prefix,
            retain_data=retain_data,
            secondary=secondary,
            function_log_retention_days=function_log_retention_days,
        )
        self.security_group = security_group_admitting(
            self,
            vpc=vpc,
            source=workload_security_group,
            port=POSTGRES_PORT,
            what="PostgreSQL",
            description=f"Aurora {self.cluster_identifier}: PostgreSQL from the EKS workloads only",
        )
        self.cluster = self._cluster(
            database,
            vpc=vpc,
            engine_version=engine_version,
            global_membership=global_membership,
            retain_data=retain_data,
        )
        self.cluster.node.add_dependency(*self.log_groups)
        self.global_cluster_id: str | None = None
        self.users: DatabaseUsers | None = None
        self.rotation_schedule: IConstruct | None = None
        if global_membership and global_membership.primary:
            self.global_cluster_id = self._global_cluster(global_membership, vpc, retain_data)
        if secondary:
            self._join_as_secondary(cast(GlobalMembership, global_membership))
            self.backup_plan = None
            self._outputs(secret=False)
            return
        self.backup_plan = self._backup_plan(name_prefix, database) if retain_data else None
        self.master_secret_arn = self.cluster.secret.secret_arn if self.cluster.secret else ""
        if secret_replica_regions:
            self._replicate_master_secret(name_prefix, secret_replica_regions)
        self.users = self._users(
            users,
            database,
            vpc=vpc,
            name_prefix=name_prefix,
            retain_data=retain_data,
            function_log_retention_days=function_log_retention_days,
        )
        self._outputs(secret=True)

    def _users(
        self,
        users: list[str],
        database: DatabaseSettings,
        *,
        vpc: ec2.IVpc,
        name_prefix: str,
        retain_data: bool,
        function_log_retention_days: int,
    ) -> DatabaseUsers:
        """The services' PostgreSQL roles and schemas, made on the writer once any first rotation has started."""
        made = DatabaseUsers(
            self,
            "Users",
            cluster=self.cluster,
            writer=self._writer(name_prefix),
            database_name=database.database_name,
            users=users,
            vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_group_name=PRIVATE_SUBNETS),
            alias_prefix=name_prefix,
            retain=retain_data,
            log_retention_days=function_log_retention_days,
        )
        if self.rotation_schedule is not None:
            # The first rotation starts when its schedule is created and runs while the users are
            # made: after it has started, the users' function waits out its authentication failures.
            made.node.add_dependency(self.rotation_schedule)
        return made

    def _keys_and_log_group(
        self,
        database: DatabaseSettings,
        *,
        vpc: ec2.IVpc,
        name_prefix: str,
        retain_data: bool,
        secondary: bool,
        function_log_retention_days: int,
    ) -> None:
        """The storage key, the master secret's key (none on a secondary) and the PostgreSQL log group."""
        self.storage_key = EncryptionKey(
            self, "StorageKey", alias_prefix=name_prefix, purpose="aurora-storage", retain=retain_data
        ).key
        # A secondary has no master secret of its own: the primary's credentials replicate with the data.
        self.secret_key = (
            None
            if secondary
            else EncryptionKey(
                self, "SecretKey", alias_prefix=name_prefix, purpose="aurora-master-secret", retain=retain_data
            ).key
        )
        # RDS exports to /aws/rds/cluster/<id>/<log type>; created here first, encrypted and with a
        # retention, instead of by RDS (unencrypted) or by CDK's log-retention Lambda. The PostgreSQL log, and
        # the IAM database authentication errors: the services sign in with IAM only, so a refused token
        # (an expired one, a missing rds-db:connect grant) is told there, with its reason.
        self.log_groups = [
            ServiceLogGroup(
                self,
                construct_id,
                name=f"/aws/rds/cluster/{self.cluster_identifier}/{log_type}",
                key_id=key_id,
                purpose=purpose,
                alias_prefix=name_prefix,
                retention_days=database.log_retention_days,
                function_log_retention_days=function_log_retention_days,
                retain=retain_data,
                vpc=vpc,
                subnets=ec2.SubnetSelection(subnet_group_name=PRIVATE_SUBNETS),
            )
            for log_type, construct_id, key_id, purpose in LOG_EXPORTS
        ]

    def _cluster(
        self,
        database: DatabaseSettings,
        *,
        vpc: ec2.IVpc,
        engine_version: str,
        global_membership: GlobalMembership | None,
        retain_data: bool,
    ) -> rds.DatabaseCluster:
        """The Aurora cluster, its parameter group and instances, in the data subnets."""
        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=self.engine(engine_version),
            description=f"{self.cluster_identifier}: TLS only, statement and connection logging",
            parameters={
                "rds.force_ssl": "1",
                "ssl_min_protocol_version": "TLSv1.2",
                "log_connections": "1",
                "log_disconnections": "1",
                "log_min_duration_statement": "1000",
            },
        )
        return rds.DatabaseCluster(
            self,
            "Cluster",
            cluster_identifier=self.cluster_identifier,
            engine=self.engine(engine_version),
            writer=self._instance("writer", database, reader=False, key=self.storage_key),
            readers=[
                self._instance(f"reader{i + 1}", database, reader=True, key=self.storage_key)
                for i in range(database.readers)
            ],
            serverless_v2_min_capacity=database.capacity.min_acu if database.capacity else None,
            serverless_v2_max_capacity=database.capacity.max_acu if database.capacity else None,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_group_name=DATA_SUBNETS),
            security_groups=[self.security_group],
            port=POSTGRES_PORT,
            default_database_name=database.database_name,
            credentials=(
                # RDS-managed master passwords are not supported in a global database (Aurora user
                # guide, "Password management with Amazon RDS and AWS Secrets Manager", limitations):
                # there, a generated secret that Secrets Manager rotates (below).
                rds.Credentials.from_generated_secret(
                    MASTER_USERNAME, encryption_key=self.secret_key, exclude_characters=PASSWORD_EXCLUDE_CHARACTERS
                )
                if global_membership and global_membership.primary
                else rds.Credentials.from_username(MASTER_USERNAME, encryption_key=self.secret_key)
            ),
            manage_master_user_password=not (global_membership and global_membership.primary),
            iam_authentication=True,
            storage_encrypted=True,
            storage_encryption_key=self.storage_key,
            parameter_group=parameters,
            cloudwatch_logs_exports=[log_type for log_type, *_ in LOG_EXPORTS],
            monitoring_interval=(
                Duration.seconds(database.monitoring_interval_seconds) if database.monitoring_interval_seconds else None
            ),
            enable_performance_insights=database.performance_insights or None,
            performance_insight_encryption_key=self.storage_key if database.performance_insights else None,
            backup=rds.BackupProps(
                retention=Duration.days(database.backup_retention_days), preferred_window="02:00-03:00"
            ),
            preferred_maintenance_window="sun:04:00-sun:05:00",
            copy_tags_to_snapshot=True,
            deletion_protection=self.deletion_protection,
            # Prod: a final snapshot on delete or replacement. Dev: gone with the stack.
            removal_policy=RemovalPolicy.SNAPSHOT if retain_data else RemovalPolicy.DESTROY,
            delete_automated_backups=not retain_data,
            # The RDS Data API: how the platform creates the services' database users (ADR 0009). On every
            # member of a global database from the start: a secondary answers once a switchover has made
            # it the writer (Aurora user guide, Data API limitations), so the switch changes nothing here.
            enable_data_api=True,
        )

    def _writer(self, name_prefix: str) -> Writer:
        """Where the users are made: this cluster, or (after a switchover) the writer's in its region,
        through the copy of the master secret there."""
        region = self.writer_region
        if region == self.region:
            return Writer(
                region,
                self.cluster.cluster_arn,
                self.master_secret_arn,
                [cast(kms.IKey, self.secret_key).key_arn],
                {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
            )
        parts = Fn.split(":", self.master_secret_arn, 7)
        # The copy's ARN: the primary's with this region (the same name and suffix: Secrets Manager).
        replica = Fn.join(":", [*parts[:3], region, *parts[4:]])
        return Writer(
            region,
            self.format_arn(
                service="rds",
                region=region,
                resource="cluster",
                resource_name=self.cluster_identifier,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
            replica,
            [self.format_arn(service="kms", region=region, resource="key", resource_name="*")],
            {
                "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"},
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": [secret_replica_alias(name_prefix)]},
            },
        )

    def _replicate_master_secret(self, name_prefix: str, regions: Sequence[str]) -> None:
        """A copy of the master secret in each region a switchover can make the writer, under that
        region's key (made by its network stack, which this stack waits for): the RDS Data API reads a
        secret of its own region. Secrets Manager keeps the copies current through every rotation."""
        # The cluster's generated secret (its `secret` is the attachment to the cluster).
        secret = self.cluster.node.find_child("Secret").node.default_child
        cast(secretsmanager.CfnSecret, secret).add_property_override(
            "ReplicaRegions", [{"Region": r, "KmsKeyId": secret_replica_alias(name_prefix)} for r in regions]
        )

    def _outputs(self, *, secret: bool) -> None:
        secondary = not secret
        CfnOutput(
            self,
            "Endpoint",
            value=self.cluster.cluster_endpoint.hostname,
            description="Writer endpoint"
            if self.writer_region == self.region
            else f"Cluster endpoint of a read-only secondary: writes go on to the writer in {self.writer_region}",
        )
        CfnOutput(
            self, "ReaderEndpoint", value=self.cluster.cluster_read_endpoint.hostname, description="Reader endpoint"
        )
        CfnOutput(self, "Port", value=str(POSTGRES_PORT), description="PostgreSQL port (TLS required)")
        if self.global_membership:
            CfnOutput(
                self,
                "GlobalClusterId",
                value=self.global_membership.identifier if secondary else cast(str, self.global_cluster_id),
                # (The README leads to docs/regions.md; the deployed text is kept as it is.)
                description="Aurora global database (switchover and failover: README)",
            )
        if secret:
            CfnOutput(
                self,
                "MasterSecretArn",
                value=self.master_secret_arn,
                description="Master credentials ("
                + ("generated, rotated by Secrets Manager" if self.global_membership else "RDS-managed, rotated")
                + "); for administrators, not workloads",
            )

    def _global_cluster(self, membership: GlobalMembership, vpc: ec2.IVpc, retain_data: bool) -> str:
        """Makes this cluster the primary of a global database, and has its master password rotated."""
        global_cluster = rds.CfnGlobalCluster(
            self,
            "GlobalCluster",
            global_cluster_identifier=membership.identifier,
            # Converts this cluster (AWS::RDS::GlobalCluster, SourceDBClusterIdentifier): engine,
            # version and encryption come from it, so they are not set here. By identifier: the
            # resource handler finds the ARN itself (an ARN given here has failed: awsdocs
            # aws-cloudformation-user-guide#1049).
            source_db_cluster_identifier=self.cluster.cluster_identifier,
            deletion_protection=retain_data,
        )
        # After the instances exist (the conversion needs an available cluster; the cluster itself
        # comes first by the reference above).
        global_cluster.node.add_dependency(*self._instances())
        # Plain Retain, not KEPT: when a failed update that made it rolls back, deleting a global cluster
        # that still has this cluster as its member could fail the rollback itself; kept, it is
        # removed by hand (docs/operations.md) and nothing of the regional cluster is at risk.
        global_cluster.apply_removal_policy(RemovalPolicy.RETAIN if retain_data else RemovalPolicy.DESTROY)
        if self.writer_region != self.region:
            # Demoted by a switchover or failover: this region's services write through it too. (Not
            # set before: RDS accepts it only on a member of a global database, and this cluster is
            # created standalone, then converted.)
            cfn = cast(rds.CfnDBCluster, self.cluster.node.default_child)
            cfn.add_property_override("EnableGlobalWriteForwarding", True)
            # Secrets Manager rotates a secret in its own region, and the rotation function here has no
            # route to a writer in another region's VPC: paused while the writer is away (docs/regions.md).
            return global_cluster.ref
        # Secrets Manager's single-user PostgreSQL rotation (its published application), from the
        # private subnets, admitted to the database on 5432 by a rule of its own.
        secretsmanager.SecretRotation(
            self,
            "MasterRotation",
            application=secretsmanager.SecretRotationApplication.POSTGRES_ROTATION_SINGLE_USER,
            secret=cast(secretsmanager.ISecret, self.cluster.secret),
            target=_PostgresPort(self.security_group),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_group_name=PRIVATE_SUBNETS),
            automatically_after=Duration.days(MASTER_PASSWORD_ROTATION_DAYS),
            exclude_characters=PASSWORD_EXCLUDE_CHARACTERS,
        )
        # The first rotation runs at once: after the instances exist and the function may reach them.
        # (The schedule is a child of the cluster's secret attachment, not of the rotation construct.)
        schedule = cast(secretsmanager.ISecret, self.cluster.secret).node.find_child("RotationSchedule")
        schedule.node.add_dependency(*self._instances(), self.security_group)
        self.rotation_schedule = schedule
        return global_cluster.ref

    def _instances(self) -> list[IConstruct]:
        names = ["writer", *(f"reader{n + 1}" for n in range(self.readers))]
        return [self.cluster.node.find_child(name) for name in names]

    def _join_as_secondary(self, membership: GlobalMembership) -> None:
        """A read-only secondary: RDS takes the engine's users, data and master credentials from the
        primary, so the properties a writer is created with must be absent (AWS::RDS::DBCluster)."""
        cfn = cast(rds.CfnDBCluster, self.cluster.node.default_child)
        cfn.add_property_override("GlobalClusterIdentifier", membership.identifier)
        # Writes sent to this region's cluster are forwarded to the primary's writer (Aurora
        # PostgreSQL 16+, every minor): services here need no route to the primary region.
        cfn.add_property_override("EnableGlobalWriteForwarding", True)
        for name in ("MasterUsername", "ManageMasterUserPassword", "MasterUserSecret", "DatabaseName"):
            cfn.add_property_deletion_override(name)

    def _backup_plan(self, name_prefix: str, database: DatabaseSettings) -> backup.BackupPlan:
        """Daily AWS Backup snapshots of the cluster in an encrypted vault that outlives the stack.

        Aurora's own automated backups (point-in-time recovery) are deleted with the cluster after
        its final snapshot; these recovery points are independent of it.
        """
        vault = backup.BackupVault(
            self,
            "BackupVault",
            backup_vault_name=f"{name_prefix}-database",
            encryption_key=EncryptionKey(
                self, "BackupKey", alias_prefix=name_prefix, purpose="aurora-backups", retain=True
            ).key,
            removal_policy=KEPT,
        )
        plan = backup.BackupPlan(self, "BackupPlan", backup_plan_name=f"{name_prefix}-database", backup_vault=vault)
        plan.add_rule(
            backup.BackupPlanRule(
                rule_name="daily",
                schedule_expression=events.Schedule.cron(hour="5", minute="0"),
                delete_after=Duration.days(max(35, database.backup_retention_days)),
            )
        )
        plan.add_selection("Cluster", resources=[backup.BackupResource.from_rds_database_cluster(self.cluster)])
        return plan

    @staticmethod
    def engine(version: str) -> rds.IClusterEngine:
        constant = getattr(rds.AuroraPostgresEngineVersion, "VER_" + version.replace(".", "_"))
        return rds.DatabaseClusterEngine.aurora_postgres(version=constant)

    @staticmethod
    def _instance(name: str, database: DatabaseSettings, *, reader: bool, key: kms.IKey) -> rds.IClusterInstance:
        # Performance Insights on every instance, under the same customer key as the cluster's.
        insights = database.performance_insights or None
        insights_key = key if database.performance_insights else None
        if database.instance_class:
            return rds.ClusterInstance.provisioned(
                name,
                instance_type=ec2.InstanceType(database.instance_class.removeprefix("db.")),
                publicly_accessible=False,
                auto_minor_version_upgrade=True,
                enable_performance_insights=insights,
                performance_insight_encryption_key=insights_key,
            )
        # Readers scale with the writer so a failover lands on an instance of the same size.
        return rds.ClusterInstance.serverless_v2(
            name,
            scale_with_writer=reader,
            publicly_accessible=False,
            auto_minor_version_upgrade=True,
            enable_performance_insights=insights,
            performance_insight_encryption_key=insights_key,
        )

    def resource_id(self) -> str:
        return self.cluster.cluster_resource_identifier

    def connect_arn(self, db_user: str) -> str:
        """``rds-db:connect`` resource for one database user of this cluster."""
        # arn:<partition>:rds-db:<region>:<account>:dbuser:<cluster resource id>/<user>
        return self.format_arn(
            service="rds-db",
            resource="dbuser",
            resource_name=f"{self.cluster.cluster_resource_identifier}/{db_user}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
