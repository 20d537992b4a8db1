"""Every documented procedure, then `make test`, stays green: on a copy of the user's working tree.

tests/procedures.py applies each procedure of README.md and docs/*.md (the blocks after
`<!-- procedure: ... -->`) to a copy of the working tree as the user has it, tracked and untracked
files alike; tests/subjects.py then synthesizes every environment of the copy as `make synth` does
(writing the copy's reports), and the tests of the user's platform run over those environments too
(their ids start with `after-procedures-`). This module checks that the procedures did what the documents say they do.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.config.project import REPOSITORY
from infra.reports.shared import account_stack_section, stale_report_notes
from tests.procedures import documents, procedures
from tests.projects import ROOT, load_yaml, working_tree_files
from tests.subjects import procedure_copy, two_regions
from tests.synth import Synthesized


def test_every_documented_procedure_applies_to_a_copy_of_the_working_tree() -> None:
    copy = procedure_copy()
    assert copy.error is None, copy.error
    applied = {a.procedure for a in copy.applied}
    assert {"add-service", "add-environment"} <= applied
    # Each kind of change at least once, whatever the user's settings were.
    for one_of in (
        {"cache-replication-group", "cache-serverless"},
        {"cache-cluster-mode", "cache-serverless"},
        {"database-provisioned", "database-serverless"},
        {"nodes-on-demand", "nodes-spot"},
        {"karpenter", "cluster-autoscaler"},
        {"pod-identity", "irsa"},
    ):
        assert one_of & applied, one_of
    # Two regions for the last environment, unless it has several already.
    last = REPOSITORY.environment_names()[-1]
    regions = load_yaml(_file(REPOSITORY.environments / f"{last}.yaml")).get("regions") or [None]
    assert ("two-regions" in applied) is (len(regions) == 1)


def _file(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_copy_is_the_working_tree_with_the_procedures_changes() -> None:
    copy = procedure_copy()
    assert copy.project is not None
    mine = set(working_tree_files())
    theirs = set(working_tree_files(copy.project.root))
    # Nothing of the user's is left out; what is new is the procedures' (and the reports make synth wrote),
    # a new service's code among them (services/<name>, built by build-image).
    assert mine <= theirs
    added = {Path(name).parts[0] for name in theirs - mine}
    assert added <= {"infra", "helm_values", "reports", "services"}, added
    # The workflows need no edit for a new service or environment.
    for workflow in (".github/workflows/deploy-service.yml", ".github/workflows/build-image.yml"):
        assert _file(copy.project.root / workflow) == _file(ROOT / workflow)


def test_the_new_service_and_environment_are_in_the_copy_with_their_values() -> None:
    copy = procedure_copy()
    assert copy.project is not None
    (service,) = [a.detail.split(",")[0] for a in copy.applied if a.procedure == "add-service"]
    (environment,) = [a.environment for a in copy.applied if a.procedure == "add-environment"]
    assert environment in copy.project.environment_names()
    catalogue = load_yaml(_file(copy.project.catalogue))["services"]
    assert service in [s["name"] for s in catalogue]
    for name in copy.project.environment_names():
        values = load_yaml(_file(copy.project.helm_values / name / "services" / f"{service}.yaml"))
        assert values["environment"] == name
        assert values["service"]["name"] == values["serviceAccount"]["name"] == service


@pytest.mark.parametrize("name", sorted(procedures()))
def test_each_procedure_block_is_valid_as_written(name: str) -> None:
    step = procedures()[name]
    if step.language == "bash":
        result = subprocess.run(["bash", "-n", "-c", step.text], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert step.text.splitlines()[0].split("=")[0].isupper()  # its parameters first
    else:
        assert isinstance(step.edits(), dict)
        assert step.replaces is None or step.replaces in step.edits()


def test_each_document_with_procedures_names_the_test_that_performs_them() -> None:
    holding = [path for path in documents() if procedures([path])]
    assert ROOT / "README.md" in holding  # add-service, the newcomer's first procedure
    for path in holding:
        assert "tests/procedures.py" in _file(path), path


# --- Reports that more than one environment draws ----------------------------------------------------


@pytest.mark.needs_synth("examples-live-two-regions", "examples-sandbox-two-regions")
def test_a_change_to_one_environment_says_which_other_reports_to_regenerate(tmp_path: Path) -> None:
    """The production example in two regions adds a replication rule to the account stack the other
    example's architecture report draws: a synth of it names that report and the command to refresh it."""
    import shutil

    live: Synthesized = two_regions("live").synthesized
    sandbox: Synthesized = two_regions("sandbox").synthesized
    reports = tmp_path / "reports"
    for env in (live, sandbox):
        assert env.reports is not None  # written by the session's synth, as make synth does
        shutil.copytree(env.reports, reports / env.settings.environment)
    assert stale_report_notes(live.settings, reports, str) == []
    # The sandbox report as it was before live's second region: no replication rule for live.
    before = _file(reports / "sandbox" / "architecture.md")
    section = account_stack_section(before, live.settings.account_stack_name)
    assert "ECR replication" in section or "replicat" in section
    (reports / "sandbox" / "architecture.md").write_text(before.replace(section.splitlines()[-2], ""), "utf-8")
    (note,) = stale_report_notes(live.settings, reports, lambda p: str(p.relative_to(tmp_path)))
    assert note.startswith("note: reports/sandbox/architecture.md draws the account stack acme-account")
    assert "run `make reports`" in note


def test_make_reports_synthesizes_every_environment_and_names_each_that_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts.reports import main

    seen: list[dict[str, Any]] = []

    def synth(app: Any) -> int:
        context = {k: app.node.try_get_context(k) for k in ("env", "every_environment", "project")}
        seen.append(context)
        return 1 if context["env"] == REPOSITORY.environment_names()[-1] else 0

    assert main(REPOSITORY.root, synth) == 1
    assert [c["env"] for c in seen] == REPOSITORY.environment_names()
    assert all(c["every_environment"] is True and c["project"] is None for c in seen)
    assert f"no new reports for {REPOSITORY.environment_names()[-1]}" in capsys.readouterr().err
    dry_run = subprocess.run(["make", "-n", "reports"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "scripts/reports.py" in dry_run
    assert json.dumps(seen)  # plain values: what the CLI passes
