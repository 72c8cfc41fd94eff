"""ruff, with pyproject.toml's [tool.ruff] rules, finds nothing in net9/,
tests/ and tools/ (skipped where ruff is not installed: pip install ruff)."""

import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(shutil.which("ruff") is None, reason="no ruff (pip install ruff)")
def test_ruff_clean():
    if not os.path.exists(os.path.join(REPO, "pyproject.toml")):
        pytest.skip("not a checkout")
    r = subprocess.run(["ruff", "check", "--no-cache", "net9", "tests", "tools"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
