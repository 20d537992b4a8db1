"""Helm values for the add-ons CDK installs: ``helm_values/<env>/<addon>.yaml``.

Layers, lowest first: the chart defaults pinned in code, the environment's values file, then the
values the stack computes (cluster name, region, VPC id, role ARNs). A values file may tune the
add-on but may not contradict what the stack computes: such a key is an error, not an override.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from infra.config.settings import SettingsError, read_yaml

HELM_VALUES_DIR = Path(__file__).resolve().parents[2] / "helm_values"


def load_addon_values(
    environment: str,
    addon: str,
    *,
    tunable: Collection[str],
    computed: Collection[str] = (),
    directory: Path = HELM_VALUES_DIR,
) -> dict[str, Any]:
    """``helm_values/<environment>/<addon>.yaml``; only the top-level keys in ``tunable`` are allowed,
    and a key the stack computes (``computed``) is named as such."""
    path = directory / environment / f"{addon}.yaml"
    if not path.exists():
        return {}
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: Helm values must be a mapping of keys to values, got {type(data).__name__}")
    for key in data:
        if key in computed:
            raise SettingsError(
                f"{path}: key {key!r} is computed by the stack and cannot be set in a values file "
                f"(computed for {addon}: {', '.join(sorted(computed))})"
            )
        if key not in tunable:
            raise SettingsError(
                f"{path}: key {key!r} is not a tunable value of {addon}; allowed: {', '.join(sorted(tunable))} "
                "(to tune another chart value, add it to the add-on's `tunable` in infra/stacks/eks_addons.py)"
            )
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``override`` merged into ``base``, neither input mutated."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def layered_values(
    *, addon: str, defaults: Mapping[str, Any], user: Mapping[str, Any], computed: Mapping[str, Any]
) -> dict[str, Any]:
    conflict = _first_conflict(user, computed, prefix="")
    if conflict:
        raise SettingsError(
            f"helm_values for {addon}: key '{conflict}' is computed by the stack and cannot be set in a values file"
        )
    return deep_merge(deep_merge(defaults, user), computed)


def _first_conflict(user: Mapping[str, Any], computed: Mapping[str, Any], prefix: str) -> str | None:
    for key, value in user.items():
        if key not in computed:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(computed[key], Mapping):
            found = _first_conflict(value, computed[key], prefix=f"{path}.")
            if found:
                return found
        else:
            return path
    return None


def check_service_values(environment: str, services: Sequence[str], directory: Path = HELM_VALUES_DIR) -> None:
    """Every catalogue service has ``helm_values/<env>/services/<service>.yaml`` that names it and the
    environment, and no file names a service the catalogue does not list; else one error saying what to do."""
    folder = directory / environment / "services"
    for name in services:
        path = folder / f"{name}.yaml"
        if not path.exists():
            raise SettingsError(
                f"{path} is missing: every service of the catalogue has Helm values in every environment; add it, "
                f"e.g. from another service's: sed 's/\\bworker\\b/{name}/g' {folder / 'worker.yaml'} > {path}"
            )
        data = read_yaml(path)
        if not isinstance(data, dict):
            raise SettingsError(f"{path}: Helm values must be a mapping of keys to values")
        for key, expected in (("environment", environment), ("service.name", name), ("serviceAccount.name", name)):
            actual: Any = data
            for part in key.split("."):
                actual = actual.get(part) if isinstance(actual, dict) else None
            if actual != expected:
                raise SettingsError(
                    f"{path}: {key} = {actual!r}, but this file holds {name}'s values in {environment}; allowed: "
                    f"{expected!r}"
                )
    strays = sorted(p.stem for p in folder.glob("*.yaml") if p.stem not in services)
    if strays:
        raise SettingsError(
            f"{folder}: values for {', '.join(strays)}, which infra/config/services.yaml does not list; "
            "add the service there or remove the file"
        )
