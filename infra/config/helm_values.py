"""Helm values for the add-ons CDK installs: ``helm_values/<env>/<addon>.yaml``.

Layers, lowest first: the chart defaults pinned in code, the environment's values file, then the
values the stack computes (cluster name, region, VPC id, role ARNs). A values file may tune the
add-on but may not contradict what the stack computes: such a key is an error, not an override.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from infra.config.settings import Settings, SettingsError, read_yaml

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


CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "microservice"
# What the deploy workflow sets for every release (--set/--set-string): never read from a values file.
_WORKFLOW_SETS = ("image",)


def check_service_values(
    settings: Settings,
    directory: Path = HELM_VALUES_DIR,
    services: Sequence[str] | None = None,
    *,
    chart: Path = CHART_DIR,
) -> None:
    """Every catalogue service has ``helm_values/<env>/services/<service>.yaml``, which the chart's
    ``values.schema.json`` accepts and which agrees with the settings (its environment, its catalogue
    entry, production, the network policies' subnets and ports); no file names a service the catalogue
    does not list. Else one SettingsError naming the file, the key, the value and what is allowed.

    ``services``: the catalogue's names (default: the settings'), for a check of another catalogue."""
    environment = settings.environment
    names = list(services) if services is not None else [s.name for s in settings.services]
    entries = {s.name: s for s in settings.services}
    folder = directory / environment / "services"
    schema = _schema(chart)
    routes: dict[tuple[str, str, str], Path] = {}
    for name in names:
        path = folder / f"{name}.yaml"
        if not path.exists():
            raise SettingsError(_missing(path, name, names, entries))
        data = read_yaml(path)
        if data is None:
            raise SettingsError(f"{path}: the file is empty; it holds {name}'s Helm values in {environment}")
        if not isinstance(data, dict):
            raise SettingsError(f"{path}: Helm values must be a mapping of keys to values, got {type(data).__name__}")
        for key, expected in (("environment", environment), ("service.name", name), ("serviceAccount.name", name)):
            actual = _get(data, key)
            if actual != expected:
                raise SettingsError(
                    f"{path}: {key} = {actual!r}, but this file holds {name}'s values in {environment}; allowed: "
                    f"{expected!r}"
                )
        _check_schema(path, data, schema, chart)
        if name in entries:
            _check_agrees(path, data, settings, entries[name])
        ingress = data.get("ingress") or {}
        if ingress.get("enabled") and ingress.get("groupName"):
            # One ALB per group takes the first matching rule: two services on one path, one never answers.
            route = (str(ingress["groupName"]), str(ingress.get("host", "")), str(ingress.get("path", "/")))
            if route in routes:
                raise SettingsError(
                    f"{path}: ingress.path = {route[2]!r} in groupName {route[0]!r}, as in {routes[route]}: the "
                    "load balancer they share would send every request to one of them; allowed: a path of its "
                    "own, such as /" + name
                )
            routes[route] = path
    strays = sorted(p.stem for p in folder.glob("*.yaml") if p.stem not in names)
    if strays:
        raise SettingsError(
            f"{folder}: values for {', '.join(strays)}, which the catalogue (infra/config/services.yaml) does not "
            "list; add the service there or remove the file"
        )


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _missing(path: Path, name: str, names: Sequence[str], entries: Mapping[str, Any]) -> str:
    """What to add: the values of an existing service of the same kind, renamed."""
    folder = path.parent
    present = [n for n in names if (folder / f"{n}.yaml").exists()]
    entry = entries.get(name)
    ingress = entry.ingress if entry is not None else False
    alike = [n for n in present if n in entries and entries[n].ingress == ingress]
    candidates = alike or present
    start = candidates[0] if candidates else None
    how = (
        f"e.g. from {start}'s: sed 's/\\b{start}\\b/{name}/g' {folder / f'{start}.yaml'} > {path}"
        if start
        else "(see charts/microservice/values.yaml for every value)"
    )
    return f"{path} is missing: every service of the catalogue has Helm values in every environment; add it, {how}"


@functools.cache
def _schema(chart: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chart's values schema and its default values."""
    schema = json.loads((chart / "values.schema.json").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8"))
    return schema, defaults


def _check_schema(
    path: Path, data: Mapping[str, Any], schema: tuple[dict[str, Any], dict[str, Any]], chart: Path
) -> None:
    """The values as helm validates them at deploy: the chart's defaults, this file, then what the deploy
    workflow sets (the image), against values.schema.json."""
    import jsonschema

    document, defaults = schema
    image = {"repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x/y", "tag": "0", "digest": ""}
    values = deep_merge(deep_merge(defaults, data), {"image": image})
    validator = jsonschema.Draft7Validator(document)
    errors = sorted(
        validator.iter_errors(values), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    if errors:
        raise SettingsError(f"{path}: {_schema_message(errors[0], document)} (charts/{chart.name}/values.schema.json)")


def _schema_message(error: Any, schema: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        node: Any = schema
        for part in error.absolute_path:
            node = node.get("properties", {}).get(str(part), {}) if isinstance(node, dict) else {}
        allowed = sorted(node.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))[0]
        near = difflib.get_close_matches(extra, allowed, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        inside = f" in {where}" if where else ""
        key = f"{where}.{extra}" if where else extra
        return f"key {key!r} is not a value of the chart{hint}; allowed{inside}: {', '.join(allowed)}"
    rule = error.validator_value
    allowed_by = {
        "minimum": f"at least {rule}",
        "maximum": f"at most {rule}",
        "exclusiveMinimum": f"more than {rule}",
        "enum": ", ".join(map(str, rule)) if isinstance(rule, list) else "",
        "type": f"a value of type {rule}",
        "pattern": f"text matching {rule}",
    }
    if error.validator in allowed_by:
        return f"{where} = {error.instance!r} is not allowed; allowed: {allowed_by[error.validator]}"
    return f"{where or 'the values'}: {error.message}"


def _check_agrees(path: Path, data: Mapping[str, Any], settings: Settings, entry: Any) -> None:
    """The values say what the settings say: the catalogue entry's port and ingress, production, and
    network policies on this environment's subnets and on the ports of the data stores it uses."""
    from infra.config.subnets import DATA, PRIVATE, PUBLIC, subnet_plan

    expose = entry.ingress
    checks: list[tuple[str, Any, Any, str]] = [
        ("service.port", _get(data, "service.port"), entry.port, "the catalogue entry's port"),
        ("service.expose", _get(data, "service.expose"), expose, "the catalogue entry's ingress"),
        ("ingress.enabled", bool(_get(data, "ingress.enabled")), expose, "the catalogue entry's ingress"),
        ("production", bool(data.get("production", False)), settings.production, "the settings' production"),
    ]
    for key, actual, expected, what in checks:
        if actual != expected:
            raise SettingsError(
                f"{path}: {key} = {_yaml(actual)}, but {what} is {_yaml(expected)}; allowed: {_yaml(expected)}"
            )
    policy = data.get("networkPolicy") or {}
    if not policy.get("enabled"):
        return
    plan = subnet_plan(settings.network.vpc_cidr, settings.network.zone_count)
    subnets = set(plan[PUBLIC]) | set(plan[PRIVATE])
    for cidr in policy.get("ingressFromCidrs") or []:
        if cidr not in subnets:
            raise SettingsError(
                f"{path}: networkPolicy.ingressFromCidrs lists {cidr!r}, which is not a subnet of this environment's "
                f"load balancers; allowed: the public subnets {', '.join(plan[PUBLIC])} (internet-facing) or the "
                f"private ones {', '.join(plan[PRIVATE])} (internal)"
            )
    ports_of = {s.name: s.port for s in settings.services}
    for name in policy.get("ingressFromServices") or []:
        if name not in ports_of:
            raise SettingsError(
                f"{path}: networkPolicy.ingressFromServices lists {name!r}, which the catalogue "
                f"(infra/config/services.yaml) does not; allowed: {', '.join(sorted(ports_of))}"
            )
    egress = policy.get("egress") or {}
    if not egress.get("enabled"):
        return
    for callee in egress.get("services") or []:
        if ports_of.get(callee["name"]) != callee["port"]:
            known = ", ".join(f"{{name: {n}, port: {p}}}" for n, p in sorted(ports_of.items()))
            raise SettingsError(
                f"{path}: networkPolicy.egress.services lists {{name: {callee['name']}, port: {callee['port']}}}, "
                f"which is not a catalogue service on its port; allowed: {known}"
            )
    cidrs = egress.get("dataStoreCidrs") or []
    if cidrs and sorted(cidrs) != sorted(plan[DATA]):
        raise SettingsError(
            f"{path}: networkPolicy.egress.dataStoreCidrs = {cidrs}, but this environment's data subnets (network."
            f"vpc_cidr {settings.network.vpc_cidr}, {settings.network.zone_count} zones) are {plan[DATA]}; allowed: "
            f"[{', '.join(plan[DATA])}]"
        )
    needed, allowed = data_store_ports(entry.uses)
    ports = set(egress.get("dataStorePorts") or [])
    if not needed <= ports <= allowed or (ports and not cidrs):
        raise SettingsError(
            f"{path}: networkPolicy.egress.dataStorePorts = {sorted(ports)}, but {entry.name} uses "
            f"{', '.join(entry.uses) or 'no data store'} (the catalogue); allowed: {sorted(needed)}"
            + (
                f", and optionally {sorted(allowed - needed)} (a serverless cache's reads from replicas)"
                if allowed - needed
                else ""
            )
            + (" with dataStoreCidrs, the data subnets" if ports and not cidrs else "")
        )


def data_store_ports(uses: Sequence[str]) -> tuple[set[int], set[int]]:
    """(needed, allowed) egress ports for a service using these data stores: PostgreSQL; Valkey, and the
    serverless cache's port for reads from replicas (optional, and harmless after a switch to nodes)."""
    needed: set[int] = set()
    if "database" in uses:
        needed.add(5432)
    allowed = set(needed)
    if "cache" in uses:
        needed.add(6379)
        allowed |= {6379, 6380}
    return needed, allowed


def _yaml(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)
