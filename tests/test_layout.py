"""The floor plan holds: the import rules of README's Layout part, read from the source with `ast`, and every
module named in a string (child entry points, `module:function` targets) exists."""

from __future__ import annotations

import ast
import importlib
import re
from functools import cache
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "mhsft"
GROUND = {"errors", "paths", "ui", "environment", "checks"}
LIBRARY = {"recipe", "process", "runs", "preflight"}  # folders below the commands
HEAVY = {"torch", "swift", "swanlab", "modelscope", "transformers", "datasets", "rich", "plotext", "matplotlib"}
HEAVY |= {"evalscope", "optuna"}
TOP_LEVEL_MAX = 12


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PKG.rglob("*.py"))}


def imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """(imported module, at module level) for each import in a module, lazy ones included."""
    top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, ast.If) for n in s.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, id(node) in top))
            if node.module == "mhsft":  # from mhsft import ui
                found += [(f"mhsft.{a.name}", id(node) in top) for a in node.names if a.name != "__version__"]
    return found


def mhsft_imports(name: str) -> set[str]:
    """The mhsft modules that `name` imports, each resolved to a module that exists."""
    out = set()
    for target, _ in imports(modules()[name]):
        if target.startswith("mhsft."):
            while target not in modules():
                target = target.rsplit(".", 1)[0]
            if target != "mhsft":
                out.add(target)
    return out


def area(name: str) -> str:
    """A module's room: its folder, or the top-level module's own name."""
    return name.split(".")[1] if name.count(".") >= 1 else name


def is_child_entry(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body)


def test_at_most_twelve_top_level_modules() -> None:
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= TOP_LEVEL_MAX, top


@pytest.mark.parametrize("rule", ["ground", "recipe", "process", "runs", "launch", "view-trained"])
def test_imports_follow_the_rules(rule: str) -> None:
    allowed = {
        "ground": (lambda m: area(m) in GROUND, GROUND),
        "recipe": (lambda m: area(m) == "recipe", GROUND | {"recipe"}),
        "process": (lambda m: area(m) == "process", {"errors", "checks", "process"}),
        "runs": (lambda m: area(m) == "runs", GROUND | {"recipe", "process", "runs"}),
        "launch": (lambda m: m == "mhsft.launch", GROUND | LIBRARY),
    }
    broken = []
    if rule == "view-trained":
        for name in modules():
            other = {"view": "trained", "trained": "view"}.get(area(name))
            broken += [f"{name} -> {t}" for t in mhsft_imports(name) if other and area(t) == other]
    else:
        selects, rooms = allowed[rule]
        for name in filter(selects, modules()):
            broken += [f"{name} -> {t}" for t in mhsft_imports(name) if area(t) not in rooms]
    assert not broken, f"imports against rule {rule!r} of README's Layout part: {broken}"


def test_no_import_cycle_between_modules_or_rooms() -> None:
    graph = {name: mhsft_imports(name) - {name} for name in modules()}
    rooms: dict[str, set[str]] = {}
    for name, targets in graph.items():
        rooms.setdefault(area(name), set()).update(area(t) for t in targets if area(t) != area(name))
    for g in (graph, rooms):
        state: dict[str, int] = {}

        def visit(node: str, path: list[str], g: dict[str, set[str]] = g, state: dict[str, int] = state) -> None:
            state[node] = 1
            for nxt in sorted(g.get(node, ())):
                assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
                if nxt not in state:
                    visit(nxt, [*path, node])
            state[node] = 2

        for node in sorted(g):
            if node not in state:
                visit(node, [])


def test_only_cli_imports_typer_and_nothing_imports_cli() -> None:
    for name, tree in modules().items():
        typer = [t for t, _ in imports(tree) if t.split(".")[0] == "typer"]
        assert not typer or name == "mhsft.cli", f"{name} imports typer"
        assert "mhsft.cli" not in mhsft_imports(name) or name == "mhsft.__main__", f"{name} imports mhsft.cli"


def test_heavy_packages_are_imported_inside_functions_or_in_child_entries() -> None:
    broken = [
        f"{name}: {target}"
        for name, tree in modules().items()
        if not is_child_entry(tree)
        for target, top in imports(tree)
        if top and target.split(".")[0] in HEAVY
    ]
    assert not broken, f"heavy imports at module level (--help would pay for them): {broken}"


def test_folder_inits_are_one_line_docstrings() -> None:
    for init in PKG.glob("*/__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree)
        assert len(tree.body) == 1 and doc and "\n" not in doc, f"{init}: a one-line docstring and nothing else"


STRING_TARGET = re.compile(r"^mhsft(?:\.\w+)+(?::\w+)?$")


def string_targets() -> set[str]:
    """Module names in strings: `-m mhsft....` entry points and `module:function` child targets."""
    found = set()
    for tree in modules().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and STRING_TARGET.match(node.value):
                found.add(node.value)
    return found


def test_the_string_targets_are_found() -> None:
    # the documented entry points and the child targets the preflight uses are among those this test checks
    assert {"mhsft.slurm.node", "mhsft.deploy_entry", "mhsft.process.isolated"} <= string_targets()
    assert any(t.endswith(":cloud_network") for t in string_targets())


@pytest.mark.parametrize("target", sorted(string_targets()))
def test_every_module_named_in_a_string_imports(target: str) -> None:
    module, _, function = target.partition(":")
    loaded = importlib.import_module(module)
    assert not function or callable(getattr(loaded, function, None)), f"{target}: no such function"
