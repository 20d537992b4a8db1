"""Log groups the platform creates itself: encrypted with their own key, with a retention."""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config.settings import LOG_RETENTION_DAYS
from infra.constructs.encryption_key import EncryptionKey
from infra.constructs.removal import kept_if

# The enum lists the same periods in the same ascending order, then INFINITE.
_BY_DAYS = dict(
    zip(LOG_RETENTION_DAYS, [m for m in logs.RetentionDays if m is not logs.RetentionDays.INFINITE], strict=True)
)


def retention(days: int) -> logs.RetentionDays:
    return _BY_DAYS[days]


def log_group_arn(stack: Stack, name: str) -> str:
    """``arn:<partition>:logs:<region>:<account>:log-group:<name>`` of this account and region."""
    return stack.format_arn(
        service="logs",
        resource="log-group",
        resource_name=name,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
        partition=Aws.PARTITION,
        region=Aws.REGION,
        account=Aws.ACCOUNT_ID,
    )


def log_key(
    scope: Construct, key_id: str, *, purpose: str, alias_prefix: str, retain: bool, log_group_name: str | None
) -> kms.IKey:
    """A customer-managed key (alias ``<prefix>/<purpose>``) that CloudWatch Logs may use for the log
    group ``log_group_name`` of this account and region (any of them when None)."""
    key = EncryptionKey(scope, key_id, alias_prefix=alias_prefix, purpose=purpose, retain=retain).key
    stack = Stack.of(scope)
    # CloudWatch Logs' documented key policy statement ("Encrypt log data in CloudWatch Logs using AWS
    # KMS"): the regional service, its actions, and only for log groups of this account and region,
    # by the encryption context it sends (the group's own name when fixed; a generated name is not
    # known to the key without a circular reference).
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsOfThisAccount",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"],
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_group_arn(stack, log_group_name or "*")}},
        )
    )
    return key


def encrypted_log_group(
    scope: Construct,
    *,
    key_id: str,
    group_id: str,
    purpose: str,
    alias_prefix: str,
    retention_days: int,
    retain: bool,
) -> tuple[kms.IKey, logs.LogGroup]:
    """A log group with a generated name, encrypted with its own key (see :func:`log_key`).

    For a group an AWS service names and writes to itself, use ``ServiceLogGroup``.
    """
    key = log_key(scope, key_id, purpose=purpose, alias_prefix=alias_prefix, retain=retain, log_group_name=None)
    group = logs.LogGroup(
        scope,
        group_id,
        encryption_key=key,
        retention=retention(retention_days),
        removal_policy=kept_if(retain),
    )
    return key, group
