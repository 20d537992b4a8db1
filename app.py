#!/usr/bin/env python3
"""cloud-ops CDK app: ``cdk synth --context env=<name> [--context region=...] [--context account=...]``."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only these at the top: the settings' modules (pydantic among them) are imported by prepare(), while
# the jsii runtime loads aws-cdk-lib and CDK's validation engine starts (infra/validation_engine.py).
from infra import jsii_node, validation_engine

if TYPE_CHECKING:
    from aws_cdk import App

    from infra.config import SettingsError
    from infra.config.project import Project
    from infra.config.settings import Settings


def cli_context() -> dict[str, Any]:
    """The context the CDK CLI hands the app: ``CDK_CONTEXT_JSON``, and the file it names in
    ``CONTEXT_OVERFLOW_LOCATION_ENV`` when the context is too large for the environment (as aws-cdk-lib's
    ``App`` reads them). Read here, before aws-cdk-lib is loaded, so that a mistake in the settings is
    reported without waiting for it."""
    context: dict[str, Any] = {}
    overflow = os.environ.get("CONTEXT_OVERFLOW_LOCATION_ENV")
    if overflow:
        context.update(json.loads(Path(overflow).read_text(encoding="utf-8")))
    context.update(json.loads(os.environ.get("CDK_CONTEXT_JSON") or "{}"))
    return context


@dataclass(frozen=True)
class Prepared:
    """What the construction needs, read and checked before any construct exists."""

    project: Project
    settings: Settings
    # The settings directory the environment's file is in (for messages).
    source: Path
    addon_values: dict[str, dict[str, Any]]

    def located(self, error: SettingsError) -> str:
        """An error raised while building (the kubectl layer of the chosen Kubernetes version, a values
        file), prefixed with the settings file the choice came from unless it names its own file."""
        own_file = str(error).startswith(str(self.project.root))
        return str(error) if own_file else f"{self.source / self.settings.environment}.yaml: {error}"


def prepare(context: Callable[[str], Any]) -> Prepared:
    """Reads and checks the settings and the Helm values, and imports the modules the construction
    uses: pure Python, no jsii call (it runs while the validation engine starts; tests/test_speed.py).
    Raises SettingsError with the message to print."""
    from infra.config import SettingsError, load_settings
    from infra.config.helm_values import check_service_values
    from infra.config.project import REPOSITORY, Project
    from infra.config.settings import command_line_overrides, command_line_sources

    # Another tree laid out like this repository (tests: their examples, a copy with a procedure applied).
    project = Project(Path(context("project")).resolve()) if context("project") else REPOSITORY
    # For `make bench` and experiments: another settings directory, and where reports go.
    settings_dir = context("settings_dir")
    source = Path(settings_dir) if settings_dir else project.environments
    settings = load_settings(
        context("env"),
        directory=source,
        catalogue=project.catalogue,
        overrides=command_line_overrides(context, os.environ),
        sources=command_line_sources(context, os.environ),
    )
    if not settings_dir:
        # The project's own settings: every catalogue service must be deployable in this environment.
        # (An experiment with another settings directory, such as make bench's catalogues, has no values.)
        check_service_values(settings, project.helm_values)
    # The stacks' modules (aws-cdk-lib's Python bindings): the larger part of the wait this fills.
    import infra.compliance.packs
    import infra.compliance.report  # noqa: F401
    from infra.platform import addon_values

    try:
        values = addon_values(settings.environment, project.helm_values)
    except SettingsError as error:
        raise SettingsError(Prepared(project, settings, source, {}).located(error)) from error
    return Prepared(project, settings, source, values)


def main(app: App | None = None) -> int:
    """``app``: an App with its context already set (tests); by default the CLI's, from the environment."""
    context: Callable[[str], Any] = app.node.try_get_context if app is not None else cli_context().get
    # A synth from the CLI: CDK's validation engine starts in a process of its own and the jsii runtime
    # loads aws-cdk-lib (a background thread), beside prepare() (pure Python).
    engine = validation_engine.start() if app is None else None
    try:
        return _synthesize(app, context, engine)
    finally:
        if engine is not None:
            engine.close()  # (used and ended already, unless the synth stopped before its validation)


def _synthesize(app: App | None, context: Callable[[str], Any], engine: validation_engine.WarmingEngine | None) -> int:
    """main() once the engine is starting: settings, platform, rule packs, synth and reports."""
    from infra.config import SettingsError

    try:
        prepared = prepare(context)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    validation = engine.plugin() if engine is not None else None

    from aws_cdk import App

    from infra.compliance.packs import register_rule_packs
    from infra.compliance.report import synth_with_report
    from infra.platform import build_platform

    # The validation plugin is registered explicitly (infra/validation_engine.py): CDK adds none of its own.
    app = app or App(builtin_cloud_formation_validation=validation is None)
    project, settings = prepared.project, prepared.settings
    try:
        platform = build_platform(app, settings, addon_values=prepared.addon_values)
    except SettingsError as error:
        print(f"error: {prepared.located(error)}", file=sys.stderr)
        return 2
    reports_dir = reports_directory(context, Path(app.outdir), project.reports)
    packs = register_rule_packs(app, production=settings.production, validation=validation)
    code = synth_with_report(app, platform, packs, reports_dir / settings.environment)
    # (make reports, which rewrites every environment's, says nothing: the others are next.)
    if code == 0 and reports_dir == project.reports and not app.node.try_get_context("every_environment"):
        from infra.reports.shared import stale_report_notes

        for note in stale_report_notes(settings, reports_dir, project.relative):
            print(note, file=sys.stderr)
    return code


def reports_directory(context: Callable[[str], Any], outdir: Path, committed: Path) -> Path:
    """Where a synth writes its reports: ``--context reports_dir=``; else the committed reports/, which
    describe the settings files as they are; a synth for another region (``--context region=``) or of
    another settings directory (``--context settings_dir=``) beside its templates instead."""
    if context("reports_dir"):
        return Path(context("reports_dir"))
    return outdir / "reports" if context("region") or context("settings_dir") else committed


def run_from_cli() -> None:
    """``python app.py`` as the CDK CLI runs it: the jsii runtime's Node.js flags (infra/jsii_node.py),
    main(), then an exit that does not wait for the jsii runtime's own teardown.

    When main() returns, the cloud assembly and the reports are written and closed; what is left is
    the jsii runtime's exit (its Node.js processes free a heap of several hundred MB), up to a second
    that ``cdk synth`` would otherwise wait for. The runtime ends on
    its own once its input closes with this process, and removes its own working directory; the copy
    of the runtime that the jsii package writes for Python goes into a scratch directory of this run
    (``tempfile.tempdir``), removed here. An exception leaves through the normal exit instead.

    cdk.json runs this under ``python -O``: jsii's bindings then leave each argument's type to the jsii
    kernel, which checks every value anyway, instead of checking it in Python first (about 0.4 s of a
    synth; docs/decisions/0005-scale-and-speed.md). The test suite's own processes keep those checks.
    """
    jsii_node.configure()
    scratch = tempfile.mkdtemp(prefix="cloud-ops-synth-")
    tempfile.tempdir = scratch
    # Registered before the jsii runtime starts: on a normal exit it runs after the runtime's own stop.
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    shutil.rmtree(scratch, ignore_errors=True)
    os._exit(code)


if __name__ == "__main__":
    run_from_cli()
