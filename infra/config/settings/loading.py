"""Reading settings: one environment's file (with the shared service catalogue
and the command line's values) into :class:`Settings`, and the checks that look at the neighbouring
environments' files (the account stack they may share)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from infra.config.regions import AWS_REGIONS
from infra.config.settings.base import _ENVIRONMENT_NAME, CATALOGUE_FILE, ENVIRONMENTS_DIR, SettingsError
from infra.config.settings.errors import Sources, format_validation_error
from infra.config.settings.files import known_environments, read_yaml
from infra.config.settings.model import Settings


def command_line_overrides(context: Callable[[str], Any], environ: Mapping[str, str]) -> dict[str, str | None]:
    """``region`` and ``account`` from ``--context``; the account falls back to ``CDK_DEFAULT_ACCOUNT``,
    which the CDK CLI sets whenever it finds credentials. A context value wins over the variable."""
    return {
        "region": context("region"),
        "account": context("account") or environ.get("CDK_DEFAULT_ACCOUNT") or None,
    }


def command_line_sources(context: Callable[[str], Any], environ: Mapping[str, str]) -> dict[str, str]:
    """How a person wrote each value of :func:`command_line_overrides`, for its error messages."""
    sources = {}
    if context("region"):
        sources["region"] = f"--context region={context('region')} (make: REGION={context('region')})"
    if context("account"):
        sources["account"] = f"--context account={context('account')}"
    elif environ.get("CDK_DEFAULT_ACCOUNT"):
        sources["account"] = (
            f"CDK_DEFAULT_ACCOUNT={environ['CDK_DEFAULT_ACCOUNT']} (the CDK CLI sets it from your credentials)"
        )
    return sources


def load_settings(
    environment: str | None,
    *,
    overrides: Mapping[str, str | None] | None = None,
    directory: Path = ENVIRONMENTS_DIR,
    catalogue: Path = CATALOGUE_FILE,
    sources: Mapping[str, str] | None = None,
) -> Settings:
    """Read and validate ``<directory>/<environment>.yaml``.

    ``overrides`` holds values from the command line (``region``, ``account``); ``None``
    values are ignored; ``sources`` says how each was written (:func:`command_line_sources`).
    Raises :class:`SettingsError` with a message for a person.
    """
    known = known_environments(directory)
    if not environment:
        raise SettingsError(
            f"setting 'env' is missing: pass --context env=<name> (known environments: {', '.join(known)})"
        )
    if environment not in known:
        raise SettingsError(
            f"setting 'env' = {environment!r} is not a known environment; allowed: {', '.join(known)} "
            f"(one file each in {directory})"
        )
    path = directory / f"{environment}.yaml"
    if not _ENVIRONMENT_NAME.fullmatch(environment):
        # It names stacks, the cluster, namespaces (<service>-<env>) and the cache (limited lengths).
        raise SettingsError(
            f"setting 'env' = {environment!r} (file {path.name}) is not a valid environment name; allowed: "
            "2-10 lowercase letters and digits, starting with a letter"
        )
    raw = read_yaml(path)
    if raw is None:
        raise SettingsError(
            f"{path}: the file is empty; it holds the settings of environment {environment!r} (start from a copy "
            "of another environment's file)"
        )
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: must be a mapping of settings, got {type(raw).__name__}")
    if "environment" in raw:
        raise SettingsError(f"{path}: setting 'environment' is not allowed: the environment is the file name")
    data: dict[str, Any] = {**raw, "environment": environment}
    data["account_stack"] = _account_stack_of(raw)
    if "services" not in raw:
        data["services"] = load_catalogue(catalogue)
    written = {key: f"--context {key}={value}" for key, value in (overrides or {}).items() if value is not None}
    written.update(sources or {})
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    region = (overrides or {}).get("region")
    if region is not None and isinstance(raw.get("regions"), list):
        if len(raw["regions"]) > 1:
            raise SettingsError(
                f"{path}: --context region={region}: environment {environment!r} spans the regions "
                f"{', '.join(map(str, raw['regions']))} (setting 'regions'); a region override moves a single-region "
                "environment only; allowed: edit 'region' and 'regions' in the settings file, without the override"
            )
        data["regions"] = None  # [the file's region] -> the override alone
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        where = Sources(path, None if "services" in raw else catalogue, written)
        raise SettingsError(format_validation_error(path, error, data, where)) from None
    settings._directory = directory
    check_one_provider_per_account(settings, directory)
    settings.promotion  # noqa: B018 (validates infra/config/delivery.yaml: every synth refuses a bad one)
    return settings


def load_catalogue(path: Path = CATALOGUE_FILE) -> Any:
    """The raw ``services`` list of the shared catalogue (validated with the settings that use it)."""
    if not path.exists():
        raise SettingsError(f"{path}: the service catalogue is missing; it lists `services:`")
    raw = read_yaml(path)
    if raw is None:
        raise SettingsError(f"{path}: the file is empty; it lists the services: `services:` and one entry per service")
    if not isinstance(raw, dict) or set(raw) != {"services"}:
        raise SettingsError(f"{path}: must be a mapping with one key, `services:` (the list of services)")
    return raw["services"]


def _account_stack_of(raw: Mapping[str, Any]) -> Any:
    """``account_stack`` with its region defaulting to the file's own region (not an override)."""
    section = raw.get("account_stack", {})
    # Only a region the file names validly: a bad `region` is reported once, as itself.
    if isinstance(section, dict) and "region" not in section and raw.get("region") in AWS_REGIONS:
        return {**section, "region": raw["region"]}
    return section


