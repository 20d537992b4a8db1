"""account_stack: what exists once per AWS account."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from infra.config.settings.base import _aws_region, _Model


class AccountStackSettings(_Model):
    """What exists once per AWS account, in the ``<project>-account`` stack (not once per environment)."""

    # Where the account stack lives. IAM is global, so every environment sharing an account must name
    # the same region. Default: the region in the settings file (never a --context region override).
    region: str | None = None
    # create: the account stack creates the GitHub OIDC provider; existing: the account already has one
    # (another project made it, or someone by hand), referenced by its ARN, which the account determines.
    github_oidc_provider: Literal["create", "existing"] = "create"

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return value if value is None else _aws_region(value)
