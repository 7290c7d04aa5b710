"""Static checks: no unused imports or variables, no undefined names, no syntax errors (ruff F and E9)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed in this environment (make venv installs it from requirements.txt)")
    done = subprocess.run([ruff, "check", "--select", "F,E9", "--no-cache", "rbqm", "synthetic", "dashboard",
                           "bench", "tests"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
