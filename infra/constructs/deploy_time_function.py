"""What a custom resource's own Lambda function in the VPC needs: its role and its log group."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.log_retention import encrypted_log_group


def function_role_and_logs(
    scope: Construct,
    *,
    description: str,
    policy: iam.IManagedPolicy,
    purpose: str,
    alias_prefix: str,
    retain: bool,
    log_retention_days: int,
) -> tuple[iam.Role, logs.LogGroup]:
    """``Role`` (``policy`` and AWS's documented VPC-access policy, managed policies only, so the
    function's permissions exist before it does) and an encrypted ``LogGroup`` with its ``LogKey``."""
    role = iam.Role(
        scope,
        "Role",
        description=description,
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        managed_policies=[
            policy,
            iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole"),
        ],
    )
    _, log_group = encrypted_log_group(
        scope,
        key_id="LogKey",
        group_id="LogGroup",
        purpose=purpose,
        alias_prefix=alias_prefix,
        retention_days=log_retention_days,
        retain=retain,
    )
    return role, log_group
