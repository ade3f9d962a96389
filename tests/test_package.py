"""The package's shape: a lazy public API, and imports that respect the layout."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import nerloop

ROOT = Path(__file__).parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative imports are not used)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module or "")
    return names


@pytest.mark.parametrize("name", nerloop.__all__)
def test_public_api_resolves(name: str) -> None:
    assert callable(getattr(nerloop, name)) or isinstance(getattr(nerloop, name), type)


def test_import_nerloop_is_lazy() -> None:
    code = "import sys, nerloop; print('torch' in sys.modules, 'spacy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        nerloop.nope  # noqa: B018


def test_components_import_installed_libraries_only() -> None:
    for path in (ROOT / "components").glob("*.py"):
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in {"nerloop", "scripts", "tests"}, (path, name)


def test_package_reaches_neither_scripts_nor_tests() -> None:
    files = sorted((ROOT / "nerloop").rglob("*.py"))
    assert files
    for path in files:
        for name in imported_modules(path):
            assert name.split(".")[0] not in {"scripts", "tests"}, (path, name)
