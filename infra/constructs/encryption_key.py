"""A customer-managed KMS key with rotation and a readable alias."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.constructs.removal import kept_if


class EncryptionKey(Construct):
    """Symmetric key, yearly rotation, alias ``alias/<prefix>/<purpose>``.

    ``retain`` keeps the key when its stack is deleted: data encrypted under a deleted key
    is lost for good, so prod keys outlive their stacks.
    """

    def __init__(self, scope: Construct, construct_id: str, *, alias_prefix: str, purpose: str, retain: bool) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description=f"{alias_prefix} {purpose}",
            alias=f"alias/{alias_prefix}/{purpose}",
            enable_key_rotation=True,
            pending_window=Duration.days(30 if retain else 7),
            removal_policy=kept_if(retain),
        )
        # Grants only for AWS resources: the services that use these keys (EKS, RDS, ElastiCache, ECR,
        # Secrets Manager, AWS Backup, EBS) create their grants through the integration, where KMS sets
        # kms:GrantIsForAWSResource; a principal handing out a grant directly (to anyone) is refused.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="GrantsOnlyForAwsResources",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["kms:CreateGrant"],
                resources=["*"],
                # The form of AWS Control Tower's control CT.KMS.PR.3: fails closed when the key is
                # absent, and leaves grants an AWS service principal creates itself alone.
                conditions={
                    "BoolIfExists": {"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"}
                },
            )
        )
