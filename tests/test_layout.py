"""The shape of the code: data flows one way, no import cycles, private APIs in one module."""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("featurestore", "training", "analysis")


def _modules():
    return {f"{path.parent.name}.{path.stem}": path
            for package in PACKAGES for path in sorted((REPO / package).glob("*.py"))}


def _imports(name: str, path: Path) -> set:
    """The project modules ``name`` imports anywhere in it (module level or in a function)."""
    package = name.split(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package if node.level else (node.module or "")
            if node.level and node.module:
                base = f"{package}.{node.module}"
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    modules = _modules()
    found = {m if m in modules else f"{m}.__init__" for m in found}  # a package: its __init__
    return {m for m in found if m in modules and m != name}


def test_no_import_cycles():
    graph = {name: _imports(name, path) for name, path in _modules().items()}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"
    for name in graph:
        if name not in state:
            visit(name, [name])
    assert graph["featurestore.build"] and graph["analysis.cli"]  # the graph is not empty


@pytest.mark.parametrize("package, forbidden", [("featurestore", ("training", "analysis")),
                                                ("training", ("analysis",))])
def test_data_flows_one_way(package, forbidden):
    for name, path in _modules().items():
        if name.startswith(package + "."):
            wrong = {m for m in _imports(name, path) if m.split(".")[0] in forbidden}
            assert not wrong, f"{path}: imports {sorted(wrong)}"


def test_private_apis_of_dependencies_only_in_fastpaths():
    private = re.compile(r"\b(?:sf|soundfile)\._(?:snd|ffi)\b|_pocketfft|\._filters\b"
                         r"|getattr\(sf, \"_")
    users = sorted(str(path.relative_to(REPO)) for path in _modules().values()
                   if private.search(path.read_text(encoding="utf-8")))
    assert users == ["featurestore/fastpaths.py"]
