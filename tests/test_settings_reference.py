"""docs/settings.md is what the settings models say, and every setting has a description."""

from __future__ import annotations

import typing

from pydantic import BaseModel

from infra.config.settings import Settings
from scripts.settings_reference import OUTPUT, reference


def _models(model: type[BaseModel], seen: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """``model`` and every settings model nested in it (fields, list items, union members)."""
    if model in seen:
        return seen
    seen.append(model)

    def nested(annotation: object) -> list[type[BaseModel]]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for argument in typing.get_args(annotation) for m in nested(argument)]

    for field in model.model_fields.values():
        for sub in nested(field.annotation):
            _models(sub, seen)
    return seen


def test_the_committed_reference_is_the_generated_one() -> None:
    assert OUTPUT.read_text(encoding="utf-8") == reference(), (
        "docs/settings.md differs from the settings models: run python scripts/settings_reference.py "
        "(make settings-reference) and commit it"
    )


def test_every_setting_and_section_is_described() -> None:
    models = _models(Settings, [])
    assert len(models) >= 15
    for model in models:
        assert (model.__doc__ or "").strip(), f"{model.__name__} has no docstring (its section's intro)"
        for name, field in model.model_fields.items():
            assert (field.description or "").strip(), f"{model.__name__}.{name} has no description"


def test_every_setting_has_a_row() -> None:
    text = reference()
    for model in _models(Settings, []):
        for name in model.model_fields:
            assert f"{name}` |" in text, f"{model.__name__}.{name} is missing from docs/settings.md"
