"""A log group an AWS service writes to under a name it chooses (EKS, RDS), kept through the Logs API.

CloudFormation cannot own such a group as ``AWS::Logs::LogGroup`` in a destroyable environment: the
service re-creates the group when its last logs arrive after the stack deleted it, and the next
create of a stack that names the group fails with "already exists". So a custom resource creates the
group if it is absent and adopts it if it is present, then sets its key and retention on every
deploy; deleting the stack deletes the group, or keeps it (and its logs) where data is retained.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.constructs.deploy_time_function import function_role_and_logs
from infra.constructs.log_retention import log_group_arn, log_key

# The construct id aws-cdk-lib gives the one function behind every AwsCustomResource of a stack.
AWS_CUSTOM_RESOURCE_FUNCTION = "AWS679f53fac002430cb0da5b7982bd2287"


class ServiceLogGroup(Construct):
    """``name``, encrypted with a key of its own, kept ``retention_days``; created or adopted at deploy time.

    The custom resources run in one Lambda function per stack (aws-cdk-lib's ``AwsCustomResource``
    singleton), inside ``vpc``'s ``subnets``, with its own encrypted log group and a role that may
    touch this log group only.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        key_id: str,
        purpose: str,
        retention_days: int,
        function_log_retention_days: int,
        retain: bool,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        alias_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # The key lives beside the construct (its logical id is the one it had as a plain log group's key).
        key = log_key(scope, key_id, purpose=purpose, alias_prefix=alias_prefix, retain=retain, log_group_name=name)
        self.name = name
        self.arn = log_group_arn(stack, name)
        provider = provider_of(
            stack, alias_prefix=alias_prefix, retain=retain, log_retention_days=function_log_retention_days
        )
        provider.policy.add_statements(
            iam.PolicyStatement(
                sid="ManageServiceLogGroup" + "".join(c for c in construct_id if c.isalnum()),
                actions=[
                    "logs:CreateLogGroup",
                    "logs:AssociateKmsKey",
                    "logs:PutRetentionPolicy",
                    "logs:DeleteLogGroup",
                ],
                # IAM evaluates these actions against log-group:<name>:log-stream: (CloudWatch Logs user
                # guide: use the ARN with a trailing :* for all but the tagging actions).
                resources=[self.arn, f"{self.arn}:*"],
            )
        )
        common = {
            "vpc": vpc,
            "vpc_subnets": subnets,
            "role": provider.role,
            "log_group": provider.log_group,
            "install_latest_aws_sdk": False,
        }
        physical_id = cr.PhysicalResourceId.of(name)
        self.group = cr.AwsCustomResource(
            self,
            "Group",
            on_create=cr.AwsSdkCall(
                service="CloudWatchLogs",
                action="createLogGroup",
                parameters={"logGroupName": name, "kmsKeyId": key.key_arn},
                physical_resource_id=physical_id,
                # Present already (the service re-created it, or a retained group): adopt it.
                ignore_error_codes_matching="ResourceAlreadyExistsException",
            ),
            on_delete=None
            if retain
            else cr.AwsSdkCall(
                service="CloudWatchLogs",
                action="deleteLogGroup",
                parameters={"logGroupName": name},
                ignore_error_codes_matching="ResourceNotFoundException",
            ),
            **common,  # type: ignore[arg-type]
        )
        settings = {
            "Key": ("associateKmsKey", {"logGroupName": name, "kmsKeyId": key.key_arn}),
            "Retention": ("putRetentionPolicy", {"logGroupName": name, "retentionInDays": retention_days}),
        }
        for setting_id, (action, parameters) in settings.items():
            call = cr.AwsSdkCall(
                service="CloudWatchLogs", action=action, parameters=parameters, physical_resource_id=physical_id
            )
            setting = cr.AwsCustomResource(self, setting_id, on_create=call, on_update=call, **common)  # type: ignore[arg-type]
            setting.node.add_dependency(self.group)
        self.key = key


class _Provider(Construct):
    """Per stack: the ``AwsCustomResource`` function's role (managed policies only) and its own log group."""

    def __init__(
        self, scope: Construct, construct_id: str, *, alias_prefix: str, retain: bool, log_retention_days: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.policy = iam.ManagedPolicy(self, "Policy", description="Manage the log groups AWS services write to")
        self.role, self.log_group = function_role_and_logs(
            self,
            description="Creates, adopts and configures the log groups AWS services write to (CloudWatch Logs API)",
            policy=self.policy,
            purpose=f"{Stack.of(self).stack_name.removeprefix(alias_prefix + '-')}-log-groups-function",
            alias_prefix=alias_prefix,
            retain=retain,
            log_retention_days=log_retention_days,
        )


def provider_of(stack: Stack, *, alias_prefix: str, retain: bool, log_retention_days: int) -> _Provider:
    existing = stack.node.try_find_child("ServiceLogGroupProvider")
    if isinstance(existing, _Provider):
        return existing
    return _Provider(
        stack,
        "ServiceLogGroupProvider",
        alias_prefix=alias_prefix,
        retain=retain,
        log_retention_days=log_retention_days,
    )
