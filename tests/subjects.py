"""What a test session synthesizes, each once (CDK synth is slow), and lints in the background.

The user's platform:
- every environment of the repository (``REPOSITORY``), environment-agnostic, as ``make synth`` does;
- every environment of a copy of the working tree with every README procedure applied
  (tests/procedures.py): synthesized like ``make synth`` after the procedure, writing the copy's
  reports. The tests of the user's platform run over both.

The tests' own examples (``EXAMPLES``, tests/examples/), for shapes the user's platform may not have:
- ``examples-sandbox-account-from-context-ap-northeast-1``: an account from ``--context account=``,
  in a region without zone b;
- two-region environments (an Aurora global database; no database outside the primary);
- replication groups (cluster mode; Multi-AZ in production), as their data tier only;
- through the real CDK CLI, on the pinned Node LTS, in the background while the rest runs: the
  production example with its account from ``CDK_DEFAULT_ACCOUNT``, in another region.

cfn-lint runs over each one's templates, region by region, in a background process as soon as they
exist; its findings for identical templates are cached (``.pytest_cache/cfn-lint``), like mypy's.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.assembly import stack_regions, template_files
from infra.config.project import REPOSITORY, Project
from scripts.forms import Form, cfn_lint_command, cli_synth_command
from tests.procedures import Applied, ProcedureFailed, apply_all
from tests.projects import EXAMPLES, ROOT, WORK, copy_working_tree, edited_copy, settings_of
from tests.synth import DataTier, Synthesized, synthesize, synthesize_data_tier

# cfn-lint's findings for a template depend only on its bytes, the region and cfn-lint's version.
LINT_CACHE = ROOT / ".pytest_cache" / "cfn-lint" / importlib.metadata.version("cfn-lint")


@dataclass
class Linted:
    """cfn-lint over one region's templates: cached findings, plus a background run for the rest."""

    cached: list[dict[str, Any]]
    pending: dict[str, Path]  # template name -> cache file to fill
    process: subprocess.Popen[str] | None
    _stdout: str | None = field(default=None)

    def stdout(self) -> str:
        if self._stdout is None:
            fresh: list[dict[str, Any]] = []
            if self.process is not None:
                out, _ = self.process.communicate(timeout=600)
                fresh = json.loads(out or "[]")
                for name, cache_file in self.pending.items():
                    cache_file.parent.mkdir(parents=True, exist_ok=True)
                    mine = [m for m in fresh if Path(m["Filename"]).name == name]
                    cache_file.write_text(json.dumps(mine), encoding="utf-8")
            self._stdout = json.dumps(self.cached + fresh)
        return self._stdout

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()


def lint_in_background(region: str, templates: list[Path]) -> Linted:
    cached: list[dict[str, Any]] = []
    pending: dict[str, Path] = {}
    for template in templates:
        digest = hashlib.sha256(template.read_bytes()).hexdigest()
        cache_file = LINT_CACHE / region / f"{digest}.json"
        if cache_file.exists():
            cached += json.loads(cache_file.read_text(encoding="utf-8"))
        else:
            pending[template.name] = cache_file
    process = None
    if pending:
        command = cfn_lint_command([t for t in templates if t.name in pending], region)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return Linted(cached, pending, process)


def lint_by_region(outdir: Path) -> dict[str, Linted]:
    regions = stack_regions(outdir)
    by_region: dict[str, list[Path]] = {}
    for stack, path in template_files(outdir).items():
        by_region.setdefault(regions[stack], []).append(path)
    return {region: lint_in_background(region, sorted(paths)) for region, paths in sorted(by_region.items())}


@dataclass(frozen=True)
class Subject:
    """One synthesis: a project's environment, as one form (where its account and region come from)."""

    label: str
    project: Project
    environment: str
    account_from: str = ""  # "" (none), "context" (--context account=) or "environment" (CDK_DEFAULT_ACCOUNT)
    region: str | None = None  # --context region=
    # Reports into the project's own reports/ (a copy after a procedure, as `make synth` writes them);
    # otherwise into the work directory, never over the committed ones.
    writes_project_reports: bool = False

    @property
    def form(self) -> Form:
        return Form(self.environment, self.account_from, self.region)

    def settings(self) -> Any:
        from infra.config.settings import command_line_overrides

        form = self.form
        if not form.account_from and not form.region:
            return settings_of(self.project, self.environment)
        return self.project.settings(self.environment, command_line_overrides(form.context().get, form.environ()))


@dataclass
class Done:
    synthesized: Synthesized
    lints: dict[str, Linted]


_DONE: dict[str, Done] = {}


def synth(subject: Subject) -> Synthesized:
    return synthesized(subject).synthesized


def synthesized(subject: Subject) -> Done:
    if subject.label not in _DONE:
        outdir = WORK / subject.label
        reports = subject.project.reports if subject.writes_project_reports else outdir / "reports"
        result = synthesize(
            subject.settings(),
            outdir / "cdk.out",
            helm_values=subject.project.helm_values,
            reports=reports,
            label=subject.label,
            project=subject.project,
        )
        _DONE[subject.label] = Done(result, lint_by_region(result.outdir))
    return _DONE[subject.label]


# --- The user's platform -------------------------------------------------------------------------


