"""The package layout shows the data flow, and imports only point down it.

Layers, lowest first: common < elmo < sources < graph < backends < reports <
tools. A module may import its own layer and any layer below; an import that
points up (a backend reading a report, the model reading a source) fails here.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

STAGES = REPO / "stages"
LAYERS = ("common", "elmo", "sources", "graph", "backends", "reports", "tools")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str = ""):
    """(line, imported module) for every import in ``path`` (module ``name``), relative ones resolved."""
    package = (name or _module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"
            else:
                yield node.lineno, module


def _layer(module: str):
    parts = module.split(".")
    if parts[0] != "stages" or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def test_top_level_holds_only_the_entry_point_and_packages():
    loose = sorted(p.name for p in STAGES.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]
    packages = sorted(p.name for p in STAGES.iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted(LAYERS)


def test_imports_point_one_way():
    upward = []
    for path in sorted(STAGES.rglob("*.py")):
        own = _layer(_module_name(path))
        if own is None:
            continue
        for line, module in _imports(path):
            target = _layer(module)
            if target is not None and target > own:
                upward.append(f"{path.relative_to(REPO)}:{line} imports {module} ({LAYERS[own]} -> {LAYERS[target]})")
    assert not upward, "imports pointing up the data flow:\n" + "\n".join(upward)


def test_the_checker_sees_an_upward_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from stages.reports import metrics\nfrom ..graph import export\nfrom . import charids\n")
    found = [m for _, m in _imports(probe, "stages.elmo.probe")]
    assert found == ["stages.reports", "stages.graph", "stages.elmo.charids"]
    assert [_layer(m) > _layer("stages.elmo.probe") for m in found] == [True, True, False]


def test_every_command_module_is_registered_once():
    import argparse

    from stages.__main__ import COMMANDS, build_parser

    names = [__import__(m, fromlist=["COMMAND"]).COMMAND for m in COMMANDS]
    assert len(names) == len(set(names))
    (subparsers,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(subparsers.choices) == sorted(names)
    for name, sub in subparsers.choices.items():
        assert sub.get_default("func").__module__ == COMMANDS[names.index(name)]
