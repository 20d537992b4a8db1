"""services: the service catalogue's entries."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from infra.config.settings.base import _distinct_members, _Model

DATA_STORES = ("database", "cache")
_SERVICE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$")


class ServiceSettings(_Model):
    """One microservice of the catalogue: its namespace is ``<name>-<env>``."""

    name: Annotated[
        str,
        Field(
            description=(
                "The service's name, a DNS label of 1-30 characters (lowercase letters, digits, hyphens, "
                "starting with a letter), unique in the catalogue; its namespace is <name>-<env>."
            )
        ),
    ]
    port: Annotated[
        int,
        Field(
            ge=1024,
            le=65535,
            description=("The service's port, 1024 to 65535; its Helm values' service.port must say the same."),
        ),
    ] = 8080
    ingress: Annotated[
        bool, Field(description="Whether the service is reachable from outside the cluster, through an ingress.")
    ]
    uses: Annotated[
        list[str],
        Field(
            description=(
                "Data stores the service connects to, each once: database, cache; its IRSA role gets "
                "exactly the grants for these."
            )
        ),
    ] = []

    @field_validator("uses")
    @classmethod
    def _uses(cls, value: list[str]) -> list[str]:
        return _distinct_members(value, DATA_STORES, "data store")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SERVICE_NAME.match(value):
            raise ValueError(
                "must be a DNS label of 1-30 characters: lowercase letters, digits and hyphens, starting with a letter"
            )
        return value
