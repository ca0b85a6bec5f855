"""With CI=true a missing package, binary or data file fails the test instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
from tests.conftest import missing, need_binary

def test_needs_a_binary():
    need_binary("no-such-binary-glasses-sdk")

def test_needs_data():
    missing("data file x is not installed")
"""


@pytest.mark.parametrize(("ci", "expected"), [("true", "2 failed"), ("", "2 skipped")])
def test_missing_things_skip_locally_and_fail_in_ci(tmp_path: Path, ci: str, expected: str) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "--rootdir", str(tmp_path),
         "-c", os.devnull, str(probe)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    assert expected in result.stdout, result.stdout + result.stderr
