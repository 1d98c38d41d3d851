"""The wheel holds the whole source tree, and a non-editable install runs every `--help`.

The wheel is built from a copy of the tree (no build isolation: setuptools of this environment),
compared with every package (folder with `__init__.py`) and module of the source, then installed
with pip into a fresh virtual environment. That environment borrows the dependencies of this one
through a `.pth` line (downloading torch for a test is not an option), which adds their folder
but not this environment's editable-install hook, so a package missing from the wheel fails the
import instead of being found in the checkout.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOT_SHIPPED = ("tests", "bench", "experiments", "docs", "demo", "presets", "data", "build", ".venv")


def _source_modules() -> set[str]:
    found = set()
    for init in REPO.rglob("__init__.py"):
        rel = init.parent.relative_to(REPO)
        if rel.parts and rel.parts[0] not in NOT_SHIPPED and not rel.parts[0].startswith("."):
            found |= {str(p.relative_to(REPO)) for p in init.parent.glob("*.py")}
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    shutil.copytree(REPO, tree / "jstip", ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.egg-info", "build", "data", ".pytest_cache", ".ruff_cache", ".hypothesis"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(tree / "jstip")], check=True, capture_output=True, text=True)
    return next(out.glob("jstip-*.whl"))


def test_the_wheel_holds_every_package_and_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_source_modules() - names)
    assert not missing, f"the wheel leaves out {missing}"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "jstip = pipeline.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


@pytest.mark.slow
def test_a_non_editable_install_runs_every_help(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    Path(purelib, "borrowed_dependencies.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, text=True)
    from pipeline.cli import STAGES, TOOLS

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import pipeline; print(pipeline.__file__)"], cwd=tmp_path, env=env,
                           check=True, capture_output=True, text=True).stdout
    assert str(REPO) not in where, f"the install imports the checkout, not the wheel: {where}"
    for verb in [*STAGES, *TOOLS]:
        done = subprocess.run([str(env_dir / "bin" / "jstip"), verb, "--help"], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0 and "usage: jstip" in done.stdout, f"jstip {verb} --help: {done.stderr[-800:]}"
