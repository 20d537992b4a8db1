#!/usr/bin/env python3
"""Where one synth's time goes, by phase: ``profile_synth.py ENV [--variant full|no-packs|no-validation]``.

Runs app.py's own path in this process (as ``cdk synth`` runs it: cdk.json's context, an output
directory, reports beside the templates) with timers around each phase, and prints one JSON object of
seconds. The phases that run inside CDK's synthesis (cdk-nag's packs, CDK's template validation) have
no Python boundary to time, so ``make bench`` measures them as differences between variants: the same
synth without the packs registered (``no-packs``), and without CDK's built-in validation
(``no-validation``, ``CDK_VALIDATION=false``). Our own rules run as a Python callback and are timed
directly. Nothing here changes what a real synth checks: the variants exist only in this script.
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
VARIANTS = ("full", "no-packs", "no-validation")


def profile(environment: str, variant: str, outdir: Path, settings_dir: Path | None = None) -> dict[str, float]:
    phases: dict[str, float] = {}
    # Before aws-cdk-lib is imported: its jsii runtime (where App reads them) starts with this environment.
    context = dict(json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"])
    context.update({"env": environment, "reports_dir": str(outdir / "reports")})
    if settings_dir is not None:
        context["settings_dir"] = str(settings_dir)
    os.environ["CDK_CONTEXT_JSON"] = json.dumps(context)
    os.environ["CDK_OUTDIR"] = str(outdir)
    if variant == "no-validation":
        os.environ["CDK_VALIDATION"] = "false"
    started = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    import aws_cdk

    phases["import aws-cdk-lib (jsii runtime)"] = time.perf_counter() - started
    mark = time.perf_counter()
    import app as cloud_ops_app
    from infra import platform
    from infra.compliance import packs, platform_rules, report

    phases["import the app (cdk-nag, modules, settings models)"] = time.perf_counter() - mark

    def timed(module: Any, name: str, phase: str) -> None:
        original = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            mark = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - mark

        setattr(module, name, wrapper)

    timed(platform, "build_platform", "construct building")
    timed(platform_rules, "evaluate", "own rules")
    timed(report, "write_report", "reports")
    timed(report, "write_environment_reports", "reports")
    if variant == "no-packs":
        packs.rule_packs = lambda app: []

    original_synth = aws_cdk.App.synth

    def synth(self: Any, *args: Any, **kwargs: Any) -> Any:
        mark = time.perf_counter()
        try:
            return original_synth(self, *args, **kwargs)
        finally:
            phases["app.synth (validation, templates, writing)"] = time.perf_counter() - mark

    aws_cdk.App.synth = synth  # type: ignore[method-assign]
    mark = time.perf_counter()
    code = cloud_ops_app.main()
    phases["main (settings to reports)"] = time.perf_counter() - mark
    if code != 0:
        raise SystemExit(f"profile: synth of {environment} failed ({code})")
    phases["total in process"] = time.perf_counter() - started
    return phases


def main(argv: list[str]) -> int:
    environment = argv[0]
    variant = argv[1].removeprefix("--variant=") if len(argv) > 1 else "full"
    settings_dir = Path(argv[2]) if len(argv) > 2 else None
    if variant not in VARIANTS:
        print(f"variant must be one of {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="cloud-ops-profile-") as work:
        phases = profile(environment, variant, Path(work), settings_dir)
    print(json.dumps(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
