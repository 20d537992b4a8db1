"""Account stack: what exists once per AWS account, shared by every environment deployed to it."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.stacks.base import PlatformStack

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"


def github_oidc_provider_arn(stack: PlatformStack) -> str:
    """The account's GitHub OIDC provider: IAM names it by its host, so the account alone gives its ARN."""
    return stack.iam_arn("oidc-provider", GITHUB_OIDC_HOST)


class AccountStack(PlatformStack):
    """``<project>-account``: the GitHub OIDC provider (an account holds one per issuer URL).

    Every environment's app includes this same stack, so deploying dev and then prod to one account
    updates it to what it already is. It is termination-protected and the provider is retained:
    destroying an environment never removes what the other environments use.
    """

    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, zones=[], termination_protection=True, **kwargs)
        self.github_provider = iam.OidcProviderNative(
            self, "GithubOidc", url=f"https://{GITHUB_OIDC_HOST}", client_ids=["sts.amazonaws.com"]
        )
        self.github_provider.apply_removal_policy(RemovalPolicy.RETAIN)
        CfnOutput(
            self,
            "GithubOidcProviderArn",
            value=self.github_provider.oidc_provider_arn,
            description="The account's GitHub Actions OIDC provider; every environment's deploy role trusts it",
        )
