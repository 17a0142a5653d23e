"""The package's import graph has no cycles, and its layers point one way.

The graph is read from the source (``ast``), not from ``sys.modules``: every ``import``
and ``from ... import`` counts, at module level or inside a function, except those under
``if TYPE_CHECKING:`` (annotations only). ``from pkg import name`` is an edge to the
submodule ``pkg.name`` when that is a module, else to the package ``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"ringpipe": ROOT / "python" / "ringpipe", "ringpipe.kernels": ROOT / "kernels",
            "ringpipe.schedules": ROOT / "schedules"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
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
            connect(v)
    return found


def _reaches(graph: dict[str, set[str]], start: str, prefix: str) -> list[str]:
    seen, todo = {start}, [start]
    while todo:
        for w in graph[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return sorted(m for m in seen if m == prefix or m.startswith(prefix + "."))


#: The layers, lowest first: a module may import its own layer and the layers below it,
#: never one above (docs/architecture.md). The package's ``__init__`` (the public
#: facade) and the ``__main__`` programs sit on top with the command line.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("ringpipe.validation", "ringpipe.arrays", "ringpipe.limits", "ringpipe.environment",
     "ringpipe.mesh", "ringpipe.files"),
    ("ringpipe.kernels", "ringpipe.schedules"),
    ("ringpipe.collectives",),
    ("ringpipe.mpi",),
    ("ringpipe.model",),
    ("ringpipe.runtime",),
    ("ringpipe.plan",),
    ("ringpipe.cost",),
    ("ringpipe.verify",),
    ("ringpipe.measure",),
    ("ringpipe.cli", "ringpipe"),
)


def layer_of(module: str) -> int:
    """The layer of ``module``: its longest matching prefix; ``__main__`` programs top."""
    if module.endswith(".__main__"):
        return len(LAYERS) - 1
    best, found = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), i
    assert found is not None, f"{module} is in no layer: add it to LAYERS"
    return found


def test_the_graph_is_read():
    graph = import_graph()
    assert "ringpipe.runtime.interpreter" in graph
    assert "ringpipe.runtime.training" in graph["ringpipe.runtime.inproc"]
    assert "ringpipe.plan.training" not in graph["ringpipe.runtime.inproc"]  # annotations


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_cycle_detection_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_is_in_a_layer_and_imports_point_down():
    graph = import_graph()
    upward = sorted((module, target) for module, targets in graph.items()
                    for target in targets if layer_of(target) > layer_of(module))
    assert upward == []


def test_layer_rules_catch_a_planted_upward_import():
    assert layer_of("ringpipe.mpi.group") < layer_of("ringpipe.runtime.mpi")
    assert layer_of("ringpipe.cost.hardware.cluster") > layer_of("ringpipe.plan.layout")
    assert layer_of("ringpipe.mpi.__main__") == layer_of("ringpipe.cli.ranks.main")
    assert layer_of("ringpipe.mesh") == 0 and layer_of("ringpipe") == len(LAYERS) - 1


def test_mpi_is_a_transport():
    graph = import_graph()
    for module in graph:
        if module.startswith("ringpipe.mpi.") and module != "ringpipe.mpi.__main__":
            for upper in ("ringpipe.runtime", "ringpipe.cost", "ringpipe.verify",
                          "ringpipe.cli"):
                assert _reaches(graph, module, upper) == [], (module, upper)


def _source_files() -> dict[str, Path]:
    return {name: path for name, path in _modules().items()}


def test_argparse_only_under_cli():
    offenders = []
    for name, path in _source_files().items():
        for node in _imports(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""]
            if any(n == "argparse" for n in names) and not name.startswith("ringpipe.cli"):
                offenders.append(name)
    assert offenders == []


def test_only_the_environment_module_reads_the_environment():
    """No ``os.environ`` / ``os.getenv`` outside ringpipe.environment (and the command
    line, which reads nothing either: it calls Environment.read)."""
    offenders = []
    for name, path in _source_files().items():
        if name == "ringpipe.environment":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") \
                    and isinstance(node.value, ast.Name) and node.value.id == "os":
                offenders.append(name)
    assert offenders == []


def test_no_two_public_classes_share_a_name():
    """Each concept has one name: a public class name appears once in the package."""
    where: dict[str, list[str]] = {}
    for name, path in _modules().items():
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(name)
    assert {k: v for k, v in where.items() if len(v) > 1} == {}
