"""The layers of ARCHITECTURE.md hold: imports point one way, no cycles, commands stay thin.

cli → experiment → report / callbacks → lit → models / data / metrics → config / audio → diffusion / durable
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bsa"

LAYERS = {
    "bsa.cli": 6,
    "bsa.experiment": 5,
    "bsa.report": 4,
    "bsa.callbacks": 4,
    "bsa.lit": 3,
    "bsa.models": 2,
    "bsa.data": 2,
    "bsa.metrics": 2,
    "bsa.config": 1,
    "bsa.audio": 1,
    "bsa.diffusion": 0,
    "bsa.durable": 0,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layered unit a module belongs to: its package (bsa.models) or itself (bsa.config)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def imports(path: Path) -> set[str]:
    """Every bsa module imported anywhere in the file (function-local imports included)."""
    me = module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bsa")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = (
                    me.split(".")[: -node.level]
                    if path.name != "__init__.py"
                    else me.split(".")[: len(me.split(".")) - node.level + 1]
                )
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("bsa"):
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer():
    assert {unit(m) for m in graph() if m != "bsa"} <= set(LAYERS)


def test_imports_point_down_and_never_across_a_layer():
    wrong = []
    for module, targets in graph().items():
        if module == "bsa":
            continue
        here = unit(module)
        for target in targets:
            there = unit(target)
            if there == here or target == "bsa":
                continue
            if LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_commands_import_no_other_command_but_the_shared_parser():
    wrong = [
        f"{m} imports {t}"
        for m, ts in graph().items()
        if m.startswith("bsa.cli.")
        for t in ts
        if t.startswith("bsa.cli.") and t != "bsa.cli.common"
    ]
    assert not wrong, wrong


def test_commands_are_thin():
    long = {p.name: n for p in (PACKAGE / "cli").glob("*.py") if (n := len(p.read_text().splitlines())) > 60}
    assert not long, f"commands should parse → load config → one call → print: {long}"


def test_no_import_cycles():
    g = graph()
    done: set[str] = set()

    def cycle_from(m: str, path: list[str]) -> list[str] | None:
        if m in path:
            return path[path.index(m) :] + [m]
        if m in done:
            return None
        for t in sorted(g.get(m, ())):
            found = cycle_from(t, path + [m])
            if found:
                return found
        done.add(m)
        return None

    for m in sorted(g):
        found = cycle_from(m, [])
        assert found is None, " → ".join(found)
