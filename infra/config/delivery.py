"""The promotion order: ``infra/config/delivery.yaml``, the environments a commit travels through.

A push to main builds each changed service once and deploys it to the first environment of
``promotion``; each next environment receives exactly the image (digest) the one before it runs, after
its GitHub environment's required reviewers. Environments not listed are deployed by hand only. The file
is optional: without it, a push deploys nothing and every deploy is a dispatch.

Synth validates the file (every environment's synth) and reads from it what the templates need: the
environment before this one (its registry, which this environment's deploy role reads when promoting)
and the one after (the account its registry lets pull, when the two live in different accounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config.settings.base import _ENVIRONMENT_NAME, SettingsError
from infra.config.settings.files import known_environments, read_yaml

DELIVERY_FILE = "delivery.yaml"
# .github/workflows/delivery.yml's stages are fixed jobs, each needing the one before.
MAX_STAGES = 4


@dataclass(frozen=True)
class Neighbour:
    """Another environment of the promotion order, as its settings file names it (it is validated when it is
    synthesized itself): what this environment's templates need of it."""

    environment: str
    project: str
    # None: its file names no account (it is deployed to whatever account its deployer's credentials are).
    account: str | None
    # Its primary region: where its images are pushed and its deploys are recorded.
    region: str

    @property
    def name_prefix(self) -> str:
        return f"{self.project}-{self.environment}"


@dataclass(frozen=True)
class Promotion:
    order: tuple[str, ...]
    previous: Neighbour | None = None
    next: Neighbour | None = None


def delivery_file(environments: Path) -> Path:
    """``delivery.yaml`` beside the environments' directory (``infra/config/``)."""
    return environments.parent / DELIVERY_FILE


def load_promotion_order(environments: Path) -> tuple[str, ...]:
    """The validated ``promotion`` list; empty when the project has no delivery file."""
    path = delivery_file(environments)
    if not path.exists():
        return ()
    raw = read_yaml(path)
    allowed = "a mapping with one key, `promotion:`, the list of environments a commit travels through in order"
    if not isinstance(raw, dict) or set(raw) != {"promotion"}:
        keys = ", ".join(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
        raise SettingsError(f"{path}: got {keys}; allowed: {allowed}, e.g. promotion: [dev, prod]")
    order = raw["promotion"]
    known = known_environments(environments)
    if not isinstance(order, list) or not order or not all(isinstance(name, str) for name in order):
        raise SettingsError(
            f"{path}: setting 'promotion' = {order!r}; allowed: a non-empty list of environment names "
            f"({', '.join(known)}), the first deployed on every push to main"
        )
    for name in order:
        if name not in known or not _ENVIRONMENT_NAME.fullmatch(name):
            raise SettingsError(
                f"{path}: setting 'promotion' names {name!r}, which is not a known environment; allowed: "
                f"{', '.join(known)} (one settings file each in {environments})"
            )
    if len(order) > MAX_STAGES:
        raise SettingsError(
            f"{path}: setting 'promotion' = {order} lists {len(order)} environments; allowed: at most {MAX_STAGES} "
            "(the delivery workflow's stages; .github/workflows/delivery.yml)"
        )
    repeated = sorted({name for name in order if order.count(name) > 1})
    if repeated:
        raise SettingsError(
            f"{path}: setting 'promotion' = {order}: {', '.join(repeated)} is listed twice; allowed: each "
            "environment once (an image travels forward only)"
        )
    first = _raw(environments, order[0])
    if first.get("production") is True:
        raise SettingsError(
            f"{path}: setting 'promotion' starts with {order[0]!r}, a production environment (production: true "
            f"in {order[0]}.yaml); every push to main deploys the first environment without a reviewer; allowed: "
            "a non-production environment first, production after it"
        )
    return tuple(order)


def _raw(environments: Path, name: str) -> dict[str, Any]:
    try:
        raw = read_yaml(environments / f"{name}.yaml")
    except SettingsError:
        return {}  # reported when that environment is synthesized
    return raw if isinstance(raw, dict) else {}


def _neighbour(environments: Path, name: str) -> Neighbour:
    raw = _raw(environments, name)
    regions = raw.get("regions")
    region = regions[0] if isinstance(regions, list) and regions else raw.get("region")
    account = raw.get("account")
    return Neighbour(
        environment=name,
        project=str(raw.get("project")),
        account=str(account) if account is not None else None,
        region=str(region),
    )


def promotion_of(environment: str, environments: Path) -> Promotion:
    """Where ``environment`` stands in the promotion order: the environments just before and after it."""
    order = load_promotion_order(environments)
    if environment not in order:
        return Promotion(order)
    index = order.index(environment)
    return Promotion(
        order,
        previous=_neighbour(environments, order[index - 1]) if index > 0 else None,
        next=_neighbour(environments, order[index + 1]) if index + 1 < len(order) else None,
    )
