"""The layout of docs/design.md holds: each concept package imports only the packages below it
(and the few named modules beside it), and no two modules import each other, directly or round a
circle. Every import counts, also those inside functions."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# package -> the jstip packages or modules it may import
ALLOWED = {
    "manifests": set(),
    "corpora": {"manifests"},
    "aligners": {"manifests"},
    "interleave": {"manifests"},
    "trainer": {"manifests"},
    "evaluation": {"manifests", "corpora.textnorm", "aligners.espeak"},
    "synthetic": {"manifests", "aligners.espeak", "corpora.textnorm", "interleave.sampling"},
    "pipeline": {"manifests", "corpora", "aligners", "interleave", "trainer", "evaluation", "synthetic"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in ALLOWED:
        for file in (REPO / package).rglob("*.py"):
            name = ".".join(file.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = file
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the jstip modules it imports (a name imported from a package counts as the module
    of that name when there is one, else the package)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name, file in modules.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules and "." in target:
                    target = target.rpartition(".")[0]
                if target in modules and target != name:
                    edges[name].add(target)
    return edges


def test_packages_import_only_downward():
    modules = _modules()
    wrong = []
    for name, targets in _imports(modules).items():
        package = name.split(".")[0]
        for target in targets:
            if target.split(".")[0] == package:
                continue
            if not any(target == a or target.startswith(a + ".") for a in ALLOWED[package]):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports against the layout of docs/design.md: " + ", ".join(sorted(wrong))


def test_no_import_circle():
    edges = _imports(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_stages_stay_a_small_share_of_the_code():
    lines = {p: sum(len(f.read_text().splitlines()) for f in (REPO / p).rglob("*.py")) for p in ALLOWED}
    assert lines["pipeline"] / sum(lines.values()) < 0.20, lines
