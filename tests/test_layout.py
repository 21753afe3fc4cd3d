"""The layout is the architecture: every ``genimg`` import (module level and inside functions alike) goes to the same
floor or one below, and no module reaches itself through its imports (docs/architecture.md draws the floors)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "genimg"

# Floors, lowest first. A module may import modules on its own floor or below, never above.
FLOORS = (
    ("genimg.errors", "genimg.options", "genimg.timing", "genimg.assets", "genimg.guards", "genimg.images",
     "genimg.threads", "genimg.quiet", "genimg.hardware", "genimg.colours", "genimg.memory"),
    ("genimg.text", "genimg.concepts", "genimg.sampling", "genimg.models", "genimg.scene", "genimg.scene_parser"),
    ("genimg.accel",),
    ("genimg.backends",),
    ("genimg.registry", "genimg"),  # genimg/__init__.py: load()
    ("genimg.serve", "genimg.evaluate", "genimg.train"),
    ("genimg.bench",),
    ("genimg.cli", "genimg.__main__"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The genimg modules ``path`` imports anywhere in its body (``from genimg.x import y``: y where y is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imported_modules(path, modules) - {name} for name, path in modules.items()}


def floor_of(module: str) -> int:
    best = None  # the longest floor prefix wins: genimg.accel.notes is on genimg.accel's floor, not genimg's
    for index, floor in enumerate(FLOORS):
        for prefix in floor:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    if best is None:
        raise AssertionError(f"{module} is on no floor: add it to FLOORS and to docs/architecture.md")
    return best[0]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search with colours)."""
    state, stack = {}, []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_circle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_no_module_imports_a_floor_above_its_own():
    upward = [f"{module} (floor {floor_of(module)}) imports {target} (floor {floor_of(target)})"
              for module, targets in import_graph().items() for target in sorted(targets)
              if floor_of(target) > floor_of(module)]
    assert not upward, "\n".join(upward)


def test_the_engine_never_imports_gradio():
    users = [name for name, path in all_modules().items()
             if any(name == "gradio" or name.startswith(("gradio.", "gradio_client"))
                    for node in ast.walk(ast.parse(path.read_text()))
                    for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else
                                 [node.module or ""] if isinstance(node, ast.ImportFrom) else []))]
    # The load and soak tests and the GPU check drive the app as a client would: they alone speak Gradio's protocol.
    assert set(users) <= {"genimg.serve.loadtest", "genimg.serve.soak", "genimg.bench.gpu_steps"}, users


def test_the_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.parametrize("module", ["genimg.accel.prepare", "genimg.bench.runners", "genimg.serve.limits"])
def test_every_floor_is_known(module):
    assert module in all_modules() and floor_of(module) >= 0
