"""ingress_certificate: the optional ACM certificate of the environment's ingresses."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from infra.config.settings.base import _Model


class IngressCertificateSettings(_Model):
    """An ACM certificate for the environment's ingresses, validated through DNS in a Route 53 zone."""

    domain_name: Annotated[
        str,
        Field(
            description=(
                "The certificate's name: a lowercase DNS name such as api.example.com, or a wildcard such"
                " as *.example.com; in the hosted zone."
            )
        ),
    ]
    hosted_zone_id: Annotated[
        str,
        Field(
            description=(
                "The id of the public Route 53 hosted zone that answers for domain_name (e.g. "
                "Z0123456789ABCDEFGHIJ); the certificate is validated through DNS records there."
            )
        ),
    ]
    hosted_zone_name: Annotated[str, Field(description="That hosted zone's name, e.g. example.com.")]

    @field_validator("domain_name", "hosted_zone_name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not re.fullmatch(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", value):
            raise ValueError("must be a lowercase DNS name such as api.example.com (a leading *. is allowed)")
        return value

    @field_validator("hosted_zone_id")
    @classmethod
    def _zone_id(cls, value: str) -> str:
        if not re.fullmatch(r"Z[A-Z0-9]{1,31}", value):
            raise ValueError("must be a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ")
        return value

    @model_validator(mode="after")
    def _in_zone(self) -> IngressCertificateSettings:
        name = self.domain_name.removeprefix("*.")
        if name != self.hosted_zone_name and not name.endswith("." + self.hosted_zone_name):
            raise ValueError(
                f"ingress_certificate.domain_name {self.domain_name!r} is not in the hosted zone "
                f"{self.hosted_zone_name!r}; allowed: the zone's name or a name under it"
            )
        return self
