"""registry: the ECR repositories' lifecycle."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from infra.config.settings.base import _Model


class RegistrySettings(_Model):
    """ECR lifecycle: untagged images go after a few days, only the newest tagged ones are kept, and
    an image that was ever deployed is kept by its own, larger count (it may be running, or be what a
    rollback needs)."""

    untagged_image_days: Annotated[
        int, Field(ge=1, le=90, description="Days after which an untagged image is expired, 1 to 90.")
    ]
    keep_tagged_images: Annotated[
        int,
        Field(
            ge=1,
            le=1000,
            description=(
                "How many of the newest tagged images are kept, 1 to 1000 (images ever deployed are counted apart)."
            ),
        ),
    ]
    keep_deployed_images: Annotated[
        int,
        Field(
            ge=10,
            le=10000,
            description=(
                "How many of the newest images that were ever deployed are kept, 10 to 10000; the other "
                "rules never expire them."
            ),
        ),
    ] = 1000
