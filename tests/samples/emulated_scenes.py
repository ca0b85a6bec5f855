"""Run a sample against the real emulator playing scenes of the demo's kind.

A scene is a real picture on camera and a command spoken while it is there ("hey
glasses" by espeak-ng, the command by flite), assembled once into the model cache by
:func:`glasses_sdk._demo_scenario.assemble_demo`. The emulator runs in a thread of the
test process (insecure: loopback only, no pairing); the cloud server, where a sample
needs one, is the real app under uvicorn on 127.0.0.1, port 0.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from firmware_bridge.emulator import Emulator
from firmware_bridge.emulator._scenario import TimelineEvent, load_scenario
from glasses_sdk import data
from glasses_sdk._demo_scenario import DemoAssets, DemoScene, assemble_demo, load_demo_script
from tests.cloud.conftest import make_key, serve, server_settings
from tests.conftest import need_binary, need_data

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def scenes(*items: tuple[str, str], pause_s: float | None = None) -> DemoAssets:
    """Assemble (once, cached) scenes of 7 s: ``(picture, command)`` pairs; ``pause_s``
    between the wake phrase and the command (the script's when None)."""
    need_binary("espeak-ng")
    need_binary("flite")
    need_data(lambda: data.photo_path("astronaut"))
    need_data(data.pedestrian_video_path)
    script = load_demo_script()
    script = replace(
        script,
        scenes=tuple(DemoScene(picture, 7.0, say, "any") for picture, say in items),
        pause_s=script.pause_s if pause_s is None else pause_s,
    )
    return assemble_demo(script)


@contextmanager
def emulator(
    assets: DemoAssets, state_dir: Path, timeline: tuple[TimelineEvent, ...] = ()
) -> Iterator[str]:
    """The emulator playing ``assets`` (and ``timeline``); yields the URI a sample
    connects to."""
    started = threading.Event()
    stop = threading.Event()
    holder: dict[str, Emulator] = {}
    failure: list[BaseException] = []

    def serve_emulator() -> None:
        async def run() -> None:
            scenario = replace(load_scenario(assets.scenario_path), timeline=timeline)
            device = Emulator(scenario, insecure=True, state_dir=state_dir)
            await device.start()
            holder["emulator"] = device
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await device.close()

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported by the waiting test
            failure.append(exc)
            started.set()

    thread = threading.Thread(target=serve_emulator, daemon=True)
    thread.start()
    assert started.wait(60), "the emulator did not start"
    assert not failure, failure
    try:
        yield f"tcp://127.0.0.1:{holder['emulator'].port}?insecure=1"
    finally:
        stop.set()
        thread.join(timeout=15)


@contextmanager
def cloud_server(data_dir: Path) -> Iterator[tuple[str, str]]:
    """The real fallback server (transcription, faces, text); yields (URL, API key)."""
    from glasses_sdk.cloud import create_app

    settings = server_settings(
        data_dir, backends=["transcription", "faces", "ocr"], required_backends=["transcription"]
    )
    token = make_key(settings)
    with serve(create_app(settings)) as base_url:
        yield base_url, token


def run_sample(name: str, *args: str, timeout_s: float = 200) -> subprocess.CompletedProcess[str]:
    """Run ``samples/NAME`` with ``args``; bounded by ``timeout_s``."""
    return subprocess.run(
        [sys.executable, str(SAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
