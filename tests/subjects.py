"""What a test session synthesizes, each once (CDK synth is slow), and lints in the background.

The user's platform:
- every environment of the repository (``REPOSITORY``) but the last, environment-agnostic, as
  ``make synth`` does;
- the first one with an account from ``--context account=``, in another region its settings fit;
- through the real CDK CLI, on the pinned Node LTS, in a background thread: the last one with its
  account from ``CDK_DEFAULT_ACCOUNT`` (as the CLI sets it when it finds credentials), in another
  region;
- every environment of a copy of the working tree with every documented procedure applied
  (tests/procedures.py), synthesized through app.py as `make reports` does (the copy's reports
  rewritten). The tests of the user's platform run over all of these.

The tests' own examples (``EXAMPLES``, tests/examples/), for shapes the user's platform may not have:
the two examples in two regions (an Aurora global database and a serverless cache; no database
outside the primary and a cluster-mode replication group), and the production example with a
Multi-AZ replication group, as its data tier.

Every platform but the CLI form is synthesized by a second process (tests/synth_worker.py, marked
``background``) on the other core while this one runs the tests that need none of it, then the tests
of each synthesis in the order they land; the data tier is synthesized here, when a test first needs
it. cfn-lint runs over each one's templates, region by region, in a background process as soon as
they exist; its findings for identical templates are cached (``.pytest_cache/cfn-lint``), like
mypy's.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.assembly import stack_regions, template_files
from infra.compliance.packs import pack_names
from infra.config.project import REPOSITORY, Project
from infra.config.settings import Settings
from scripts.forms import Form, cfn_lint_command, cli_synth_command, other_region
from tests.procedures import Applied, ProcedureFailed, apply_all
from tests.projects import EXAMPLES, ROOT, WORK, copy_working_tree, edited_copy, settings_of
from tests.synth import DataTier, Synthesized, synthesize_data_tier

# cfn-lint's findings for a template depend only on its bytes, the region and cfn-lint's version: the
# Makefile keeps them per machine (CLOUD_OPS_CFN_LINT_CACHE), a bare pytest in .pytest_cache.
LINT_CACHE = Path(
    os.environ.get("CLOUD_OPS_CFN_LINT_CACHE") or ROOT / ".pytest_cache" / "cfn-lint"
) / importlib.metadata.version("cfn-lint")


def _behind_the_session(command: list[str]) -> list[str]:
    """Work whose results the session reads last (cfn-lint, the CLI form) yields the CPU to the session's
    process and to the second one, which the other tests wait on."""
    return ["nice", "-n", "10", *command] if shutil.which("nice") else command


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
        process = subprocess.Popen(
            _behind_the_session(command), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
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
    # Synthesized by the second process (tests/synth_worker.py) through app.py's main, on the other core.
    background: bool = False
    # Synthesized through the real CDK CLI (`cdk synth`, on the pinned Node LTS), in a background thread.
    via_cli: bool = False

    @property
    def form(self) -> Form:
        return Form(self.environment, self.account_from, self.region)

    @property
    def outdir(self) -> Path:
        return WORK / self.label / "cdk.out"

    @property
    def ledger(self) -> Path:
        """The platform's acknowledgements, as the second process writes them (tests/synth_worker.py)."""
        return WORK / self.label / "ledger.json"

    @property
    def reports(self) -> Path:
        """reports/, whose <env>/ the synth writes (scripts/forms.py: the CLI's beside its templates)."""
        if self.via_cli:
            return self.outdir / "reports"
        return self.project.reports if self.writes_project_reports else WORK / self.label / "reports"

    def settings(self) -> Settings:
        from infra.config.settings import command_line_overrides

        form = self.form
        if not form.account_from and not form.region:
            return settings_of(self.project, self.environment)
        return self.project.settings(self.environment, command_line_overrides(form.context().get, form.environ()))

    def job(self) -> dict[str, Any]:
        """What the worker runs: app.py's main with the context the CDK CLI would give it."""
        context: dict[str, Any] = dict(self.form.context())
        if not self.writes_project_reports:
            context["reports_dir"] = str(self.reports)
        return {
            "label": self.label,
            "project": str(self.project.root),
            "outdir": str(self.outdir),
            "ledger": str(self.ledger),
            "context": context,
            "environ": self.form.environ(),
        }


@dataclass
class Done:
    synthesized: Synthesized
    lints: dict[str, Linted]


_DONE: dict[str, Done] = {}


def synth(subject: Subject) -> Synthesized:
    return synthesized(subject).synthesized


