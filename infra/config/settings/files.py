"""The settings directory's files as documents: the strict YAML loader (a key given twice is refused),
and the environments a directory holds. Imports nothing of the settings models, so that what reads
other files of the directory (infra/config/delivery.py) can use it without an import cycle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infra.config.settings.base import ENVIRONMENTS_DIR, SettingsError


class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one mapping: YAML would keep the last one silently."""


# libyaml's parser when PyYAML has it (the wheels do), else the pure-Python one; the same documents.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StrictLoader(_BaseLoader):  # type: ignore[misc]
    """YAML's safe loader that refuses a key given twice in one mapping (YAML itself keeps the last one,
    so a second ``nat_gateways:`` would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                continue  # the loader refuses an unhashable key itself
            if key in first:
                raise DuplicateKeyError(
                    f"line {line}: key {key!r} is given twice in one mapping (first on line {first[key]}); YAML "
                    "would keep only the last one; allowed: each key once"
                )
            first[key] = line
        return dict(super().construct_mapping(node, deep=deep))


def parse_yaml(text: str) -> Any:
    """A YAML document, duplicate keys refused (:class:`StrictLoader`)."""
    return yaml.load(text, Loader=StrictLoader)


def read_yaml(path: Path) -> Any:
    """The document in ``path``; a syntax error or a duplicate key is one SettingsError naming the file."""
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except DuplicateKeyError as error:
        raise SettingsError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{path}: not valid YAML: {error}") from None


def known_environments(directory: Path = ENVIRONMENTS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))
