#!/usr/bin/env python3
"""`make reports`: `make synth` for every environment, in one process (one start of jsii and CDK).

Each environment's reports/<env>/ are rewritten when its synth passes; a failing environment is
named and the others still run. Use it after a change that touches more than one environment's
reports: the account stack that environments share holds the image replication of each.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main(project_root: Path = ROOT, synth: Callable[[Any], int] | None = None) -> int:
    """``synth``: app.py's main (by default), given an App with the context `cdk synth` would give it."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    from infra import jsii_node

    jsii_node.configure()
    from aws_cdk import App

    from infra.config.project import Project, cdk_json_context

    if synth is None:
        import app

        synth = app.main
    project = Project(project_root)
    failed = []
    with tempfile.TemporaryDirectory(prefix="cloud-ops-reports-") as work:
        for environment in project.environment_names():
            context = {**cdk_json_context(), "env": environment, "every_environment": True}
            if project.root != ROOT:
                context["project"] = str(project.root)
            code = synth(App(context=context, outdir=str(Path(work) / environment)))
            print(f"{'ok  ' if code == 0 else 'FAIL'} reports/{environment}/", flush=True)
            if code:
                failed.append(environment)
    if failed:
        print(f"error: no new reports for {', '.join(failed)} (the messages above say why)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