def repository_subjects() -> list[Subject]:
    return [Subject(e, REPOSITORY, e) for e in REPOSITORY.environment_names()]


@dataclass
class ProcedureCopy:
    project: Project | None
    applied: list[Applied]
    error: str | None


_PROCEDURES: ProcedureCopy | None = None


def procedure_copy() -> ProcedureCopy:
    """The working tree copied, with every README procedure applied (made once, at collection)."""
    global _PROCEDURES  # noqa: PLW0603
    if _PROCEDURES is None:
        project = copy_working_tree(WORK / "after-procedures")
        try:
            _PROCEDURES = ProcedureCopy(project, apply_all(project), None)
        except ProcedureFailed as error:
            _PROCEDURES = ProcedureCopy(None, [], str(error))
    return _PROCEDURES


def procedure_subjects() -> list[Subject]:
    copy = procedure_copy()
    if copy.project is None:
        return []
    return [
        Subject(f"after-procedures-{e}", copy.project, e, writes_project_reports=True)
        for e in copy.project.environment_names()
    ]


# --- The tests' own examples ------------------------------------------------------------------------

# The production example in two regions (private endpoints: a runner in each region's VPC), and the
# non-production one in two regions without a database outside the primary.
TWO_REGIONS: dict[str, dict[str, Any]] = {
    "live": {
        "regions": ["us-east-1", "us-west-2"],
        "github": {"deploy_runs_on": ["self-hosted", "linux", "acme-live-{region}"]},
    },
    "sandbox": {"regions": ["us-east-1", "eu-west-1"], "database": {"other_regions": "none"}},
}


def two_regions_project() -> Project:
    return edited_copy(EXAMPLES, WORK / "examples-two-regions", TWO_REGIONS)


def example_subjects() -> list[Subject]:
    return [
        Subject(
            "examples-sandbox-account-from-context-ap-northeast-1", EXAMPLES, "sandbox", "context", "ap-northeast-1"
        ),
        *(Subject(f"examples-{e}-two-regions", two_regions_project(), e) for e in sorted(TWO_REGIONS)),
    ]


def two_regions(environment: str) -> Done:
    return synthesized(Subject(f"examples-{environment}-two-regions", two_regions_project(), environment))


# Replication groups: the non-production example in cluster mode, the production one Multi-AZ with two
# replicas. Each synthesized as its data tier (network, cache, observability) with the gate.
REPLICATION_GROUPS: dict[str, dict[str, Any]] = {
    "sandbox": {
        "kind": "replication-group",
        "max_data_storage_gb": None,
        "max_ecpu_per_second": None,
        "engine_version": "8.2",
        "node_type": "cache.t4g.small",
        "cluster_mode": True,
        "shards": 2,
        "replicas_per_shard": 1,
        "snapshot_retention_days": 1,
        "parameters": {"maxmemory-policy": "allkeys-lru"},
    },
    "live": {
        "kind": "replication-group",
        "max_data_storage_gb": None,
        "max_ecpu_per_second": None,
        "engine_version": "8.2",
        "node_type": "cache.r7g.large",
        "replicas_per_shard": 2,
        "snapshot_retention_days": 15,
        "maintenance_window": "sat:22:00-sat:23:00",
    },
}


@dataclass
class TierDone:
    tier: DataTier
    lints: dict[str, Linted]


_TIERS: dict[str, TierDone] = {}


def replication_group(environment: str) -> TierDone:
    if environment not in _TIERS:
        edits = {environment: {"cache": REPLICATION_GROUPS[environment]}}
        project = edited_copy(EXAMPLES, WORK / f"examples-{environment}-replication-group-settings", edits)
        outdir = WORK / f"examples-{environment}-replication-group"
        tier = synthesize_data_tier(project.settings(environment), outdir)
        _TIERS[environment] = TierDone(tier, lint_by_region(outdir))
    return _TIERS[environment]


# --- Through the real CLI, in the background ---------------------------------------------------------

CLI_SUBJECTS = (
    Subject("examples-live-account-from-environment-eu-west-1", EXAMPLES, "live", "environment", "eu-west-1"),
)


@dataclass
class CliSynth:
    subject: Subject
    outdir: Path
    result: subprocess.CompletedProcess[str] | None = None
    lint: Linted | None = None


class Background:
    """The CLI subjects, synthesized one after the other in a thread, each linted as it lands."""

    def __init__(self) -> None:
        self.synths = {s.label: CliSynth(s, WORK / s.label) for s in CLI_SUBJECTS}
        self.thread = threading.Thread(target=self._run, name="cli-forms", daemon=True)

    def _run(self) -> None:
        for job in self.synths.values():
            command, environ = cli_synth_command(job.subject.form, job.outdir, project=job.subject.project.root)
            job.result = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=600, check=False)
            if job.result.returncode == 0 and job.subject.region:
                job.lint = lint_in_background(job.subject.region, sorted(job.outdir.glob("*.template.json")))

    def get(self, subject: Subject) -> CliSynth:
        self.thread.join(timeout=900)
        return self.synths[subject.label]


def stop_background_work() -> None:
    for done in _DONE.values():
        for lint in done.lints.values():
            lint.stop()
    for tier in _TIERS.values():
        for lint in tier.lints.values():
            lint.stop()
