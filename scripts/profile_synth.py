#!/usr/bin/env python3
"""Where one synth's time goes, by phase: ``profile_synth.py ENV [SETTINGS_DIR]`` prints one JSON object.

Runs app.py's own steps in this process, one after the other, as ``cdk synth`` runs them (cdk.json's
context, an output directory, reports beside the templates), with a timer around each:

- starting the jsii runtime and loading aws-cdk-lib and cdk-nag into it;
- importing the app's modules (aws-cdk-lib's Python bindings of the services the stacks use);
- reading and checking the settings and the Helm values (``app.prepare``, without its imports);
- starting CDK's validation engine (``CloudFormationValidatePlugin``, in its own process as app.py
  starts it: infra/validation_engine.py);
- building the constructs (``build_platform``);
- CDK's template validation, cdk-nag's four packs, our own rules, writing the assembly: inside
  ``app.synth()``, read from CDK's own performance counters (``CDK_PERF_COUNTERS_FILE``, which CDK
  writes when a synth is slower than ``@aws-cdk/core.slowSynthThreshold``, here 0): the validation
  span less the engine's template checks (the plugin's call, timed here) and our rules (a Python
  callback, timed here) is the packs' share, with CDK's validation report; the synthesis phase less the
  validation span is the writing;
- the reports (compliance, cost, architecture);
- the jsii runtime's teardown, which app.py does not wait for.

``make bench`` runs it with the interpreter options of cdk.json's app command (``python -O``), as
``cdk synth`` runs app.py. In a real ``cdk synth`` the runtime's load runs on a background thread
beside the imports and the settings, and the engine's start in its own process beside those and the
construction (infra/validation_engine.py), so the wall time is less than the sum; ``make bench`` prints
both. The phases are measured, not estimated: nothing here is skipped or stubbed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Phase names, in the order they run.
RUNTIME = "jsii runtime + aws-cdk-lib, cdk-nag loaded"
IMPORTS = "app's modules imported"
SETTINGS = "settings and Helm values read and checked"
ENGINE = "CDK validation engine started"
CONSTRUCTS = "constructs built"
TEMPLATE_VALIDATION = "CDK template validation"
PACKS = "cdk-nag packs (+ validation report)"
OWN_RULES = "own rules"
WRITING = "assembly written"
REPORTS = "reports written"
TEARDOWN = "jsii runtime teardown (not waited for)"
PHASES = (RUNTIME, IMPORTS, SETTINGS, ENGINE, CONSTRUCTS, TEMPLATE_VALIDATION, PACKS, OWN_RULES, WRITING, REPORTS)


def profile(environment: str, outdir: Path, settings_dir: Path | None = None) -> dict[str, float]:
    phases: dict[str, float] = {}
    context = dict(json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"])
    context.update({"env": environment, "reports_dir": str(outdir / "reports")})
    context["@aws-cdk/core.slowSynthThreshold"] = 0
    if settings_dir is not None:
        context["settings_dir"] = str(settings_dir)
    counters = outdir / "perf-counters.json"
    # Before aws-cdk-lib is imported: its jsii runtime (where App reads them) starts with this environment.
    os.environ.update(
        {"CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(outdir), "CDK_PERF_COUNTERS_FILE": str(counters)}
    )
    sys.path.insert(0, str(ROOT))
    # The runtime's Node.js flags, as app.py sets them.
    from infra import jsii_node

    jsii_node.configure()

    def timed(phase: str, module: Any = None, name: str = "") -> Any:
        """A context for a block, or a wrapper around ``module.name`` adding to ``phase``."""
        if module is None:
            return _Timer(phases, phase)
        original = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _Timer(phases, phase):
                return original(*args, **kwargs)

        setattr(module, name, wrapper)
        return None

    with timed(RUNTIME):
        import aws_cdk
        import cdk_nag  # noqa: F401
    with timed(IMPORTS):
        import app
        from infra import validation_engine, validation_proxy
        from infra.compliance import packs, platform_rules, report
        from infra.platform import build_platform
    with timed(SETTINGS):
        prepared = app.prepare(context.get)
    with timed(ENGINE):
        # As app.py starts it (infra/validation_engine.py); its name is the process's first answer, once
        # its engine has started (CDK's own plugin in the runtime is started by then).
        validation = validation_engine.WarmingEngine().plugin()
        _ = validation.name
    if isinstance(validation, validation_proxy.ValidationProxy):
        timed(TEMPLATE_VALIDATION, validation_proxy.ValidationProxy, "validate")
    with timed(CONSTRUCTS):
        cdk_app = aws_cdk.App(builtin_cloud_formation_validation=False)
        platform = build_platform(cdk_app, prepared.settings, addon_values=prepared.addon_values)
    timed(OWN_RULES, platform_rules, "evaluate")
    timed(REPORTS, report, "write_report")
    timed(REPORTS, report, "write_environment_reports")
    names = packs.register_rule_packs(cdk_app, production=prepared.settings.production, validation=validation)
    code = report.synth_with_report(cdk_app, platform, names, outdir / "reports" / environment)
    if code != 0:
        raise SystemExit(f"profile: synth of {environment} failed ({code})")
    _synthesis_phases(phases, json.loads(counters.read_text(encoding="utf-8"))["counters"])
    import jsii._runtime

    with timed(TEARDOWN):
        # The runtime's own stop, as a normal interpreter exit runs it (app.py does not wait for it).
        jsii._runtime.kernel.provider._process.stop()  # type: ignore[attr-defined]
    return {phase: round(phases.get(phase, 0.0), 3) for phase in (*PHASES, TEARDOWN)}


def _synthesis_phases(phases: dict[str, float], perf: dict[str, float]) -> None:
    """The phases inside ``app.synth()``, from CDK's performance counters (milliseconds)."""
    milliseconds = 1000.0
    validation_span = perf["validateTemplates"] / milliseconds
    if TEMPLATE_VALIDATION not in phases:  # CDK's own plugin in the runtime: CDK's counter of it
        phases[TEMPLATE_VALIDATION] = perf["CloudFormationValidate.validate"] / milliseconds
    phases[PACKS] = validation_span - phases[TEMPLATE_VALIDATION] - phases.get(OWN_RULES, 0.0)
    phases[WRITING] = perf["phase:Synthesis"] / milliseconds - validation_span


class _Timer:
    def __init__(self, phases: dict[str, float], phase: str) -> None:
        self.phases, self.phase = phases, phase

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        self.phases[self.phase] = self.phases.get(self.phase, 0.0) + time.perf_counter() - self.start


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: scripts/profile_synth.py ENV [SETTINGS_DIR]", file=sys.stderr)
        return 2
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="cloud-ops-profile-") as work:
        phases = profile(argv[0], Path(work), Path(argv[1]) if len(argv) > 1 else None)
    print(json.dumps(phases))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
