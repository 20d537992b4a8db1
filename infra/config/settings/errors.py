"""How a validation error reads: one line per mistake, under the file (or the command line) its value
came from, in a person's words."""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from infra.config.settings.model import Settings


@dataclass(frozen=True)
class Sources:
    """Where the values being validated came from, so that each error names its own source."""

    settings_file: Path
    catalogue: Path | None = None  # None: the settings file lists its own services
    command_line: Mapping[str, str] = dataclasses.field(default_factory=dict)  # key -> "--context key=value"


def format_validation_error(
    path: Path, error: ValidationError, data: Mapping[str, Any], sources: Sources | None = None
) -> str:
    """One line per mistake, under the file (or the command line) the value came from."""
    sources = sources or Sources(path)
    groups: dict[tuple[int | str, ...], list[Any]] = {}
    for item in error.errors():
        keep_last = item["type"] in ("extra_forbidden", "missing")
        groups.setdefault(_field_location(item["loc"], keep_last=keep_last), []).append(item)
    # A misspelt key is one mistake, not two: the unknown key (with the name it resembles) says it all,
    # so the required key it was meant to be is not also reported missing.
    for location, items in list(groups.items()):
        if items[0]["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(location[-1]), _allowed_keys(location), n=1)
            sibling = (*location[:-1], near[0]) if near else None
            if sibling in groups and groups[sibling][0]["type"] == "missing":
                del groups[sibling]
    by_source: dict[str, list[str]] = {}
    for location, items in groups.items():
        header, line = _describe(location, items, data, sources)
        by_source.setdefault(header, []).append(line)
    return "\n".join(f"{header}\n" + "\n".join(f"  {line}" for line in lines) for header, lines in by_source.items())


def _describe(
    location: tuple[int | str, ...], items: list[Any], data: Mapping[str, Any], sources: Sources
) -> tuple[str, str]:
    """(the header naming the source, the line describing the mistake) for one setting's errors."""
    item = items[0]
    top = location[0] if location else None
    if top in sources.command_line and data.get(str(top)) == item["input"]:
        message = str(item["msg"]).removeprefix("Value error, ")
        return "invalid command line", f"{sources.command_line[str(top)]} {_as_clause(message)}"
    if top == "services" and sources.catalogue is not None:
        where = "services" + _dotted(location).removeprefix("services")
        if len(location) > 1 and isinstance(location[1], int):
            entries = data.get("services")
            entry = entries[location[1]] if isinstance(entries, list) and len(entries) > location[1] else None
            name = entry.get("name") if isinstance(entry, dict) else None
            tail = _dotted(location[2:])
            where = f"services[{location[1]}]" + (f" ({name})" if name else "") + (f".{tail}" if tail else "")
        return f"{sources.catalogue}: invalid service catalogue", _mistake(location, items, where)
    return f"{sources.settings_file}: invalid settings", _mistake(location, items, _dotted(location))


def _mistake(location: tuple[int | str, ...], items: list[Any], dotted: str) -> str:
    item = items[0]
    message = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        allowed = _allowed_keys(location)
        near = difflib.get_close_matches(str(location[-1]), allowed, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return f"setting '{dotted}' is not a known setting{hint}; allowed here: {', '.join(allowed)}"
    if item["type"] == "missing":
        return f"setting '{dotted}' is required but missing"
    if not dotted:
        return message
    if isinstance(item["input"], dict) and len(items) == 1 and item["type"] not in _TYPE_NAMES:
        # A check across a section's fields: its message names them; the whole mapping is noise.
        return f"setting '{dotted}': {message}"
    if len(items) > 1 or item["type"] in _TYPE_NAMES:
        # The wrong kind of value (or none of a union's kinds): say which kinds the setting takes.
        takes = _TAKES.get(_dotted(tuple(p for p in location if not isinstance(p, int))))
        kinds = takes or " or ".join(dict.fromkeys(_TYPE_NAMES.get(i["type"], i["type"]) for i in items))
        return f"setting '{dotted}' = {item['input']!r} is invalid: must be {kinds}{_yaml_hint(items)}"
    return f"setting '{dotted}' = {item['input']!r} {_as_clause(message)}{_yaml_hint(items)}"


# What pydantic's type errors ask for, in a user's words.
_TYPE_NAMES = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list such as [a, b]",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
}
# Settings that take more than one kind of value, described as a person would.
_TAKES = {
    "network.zones": "a zone count such as 3, or zone letters such as [a, b, c]",
    "database.capacity": "a mapping {min_acu: ..., max_acu: ...} (or left out, with database.instance_class)",
    "regions": "a list of regions such as [us-east-1, us-west-2], the primary first",
}


def _yaml_hint(items: list[Any]) -> str:
    """Why YAML gave the wrong type: quotes made a number text, or no quotes made a version a number."""
    value = items[0]["input"]
    wanted = {i["type"] for i in items}
    numeric = {"int_type", "int_parsing", "float_type", "float_parsing"}
    if wanted & numeric and isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
        return f" (the quotes make it text in YAML: write {value.strip()} without quotes)"
    if "string_type" in wanted and isinstance(value, int | float) and not isinstance(value, bool):
        return f' (YAML reads an unquoted {value!r} as a number: write it in quotes, "{value}")'
    return ""


def _as_clause(message: str) -> str:
    # pydantic's own messages read "Input should be ..."; ours already read "must be ...".
    if message.startswith("Input should be"):
        return "is invalid: " + message.replace("Input should be", "must be", 1)
    if message.startswith(("must", "is ", "unknown")):
        return message
    return "is invalid: " + message


def _dotted(location: tuple[int | str, ...]) -> str:
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings model an annotation holds: itself, the items of a list, a member of a union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def _field_location(location: tuple[int | str, ...], *, keep_last: bool = False) -> tuple[int | str, ...]:
    """The location of an error as settings name it: pydantic's union member tags (``int``,
    ``list[str]``, a model's name) left out; a mapping's keys and a list's indices kept. ``keep_last``:
    the last part is a key of the input (an unknown or a missing one), kept whatever it is."""
    model: type[BaseModel] | None = Settings
    mapping = False  # the field is a dict: its next part is one of its keys
    out: list[int | str] = []
    for index, part in enumerate(location):
        if isinstance(part, int) or mapping or (keep_last and index == len(location) - 1):
            out.append(part)
            mapping = False
        elif model is not None and part in model.model_fields:
            out.append(part)
            annotation = model.model_fields[part].annotation
            model = _model_of(annotation)
            mapping = typing.get_origin(annotation) is dict
    return tuple(out)


def _allowed_keys(location: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] | None = Settings
    for part in location[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part))
        model = _model_of(field.annotation) if field else None
    return sorted(name for name in (model or Settings).model_fields if name != "environment")
