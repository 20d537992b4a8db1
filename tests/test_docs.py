"""The project's Markdown: relative links resolve, tables are whole, nothing points outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.synth import ROOT

DOCS = sorted(
    p
    for p in ROOT.rglob("*.md")
    if not any(
        part in {"node_modules", ".venv", ".git", ".pytest_cache"} or part.startswith("cdk.out") for part in p.parts
    )
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*```")


def _prose(path: Path) -> list[str]:
    """Lines outside fenced code blocks."""
    lines, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            inside = not inside
            lines.append("")
            continue
        lines.append("" if inside else line)
    return lines


def _cells(row: str) -> int:
    return len(re.split(r"(?<!\\)\|", row.strip().strip("|")))


def test_there_are_documents_to_check() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in DOCS}
    from infra.config.project import REPOSITORY

    reports = {f"reports/{e}/compliance.md" for e in REPOSITORY.environment_names()}
    assert {"README.md", "docs/decisions/0006-the-deploy-path.md"} | reports <= names


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(path: Path) -> None:
    for number, line in enumerate(_prose(path), start=1):
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            resolved = (path.parent / target.split("#")[0]).resolve()
            assert resolved.exists(), f"{path.name}:{number}: {target} does not exist"
            assert ROOT in resolved.parents or resolved == ROOT, f"{path.name}:{number}: {target} leaves the repository"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_tables_are_whole(path: Path) -> None:
    """Every run of table rows starts with a header and its separator, and every row has the header's cells:
    a blank line inside a table would start a second 'table' without a separator and render as text."""
    lines = _prose(path)
    number = 0
    while number < len(lines):
        if not lines[number].lstrip().startswith("|"):
            number += 1
            continue
        block = []
        while number < len(lines) and lines[number].lstrip().startswith("|"):
            block.append((number + 1, lines[number]))
            number += 1
        (first, header), *rest = block
        assert rest, f"{path.name}:{first}: a table row on its own"
        separator = rest[0][1]
        assert re.fullmatch(r"\s*\|(\s*:?-+:?\s*\|)+\s*", separator), f"{path.name}:{first}: no header separator"
        for line_number, row in rest:
            assert _cells(row) == _cells(header), (
                f"{path.name}:{line_number}: {_cells(row)} cells, header has {_cells(header)}"
            )


def test_no_file_points_to_a_document_outside_the_repository() -> None:
    for path in [*DOCS, *ROOT.glob("infra/**/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("scripts/*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text or path.name == "test_docs.py", path
        assert "../shared" not in text or path.name == "test_docs.py", path
