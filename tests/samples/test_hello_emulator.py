"""``samples/hello_emulator.py`` against an emulator on 127.0.0.1, for a bounded time:
it pairs, then prints frames, audio levels, taps and battery reports."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from firmware_bridge.emulator import Emulator
from firmware_bridge.protocol import Gesture
from tests.firmware_bridge.emulator_helpers import small_scenario

pytestmark = pytest.mark.timeout(60)

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "hello_emulator.py"


def test_hello_emulator_prints_what_the_glasses_see_and_hear(tmp_path: Path) -> None:
    scenario = small_scenario()
    started = threading.Event()
    stop = threading.Event()
    holder: dict[str, Emulator] = {}

    def serve() -> None:
        async def run() -> None:
            emulator = Emulator(scenario, state_dir=tmp_path / "emulator")
            await emulator.start()
            holder["emulator"] = emulator
            started.set()
            tapped = False
            while not stop.is_set():
                await asyncio.sleep(0.05)
                if not tapped and emulator.state()["camera_streaming"]:
                    await asyncio.sleep(0.3)
                    emulator.tap(Gesture.DOUBLE_TAP)
                    emulator._apply("battery_drain", 3.0)
                    tapped = True
            await emulator.close()

        asyncio.run(run())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(30)
    emulator = holder["emulator"]
    try:
        result = subprocess.run(
            [
                sys.executable,
                str(SAMPLE),
                emulator.address,
                "--code",
                emulator.pairing_code,
                "--pairing-dir",
                str(tmp_path / "host"),
                "--duration-s",
                "2.5",
            ],
            capture_output=True,
            text=True,
            timeout=45,
            check=False,
        )
    finally:
        stop.set()
        thread.join(timeout=10)
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "connected to Emulated glasses" in out
    frames = re.findall(r"^frame +\d+ +640x480 +t=[\d.]+ s", out, flags=re.M)
    assert len(frames) >= 10
    assert re.search(r"^audio +\d+ +\d+ samples @ 16000 Hz +level +-?[\d.]+ dBFS", out, re.M)
    assert "input TouchEvent" in out and "DOUBLE_TAP" in out
    assert re.search(r"^state battery=\d+%", out, re.M)
    summary = re.search(r"^summary: (\d+) frames, (\d+) audio chunks, (\d+) inputs", out, re.M)
    assert summary is not None and int(summary[1]) >= 10 and int(summary[2]) >= 50