def _may_share_account(settings: Settings, directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """The other environments (name, raw settings) that may deploy to the same account: they name the
    same one, or either names none (the account then comes from whoever deploys)."""
    out = []
    for other in known_environments(directory):
        if other == settings.environment:
            continue
        try:
            raw = read_yaml(directory / f"{other}.yaml")
        except SettingsError:
            continue  # reported when that environment is synthesized
        if not isinstance(raw, dict):
            continue
        account = raw.get("account")
        if settings.account and account and str(account) != settings.account:
            continue
        out.append((other, raw))
    return out


def check_one_provider_per_account(settings: Settings, directory: Path = ENVIRONMENTS_DIR) -> None:
    """Refuse settings under which two account stacks would create the account's one GitHub OIDC provider.

    Environments may share an account when they name the same one, or when either names none (the
    account then comes from the credentials of whoever deploys). Sharing environments that create the
    provider must agree on the account stack: the same project (stack name) and the same region.
    """
    mine = (settings.project, settings.account_stack_region, settings.account_stack.github_oidc_provider)
    for other, raw in _may_share_account(settings, directory):
        account = raw.get("account")
        stack = _account_stack_of(raw)
        stack = stack if isinstance(stack, dict) else {}
        theirs = (raw.get("project"), stack.get("region"), stack.get("github_oidc_provider", "create"))
        if "create" in (mine[2], theirs[2]) and mine != theirs:
            raise SettingsError(
                f"environments {settings.environment!r} and {other!r} may share an AWS account "
                f"({'both name ' + settings.account if settings.account and account else 'one names none'}) "
                "but disagree on the account stack, so the account's one GitHub OIDC provider would be created "
                f"twice or deleted: {settings.environment}: project {mine[0]}, account_stack.region {mine[1]}, "
                f"github_oidc_provider {mine[2]}; {other}: project {theirs[0]}, account_stack.region {theirs[1]}, "
                f"github_oidc_provider {theirs[2]}. Allowed: the same project, account_stack.region and "
                "github_oidc_provider in both, or github_oidc_provider: existing in both, or different accounts "
                "named with `account:`"
            )


def environments_sharing_account(settings: Settings) -> list[tuple[str, str, list[str]]]:
    """(project, environment, other regions) of every environment whose account stack is this one's: the
    same project, account and account-stack region; this environment included, sorted by name.

    The account stack's replication rules come from here, so every such environment renders the same
    account stack. Another environment's regions are read as its file lists them (it is validated when
    it is synthesized itself).
    """
    found = {settings.environment: (settings.project, settings.other_regions)}
    for other, raw in _may_share_account(settings, settings.directory):
        stack = _account_stack_of(raw)
        region = stack.get("region") if isinstance(stack, dict) else None
        if raw.get("project") != settings.project or region != settings.account_stack_region:
            continue
        regions = raw.get("regions")
        listed = [str(r) for r in regions[1:]] if isinstance(regions, list) else []
        found[other] = (settings.project, listed)
    return [(project, name, regions) for name, (project, regions) in sorted(found.items())]