def synthesized(subject: Subject) -> Done:
    """Waits for the subject's synthesis (the second process's, or the CDK CLI's) and starts cfn-lint on it."""
    if subject.label not in _DONE:
        assert subject.background or subject.via_cli, f"{subject.label}: neither the second process nor the CLI"
        if subject.via_cli:
            job = cli().get(subject)
            assert job.result is not None
            assert job.result.returncode == 0, job.result.stderr[-3000:]
        else:
            worker().wait(subject.label)
        settings = subject.settings()
        result = Synthesized(
            settings,
            subject.outdir,
            pack_names(),
            subject.label,
            subject.project,
            subject.reports / settings.environment,
            None if subject.via_cli else subject.ledger,
        )
        _DONE[subject.label] = Done(result, lint_by_region(result.outdir))
    return _DONE[subject.label]


# --- The second process -----------------------------------------------------------------------------


class Worker:
    """tests/synth_worker.py, given every background job at once; :meth:`wait` blocks until one is on disk."""

    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.results: dict[str, str | None] = {}  # label -> None (done) or the failure
        self.labels = [job["label"] for job in jobs]
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.synth_worker"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(jobs))
        self.process.stdin.close()
        threading.Thread(target=self._read, name="synth-worker", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            status, label, *rest = line.rstrip("\n").split(" ", 2)
            with self._changed:
                self.results[label] = None if status == "done" else json.loads(rest[0])
                self._changed.notify_all()
        with self._changed:
            for label in self.labels:
                self.results.setdefault(label, "the synth worker stopped before this job")
            self._changed.notify_all()

    def wait(self, label: str) -> None:
        assert label in self.labels, f"{label} is not a background job"
        with self._changed:
            self._changed.wait_for(lambda: label in self.results, timeout=1200)
        failure = self.results.get(label, "timed out")
        assert failure is None, f"{label}: {failure}"

    def has(self, label: str) -> bool:
        return label in self.labels

    def order(self, label: str) -> int:
        """When the job is done, relative to the others (they run one after the other)."""
        return self.labels.index(label)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()


_WORKER: Worker | None = None


def start_worker(subjects: list[Subject]) -> None:
    """Starts the second process with every background subject, in the order given."""
    global _WORKER  # noqa: PLW0603
    if _WORKER is None:
        _WORKER = Worker([s.job() for s in subjects if s.background])


def worker() -> Worker:
    assert _WORKER is not None, "start_worker() first (tests/conftest.py does at collection)"
    return _WORKER


# --- The user's platform -------------------------------------------------------------------------


def repository_subjects() -> list[Subject]:
    """Every environment of the repository; the last one through the real CDK CLI on the pinned Node LTS
    with its account from CDK_DEFAULT_ACCOUNT, as the CLI sets it whenever it finds credentials (what
    users run; its reports are the same as without an account, and the tests say so)."""
    names = REPOSITORY.environment_names()
    return [Subject(e, REPOSITORY, e, background=True) for e in names[:-1]] + [
        Subject(names[-1], REPOSITORY, names[-1], "environment", via_cli=True)
    ]


@dataclass
class ProcedureCopy:
    project: Project | None
    applied: list[Applied]
    error: str | None


_PROCEDURES: ProcedureCopy | None = None


def procedure_copy() -> ProcedureCopy:
    """The working tree copied, with every documented procedure applied (made once, at collection)."""
    global _PROCEDURES  # noqa: PLW0603
    if _PROCEDURES is None:
        project = copy_working_tree(WORK / "after-procedures")
        try:
            _PROCEDURES = ProcedureCopy(project, apply_all(project), None)
        except ProcedureFailed as error:
            _PROCEDURES = ProcedureCopy(None, [], str(error))
    return _PROCEDURES


def procedure_subjects() -> list[Subject]:
    """Every environment of the copy, synthesized as `make reports` does after the procedures (the
    copy's reports/ rewritten), in the second process."""
    copy = procedure_copy()
    if copy.project is None:
        return []
    return [
        Subject(f"after-procedures-{e}", copy.project, e, writes_project_reports=True, background=True)
        for e in copy.project.environment_names()
    ]


def cli_subjects() -> list[Subject]:
    return [s for s in repository_subjects() if s.via_cli]


def form_subjects() -> list[Subject]:
    """The user's first environment with an account from ``--context account=``, in another region its
    settings fit (``--context region=``), through app.py in the second process."""
    first = REPOSITORY.environment_names()[0]
    region = other_region(REPOSITORY, first)
    label = f"{first}-account-from-context-{region or 'own-region'}"
    return [Subject(label, REPOSITORY, first, "context", region, background=True)]


def next_kubernetes_version(version: str) -> str | None:
    """The minor after ``version`` that the settings accept, if any."""
    from infra.config.settings import EKS_STANDARD_SUPPORT

    accepted = sorted(EKS_STANDARD_SUPPORT, key=lambda v: tuple(int(p) for p in v.split(".")))
    later = accepted[accepted.index(version) + 1 :] if version in accepted else []
    return later[0] if later else None


def upgrade_subjects() -> list[Subject]:
    """Each environment of the repository at the next Kubernetes minor the settings accept (none when it
    runs the newest), edited as a user would, in the second process: the far side of an upgrade."""
    subjects = []
    forms = {s.environment: s.account_from for s in repository_subjects()}
    for environment in REPOSITORY.environment_names():
        version = settings_of(REPOSITORY, environment).eks.kubernetes_version
        later = next_kubernetes_version(version)
        if later is None:
            continue
        label = f"{environment}-kubernetes-{later}"
        project = edited_copy(
            REPOSITORY, WORK / label / "project", {environment: {"eks": {"kubernetes_version": later}}}
        )
        # In the same form as the environment's own synthesis (the last one has its account).
        subjects.append(Subject(label, project, environment, forms[environment], background=True))
    return subjects


# --- The tests' own examples ------------------------------------------------------------------------

# Replication groups: the production example Multi-AZ with two replicas, as its data tier (network,
# cache, observability) with the gate; the non-production one in cluster mode, in two regions below.
REPLICATION_GROUPS: dict[str, dict[str, Any]] = {
    "live": {
        "kind": "replication-group",
        "max_data_storage_gb": None,
        "max_ecpu_per_second": None,
        "engine_version": "8.2",
        "node_type": "cache.r7g.large",
        "replicas_per_shard": 2,
        "snapshot_retention_days": 15,
        "maintenance_window": "sat:22:00-sat:23:00",
        "log_retention_days": 365,
    },
}
CLUSTER_MODE = {
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
}

# The production example in two regions (private endpoints: a runner in each region's VPC; a global
# database, a serverless cache), and the non-production one in two regions without a database outside
# the primary, with a cluster-mode replication group.
TWO_REGIONS: dict[str, dict[str, Any]] = {
    "live": {
        "regions": ["us-east-1", "us-west-2"],
        "github": {"deploy_runs_on": ["self-hosted", "linux", "acme-live-{region}"]},
    },
    "sandbox": {"regions": ["us-east-1", "eu-west-1"], "database": {"other_regions": "none"}, "cache": CLUSTER_MODE},
}


def two_regions_project() -> Project:
    return edited_copy(EXAMPLES, WORK / "examples-two-regions", TWO_REGIONS)


# The production example after a switchover: its global database's writer in its second region.
SWITCHED_REGION = TWO_REGIONS["live"]["regions"][1]
SWITCHED = f"examples-live-two-regions-writer-{SWITCHED_REGION}"


def switched_project() -> Project:
    edits = {**TWO_REGIONS, "live": {**TWO_REGIONS["live"], "database": {"writer_region": SWITCHED_REGION}}}
    return edited_copy(EXAMPLES, WORK / "examples-two-regions-switched", edits)


def example_subjects() -> list[Subject]:
    return [
        Subject(f"examples-{e}-two-regions", two_regions_project(), e, background=True) for e in sorted(TWO_REGIONS)
    ] + [Subject(SWITCHED, switched_project(), "live", background=True)]


# Variants of the examples that a few tests read (not platforms every test runs on): the promotion
# order in two accounts (sandbox, then live), and the production example in an account that already
# has the GitHub OIDC provider.
TWO_ACCOUNTS: dict[str, dict[str, Any]] = {"sandbox": {"account": "111111111111"}, "live": {"account": "222222222222"}}
PROVIDER_EXISTS: dict[str, dict[str, Any]] = {
    environment: {"account_stack": {"github_oidc_provider": "existing"}} for environment in ("sandbox", "live")
}


def variant_subjects() -> list[Subject]:
    accounts = edited_copy(EXAMPLES, WORK / "examples-two-accounts", TWO_ACCOUNTS)
    provider = edited_copy(EXAMPLES, WORK / "examples-provider-exists", PROVIDER_EXISTS)
    return [
        Subject("examples-sandbox-two-accounts", accounts, "sandbox", background=True),
        Subject("examples-live-two-accounts", accounts, "live", background=True),
        Subject("examples-live-provider-exists", provider, "live", background=True),
    ]


# The other choices of eks.autoscaling and eks.workload_identity, on the examples: Karpenter (Spot and
# on-demand, AL2023) with Pod Identity; Karpenter (on-demand, a pinned Bottlerocket) with IRSA for the rest;
# the cluster autoscaler with Pod Identity.
KARPENTER_SPOT = {
    "autoscaling": "karpenter",
    "workload_identity": "pod-identity",
    "node_group": {"min_size": 2, "desired_size": 2},
    "karpenter": {
        "instance_families": ["m7i", "m6i", "m6a", "c7i"],
        "instance_sizes": ["large", "xlarge"],
        "capacity_types": ["spot", "on-demand"],
        "max_vcpus": 64,
        "max_memory_gib": 256,
        "consolidate_after": "30s",
    },
}
KARPENTER_BOTTLEROCKET = {
    "autoscaling": "karpenter",
    "karpenter": {
        "instance_families": ["m7i", "m6i", "r7i"],
        "instance_sizes": ["xlarge", "2xlarge"],
        "max_vcpus": 256,
        "max_memory_gib": 1024,
        "consolidation_policy": "WhenEmpty",
        "ami_family": "bottlerocket",
        "ami_version": "v1.50.0",
        "expire_after": "Never",
        "disk_size_gib": 100,
    },
}
COMPUTE_AND_IDENTITY: dict[str, tuple[str, dict[str, Any]]] = {
    "examples-sandbox-karpenter-pod-identity": ("sandbox", KARPENTER_SPOT),
    "examples-live-karpenter-bottlerocket": ("live", KARPENTER_BOTTLEROCKET),
    "examples-live-pod-identity": ("live", {"workload_identity": "pod-identity"}),
}


def compute_subjects() -> list[Subject]:
    """Each in the second process; Karpenter with Pod Identity also with an account from ``--context
    account=`` in another region its settings fit (the form users run)."""
    subjects = []
    for label, (env, eks) in COMPUTE_AND_IDENTITY.items():
        project = edited_copy(EXAMPLES, WORK / label / "project", {env: {"eks": eks}})
        form = (
            ("context", other_region(project, env))
            if eks.get("workload_identity") == "pod-identity" and (eks.get("autoscaling") == "karpenter")
            else ("", None)
        )
        subjects.append(Subject(label, project, env, *form, background=True))
    return subjects


def two_regions(environment: str) -> Done:
    return synthesized(
        Subject(f"examples-{environment}-two-regions", two_regions_project(), environment, background=True)
    )


@dataclass
class TierDone:
    tier: DataTier
    lints: dict[str, Linted]


_TIERS: dict[str, TierDone] = {}


def _tier_project(environment: str) -> Project:
    edits = {environment: {"cache": REPLICATION_GROUPS[environment]}}
    return edited_copy(EXAMPLES, WORK / f"examples-{environment}-replication-group-settings", edits)


def replication_group(environment: str) -> TierDone:
    """The example's data tier with a replication group (settings in ``REPLICATION_GROUPS``), in this process."""
    if environment not in _TIERS:
        outdir = WORK / f"examples-{environment}-replication-group"
        tier = synthesize_data_tier(_tier_project(environment).settings(environment), outdir)
        _TIERS[environment] = TierDone(tier, lint_by_region(outdir))
    return _TIERS[environment]


# --- Through the real CLI, in the background ---------------------------------------------------------


@dataclass
class CliSynth:
    subject: Subject
    outdir: Path
    result: subprocess.CompletedProcess[str] | None = None


class Background:
    """The CLI subjects, synthesized one after the other in a thread, each linted as it lands."""

    def __init__(self) -> None:
        self.synths = {s.label: CliSynth(s, s.outdir) for s in cli_subjects()}
        self.thread = threading.Thread(target=self._run, name="cli-forms", daemon=True)

    def _run(self) -> None:
        for job in self.synths.values():
            project = None if job.subject.project == REPOSITORY else job.subject.project.root
            command, environ = cli_synth_command(job.subject.form, job.outdir, project=project)
            job.result = subprocess.run(
                _behind_the_session(command), env=environ, capture_output=True, text=True, timeout=600, check=False
            )

    def get(self, subject: Subject) -> CliSynth:
        self.thread.join(timeout=900)
        return self.synths[subject.label]


_CLI: Background | None = None


def start_cli() -> None:
    global _CLI  # noqa: PLW0603
    if _CLI is None:
        _CLI = Background()
        _CLI.thread.start()


def cli() -> Background:
    assert _CLI is not None, "start_cli() first (tests/conftest.py does at collection)"
    return _CLI


def stop_background_work() -> None:
    for done in _DONE.values():
        for lint in done.lints.values():
            lint.stop()
    for tier in _TIERS.values():
        for lint in tier.lints.values():
            lint.stop()
    if _WORKER is not None:
        _WORKER.stop()
    if _CLI is not None:
        _CLI.thread.join(timeout=900)
