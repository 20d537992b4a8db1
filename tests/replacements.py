"""What CloudFormation would do to each resource when a deploy of one synthesis follows another.

Read from CloudFormation's own resource schemas (cfn-lint ships them per region): a resource whose
``Type`` changes, or one of whose ``createOnlyProperties`` changes, is replaced; one whose logical id
(or whole stack) disappears is deleted; any other difference is an update in place. A property that
refers (``Ref``, ``Fn::GetAtt``) to a replaced resource of its stack changes too, so replacement
spreads through such references. Custom resources have no schema: those of aws-cdk-lib's EKS
providers are given the properties their handlers cannot change in place.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Template = dict[str, Any]


def _cfn_lint_package() -> Path:
    """Where cfn-lint is installed, found without importing it (its import loads every rule: seconds)."""
    spec = importlib.util.find_spec("cfnlint")
    origin = spec.origin if spec is not None else None
    assert origin is not None, "cfn-lint is not installed (requirements-dev.txt)"
    return Path(origin).parent


SCHEMAS = _cfn_lint_package() / "data" / "schemas"

# aws-cdk-lib's kubectl provider: a Helm release or a manifest is another one under another name,
# namespace or cluster.
CUSTOM_CREATE_ONLY: dict[str, tuple[str, ...]] = {
    "Custom::AWSCDK-EKS-HelmChart": ("/properties/ClusterName", "/properties/Release", "/properties/Namespace"),
    "Custom::AWSCDK-EKS-KubernetesResource": ("/properties/ClusterName",),
}


@dataclass(frozen=True)
class Change:
    stack: str
    logical_id: str
    resource_type: str
    action: str  # "replace", "delete", "update", "add"
    properties: tuple[str, ...] = ()  # what changed (the create-only ones for a replacement)


@functools.cache
def _providers(region: str) -> dict[str, str]:
    return dict(json.loads((SCHEMAS / "providers" / f"{region}.json").read_text(encoding="utf-8")))


@functools.cache
def create_only(resource_type: str, region: str) -> tuple[str, ...]:
    """The JSON pointers (``/properties/Name/...``) whose change replaces a resource of this type."""
    if resource_type in CUSTOM_CREATE_ONLY:
        return CUSTOM_CREATE_ONLY[resource_type]
    schema = _providers(region).get(resource_type)
    if schema is None:
        return ()
    data = json.loads((SCHEMAS / "resources" / f"{schema}.json").read_text(encoding="utf-8"))
    return tuple(data.get("createOnlyProperties", ()))


def _at(properties: Mapping[str, Any], pointer: str) -> Any:
    node: Any = {"properties": properties}
    for part in pointer.strip("/").split("/"):
        if part == "*" or not isinstance(node, Mapping):
            return node  # a list's members: compared whole
        node = node.get(part)
    return node


def _refers_to(value: Any, ids: set[str]) -> bool:
    if isinstance(value, Mapping):
        if value.get("Ref") in ids:
            return True
        attribute = value.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute and attribute[0] in ids:
            return True
        return any(_refers_to(v, ids) for v in value.values())
    if isinstance(value, list):
        return any(_refers_to(v, ids) for v in value)
    return False


def _stack_changes(stack: str, region: str, before: Template, after: Template) -> Iterator[Change]:
    old, new = before.get("Resources", {}), after.get("Resources", {})
    replaced: dict[str, tuple[str, ...]] = {}
    changed = True
    while changed:  # until no more replacements spread through references
        changed = False
        for logical_id in sorted(set(old) & set(new)):
            if logical_id in replaced:
                continue
            was, now = old[logical_id], new[logical_id]
            if was["Type"] != now["Type"]:
                replaced[logical_id] = ("Type",)
                changed = True
                continue
            props_was, props_now = was.get("Properties", {}), now.get("Properties", {})
            why = tuple(
                pointer
                for pointer in create_only(now["Type"], region)
                if _at(props_was, pointer) != _at(props_now, pointer)
                or _refers_to(_at(props_now, pointer), set(replaced))
            )
            if why:
                replaced[logical_id] = why
                changed = True
    for logical_id in sorted(set(old) | set(new)):
        if logical_id not in new:
            yield Change(stack, logical_id, old[logical_id]["Type"], "delete")
        elif logical_id not in old:
            yield Change(stack, logical_id, new[logical_id]["Type"], "add")
        elif logical_id in replaced:
            yield Change(stack, logical_id, new[logical_id]["Type"], "replace", replaced[logical_id])
        elif old[logical_id] != new[logical_id]:
            was, now = old[logical_id], new[logical_id]
            props_was, props_now = was.get("Properties", {}), now.get("Properties", {})
            properties = tuple(
                sorted(k for k in set(props_was) | set(props_now) if props_was.get(k) != props_now.get(k))
            )
            yield Change(stack, logical_id, now["Type"], "update", properties)


def changes(before: Mapping[str, Template], after: Mapping[str, Template], regions: Mapping[str, str]) -> list[Change]:
    """Every resource that a deploy of ``after`` (stack name -> template) over ``before`` would add,
    update, replace or delete; ``regions``: each stack's region (for its schemas)."""
    found: list[Change] = []
    for stack in sorted(set(before) | set(after)):
        found += _stack_changes(stack, regions[stack], before.get(stack, {}), after.get(stack, {}))
    return found


def deploy_changes(before: Path, after: Path) -> list[Change]:
    """:func:`changes` between two cloud assemblies (``cdk.out`` directories)."""
    from infra.assembly import load_templates, stack_regions

    regions = {**stack_regions(before), **stack_regions(after)}
    return changes(load_templates(before), load_templates(after), regions)
