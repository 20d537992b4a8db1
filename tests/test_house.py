"""House rules of infra/, read from the source with ``ast``: functions short enough to read whole, and no
module that imports another which (through any chain) imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.synth import ROOT

INFRA = ROOT / "infra"
MAX_FUNCTION_LINES = 80
# A function may be longer when its docstring says why, on a line of its own starting with this.
LONG_BECAUSE = "Long because"


SOURCES = sorted(INFRA.rglob("*.py"))


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _gives_a_reason(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    docstring = ast.get_docstring(function) or ""
    return any(line.strip().startswith(LONG_BECAUSE) for line in docstring.splitlines())


def test_no_function_over_80_lines_without_a_reason() -> None:
    """From the ``def`` line to the last line of the body; a reason is a docstring line "Long because ..."."""
    long = []
    for path in SOURCES:
        for function in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            lines = (function.end_lineno or function.lineno) - function.lineno + 1
            if lines > MAX_FUNCTION_LINES and not _gives_a_reason(function):
                long.append(f"{path.relative_to(ROOT)}:{function.lineno} {function.name} ({lines} lines)")
    assert not long, (
        f"functions over {MAX_FUNCTION_LINES} lines: split them, or say why not in a docstring line "
        f"starting {LONG_BECAUSE!r}:\n" + "\n".join(long)
    )


def _imports(source: str, module: str, modules: set[str], *, is_package: bool = False) -> set[str]:
    """The ``modules`` that ``module`` (of this ``source``) imports anywhere: at the top, under
    ``if TYPE_CHECKING:``, inside a function. ``from package import name`` counts as the submodule when
    ``name`` is one."""
    found = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for imported in names:
            name = imported  # a module's object (a class, a function): the module itself
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                return [*path[path.index(imported) :], imported]
            if imported not in state and (cycle := visit(imported)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_no_import_cycle_in_infra() -> None:
    """Not even one that ``if TYPE_CHECKING:`` or an import inside a function keeps from failing at run time:
    two modules that need each other are one module, or one of them takes what it needs as arguments."""
    modules = {_module(p): p for p in SOURCES}
    graph = {
        module: _imports(path.read_text(encoding="utf-8"), module, set(modules), is_package=path.name == "__init__.py")
        for module, path in modules.items()
    }
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_import_graph_sees_type_checking_and_function_imports() -> None:
    """The test above would miss the cycle it exists for if it skipped ``if TYPE_CHECKING:`` imports."""
    modules = {"infra", "infra.a", "infra.b", "infra.c"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from infra.b import B\n"
        "def f() -> None:\n"
        "    from . import c\n"
    )
    assert _imports(source, "infra.a", modules) == {"infra", "infra.b", "infra.c"}  # (a package runs its __init__)
    assert _cycle({"infra.a": {"infra.b"}, "infra.b": {"infra.a"}}) == ["infra.a", "infra.b", "infra.a"]
    assert _cycle({"infra.a": {"infra.b"}, "infra.b": set()}) is None
