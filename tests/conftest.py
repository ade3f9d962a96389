from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT_ROOT = Path(__file__).parent.parent


@pytest.fixture
def fixture_assets(tmp_path: Path) -> Path:
    """A writable copy of the tiny assets folder (same layout as ../shared/data)."""
    target = tmp_path / "assets"
    shutil.copytree(FIXTURES / "assets", target)
    return target


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real data folder named by NERLOOP_DATA_DIR; tests that need it skip without it."""
    value = os.environ.get("NERLOOP_DATA_DIR")
    if not value:
        pytest.skip("NERLOOP_DATA_DIR is not set: the full-data tests need the real CoNLL-2003")
    path = Path(value)
    if not path.is_absolute():
        path = (PROJECT_ROOT / path).resolve() if (PROJECT_ROOT / path).exists() else path.resolve()
    if not (path / "conll2003" / "train.txt").exists():
        pytest.fail(f"NERLOOP_DATA_DIR={value} has no conll2003/train.txt")
    return path
