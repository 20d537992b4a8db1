"""account_stack: what exists once per AWS account."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from infra.config.settings.base import _aws_region, _Model


class AccountStackSettings(_Model):
    """What exists once per AWS account, in the ``<project>-account`` stack (not once per environment)."""

    region: Annotated[
        str | None,
        Field(
            description=(
                "The region of the <project>-account stack. IAM is global, so every environment sharing "
                "an account must name the same region; an environment of several regions, its primary "
                "region. Left out: the region in the settings file (never a --context region override)."
            )
        ),
    ] = None
    github_oidc_provider: Annotated[
        Literal["create", "existing"],
        Field(
            description=(
                "create: the account stack creates the account's GitHub OIDC provider; existing: the "
                "account already has one (another project made it, or someone by hand), referenced by the"
                " ARN the account determines. Environments sharing an account and creating it must agree "
                "on project and account_stack.region."
            )
        ),
    ] = "create"

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return value if value is None else _aws_region(value)
