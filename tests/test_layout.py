"""The house's layout holds: the library never imports the lease tooling beside it (campaign/, hydra_plugins/), its
packages import only downward, and no two modules import each other at load time."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "antisym"
# Lower layers never import higher ones at load time (an import inside a function is a deliberate late binding).
LAYERS = (
    ("antisym.errors", "antisym.checks", "antisym.provenance", "antisym.trust", "antisym.groups"),
    ("antisym.data", "antisym.models", "antisym.kernels"),
    ("antisym.config",),
    ("antisym.training", "antisym.preflight"),
    ("antisym.plan",),
    ("antisym.analysis", "antisym.results", "antisym.benchmark"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(node: ast.AST) -> list[str]:
    """The modules an import statement loads (`from antisym import kernels` loads antisym.kernels)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
        return subs or [node.module]
    return []


def load_time_imports(path: Path) -> set[str]:
    """What a module imports when it is loaded: not inside functions or classes, not under TYPE_CHECKING."""
    out: set[str] = set()
    for stmt in ast.parse(path.read_text()).body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
            continue
        for node in ast.walk(stmt):
            out.update(m for m in imported(node) if m.startswith("antisym"))
    return out


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_library_never_imports_the_lease_tooling():
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            for module in imported(node):
                assert not module.startswith(("campaign", "hydra_plugins")), f"{name} imports {module}"


def test_packages_import_only_downward():
    rank = {pkg: k for k, layer in enumerate(LAYERS) for pkg in layer}
    assert set(map(package_of, MODULES)) - {"antisym"} <= rank.keys(), "a new package: give it a layer in LAYERS"
    upward = [
        f"{name} -> {dep}"
        for name, path in MODULES.items()
        for dep in load_time_imports(path)
        if package_of(name) in rank and rank[package_of(dep)] > rank[package_of(name)]
    ]
    assert not upward


def test_no_import_cycle_at_load_time():
    graph = {name: {d for d in load_time_imports(path) if d in MODULES} for name, path in MODULES.items()}
    done: set[str] = set()

    def visit(node: str, trail: tuple[str, ...]) -> None:
        assert node not in trail, "import cycle: " + " -> ".join((*trail[trail.index(node) :], node))
        if node in done:
            return
        for dep in graph[node]:
            if not node.startswith(dep + "."):  # a module importing its own package: Python loads that first
                visit(dep, (*trail, node))
        done.add(node)

    for name in graph:
        visit(name, ())


def test_nothing_outside_the_tests_imports_hydras_internals():
    """Hydra's public API only (hydra._internal moves between releases); tests may read it to check against."""
    sources = [*PACKAGE.rglob("*.py"), *(REPO / "campaign").rglob("*.py"), *(REPO / "hydra_plugins").rglob("*.py")]
    sources += [*(REPO / "scripts").glob("*.py"), REPO / "train.py"]
    private = [
        f"{path.relative_to(REPO)}: {module}"
        for path in sources
        for node in ast.walk(ast.parse(path.read_text()))
        for module in (node.module if isinstance(node, ast.ImportFrom) else None, *imported(node))
        if module and module.startswith("hydra._")
    ]
    assert not private
