"""bench/ and experiments/ scripts run on demand, so nothing else notices when a module they import
moves: every jstip name they import (also inside functions) must resolve."""
import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"manifests", "corpora", "aligners", "interleave", "trainer", "evaluation", "synthetic", "pipeline"}
SCRIPTS = sorted([*REPO.glob("bench/*.py"), *REPO.glob("experiments/**/*.py")])


def _resolves(module: str, name: str) -> bool:
    if hasattr(importlib.import_module(module), name):
        return True
    return hasattr(importlib.import_module(module), "__path__") and importlib.util.find_spec(f"{module}.{name}") is not None


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_script_imports_resolve(script):
    missing = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in PACKAGES:
            if importlib.util.find_spec(node.module) is None:
                missing.append(node.module)
                continue
            missing += [f"{node.module}.{a.name}" for a in node.names if not _resolves(node.module, a.name)]
        elif isinstance(node, ast.Import):
            missing += [a.name for a in node.names
                        if a.name.split(".")[0] in PACKAGES and importlib.util.find_spec(a.name) is None]
    assert not missing, f"{script.name} imports what does not exist: {missing}"
