#!/usr/bin/env python3
"""cloud-ops CDK app: ``cdk synth --context env=<name> [--context region=...] [--context account=...]``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.config import SettingsError, load_settings
from infra.config.helm_values import check_service_values
from infra.config.project import REPOSITORY, Project
from infra.config.settings import command_line_overrides, command_line_sources

if TYPE_CHECKING:
    from aws_cdk import App


def cli_context() -> dict[str, Any]:
    """The context the CDK CLI hands the app: ``CDK_CONTEXT_JSON``, and the file it names in
    ``CONTEXT_OVERFLOW_LOCATION_ENV`` when the context is too large for the environment (as aws-cdk-lib's
    ``App`` reads them). Read here so that a mistake in the settings is reported before jsii starts."""
    context: dict[str, Any] = {}
    overflow = os.environ.get("CONTEXT_OVERFLOW_LOCATION_ENV")
    if overflow:
        context.update(json.loads(Path(overflow).read_text(encoding="utf-8")))
    context.update(json.loads(os.environ.get("CDK_CONTEXT_JSON") or "{}"))
    return context


def main(app: App | None = None) -> int:
    """``app``: an App with its context already set (tests); by default the CLI's, from the environment."""
    context: Callable[[str], Any] = app.node.try_get_context if app is not None else cli_context().get
    # Another tree laid out like this repository (tests: their examples, a copy with a procedure applied).
    project = Project(Path(context("project")).resolve()) if context("project") else REPOSITORY
    # For `make bench` and experiments: another settings directory, and where reports go.
    settings_dir = context("settings_dir")
    try:
        settings = load_settings(
            context("env"),
            directory=Path(settings_dir) if settings_dir else project.environments,
            catalogue=project.catalogue,
            overrides=command_line_overrides(context, os.environ),
            sources=command_line_sources(context, os.environ),
        )
        if not settings_dir:
            # The project's own settings: every catalogue service must be deployable in this environment.
            # (An experiment with another settings directory, such as make bench's catalogues, has no values.)
            check_service_values(settings, project.helm_values)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from aws_cdk import App

    app = app or App()
    # The committed reports/<env>/ describe the settings file as it is; a synth for another region
    # (--context region=...) reports beside its templates instead.
    default_reports = Path(app.outdir) / "reports" if context("region") else project.reports
    reports_dir = Path(context("reports_dir") or default_reports)

    from infra.compliance.packs import register_rule_packs
    from infra.compliance.report import synth_with_report
    from infra.platform import addon_values, build_platform

    try:
        platform = build_platform(app, settings, addon_values=addon_values(settings.environment, project.helm_values))
    except SettingsError as error:
        # Raised while building (the kubectl layer of the chosen Kubernetes version, a values file):
        # name the settings file the choice came from, unless the message names its own file.
        source = Path(settings_dir) if settings_dir else project.environments
        where = "" if str(error).startswith(str(project.root)) else f"{source / settings.environment}.yaml: "
        print(f"error: {where}{error}", file=sys.stderr)
        return 2
    packs = register_rule_packs(app, production=settings.production)
    code = synth_with_report(app, platform, packs, reports_dir / settings.environment)
    # (make reports, which rewrites every environment's, says nothing: the others are next.)
    if code == 0 and reports_dir == project.reports and not app.node.try_get_context("every_environment"):
        from infra.reports.shared import stale_report_notes

        for note in stale_report_notes(settings, reports_dir, project.relative):
            print(note, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
