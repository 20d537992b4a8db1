"""The rule packs every environment is checked against at synth."""

from __future__ import annotations

from aws_cdk import App, IPolicyValidationPlugin, Validations
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NagPack, NIST80053R5Checks, PCIDSS321Checks

from infra.compliance.platform_rules import PLUGIN_NAME, PlatformRules

# The packs' names as cdk-nag reports them (NagPack.read_pack_name), in report order.
PACK_NAMES = ("AwsSolutions", "NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


def pack_names() -> list[str]:
    """What :func:`register_rule_packs` returns, without an app."""
    return [*PACK_NAMES, PLUGIN_NAME]


def rule_packs(app: App) -> list[NagPack]:
    return [AwsSolutionsChecks(app), NIST80053R5Checks(app), HIPAASecurityChecks(app), PCIDSS321Checks(app)]


def register_rule_packs(app: App, *, production: bool, validation: IPolicyValidationPlugin | None = None) -> list[str]:
    """Registers cdk-nag's packs and our own rules; returns the pack names in report order.

    Any unacknowledged finding of any pack, warnings included, fails synth. ``validation``: CDK's
    template validation, already starting (infra/validation_engine.py); registered last, where CDK
    puts its own instance when none is given.
    """
    packs = rule_packs(app)
    Validations.of(app).add_plugins(*packs, PlatformRules(production=production))
    if validation is not None:
        Validations.of(app).add_plugins(validation)
    return [pack.read_pack_name for pack in packs] + [PLUGIN_NAME]
