"""github: the repository whose GitHub Actions may deploy, and where its deploy job runs."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from infra.config.settings.base import _Model

# Labels of GitHub-hosted runners (docs.github.com, "GitHub-hosted runners"): they run outside the VPC.
GITHUB_HOSTED_LABEL_PREFIXES = ("ubuntu-", "windows-", "macos-")


class GithubSettings(_Model):
    """The repository whose GitHub Actions may deploy, through OIDC (no long-lived keys)."""

    owner: Annotated[
        str,
        Field(
            description=(
                "The GitHub user or organisation that owns the repository (no wildcards). Set it to yours"
                " before deploying the cicd stack."
            )
        ),
    ]
    repository: Annotated[
        str, Field(description="The repository whose GitHub Actions may deploy, through OIDC (no wildcards).")
    ]
    owner_id: Annotated[
        Annotated[int, Field(ge=1)] | None,
        Field(
            description=(
                "GitHub's numeric id of the owner. Set both ids (gh api repos/OWNER/REPO --jq '.owner.id,"
                " .id') or neither: set them when the repository's OIDC tokens carry immutable ids "
                "(repositories created or renamed after 2026-07-15, or opted in); the deploy role then "
                "trusts only the subject repo:<owner>@<owner id>/<repo>@<repo id>:…."
            )
        ),
    ] = None
    repository_id: Annotated[
        Annotated[int, Field(ge=1)] | None,
        Field(description="GitHub's numeric id of the repository; with owner_id (both or neither)."),
    ] = None
    deploy_runs_on: Annotated[
        list[str],
        Field(
            min_length=1,
            description=(
                "The runner labels deploy-service's deploy job runs on (its runs-on). A private API "
                "endpoint is reachable only from inside the VPC: name self-hosted runners there "
                "(production refuses GitHub-hosted ones then). {region} is replaced with the region "
                "deployed to (required with several regions and private endpoints); {run_id} and "
                "{run_attempt}, for CodeBuild-hosted runners' labels."
            ),
        ),
    ] = ["ubuntu-latest"]

    @field_validator("deploy_runs_on")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not re.fullmatch(r"[A-Za-z0-9._{}-]{1,100}", label):
                raise ValueError(
                    f"{label!r} is not a runner label: letters, digits, '.', '_', '-', {{run_id}}, {{region}}"
                )
        return value

    @property
    def github_hosted_runner(self) -> bool:
        return all(label.startswith(GITHUB_HOSTED_LABEL_PREFIXES) for label in self.deploy_runs_on)

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?", value):
            raise ValueError("must be a GitHub user or organisation name: letters, digits, inner hyphens, no wildcards")
        return value

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", value) or value in (".", ".."):
            raise ValueError("must be a GitHub repository name: letters, digits, '.', '_', '-', no wildcards")
        return value

    @model_validator(mode="after")
    def _both_ids_or_neither(self) -> GithubSettings:
        if (self.owner_id is None) != (self.repository_id is None):
            raise ValueError(
                f"github.owner_id = {self.owner_id} and github.repository_id = {self.repository_id}: set both "
                "(`gh api repos/OWNER/REPO --jq '.owner.id, .id'`) or neither"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: object) -> object:
        if isinstance(data, dict) and "oidc_provider_arn" in data:
            raise ValueError(
                "github.oidc_provider_arn was replaced by account_stack.github_oidc_provider: existing (the "
                "provider's ARN follows from the account)"
            )
        return data
