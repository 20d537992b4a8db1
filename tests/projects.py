"""The trees the tests read: the user's repository, the tests' own examples, and edited copies of either.

- ``REPOSITORY``: the user's platform, as it is. Tests read it as any valid input: they assert
  properties of every environment and service they find in it, never its names, counts or kinds.
- ``EXAMPLES`` (``tests/examples/``): the tests' own settings, catalogue and Helm values, a project
  tree laid out like the repository. Tests that need a known shape (a replication group, two
  regions, a bad value next to good ones) start from these, never from the user's files.
"""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from infra.config.project import REPOSITORY, Project
from infra.config.settings import Settings

ROOT = REPOSITORY.root
EXAMPLES = Project(ROOT / "tests" / "examples")
# Everything a test session writes (cloud assemblies, copies, reports), removed at its end.
WORK = Path(tempfile.mkdtemp(prefix="cloud-ops-tests-"))

# What a working tree holds that is not the user's: tools, caches and build output (.gitignore).
_NOT_THE_USERS = {".git", ".venv", "node_modules", "cdk.out", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tools"}


def load_yaml(text: str) -> Any:
    """A YAML document, parsed by libyaml (what yaml.safe_load gives, several times faster)."""
    return yaml.load(text, Loader=yaml.CSafeLoader)


def dump_yaml(data: Any, **options: Any) -> str:
    return str(yaml.dump(data, Dumper=yaml.CSafeDumper, **options))


@functools.cache
def settings_of(project: Project, environment: str) -> Settings:
    """A project's settings of one environment (validated once per session: the files do not change)."""
    return project.settings(environment)


def working_tree_files(root: Path = ROOT) -> list[str]:
    """The files of the working tree as the user has them: tracked and untracked, not ignored."""
    if (root / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return sorted(name for name in set(listed.split("\0")) if name and (root / name).is_file())
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file()
        and not _NOT_THE_USERS & set(path.relative_to(root).parts)
        and "__pycache__" not in path.parts
        and not path.name.startswith("cdk.out")
    )


def copy_working_tree(into: Path, root: Path = ROOT) -> Project:
    for name in working_tree_files(root):
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return Project(into)


def merged(data: Mapping[str, Any], edits: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with ``edits`` made as a person edits a YAML file: a mapping is merged into the mapping
    of the same key, any other value replaces it, and ``None`` deletes the key."""
    out = dict(data)
    for key, value in edits.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def edit_settings_file(path: Path, edits: Mapping[str, Any]) -> None:
    data = load_yaml(path.read_text(encoding="utf-8"))
    path.write_text(dump_yaml(merged(data, edits), sort_keys=False), encoding="utf-8")


def edited_copy(source: Project, into: Path, edits: Mapping[str, Mapping[str, Any]]) -> Project:
    """A copy of ``source``'s settings, catalogue and Helm values with ``edits`` (environment -> edits,
    see :func:`merged`) made to the environment files."""
    project = Project(into)
    if not project.environments.exists():
        shutil.copytree(source.environments, project.environments)
        shutil.copy2(source.catalogue, project.catalogue)
        shutil.copytree(source.helm_values, project.helm_values)
        if (source.environments.parent / "delivery.yaml").exists():
            shutil.copy2(source.environments.parent / "delivery.yaml", project.environments.parent / "delivery.yaml")
        for environment, changes in edits.items():
            edit_settings_file(project.environments / f"{environment}.yaml", changes)
    return project


def example_data(environment: str) -> dict[str, Any]:
    """The raw settings of one of the tests' example environments, to change and write elsewhere."""
    return copy.deepcopy(_example(environment))


@functools.cache
def _example(environment: str) -> dict[str, Any]:
    return dict(load_yaml((EXAMPLES.environments / f"{environment}.yaml").read_text(encoding="utf-8")))


def write_environment(directory: Path, name: str, data: Mapping[str, Any], *, catalogue: bool = True) -> Project:
    """A project in ``directory`` holding one environment file (and, by default, the examples' catalogue)."""
    project = Project(directory)
    project.environments.mkdir(parents=True, exist_ok=True)
    (project.environments / f"{name}.yaml").write_text(dump_yaml(dict(data), sort_keys=False), encoding="utf-8")
    if catalogue and not project.catalogue.exists():
        shutil.copy2(EXAMPLES.catalogue, project.catalogue)
    return project


def nested(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """``{"eks.node_group.min_size": 2}`` -> ``{"eks": {"node_group": {"min_size": 2}}}``."""
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        target = out
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return out


def example_settings(
    tmp_path: Path,
    base: str = "sandbox",
    edits: Mapping[str, Any] | None = None,
    *,
    overrides: Mapping[str, str | None] | None = None,
    name: str = "qa",
    replace: Mapping[str, Any] | None = None,
) -> Settings:
    """One of the examples' environments as ``name``, with whole sections replaced (``replace``) and
    ``edits`` made (see :func:`merged`), loaded alone from ``tmp_path``: how the tests give the settings a
    value and read what synth would say."""
    project = write_environment(tmp_path, name, merged({**example_data(base), **(replace or {})}, edits or {}))
    return project.settings(name, overrides)
