"""The package's import graph: no cycles, imports flowing one way, no module over 500 lines.

The graph is read with ``ast``, so it counts every import: at module level, under
``TYPE_CHECKING`` and inside functions. Importing ``pkg.sub`` also runs ``pkg/__init__``, so
that counts as an import of ``pkg`` too, unless the importer is inside ``pkg`` already (then
``pkg`` is being initialised anyway).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cldprov_async

ROOT = Path(cldprov_async.__file__).parent
MAX_LINES = 500

#: The layers, top to bottom. A module may import its own layer's modules or lower ones,
#: never a higher layer. A new module goes in the layer where it belongs.
LAYERS: list[set[str]] = [
    {"cldprov_async.__main__"},
    {"cldprov_async._cli"},
    {"cldprov_async", "cldprov_async._pytest_plugin"},
    {"cldprov_async.testing"},
    {"cldprov_async._client"},
    {"cldprov_async._api"},
    {"cldprov_async._audit", "cldprov_async._bulk"},
    {"cldprov_async._lifecycle_run"},
    {"cldprov_async._rotation"},
    {
        "cldprov_async._verify",
        "cldprov_async._hook",
        "cldprov_async._lock",
        "cldprov_async._environments",
    },
    {"cldprov_async._inventory"},
    {"cldprov_async._access_keys", "cldprov_async._product_environments"},
    {"cldprov_async._operation"},
    {"cldprov_async._session"},
    {"cldprov_async._middleware"},
    {"cldprov_async._keycache"},
    {"cldprov_async._fleet"},
    {"cldprov_async._gate"},
    {"cldprov_async._telemetry"},
    {"cldprov_async._converter"},
    {"cldprov_async.models", "cldprov_async._budget"},
    {"cldprov_async.errors", "cldprov_async._config"},
    {
        "cldprov_async._snapshot",
        "cldprov_async._version",
        "cldprov_async._watchdog",
        "cldprov_async._slots",
        "cldprov_async._lifecycle",
        "cldprov_async._labels",
        "cldprov_async._clock",
    },
]


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, by any route."""
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    packages = {module_name(root, p) for p in root.rglob("__init__.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        explicit: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                explicit.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base]) if base else ".".join(anchor)
                for alias in node.names:
                    # `from pkg import sub` imports the submodule when there is one, else a
                    # name from pkg/__init__.
                    sub = f"{base}.{alias.name}"
                    explicit.add(sub if sub in files else base)
        explicit &= files.keys()
        # Importing a.b.c runs a/__init__ and a/b/__init__ first, unless we are inside them.
        implicit = {
            parent
            for target in explicit
            for parent in _parents(target)
            if parent in packages and not name.startswith(parent + ".")
        }
        graph[name] = (explicit | implicit) - {name}
    return graph


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int:
    """The layer of a module, or of the sub-package that holds it (``_cli``, ``testing``)."""
    for depth, layer in enumerate(LAYERS):
        for entry in layer:
            if module == entry or (entry != "cldprov_async" and module.startswith(entry + ".")):
                return depth
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(import_graph(ROOT)) == []


def test_imports_flow_down_the_layers() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in sorted(import_graph(ROOT).items())
        for target in sorted(targets)
        if layer_of(target) < layer_of(module)
    ]
    assert upward == []


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in ROOT.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("a_text", "expected"),
    [
        ("from .b import x\n", [["pkg.a", "pkg.b"]]),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n",
            [["pkg.a", "pkg.b"]],
        ),
        ("def f():\n    from pkg.b import x\n", [["pkg.a", "pkg.b"]]),
        ("import os\n", []),
    ],
    ids=["module level", "type checking", "in a function", "no cycle"],
)
def test_the_checker_sees_every_kind_of_import(
    tmp_path: Path, a_text: str, expected: list[list[str]]
) -> None:
    root = tmp_path / "pkg"
    _write(root, "__init__.py", "")
    _write(root, "a.py", a_text)
    _write(root, "b.py", "from .a import y\n")
    assert cycles(import_graph(root)) == expected


def test_the_checker_sees_cycles_through_a_package_init(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    _write(root, "__init__.py", "")
    _write(root, "low.py", "from .sub.deep import thing\n")
    _write(root, "sub/__init__.py", "from ..low import other\n")
    _write(root, "sub/deep.py", "thing = 1\n")
    assert cycles(import_graph(root)) == [["pkg.low", "pkg.sub"]]


def test_the_checker_sees_a_module_importing_its_own_package_init(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    _write(root, "__init__.py", "from .a import f\nthing = 1\n")
    _write(root, "a.py", "def f():\n    from pkg import thing\n")
    _write(root, "b.py", "from . import a\n")  # a submodule, not the package's names
    assert cycles(import_graph(root)) == [["pkg", "pkg.a"]]
