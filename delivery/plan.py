"""What a push to main ships: the services to build and deploy, whether the infrastructure changed, and
the environments it travels through (infra/config/delivery.yaml).

A service ships when its directory changed, or what every image or every release shares: the services'
library (services/lib), the chart (charts/microservice) or its Helm values in any environment. The
infrastructure deploys when anything synth reads changed. A push whose base is unknown (a new branch, a
force push, a first commit) ships everything.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from delivery.project import Project

ZERO = re.compile(r"0{40}")
# Read by synth (app.py and what it imports, the settings, the add-ons' Helm values, the pinned packages).
INFRASTRUCTURE = ("app.py", "cdk.json", "requirements.txt", "package.json", "package-lock.json", "infra/")
SHARED_BY_EVERY_IMAGE = ("services/lib/",)
SHARED_BY_EVERY_RELEASE = ("charts/microservice/",)


@dataclass(frozen=True)
class Plan:
    services: list[str]
    infrastructure: bool
    stages: list[dict[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # catalogue services without a Dockerfile

    def outputs(self) -> dict[str, str]:
        return {
            "services": json.dumps(self.services),
            "infrastructure": "true" if self.infrastructure else "false",
            "stages": json.dumps(self.stages),
            "first": self.stages[0]["environment"] if self.stages else "",
        }


def _infrastructure(path: str) -> bool:
    if path.startswith(INFRASTRUCTURE):
        return True
    # helm_values/<env>/<addon>.yaml: the add-ons the eks stack installs (services' values are releases').
    parts = PurePosixPath(path).parts
    return len(parts) == 3 and parts[0] == "helm_values" and path.endswith(".yaml")


def plan(project: Project, changed: list[str] | None) -> Plan:
    """``changed``: the paths the push changed; None when unknown (everything ships)."""
    buildable = project.buildable()
    skipped = [s for s in project.services() if s not in buildable]
    order = project.promotion()
    stages = [{"environment": e, "previous": order[i - 1] if i else ""} for i, e in enumerate(order)]
    if changed is None:
        return Plan(buildable, True, stages, skipped)
    selected: set[str] = set()
    for path in changed:
        parts = PurePosixPath(path).parts
        if path.startswith(SHARED_BY_EVERY_IMAGE + SHARED_BY_EVERY_RELEASE):
            selected.update(buildable)
        elif len(parts) >= 2 and parts[0] == "services" and parts[1] in buildable:
            selected.add(parts[1])
        elif len(parts) == 4 and parts[0] == "helm_values" and parts[2] == "services":
            name = PurePosixPath(parts[3]).stem
            if name in buildable:
                selected.add(name)
    return Plan([s for s in buildable if s in selected], any(_infrastructure(p) for p in changed), stages, skipped)


def changed_paths(root: Path, before: str, after: str) -> list[str] | None:
    """``git diff --name-only before after``; None when ``before`` is no ancestor of ``after`` (a new
    branch: all zeros; a force push; a shallow clone without it)."""
    if not before or ZERO.fullmatch(before):
        return None
    known = subprocess.run(
        ["git", "merge-base", "--is-ancestor", before, after], cwd=root, capture_output=True, check=False
    )
    if known.returncode != 0:
        return None
    diff = subprocess.run(
        ["git", "diff", "--name-only", "--no-renames", before, after],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in diff.stdout.splitlines() if line]
