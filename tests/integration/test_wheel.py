"""What a user installs: the built wheel holds the product's packages only (no developer `tools`, no examples,
no tests), with its data files, and no installed module imports developer code."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("stack", "evse_emulator", "ev_emulator", "mcs_v2g")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel built from a copy of the tracked files (setuptools writes `build/` beside the sources)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("mcs_v2g-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_top_level_packages_are_the_product_only(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/", 1)[0] for name in wheel.namelist() if not name.split("/", 1)[0].endswith(".dist-info")}
    assert tops == set(PRODUCT), tops
    top_level = next(n for n in wheel.namelist() if n.endswith(".dist-info/top_level.txt"))
    assert set(wheel.read(top_level).decode().split()) == set(PRODUCT)


def test_wheel_carries_the_schemas_and_the_console_script(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "stack/exi/xsd/iso15118_20/V2G_CI_DC.xsd" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "mcs-v2g = mcs_v2g.cli:main" in wheel.read(entry_points).decode()


@pytest.mark.parametrize("package", PRODUCT)
def test_no_product_module_imports_developer_code(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("tools", "tests", "examples"), f"{path}: imports {name}"
