"""docs/settings.md from the settings models: every setting, its type, default and description.

``python scripts/settings_reference.py`` writes the file; ``--check`` exits 1 if the committed one
differs from what the models say. The text comes from the models only (infra/config/settings/): each
section's docstring, each field's type, default and ``Field(description=...)``. Nested models get a
sub-section of their own.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.config.settings import Settings  # noqa: E402

OUTPUT = ROOT / "docs" / "settings.md"

_NAMES = {int: "whole number", float: "number", str: "text", bool: "true or false"}

_INTRO = """\
# Settings reference

Generated from the settings models ([`infra/config/settings/`](../infra/config/settings)) by
`python scripts/settings_reference.py` (`make settings-reference`); do not edit it by hand: a test
compares it with the models. One YAML file per environment in
[`infra/config/environments/`](../infra/config/environments) holds these settings; an unknown or
misspelt key, a wrong type or a value out of range stops synth with a message naming the setting.
A setting is written as its dotted path in the file: `eks.node_group.min_size` is `min_size:` under
`node_group:` under `eks:`. `services[]` is each entry of the `services` list.
"""


def _strip(annotation: Any) -> Any:
    """The annotation without its ``Annotated`` metadata."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> list[Any]:
    """A union's members (``None`` left out), or the annotation alone."""
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [_strip(a) for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds: itself, a list's items or a member of a union."""
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
        if typing.get_origin(member) is list:
            found = _model_in(typing.get_args(member)[0])
            if found is not None:
                return found
    return None


def type_name(annotation: Any) -> str:
    """How a person reads a field's type: ``whole number``, ``list of text``, ``one of: a, b``."""
    names = []
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if origin is Literal:
            names.append("one of: " + ", ".join(f"`{v}`" for v in typing.get_args(member)))
        elif origin is list:
            names.append(f"list of {type_name(typing.get_args(member)[0])}")
        elif origin is dict:
            key, value = typing.get_args(member)
            names.append(f"mapping of {type_name(key)} to {type_name(value)}")
        elif isinstance(member, type) and issubclass(member, BaseModel):
            names.append("mapping")
        else:
            names.append(_NAMES.get(member, getattr(member, "__name__", str(member))))
    return " or ".join(names)


def _yaml(value: Any) -> str:
    """A default as it would be written in YAML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value):
        return f'"{value}"'  # a version: quoted, or YAML reads a number
    return str(value)


def default_of(field: FieldInfo) -> str:
    """``required``, ``-`` (not set), the section's own defaults, or the value in YAML."""
    if field.is_required():
        return "required"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "-"
    if isinstance(value, BaseModel):
        return "its defaults"
    return f"`{_yaml(value)}`"


def _cell(text: str) -> str:
    """Text that keeps a table row whole: ``|`` escaped, ``<`` not read as HTML, one line."""
    return " ".join(text.split()).replace("|", "\\|").replace("<", "\\<")


def _prose(model: type[BaseModel]) -> str:
    """The model's docstring as Markdown paragraphs."""
    doc = inspect.cleandoc(model.__doc__ or "")
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n")]
    return "\n\n".join(p.replace("``", "`") for p in paragraphs if p)


def _section(path: str, model: type[BaseModel], level: int) -> list[str]:
    """A model's heading, docstring and table, then a sub-section for each nested model."""
    title = f"`{path}`" if path else "Top level"
    lines = [f"{'#' * level} {title}", "", _prose(model), ""]
    lines += ["| setting | type | default | description |", "|---|---|---|---|"]
    nested = []
    for name, field in model.model_fields.items():
        dotted = f"{path}.{name}" if path else name
        sub = _model_in(field.annotation)
        if sub is not None:
            listed = typing.get_origin(_members(field.annotation)[0]) is list
            nested.append((dotted + ("[]" if listed else ""), sub))
        kind = type_name(field.annotation) + (f" (see `{nested[-1][0]}`)" if sub is not None else "")
        lines.append(f"| `{dotted}` | {_cell(kind)} | {_cell(default_of(field))} | {_cell(field.description or '')} |")
    lines.append("")
    for dotted, sub in nested:
        lines += _section(dotted, sub, min(level + 1, 4) if path else level)
    return lines


def reference() -> str:
    """The whole of docs/settings.md."""
    return "\n".join([_INTRO, *_section("", Settings, 2)]).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = reference()
    if argv == ["--check"]:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(
                f"{OUTPUT.relative_to(ROOT)} is not what the settings models say: run "
                "python scripts/settings_reference.py (make settings-reference) and commit it",
                file=sys.stderr,
            )
            return 1
        print(f"{OUTPUT.relative_to(ROOT)} is up to date")
        return 0
    if argv:
        print("usage: python scripts/settings_reference.py [--check]", file=sys.stderr)
        return 2
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
