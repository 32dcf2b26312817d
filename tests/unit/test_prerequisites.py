"""The prerequisite plugin (tests/prerequisites.py), run by a pytest in a subprocess over a tiny test file: a
missing prerequisite fails a strict (CI) run unless declared optional, and the summary says what was skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TESTS = """
import pytest
from tests.prerequisites import require, requires

def test_java_missing():
    require("java", "no java on this test machine")

@requires("root", "not root on this test machine")
def test_root_missing_by_mark():
    pass

def test_present():
    require("java", None)
"""


def run(tmp_path: Path, tests: str = TESTS, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest with the plugin over `tests`, in an environment holding only `env` of the plugin's variables."""
    (tmp_path / "test_tiny.py").write_text(tests)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "MCS_V2G_STRICT", "MCS_V2G_OPTIONAL")}
    clean["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, "-m", "pytest", "-p", "tests.prerequisites", "-p", "no:cacheprovider", "-rA"]
    return subprocess.run(
        [*argv, "test_tiny.py"], cwd=tmp_path, env=clean | env, capture_output=True, text=True, timeout=60
    )


def test_a_ci_run_fails_naming_what_is_missing(tmp_path: Path) -> None:
    done = run(tmp_path, CI="true")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed, 1 error" in done.stdout  # the mark fails the test's setup
    assert "missing prerequisite 'java': no java on this test machine" in done.stdout
    assert "missing prerequisite 'root': not root on this test machine" in done.stdout
    assert "MCS_V2G_OPTIONAL=java" in done.stdout
    assert "java: 1 FAILED" in done.stdout


@pytest.mark.parametrize("optional", ["java,root", "root, java", "all"])
def test_a_ci_run_skips_what_it_declares_optional_and_says_so(tmp_path: Path, optional: str) -> None:
    done = run(tmp_path, CI="true", MCS_V2G_OPTIONAL=optional)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped" in done.stdout
    assert "java: 1 skipped (no java on this test machine)" in done.stdout
    assert "root: 1 skipped (not root on this test machine)" in done.stdout
    assert "declared optional (MCS_V2G_OPTIONAL): " in done.stdout


def test_a_ci_run_fails_on_what_it_did_not_declare(tmp_path: Path) -> None:
    done = run(tmp_path, CI="true", MCS_V2G_OPTIONAL="java")
    assert done.returncode == 1, done.stdout
    assert "1 passed, 1 skipped, 1 error" in done.stdout
    assert "root: 1 FAILED" in done.stdout


def test_a_local_run_skips_and_warns_that_ci_would_fail(tmp_path: Path) -> None:
    done = run(tmp_path)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped" in done.stdout
    assert "a CI run fails on these unless it declares them: MCS_V2G_OPTIONAL=java,root" in done.stdout


def test_strict_without_ci(tmp_path: Path) -> None:
    assert run(tmp_path, MCS_V2G_STRICT="1").returncode == 1
    assert run(tmp_path, CI="false").returncode == 0


def test_a_ci_run_fails_any_other_skip(tmp_path: Path) -> None:
    tests = 'import pytest\n\ndef test_skips():\n    pytest.skip("not today")\n\n'
    tests += '@pytest.mark.parametrize("x", [])\ndef test_empty(x):\n    pass\n'
    done = run(tmp_path, tests, CI="true", MCS_V2G_OPTIONAL="all")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 error" in done.stdout
    assert "skipped outside tests/prerequisites.py in a strict run (CI): not today" in done.stdout


def test_a_ci_run_fails_a_skipped_module(tmp_path: Path) -> None:
    done = run(tmp_path, 'import pytest\n\npytest.importorskip("no_such_module_here")\n', CI="true")
    assert done.returncode != 0, done.stdout
    assert "module skipped outside tests/prerequisites.py" in done.stdout


def test_an_unknown_optional_name_is_refused(tmp_path: Path) -> None:
    done = run(tmp_path, CI="true", MCS_V2G_OPTIONAL="jav")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "MCS_V2G_OPTIONAL: unknown prerequisite(s) jav" in done.stderr
