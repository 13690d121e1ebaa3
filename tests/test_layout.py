"""The house: rooms by stage, no import circles, and an entry level that stays small.

Read from the source with ``ast`` (nothing is imported), so the test sees imports inside
functions too: a circle closed by a late import is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ram_core", "ram_blender")
ENTRY_MODULES = {"__init__", "__main__", "cli", "pipeline", "batch", "config", "types",
                 "errors"}
ROOMS = {"io", "video", "detect", "track", "segment", "reconstruct", "motion", "body",
         "models", "eval", "train"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            # ``from pkg import mod`` imports a module; ``from mod import name`` a name.
            targets = [f"{stem}.{alias.name}" for alias in node.names] + [stem]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            # A module's own package is loaded before it anyway: no edge back to it.
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_anywhere():
    assert circles(import_graph()) == []


def test_only_entry_modules_and_rooms_at_the_top_of_ram_core():
    top = ROOT / "ram_core"
    modules = {path.stem for path in top.glob("*.py")}
    folders = {path.name for path in top.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert modules == ENTRY_MODULES
    assert folders == ROOMS


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_each_room_is_a_package_with_modules(room):
    folder = ROOT / "ram_core" / room
    assert (folder / "__init__.py").is_file()
    assert [path for path in folder.glob("*.py") if path.name != "__init__.py"]


def test_importing_ram_core_loads_no_stage():
    """``import ram_core`` is cheap: no numpy, no stage, until a name is used."""
    import subprocess
    import sys

    code = (
        "import sys, ram_core; "
        "heavy = sorted(m for m in sys.modules if m == 'numpy' or m.startswith('ram_core.')); "
        "print(','.join(heavy))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert completed.stdout.strip() == ""
