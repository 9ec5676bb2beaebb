"""The shape of the code: data flows one way, no import cycles, private APIs in one module."""
import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("featurestore", "training", "analysis")
#: The one module allowed to use a dependency's private API.
FASTPATHS = REPO / "featurestore" / "fastpaths.py"


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


#: The most lines a module of the packages may have: one concern a module.
MAX_LINES = 400


def test_each_module_is_one_concern_and_says_which():
    """Every module fits in :data:`MAX_LINES` lines, opens with a docstring whose first line
    says what it does, and shadows no standard-library module (``inspect``, ``types``)."""
    for name, path in _modules().items():
        source = path.read_text(encoding="utf-8")
        assert len(source.splitlines()) <= MAX_LINES, f"{path}: over {MAX_LINES} lines"
        if path.stem != "__init__":
            assert (ast.get_docstring(ast.parse(source)) or "").strip(), f"{path}: no docstring"
        assert path.stem not in sys.stdlib_module_names, f"{path}: shadows the standard library"

def test_every_data_file_of_the_packages_is_installed_with_them():
    """A package's files that are not Python (the map's page) are in ``setup.py``'s
    ``package_data``, or a non-editable install would lack them."""
    call = next(node for node in ast.walk(ast.parse((REPO / "setup.py").read_text()))
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    declared = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "package_data"))
    found = {package: sorted(p.name for p in (REPO / package).iterdir()
                             if p.is_file() and p.suffix not in (".py", ".pyc"))
             for package in PACKAGES}
    assert {package: sorted(declared.get(package, [])) for package in PACKAGES} == found


def _private(name: str) -> bool:
    """``_name`` is private; ``__name__``, ``__version__`` and the like are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str) -> list:
    """Every use of a dependency's private API in Python ``source``, as ``'line: what'``.

    A dependency is an imported module that is neither the standard library's nor one of
    :data:`PACKAGES`. A use is an import of a private module or name of one (``import
    scipy.fft._pocketfft``, ``from soundfile import _ffi``), or a private attribute reached from
    a name such an import binds, directly (``sf._snd``, ``scipy.fft._pocketfft.x``) or through
    ``getattr`` with a literal (``getattr(sf, "_snd")``)."""
    def dependency(module: str) -> bool:
        top = module.split(".")[0]
        return top not in PACKAGES and top not in sys.stdlib_module_names

    tree = ast.parse(source)
    bound, found = {}, []  # name in the source -> the dependency's dotted path it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if dependency(alias.name):
                    path = alias.name if alias.asname else alias.name.split(".")[0]
                    bound[alias.asname or path] = path
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and not node.level and dependency(node.module):
            for alias in node.names:
                path = f"{node.module}.{alias.name}"
                bound[alias.asname or alias.name] = path
                if any(_private(part) for part in path.split(".")):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")

    def reached(node):
        """The dependency path an expression of names and attributes stands for, or None."""
        if isinstance(node, ast.Name):
            return bound.get(node.id)
        if isinstance(node, ast.Attribute):
            base = reached(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and reached(node.value):
            found.append(f"{node.lineno}: {reached(node)}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
              and len(node.args) >= 2 and reached(node.args[0])
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _private(node.args[1].value)):
            found.append(f"{node.lineno}: {node.func.id}({reached(node.args[0])}, "
                         f"{node.args[1].value!r})")
    return sorted(set(found), key=lambda use: int(use.split(":")[0]))


def private_uses_outside_fastpaths(paths) -> dict:
    """Path -> its :func:`private_uses`, for each of ``paths`` but ``FASTPATHS`` that has any."""
    return {str(path): uses for path in paths if Path(path) != FASTPATHS
            for uses in [private_uses(Path(path).read_text(encoding="utf-8"))] if uses}


def test_private_apis_of_dependencies_only_in_fastpaths():
    assert private_uses_outside_fastpaths(_modules().values()) == {}
    assert private_uses(FASTPATHS.read_text(encoding="utf-8"))  # it sees the ones there


@pytest.mark.parametrize("source, use", [
    ("import soundfile\nsoundfile._ffi", "2: soundfile._ffi"),
    ("import soundfile as sf\ndef f():\n    return sf._snd.sf_open", "3: soundfile._snd"),
    ("import scipy.fft._pocketfft", "1: import scipy.fft._pocketfft"),
    ("from scipy.fft._pocketfft import pypocketfft", "1: from scipy.fft._pocketfft import "
                                                     "pypocketfft"),
    ("from soundfile import _ffi", "1: from soundfile import _ffi"),
    ("import scipy.fft\nscipy.fft._pocketfft.good_size(5)", "2: scipy.fft._pocketfft"),
    ("import numpy as np\nx = np.lib._version", "2: numpy.lib._version"),
    ("import soundfile as sf\ngetattr(sf, '_snd', None)", "2: getattr(soundfile, '_snd')"),
    ("from librosa import filters\nfilters._mel_cache", "2: librosa.filters._mel_cache"),
])
def test_a_private_api_of_a_dependency_is_found(source, use):
    assert private_uses(source) == [use]


@pytest.mark.parametrize("source", [
    "import os\nos._exit(1)",  # the standard library's
    "import numpy as np\nnp.__version__",  # dunder names are public
    "from training.train import _compiled_model",  # the project's own
    "from . import _helpers\n_helpers._x",
    "import soundfile as sf\nclass A:\n    def f(self):\n        return self._snd",
    "import soundfile as sf\nsf.SoundFile",
])
def test_what_is_not_a_private_api_of_a_dependency(source):
    assert private_uses(source) == []


def test_a_new_private_use_in_another_module_is_reported(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text('"""A module of the tree that reaches into soundfile."""\n'
                      "import soundfile\n\nsoundfile._ffi\n")
    assert private_uses_outside_fastpaths([*_modules().values(), sneaky]) == {
        str(sneaky): ["4: soundfile._ffi"]}


def test_every_test_the_docs_name_exists():
    """``test_file.py::test_name`` in the README and docs/ (a row of docs/reliability.md cites
    the test that shows it; names after it in the same table cell are of that file; a name cut
    short with ``...`` begins one): a renamed test leaves no reference to nothing."""
    import re
    tests = {p.name: set(re.findall(r"def (test_\w+)", p.read_text(encoding="utf-8")))
             for p in (REPO / "tests").glob("test_*.py")}
    missing = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for cell in [cell for line in lines for cell in (
                line.split("|") if line.startswith("|") else re.findall(r"`[^`]*`", line))]:
            file = None
            for name, py, cut in re.findall(r"\b(test_\w+?)(\.py)?(\.\.\.)?(?![\w.])", cell):
                if py:
                    file = name + ".py"
                    if file not in tests:
                        missing.append(f"{doc.name}: {file}")
                        file = None
                elif not any(n == name or cut and n.startswith(name)
                             for n in (tests.get(file) if file else set().union(*tests.values()))):
                    missing.append(f"{doc.name}: {file or ''}::{name}")
    assert not missing, missing
