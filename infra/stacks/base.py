"""Behaviour every cloud-ops stack shares."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, Stack
from constructs import Construct


class PlatformStack(Stack):
    """A stack whose availability zones come from settings, never from a lookup.

    CDK's default ``availability_zones`` asks the account for its zones when the stack has a
    concrete account, which needs credentials at synth time. Overriding the property with
    the zones listed in settings keeps synth offline for every account.
    """

    def __init__(self, scope: Construct, construct_id: str, *, zones: list[str], **kwargs: Any) -> None:
        self._zones = list(zones)
        super().__init__(scope, construct_id, **kwargs)

    @property
    def availability_zones(self) -> list[str]:
        return self._zones

    def iam_arn(self, resource: str, name: str) -> str:
        """``arn:<partition>:iam::<account>:<resource>/<name>`` in the account deployed to (IAM has no
        region), with pseudo parameters rather than a literal account."""
        return self.format_arn(
            service="iam",
            region="",
            account=Aws.ACCOUNT_ID,
            partition=Aws.PARTITION,
            resource=resource,
            resource_name=name,
        )
