"""``samples/see_and_hear.py`` runs unchanged on recordings, on the emulator, and on
``local`` (where this machine has no camera, it says so in one line)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from glasses_sdk import data
from tests.conftest import need_data
from tests.firmware_bridge.emulator_helpers import running_emulator

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "see_and_hear.py"


def _summary(stdout: str) -> dict[str, object]:
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert isinstance(summary, dict)
    return summary


def test_on_recordings() -> None:
    video = need_data(data.pedestrian_video_path)
    speech = need_data(lambda: data.speech_path("beckett"))
    result = subprocess.run(
        [sys.executable, str(SAMPLE), f"file:{video}?audio={speech}", "--seconds", "2"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = _summary(result.stdout)
    assert (summary["width"], summary["height"]) == (768, 576)
    assert int(str(summary["frames"])) >= 10 and int(str(summary["chunks"])) >= 20
    assert float(str(summary["peak_level_dbfs"])) > -40


def test_on_the_emulator(tmp_path: Path) -> None:
    async def run() -> subprocess.CompletedProcess[str]:
        async with running_emulator(insecure=True, state_dir=tmp_path) as emulator:
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(SAMPLE), f"{emulator.address}?insecure=1", "--seconds", "2",
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
            assert process.returncode is not None
            return subprocess.CompletedProcess([], process.returncode, out.decode(), err.decode())

    result = asyncio.run(run())
    assert result.returncode == 0, result.stderr
    summary = _summary(result.stdout)
    assert summary["device"] == "Emulated glasses"
    assert int(str(summary["frames"])) >= 5 and int(str(summary["chunks"])) >= 10


def test_on_local_without_a_camera_is_one_clear_line() -> None:
    if any(Path("/dev").glob("video*")):
        pytest.skip("this machine has a camera: the sample would open it")
    result = subprocess.run(
        [sys.executable, str(SAMPLE), "local", "--seconds", "1"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no camera" in lines[0].lower(), result.stderr
