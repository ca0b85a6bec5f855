"""``connect_bridge``: the emulator as a :class:`glasses_sdk.Device` over paired TLS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge._secure import PairingRequiredError, PairingStore, pair_tcp
from glasses_sdk import Device
from glasses_sdk._bridge_device import BridgeDevice, connect_bridge
from glasses_sdk._device import LedState
from glasses_sdk._exceptions import InvalidConfigError
from glasses_sdk.capture._base import monotonic_s
from tests.firmware_bridge.emulator_helpers import running_emulator

pytestmark = pytest.mark.timeout(60)


def test_the_emulator_is_a_device_with_frames_audio_state_and_commands(tmp_path: Path) -> None:
    async def run() -> None:
        async with running_emulator() as emulator:
            store = PairingStore(tmp_path)
            cert = await pair_tcp(
                "127.0.0.1", emulator.port, emulator.pairing_code, store.identity()
            )
            store.save_device(f"127.0.0.1:{emulator.port}", cert)
            device = await connect_bridge(
                emulator.address, pairing_dir=tmp_path, width_px=320, height_px=240, fps=10
            )
            assert isinstance(device, Device) and isinstance(device, BridgeDevice)
            async with device:
                assert device.name == "Emulated glasses"
                frame = await asyncio.wait_for(device.video.read(), timeout=5)
                assert frame.image.shape == (240, 320, 3) and frame.image.dtype == np.uint8
                assert abs(frame.timestamp_s - monotonic_s()) < 2.0
                chunk = await asyncio.wait_for(device.audio.read(), timeout=5)
                assert chunk.sample_rate_hz == 16_000 and len(chunk.samples) > 0
                assert device.state.led == LedState.ON
                assert device.state.battery_percent is not None
                photo = await device.take_photo()
                assert photo.image.shape == (720, 1280, 3)
                assert device.link_quality().video_frames_received >= 1
            assert device.closed and device.session.closed

    asyncio.run(run())


def test_connect_bridge_says_how_to_pair_and_rejects_unknown_options(tmp_path: Path) -> None:
    async def run() -> None:
        async with running_emulator() as emulator:
            with pytest.raises(PairingRequiredError, match="glasses pair"):
                await connect_bridge(emulator.address, pairing_dir=tmp_path)
            with pytest.raises(InvalidConfigError, match="unexpected keyword"):
                await connect_bridge(emulator.address, pairing_dir=tmp_path, colour="red")

    asyncio.run(run())
