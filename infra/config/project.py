"""Where a project's own files are: its settings, its service catalogue, its Helm values, its reports.

The repository is one project (``REPOSITORY``). Tests read other trees laid out the same way: their
own examples (``tests/examples``) and copies of the repository with a documented procedure applied.
``app.py`` takes another tree with ``--context project=<dir>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config.settings import Settings, known_environments, load_settings


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def environments(self) -> Path:
        """One settings file per environment: ``<name>.yaml``."""
        return self.root / "infra" / "config" / "environments"

    @property
    def catalogue(self) -> Path:
        return self.root / "infra" / "config" / "services.yaml"

    @property
    def helm_values(self) -> Path:
        return self.root / "helm_values"

    @property
    def reports(self) -> Path:
        """The committed ``reports/<env>/`` that ``make synth`` writes."""
        return self.root / "reports"

    def environment_names(self) -> list[str]:
        return known_environments(self.environments)

    def settings(self, environment: str | None, overrides: Mapping[str, str | None] | None = None) -> Settings:
        return load_settings(environment, overrides=overrides, directory=self.environments, catalogue=self.catalogue)

    def relative(self, path: Path) -> str:
        """``path`` as a person in the project root names it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


REPOSITORY = Project(Path(__file__).resolve().parents[2])


def cdk_json_context(root: Path = REPOSITORY.root) -> dict[str, Any]:
    """The context the CDK CLI passes to app.py: cdk.json's, and the CLI's own defaults (path and asset
    metadata on; cfn-lint, for one, reads the path metadata to tell a CDK template)."""
    config = json.loads((root / "cdk.json").read_text(encoding="utf-8"))
    return {
        **config["context"],
        "aws:cdk:version-reporting": config["versionReporting"],
        "aws:cdk:enable-path-metadata": True,
        "aws:cdk:enable-asset-metadata": True,
    }
