"""The README's procedures for adding a service and an environment, performed as written.

The edit steps are read from the README (the fenced block after each `<!-- procedure: ... -->`
marker) and run with bash in a copy of the repository; the `make synth`/`make test` that the README
runs next are replaced by what they check here: the copy's settings and values load, every
catalogue service's values are in place, the new environment synthesizes with the new service in
it, and the new service's values render with the real helm.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config.helm_values import check_service_values
from infra.config.settings import load_settings
from tests.helm import CHART, Helm
from tests.synth import ROOT, Synthesized, resources, synthesize

README = ROOT / "README.md"


def procedure(name: str) -> str:
    """The bash block that follows ``<!-- procedure: name -->`` in the README."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- procedure: {re.escape(name)} -->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert match, f"README has no procedure {name!r}"
    return match.group(1)


def _tracked_copy(into: Path) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = _tracked_copy(tmp_path_factory.mktemp("repository"))
    for name in ("add-service", "add-environment"):
        result = subprocess.run(
            ["bash", "-e", "-c", procedure(name)], cwd=repository, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{name}: {result.stderr}"
    return repository


@pytest.fixture(scope="module")
def staging(copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    settings = load_settings(
        "staging",
        directory=copy / "infra" / "config" / "environments",
        catalogue=copy / "infra" / "config" / "services.yaml",
    )
    for environment in ("dev", "prod", "staging"):
        check_service_values(environment, [s.name for s in settings.services], copy / "helm_values")
    return synthesize(settings, tmp_path_factory.mktemp("cdk.out.staging"), helm_values=copy / "helm_values")


def test_the_procedures_touch_only_the_catalogue_and_the_files_they_add(copy: Path) -> None:
    changed = subprocess.run(
        [
            "git",
            "diff",
            "--no-index",
            "--name-status",
            str(ROOT / "infra/config/services.yaml"),
            "infra/config/services.yaml",
        ],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "billing" in (copy / "infra/config/services.yaml").read_text(encoding="utf-8")
    assert changed.returncode == 1  # the one edited file differs
    for workflow in (".github/workflows/deploy-service.yml", ".github/workflows/build-image.yml"):
        assert (copy / workflow).read_bytes() == (ROOT / workflow).read_bytes()


def test_the_new_environment_synthesizes_with_the_new_service(staging: Synthesized) -> None:
    assert staging.settings.environment == "staging"
    assert "billing" in [s.name for s in staging.settings.services]
    repositories = [
        r["Properties"]["RepositoryName"]
        for template in staging.shards("registry").values()
        for r in resources(template, "AWS::ECR::Repository").values()
    ]
    assert "cloud-ops-staging/billing" in repositories
    services = "".join(str(t) for t in staging.shards("services").values())
    assert "system:serviceaccount:billing-staging:billing" in services
    assert staging.validation_report().get("pluginReports") is not None


def test_the_new_services_values_render_in_the_new_environment(copy: Path, helm: Helm) -> None:
    values = copy / "helm_values" / "staging" / "services" / "billing.yaml"
    assert yaml.safe_load(values.read_text(encoding="utf-8"))["service"]["name"] == "billing"
    result = helm.run(
        "template",
        "billing",
        str(CHART),
        "--namespace",
        "billing-staging",
        "-f",
        str(values),
        "--set",
        "image.repository=123456789012.dkr.ecr.us-east-1.amazonaws.com/cloud-ops-staging/billing",
        "--set-string",
        "image.tag=0123abc",
    )
    assert result.returncode == 0, result.stderr
    documents: list[Any] = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert {d["metadata"]["namespace"] for d in documents} == {"billing-staging"}
