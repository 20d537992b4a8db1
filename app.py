#!/usr/bin/env python3
"""cloud-ops CDK app: ``cdk synth --context env=<name> [--context region=...] [--context account=...]``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from infra.config import SettingsError, load_settings
from infra.config.helm_values import check_service_values
from infra.config.settings import ENVIRONMENTS_DIR, command_line_overrides

if TYPE_CHECKING:
    from aws_cdk import App

ROOT = Path(__file__).resolve().parent


def main(app: App | None = None) -> int:
    """``app``: an App with its context already set (tests); by default the CLI's, from the environment."""
    from aws_cdk import App

    app = app or App()
    # For `make bench` and experiments: another settings directory, and where reports go.
    settings_dir = app.node.try_get_context("settings_dir")
    region = app.node.try_get_context("region")
    # The committed reports/<env>/ describe the settings file as it is; a synth for another region
    # (--context region=...) reports beside its templates instead.
    default_reports = Path(app.outdir) / "reports" if region else ROOT / "reports"
    reports_dir = Path(app.node.try_get_context("reports_dir") or default_reports)
    try:
        settings = load_settings(
            app.node.try_get_context("env"),
            directory=Path(settings_dir) if settings_dir else ENVIRONMENTS_DIR,
            overrides=command_line_overrides(app.node.try_get_context, os.environ),
        )
        if not settings_dir:
            # The project's own settings: every catalogue service must be deployable in this environment.
            # (An experiment with another settings directory, such as make bench's catalogues, has no values.)
            check_service_values(settings.environment, [s.name for s in settings.services])
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from infra.compliance.packs import register_rule_packs
    from infra.compliance.report import synth_with_report
    from infra.platform import addon_values, build_platform

    try:
        platform = build_platform(app, settings, addon_values=addon_values(settings.environment))
    except SettingsError as error:
        # Raised while building (the kubectl layer of the chosen Kubernetes version, a values file):
        # name the settings file the choice came from, unless the message names its own file.
        source = Path(settings_dir) if settings_dir else ENVIRONMENTS_DIR
        where = "" if str(error).startswith(str(ROOT)) else f"{source / settings.environment}.yaml: "
        print(f"error: {where}{error}", file=sys.stderr)
        return 2
    packs = register_rule_packs(app, production=settings.production)
    return synth_with_report(app, platform, packs, reports_dir / settings.environment)


if __name__ == "__main__":
    sys.exit(main())
