"""The project's files as the workflows read them: the catalogue, the settings files, the promotion order.

Synth validates all of them (infra/config/settings/, infra/config/delivery.py) and infra-ci runs synth
on every pull request, so main holds valid files; this reads the few keys delivery needs, raw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONFIG = Path("infra") / "config"


class ProjectError(Exception):
    """A setting the workflows cannot use: the message names the file, the key, the value and what is allowed."""


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"{path}: missing") from None


@dataclass(frozen=True)
class Environment:
    name: str
    project: str
    regions: tuple[str, ...]
    account: str | None
    runs_on: tuple[str, ...]
    kubernetes_version: str

    @property
    def primary(self) -> str:
        return self.regions[0]

    @property
    def name_prefix(self) -> str:
        return f"{self.project}-{self.name}"

    def repository(self, service: str) -> str:
        return f"{self.name_prefix}/{service}"

    @property
    def settings_file(self) -> str:
        return f"{CONFIG}/environments/{self.name}.yaml"

    @property
    def cluster(self) -> str:
        return self.name_prefix

    def labels(self, region: str, run_id: str, run_attempt: str) -> list[str]:
        """The deploy job's runner labels in ``region`` (github.deploy_runs_on, placeholders filled in)."""
        return [
            label.replace("{run_id}", run_id).replace("{run_attempt}", run_attempt).replace("{region}", region)
            for label in self.runs_on
        ]


@dataclass(frozen=True)
class Project:
    root: Path

    def environment_names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / CONFIG / "environments").glob("*.yaml"))

    def environment(self, name: str) -> Environment:
        if name not in self.environment_names():
            raise ProjectError(
                f"environment {name!r} has no settings file {CONFIG}/environments/{name}.yaml; allowed: "
                + ", ".join(self.environment_names())
            )
        raw = _read(self.root / CONFIG / "environments" / f"{name}.yaml")
        regions = raw.get("regions") or [raw["region"]]
        account = raw.get("account")
        github = raw.get("github") or {}
        return Environment(
            name=name,
            project=str(raw["project"]),
            regions=tuple(str(r) for r in regions),
            account=str(account) if account is not None else None,
            runs_on=tuple(github.get("deploy_runs_on") or ["ubuntu-latest"]),
            kubernetes_version=str((raw.get("eks") or {}).get("kubernetes_version")),
        )

    def services(self) -> list[str]:
        raw = _read(self.root / CONFIG / "services.yaml")
        return [str(s["name"]) for s in raw["services"]]

    def buildable(self) -> list[str]:
        """The catalogue's services that have an image to build: ``services/<name>/Dockerfile``."""
        return [s for s in self.services() if (self.root / "services" / s / "Dockerfile").is_file()]

    def promotion(self) -> list[str]:
        """infra/config/delivery.yaml's order; empty without the file (pushes then deploy nothing)."""
        path = self.root / CONFIG / "delivery.yaml"
        if not path.exists():
            return []
        return [str(e) for e in _read(path)["promotion"]]

    def previous(self, environment: str) -> str | None:
        """The environment ``environment`` is promoted from, if it has one."""
        order = self.promotion()
        if environment not in order:
            raise ProjectError(
                f"{CONFIG}/delivery.yaml: environment {environment!r} is not in 'promotion' ({', '.join(order)}); "
                "allowed: an environment of the promotion order (deploy the others with deploy-service)"
            )
        index = order.index(environment)
        return order[index - 1] if index else None
