"""Shared helpers for the tests that run the emulator and a host in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from firmware_bridge._secure import PairingStore, pair_tcp
from firmware_bridge.emulator import Emulator, Scenario
from firmware_bridge.host import HostEvent, HostOptions, HostSession
from glasses_sdk import data
from tests.conftest import need_data


def small_scenario(**changes: Any) -> Scenario:
    """Real footage (6 frames of the pedestrian video) and real speech, no timeline."""
    video = need_data(data.pedestrian_video_path)
    wav = need_data(lambda: data.speech_path("beckett"))
    fields: dict[str, Any] = {
        "name": "test",
        "video": video,
        "max_frames": 6,
        "wav": wav,
        "resolutions": ((1280, 720), (640, 480), (320, 240)),
        "fps": (30, 15, 10),
    }
    fields.update(changes)
    return Scenario(**fields)


@contextlib.asynccontextmanager
async def running_emulator(**options: Any) -> AsyncIterator[Emulator]:
    """An emulator on 127.0.0.1, port 0, closed at the end."""
    scenario = options.pop("scenario", None) or small_scenario()
    emulator = Emulator(scenario, **options)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.close()


async def paired_session(
    emulator: Emulator, folder: Path, options: HostOptions | None = None
) -> HostSession:
    """Pair a fresh host store in ``folder`` with ``emulator`` and open a TLS session."""
    store = PairingStore(folder)
    cert = await pair_tcp("127.0.0.1", emulator.port, emulator.pairing_code, store.identity())
    store.save_device(f"127.0.0.1:{emulator.port}", cert)
    return await HostSession.open(emulator.address, store=store, options=options)


async def wait_for_event(
    session: HostSession, match: Callable[[HostEvent], bool], *, timeout_s: float
) -> HostEvent:
    """The first event that ``match`` accepts, within ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while True:
            event = await session.next_event(timeout_s=timeout_s)
            if match(event):
                return event
