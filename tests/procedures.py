"""The documented procedures, applied to a copy of the working tree as a user applies them.

Each procedure is the fenced block after a ``<!-- procedure: <name> -->`` marker in README.md or in a
page of docs/ (``docs/*.md``; README first, then the pages by name; a name is used once):

- a ``bash`` block runs in the copy's root; its first lines set its parameters (``SERVICE=billing``),
  which are given values that fit the tree (a service name the catalogue does not have yet);
- a ``yaml`` block is an edit of one environment's settings file: a mapping is merged into the
  mapping of the same key, any other value replaces it, a key set to ``null`` is deleted; with
  ``replaces: <section>`` in the marker, that section is replaced whole.

``apply_all`` applies every procedure to one copy, each to an environment chosen by what it has (a
serverless cache is switched to nodes and nodes to serverless), so that the copy holds a new
service, a new environment, a switched cache kind and cluster mode, an environment in two regions,
a switched database capacity model and switched node capacity, autoscaling and workload identity:
what "make test stays green after every documented procedure" is checked on (tests/subjects.py
synthesizes every environment of the copy, which writes its reports as ``make synth`` does, and the
suite's tests of the user's platform run over it).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config.project import Project
from infra.config.regions import NO_DATA_API, ZONE_LETTERS, ZoneError, zone_names
from infra.config.settings import GITHUB_HOSTED_LABEL_PREFIXES
from tests.projects import dump_yaml, edit_settings_file, load_yaml, merged

ROOT = Path(__file__).resolve().parent.parent


def documents(root: Path = ROOT) -> list[Path]:
    """Where procedures are documented, in a stable order: README.md, then docs/*.md by name."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


_MARKER = re.compile(
    r"<!-- procedure: ([a-z0-9-]+)(?:, replaces: ([a-z_]+))? -->\s*```(bash|yaml)\n(.*?)```", re.DOTALL
)
# Names a user might give a new service or environment; the first the tree does not have is used.
SERVICE_NAMES = ("billing", "payments", "ledger", "search", "notify", "reports")
ENVIRONMENT_NAMES = ("staging", "qa", "uat", "preprod", "test")


@dataclass(frozen=True)
class Procedure:
    name: str
    language: str  # bash or yaml
    text: str
    replaces: str | None = None

    def with_parameters(self, values: Mapping[str, str]) -> str:
        """The bash block with its parameter lines (``NAME=value  # ...``) set to ``values``."""
        text = self.text
        for key, value in values.items():
            text, count = re.subn(rf"^{key}=\S+", f"{key}={value}", text, count=1, flags=re.MULTILINE)
            assert count == 1, f"procedure {self.name} has no parameter {key}"
        return text

    def edits(self) -> dict[str, Any]:
        data = load_yaml(self.text)
        assert isinstance(data, dict), f"procedure {self.name}: a YAML block of settings"
        return data


def procedures(paths: list[Path] | None = None) -> dict[str, Procedure]:
    """Every procedure of ``paths`` (by default the documents), by name, in the documents' order."""
    found: dict[str, Procedure] = {}
    for path in documents() if paths is None else paths:
        for m in _MARKER.finditer(path.read_text(encoding="utf-8")):
            assert m.group(1) not in found, f"procedure {m.group(1)} is documented twice (again in {path.name})"
            found[m.group(1)] = Procedure(m.group(1), m.group(3), m.group(4), m.group(2))
    return found


@dataclass(frozen=True)
class Applied:
    procedure: str
    environment: str | None  # None: every environment (a new service)
    detail: str


class ProcedureFailed(Exception):
    """A documented procedure did not apply as written."""


def run_bash(procedure: Procedure, root: Path, parameters: Mapping[str, str]) -> None:
    result = subprocess.run(
        ["bash", "-e", "-u", "-o", "pipefail", "-c", procedure.with_parameters(parameters)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ProcedureFailed(f"{procedure.name} ({parameters}): exit {result.returncode}: {result.stderr.strip()}")


def edit_environment(procedure: Procedure, project: Project, environment: str, **overrides: Any) -> None:
    """The YAML procedure made to ``environment``'s file (``overrides``: values chosen for this tree)."""
    path = project.environments / f"{environment}.yaml"
    edits = merged(procedure.edits(), overrides)
    if procedure.replaces:
        data = load_yaml(path.read_text(encoding="utf-8"))
        data[procedure.replaces] = edits.pop(procedure.replaces)
        path.write_text(dump_yaml(data, sort_keys=False), encoding="utf-8")
    edit_settings_file(path, edits)


def _raw(project: Project, environment: str) -> dict[str, Any]:
    return dict(load_yaml((project.environments / f"{environment}.yaml").read_text(encoding="utf-8")))


def _catalogue(project: Project) -> list[dict[str, Any]]:
    return list(load_yaml(project.catalogue.read_text(encoding="utf-8"))["services"])


def second_region(raw: Mapping[str, Any], suggested: list[str]) -> str:
    """A region to add: the documented suggestion unless it is the primary, else the first that has the
    environment's zones (and the RDS Data API, where a database of its own would need it)."""
    primary = raw["region"]
    candidates = [r for r in suggested if r != primary] + sorted(ZONE_LETTERS)
    for region in candidates:
        if region == primary or region in NO_DATA_API:
            continue
        try:
            zone_names(region, raw["network"]["zones"])
        except ZoneError:
            continue
        return region
    raise ProcedureFailed(f"no second region has the zones {raw['network']['zones']!r}")


def _cluster_mode(project: Project, environment: str, steps: Mapping[str, Procedure]) -> list[Applied]:
    """The environment's cache in cluster mode (a replication group first), or out of it."""
    applied = []
    cache = _raw(project, environment)["cache"]
    if cache.get("kind", "serverless") == "serverless":
        edit_environment(steps["cache-replication-group"], project, environment)
        applied.append(Applied("cache-replication-group", environment, "from serverless"))
        cache = _raw(project, environment)["cache"]
    if cache.get("cluster_mode"):
        edit_environment(steps["cache-serverless"], project, environment)
        applied.append(Applied("cache-serverless", environment, "from a cluster-mode replication group"))
    else:
        edit_environment(steps["cache-cluster-mode"], project, environment)
        applied.append(Applied("cache-cluster-mode", environment, "on"))
    return applied


def _compute_and_identity(project: Project, environment: str, steps: Mapping[str, Procedure]) -> list[Applied]:
    """The environment's autoscaling (cluster autoscaler <-> Karpenter) and workload identity (IRSA <-> Pod
    Identity), switched (docs/compute-and-identity.md)."""
    eks = _raw(project, environment)["eks"]
    autoscaling, identity = eks.get("autoscaling", "cluster-autoscaler"), eks.get("workload_identity", "irsa")
    applied = []
    for to, was in (
        ("karpenter" if autoscaling == "cluster-autoscaler" else "cluster-autoscaler", autoscaling),
        ("pod-identity" if identity == "irsa" else "irsa", identity),
    ):
        edit_environment(steps[to], project, environment)
        applied.append(Applied(to, environment, f"from {was}"))
    return applied


def apply_all(project: Project) -> list[Applied]:
    """Every documented procedure, applied to ``project`` (a copy of the working tree)."""
    steps = procedures()
    applied: list[Applied] = []
    environments = project.environment_names()
    first, last = environments[0], environments[-1]

    # A service named as a user might, shaped like an existing one (README: "Adding a service").
    services = _catalogue(project)
    names = {s["name"] for s in services}
    service = next(n for n in SERVICE_NAMES if n not in names)
    workers = [s for s in services if not s.get("ingress")]
    like = (workers or services)[0]["name"]
    run_bash(steps["add-service"], project.root, {"SERVICE": service, "FROM": like})
    applied.append(Applied("add-service", None, f"{service}, like {like}"))

    # A new environment from the first one that is not production (docs/environments.md: "Adding an environment").
    new = next(n for n in ENVIRONMENT_NAMES if n not in environments)
    source = next((e for e in environments if not _raw(project, e).get("production")), first)
    run_bash(steps["add-environment"], project.root, {"NAME": new, "FROM": source})
    applied.append(Applied("add-environment", new, f"from {source}"))

    # The cache kind of the first environment, switched either way; the new one's cluster mode.
    kind = _raw(project, first)["cache"].get("kind", "serverless")
    to = "cache-replication-group" if kind == "serverless" else "cache-serverless"
    edit_environment(steps[to], project, first)
    applied.append(Applied(to, first, f"from {kind}"))
    applied += _cluster_mode(project, new, steps)
    applied += _compute_and_identity(project, new, steps)

    # The database of the first environment: Serverless v2 <-> provisioned instances.
    database = _raw(project, first)["database"]
    to = "database-provisioned" if database.get("capacity") is not None else "database-serverless"
    edit_environment(steps[to], project, first)
    applied.append(Applied(to, first, ""))

    # The last environment's nodes (Spot <-> on-demand), and its regions (one -> two).
    capacity = _raw(project, last)["eks"]["node_group"].get("capacity_type", "on-demand")
    to = "nodes-on-demand" if capacity == "spot" else "nodes-spot"
    edit_environment(steps[to], project, last)
    applied.append(Applied(to, last, f"from {capacity}"))
    raw = _raw(project, last)
    if len(raw.get("regions") or [raw["region"]]) == 1:
        block = steps["two-regions"].edits()
        region = second_region(raw, list(block["regions"]))
        overrides: dict[str, Any] = {"regions": [raw["region"], region]}
        private = not raw["eks"].get("endpoint", {}).get("public_access_cidrs")
        hosted = all(str(x).startswith(GITHUB_HOSTED_LABEL_PREFIXES) for x in raw["github"]["deploy_runs_on"])
        if not private or hosted:
            # Runner labels with {region} only where a private endpoint needs runners in each region's VPC.
            overrides["github"] = None
        edit_environment(steps["two-regions"], project, last, **overrides)
        applied.append(Applied("two-regions", last, f"{raw['region']} and {region}"))
    return applied
