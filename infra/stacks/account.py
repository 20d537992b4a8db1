"""Account stack: what exists once per AWS account, shared by every environment deployed to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Aws, CfnOutput
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.constructs.removal import KEPT
from infra.stacks.base import PlatformStack

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"


def github_oidc_provider_arn(stack: PlatformStack) -> str:
    """The account's GitHub OIDC provider: IAM names it by its host, so the account alone gives its ARN."""
    return stack.iam_arn("oidc-provider", GITHUB_OIDC_HOST)


@dataclass(frozen=True)
class ReplicationRule:
    """Images of the repositories whose names start with ``repository_prefix`` go to ``regions``."""

    repository_prefix: str
    regions: Sequence[str]


class AccountStack(PlatformStack):
    """``<project>-account``: the GitHub OIDC provider (an account holds one per issuer URL) and the
    registry's replication configuration (a registry holds one per region: this stack's region).

    Every environment's app includes this same stack, so deploying dev and then prod to one account
    updates it to what it already is. It is termination-protected and the provider is retained:
    destroying an environment never removes what the other environments use.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        github_oidc_provider: bool = True,
        replication: Sequence[ReplicationRule] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, zones=[], termination_protection=True, **kwargs)
        self.github_provider: iam.OidcProviderNative | None = None
        if github_oidc_provider:
            self.github_provider = iam.OidcProviderNative(
                self, "GithubOidc", url=f"https://{GITHUB_OIDC_HOST}", client_ids=["sts.amazonaws.com"]
            )
            self.github_provider.apply_removal_policy(KEPT)
            CfnOutput(
                self,
                "GithubOidcProviderArn",
                value=self.github_provider.oidc_provider_arn,
                description="The account's GitHub Actions OIDC provider; every environment's deploy role trusts it",
            )
        self.replication: ecr.CfnReplicationConfiguration | None = None
        if replication:
            # One rule per environment of several regions, limited to its repositories
            # (<project>-<env>/<service>): images pushed to the primary region are copied to the others,
            # where each environment's repository creation template (its registry stack there) makes the
            # replicas immutable, encrypted with that region's key and under the same lifecycle. Only
            # images pushed after this exists are replicated (ECR user guide, private image replication).
            self.replication = ecr.CfnReplicationConfiguration(
                self,
                "ImageReplication",
                replication_configuration={
                    "rules": [
                        {
                            "destinations": [{"region": r, "registryId": Aws.ACCOUNT_ID} for r in rule.regions],
                            "repositoryFilters": [{"filter": rule.repository_prefix, "filterType": "PREFIX_MATCH"}],
                        }
                        for rule in replication
                    ]
                },
            )
