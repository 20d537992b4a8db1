"""Reading a synthesized cloud assembly: templates by stack, and references followed across stacks."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Template = dict[str, Any]


def _stacks(outdir: Path) -> dict[str, dict[str, Any]]:
    artifacts = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))["artifacts"]
    return {k: v for k, v in artifacts.items() if v["type"] == "aws:cloudformation:stack"}


def template_files(outdir: Path) -> dict[str, Path]:
    """Stack name -> its template file, for the stacks of the assembly's manifest."""
    return {name: outdir / artifact["properties"]["templateFile"] for name, artifact in _stacks(outdir).items()}


def load_templates(outdir: Path) -> dict[str, Template]:
    """Stack name -> template, for the stacks of the assembly's manifest (not stale files beside them)."""
    return {name: dict(json.loads(path.read_text(encoding="utf-8"))) for name, path in template_files(outdir).items()}


def stack_dependencies(outdir: Path) -> dict[str, list[str]]:
    """Stack -> the stacks it waits for, from ``manifest.json``."""
    stacks = _stacks(outdir)
    return {k: sorted(d for d in v.get("dependencies", []) if d in stacks) for k, v in stacks.items()}


def stack_regions(outdir: Path) -> dict[str, str]:
    """Stack -> the region it deploys to, from ``manifest.json`` (``aws://<account>/<region>``)."""
    return {k: v["environment"].rsplit("/", 1)[-1] for k, v in _stacks(outdir).items()}


@dataclass(frozen=True)
class Resource:
    """One resource of one synthesized template, with the other templates of the assembly at hand."""

    stack: str
    logical_id: str
    body: Mapping[str, Any]
    templates: Mapping[str, Template]

    @property
    def props(self) -> Mapping[str, Any]:
        return dict(self.body.get("Properties", {}))

    def target(self, value: Any) -> Resource | None:
        """The resource a ``Ref``/``Fn::GetAtt``/``Fn::GetStackOutput`` points at, in whichever stack."""
        stack, node = self.stack, value
        for _ in range(5):
            if not isinstance(node, dict):
                return None
            if "Fn::GetStackOutput" in node:
                ref = node["Fn::GetStackOutput"]
                stack = ref["StackName"]
                outputs = self.templates.get(stack, {}).get("Outputs", {})
                if ref["OutputName"] not in outputs:
                    return None
                node = outputs[ref["OutputName"]]["Value"]
                continue
            logical_id = node.get("Ref") or (node.get("Fn::GetAtt") or [None])[0]
            body = self.templates.get(stack, {}).get("Resources", {}).get(logical_id)
            return Resource(stack, logical_id, body, self.templates) if body else None
        return None

    def resources_of_type(self, resource_type: str) -> Iterator[Resource]:
        for logical_id, body in self.templates[self.stack].get("Resources", {}).items():
            if body.get("Type") == resource_type:
                yield Resource(self.stack, logical_id, body, self.templates)


def resources_of(templates: Mapping[str, Template], resource_type: str) -> Iterator[Resource]:
    for stack, template in templates.items():
        for logical_id, body in template.get("Resources", {}).items():
            if body.get("Type") == resource_type:
                yield Resource(stack, logical_id, body, templates)
