"""The README's examples run as written and print what the README says they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The self-contained examples (fenced ``python``); the backend example (fenced ``py``)
# needs a running server and a key, and tests/cloud/test_openai.py covers that client.
EXPECTED = (
    "count_people I see 1 face(s).",  # the assistant, on a fake camera showing a real photo
    "(1, 3, 640, 640)",  # the building blocks: capture and the preprocessing core
)


def test_readme_python_example_runs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == len(EXPECTED), "one expected output per Python example"
    for code, expected in zip(blocks, EXPECTED, strict=True):
        result = subprocess.run(
            [sys.executable, "-W", "error", "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
