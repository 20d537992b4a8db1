"""Each database-using service's PostgreSQL role and schema, created at deploy time (ADR 0009).

One custom resource per user, served by one small function of this construct: it reads the
RDS-managed master secret through the RDS Data API (no network path to the database, no password
in a person's hands), creates the role with ``rds_iam`` and a schema the role owns, and on delete
does nothing: removing a service from the catalogue never drops its role or its data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct, IConstruct

from infra.constructs.deploy_time_function import function_role_and_logs
from infra.constructs.removal import kept_if

HANDLER_FILE = Path(__file__).resolve().parent / "database_users_handler.py"
# CloudFormation's inline code (ZipFile) limit, in characters.
INLINE_CODE_LIMIT = 4096
RESOURCE_TYPE = "Custom::DatabaseUser"


@dataclass(frozen=True)
class Writer:
    """Where the users are made: the writer cluster's region and ARN, a copy of the master secret in
    that region (the RDS Data API reads it there), and the KMS key statement that lets it be read."""

    region: str
    cluster_arn: str
    secret_arn: str
    key_resources: Sequence[str]
    key_conditions: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Shared:
    """What every user's resource shares: the function's ARN, the stack's region, the writer instance."""

    service_token: str
    region: str
    writer_instance: IConstruct


class DatabaseUsers(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: rds.DatabaseCluster,
        writer: Writer,
        database_name: str,
        users: Sequence[str],
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        alias_prefix: str,
        retain: bool,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        code = HANDLER_FILE.read_text(encoding="utf-8")
        if len(code) > INLINE_CODE_LIMIT:
            raise ValueError(f"{HANDLER_FILE.name} is {len(code)} characters; inline code allows {INLINE_CODE_LIMIT}")
        self.policy = self._policy(writer)
        self.role, log_group = function_role_and_logs(
            self,
            description="Creates each database-using service's PostgreSQL role and schema at deploy time",
            policy=self.policy,
            purpose="database-users-function",
            alias_prefix=alias_prefix,
            retain=retain,
            log_retention_days=log_retention_days,
        )
        self.function = self._function(code, log_group=log_group, vpc=vpc, subnets=subnets)
        self.users: dict[str, CustomResource] = {}
        # What every user's resource shares, read from the CDK engine once (each read is a call into it).
        shared = _Shared(
            service_token=self.function.function_arn,
            region=Stack.of(self).region,
            writer_instance=cluster.node.find_child("writer"),
        )
        for user in users:
            self.users[user] = self._user(
                user, shared=shared, writer=writer, database_name=database_name, retain=retain
            )

    def _policy(self, writer: Writer) -> iam.ManagedPolicy:
        """The function's own permissions: the Data API on the writer, its master secret and that secret's key."""
        return iam.ManagedPolicy(
            self,
            "Policy",
            description="Create service roles in the Aurora cluster through the RDS Data API as the master user",
            statements=[
                iam.PolicyStatement(
                    sid="DataApi", actions=["rds-data:ExecuteStatement"], resources=[writer.cluster_arn]
                ),
                # The Data API reads the secret with the caller's credentials (Aurora user guide,
                # "Authorizing access to the RDS Data API").
                iam.PolicyStatement(
                    sid="MasterSecret", actions=["secretsmanager:GetSecretValue"], resources=[writer.secret_arn]
                ),
                iam.PolicyStatement(
                    sid="MasterSecretKey",
                    actions=["kms:Decrypt"],
                    resources=list(writer.key_resources),
                    conditions=dict(writer.key_conditions),
                ),
            ],
        )

    def _function(
        self, code: str, *, log_group: logs.ILogGroup, vpc: ec2.IVpc, subnets: ec2.SubnetSelection
    ) -> lambda_.Function:
        """The function in the VPC, with a security group that lets it reach AWS APIs over HTTPS only."""
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Database users function: HTTPS to AWS APIs (RDS Data API, CloudFormation response) only",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs")
        return lambda_.Function(
            self,
            "Function",
            description="Creates service roles (rds_iam) and their schemas through the RDS Data API; never drops",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_inline(code),
            timeout=Duration.minutes(10),  # a rotation of the master password is waited out
            role=self.role,
            log_group=log_group,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
        )

    def _user(self, user: str, *, shared: _Shared, writer: Writer, database_name: str, retain: bool) -> CustomResource:
        """One service's PostgreSQL role and schema."""
        resource = CustomResource(
            self,
            f"User-{user}",
            service_token=shared.service_token,
            resource_type=RESOURCE_TYPE,
            properties={
                "User": user,
                "Database": database_name,
                "ClusterArn": writer.cluster_arn,
                "SecretArn": writer.secret_arn,
                # The writer of a global database in another region (after a switchover): the
                # function calls that region's Data API (over HTTPS, like any AWS API).
                **({"Region": writer.region} if writer.region != shared.region else {}),
            },
            # Never dropped: a role whose service left a production catalogue keeps its data.
            removal_policy=kept_if(retain),
        )
        # The writer must be up (the cluster itself by its ARN above; the role by the function's).
        resource.node.add_dependency(shared.writer_instance)
        return resource
