"""The packages import one way: ilr_env <- ilr_agents <- baselines <- experiments, and no module cycles.

Read from the source (AST), imports inside functions included, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("ilr_env", "ilr_agents", "baselines", "experiments")  # each may import only those before it


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports anywhere in its file (``from a import b`` counts a.b if a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a non-module attribute: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_no_upward_imports() -> None:
    upward = sorted(
        f"{src} imports {dst}" for src, dsts in graph().items() for dst in dsts if layer(dst) > layer(src)
    )
    assert not upward, "lower layers must not import higher ones:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    edges = graph()
    # a package's __init__ re-exporting its submodules is not a cycle in the code's design: ignore edges
    # from a submodule up to its own enclosing packages
    edges = {src: {d for d in dsts if not src.startswith(d + ".")} for src, dsts in edges.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_walker_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The checks above would pass vacuously if the walker missed lazy or relative imports."""
    source = tmp_path / "mod.py"
    code = "from . import sibling\n\ndef f():\n    from experiments.pipeline.methods import train\n"
    source.write_text(code)
    known = {"pkg.mod", "pkg.sibling", "experiments.pipeline.methods"}
    assert imports_of("pkg.mod", source, known) == {"pkg.sibling", "experiments.pipeline.methods"}
    assert "experiments.pipeline.methods" in graph()["experiments.pipeline.compare"]  # a real lazy import
