"""The import graphs of the package and of ``benchmarks/``: no cycles, imports flowing one way
(each its own layers), no module over 500 lines.

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
BENCHMARKS = ROOT.parent / "benchmarks"
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
    {"cldprov_async._bulk_args"},
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
    {"cldprov_async._backoff"},
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


#: benchmarks/, top to bottom: the one entry point, the runners (a new benchmark is one more
#: runner, in the third layer), the child processes, the report, and the shared pieces
#: (servers, clients, settings) that runners import and that never import a runner.
BENCHMARK_LAYERS: list[set[str]] = [
    {"benchmarks.__main__"},
    {"benchmarks.run"},
    {
        "benchmarks.instruction_parts",
        "benchmarks.fleet",
        "benchmarks.scale",
        "benchmarks.profile",
        "benchmarks.key_cache",
        "benchmarks.fleet_ha",
    },
    {"benchmarks.instructions"},
    {"benchmarks.micro"},
    {"benchmarks.worker", "benchmarks.fleet_worker"},
    {"benchmarks.report"},
    {"benchmarks.report_chart", "benchmarks.report_fleet", "benchmarks.report_instructions"},
    {"benchmarks.report_format"},
    {"benchmarks.machine", "benchmarks.servers", "benchmarks.timing", "benchmarks.gates"},
    {"benchmarks.redis_ha"},
    {"benchmarks.clients", "benchmarks.plain", "benchmarks.canned"},
    {"benchmarks.settings", "benchmarks"},
]
TREES = [(ROOT, LAYERS), (BENCHMARKS, BENCHMARK_LAYERS)]


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


def layer_of(module: str, layers: list[set[str]] = LAYERS) -> int:
    """The layer of a module, or of the sub-package that holds it (``_cli``, ``testing``)."""
    top = module.partition(".")[0]
    for depth, layer in enumerate(layers):
        for entry in layer:
            if module == entry or (entry != top and module.startswith(entry + ".")):
                return depth
    raise AssertionError(f"{module} is in no layer: add it to the layers in {__file__}")


@pytest.mark.parametrize(("root", "layers"), TREES, ids=["cldprov_async", "benchmarks"])
def test_no_import_cycle(root: Path, layers: list[set[str]]) -> None:
    assert cycles(import_graph(root)) == []


@pytest.mark.parametrize(("root", "layers"), TREES, ids=["cldprov_async", "benchmarks"])
def test_imports_flow_down_the_layers(root: Path, layers: list[set[str]]) -> None:
    graph = import_graph(root)
    assert len(graph) > 10  # the tree was read
    upward = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer_of(target, layers) < layer_of(module, layers)
    ]
    assert upward == []


@pytest.mark.parametrize(("root", "layers"), TREES, ids=["cldprov_async", "benchmarks"])
def test_no_module_is_over_500_lines(root: Path, layers: list[set[str]]) -> None:
    long = {
        str(p.relative_to(root)): n
        for p in root.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_benchmark_module_has_a_layer() -> None:
    for module in import_graph(BENCHMARKS):
        layer_of(module, BENCHMARK_LAYERS)  # raises for a module in no layer


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
