"""The fast loop (`pytest -m "not e2e"`) never builds the real chain: conftest refuses a test that
requests `built_chain`, directly or through another fixture, without the e2e mark."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

CHAIN_USERS = '''
import pytest

@pytest.fixture
def through_another(built_chain):
    return built_chain

{mark}
def test_direct(built_chain):
    pass

{mark}
def test_indirect(through_another):
    pass

def test_plain():
    pass
'''


def collect(where: Path, mark: str) -> subprocess.CompletedProcess[str]:
    """Collect a tiny suite under the project's own conftest, as the fast loop would."""
    shutil.copy(REPO / "tests" / "conftest.py", where / "conftest.py")
    (where / "pytest.ini").write_text("[pytest]\nmarkers =\n    e2e: builds the real chain\n")
    (where / "test_users.py").write_text(CHAIN_USERS.format(mark=mark))
    return subprocess.run([sys.executable, "-m", "pytest", "-m", "not e2e", "--co", "-q", "-p", "no:cacheprovider",
                           "-p", "no:randomly", str(where)], cwd=where, capture_output=True, text=True, check=False,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_an_unmarked_test_requesting_the_chain_stops_the_run(tmp_path: Path) -> None:
    ran = collect(tmp_path, "")
    assert ran.returncode == 4, ran.stdout + ran.stderr  # pytest's usage error: nothing runs
    refused = next(line for line in ran.stderr.splitlines() if "request built_chain" in line)
    assert refused.endswith("are not marked e2e: test_users.py::test_direct, test_users.py::test_indirect"), refused


def test_marked_chain_users_are_deselected_by_the_fast_loop(tmp_path: Path) -> None:
    ran = collect(tmp_path, "@pytest.mark.e2e")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "test_users.py::test_plain" in ran.stdout and "test_direct" not in ran.stdout
    assert "1/3 tests collected (2 deselected)" in ran.stdout
