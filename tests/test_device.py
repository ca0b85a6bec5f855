"""The Device: joins sources with an immutable state snapshot; closes what it owns."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from glasses_sdk import (
    DeviceState,
    FakeAudioSource,
    FakeDevice,
    FakeVideoSource,
    InvalidConfigError,
    LedState,
    SourceClosedError,
)


def _device() -> FakeDevice:
    video = FakeVideoSource([np.zeros((2, 2, 3), np.uint8)], loop=True)
    audio = FakeAudioSource(np.zeros(320, np.float32))
    return FakeDevice(name="fake", video=video, audio=audio, state=DeviceState(led=LedState.ON))


def test_state_changes_replace_the_snapshot_and_keep_other_fields() -> None:
    device = _device()
    before = device.state
    after = device.set_state(battery_percent=12.5, temperature_c=41.0)
    assert before.battery_percent is None  # the old snapshot is never mutated
    assert (after.battery_percent, after.temperature_c, after.led) == (12.5, 41.0, LedState.ON)
    assert device.state is after
    assert after.updated_s >= before.updated_s
    assert LedState("absent") is LedState.ABSENT


def test_close_closes_sources_and_blocks_further_use() -> None:
    async def run() -> None:
        async with _device() as device:
            frame = await device.video.read()
            chunk = await device.audio.read()
            assert frame.image.shape == (2, 2, 3)
            assert len(chunk.samples) == 320
            video = device.video
        assert device.closed and video.closed
        with pytest.raises(SourceClosedError, match="after close"):
            _ = device.video

    asyncio.run(run())


def test_missing_sources_and_bad_state_are_explained() -> None:
    with pytest.raises(InvalidConfigError, match="video source, an audio source"):
        FakeDevice(name="empty")
    audio_only = FakeDevice(name="mic", audio=FakeAudioSource(np.zeros(10, np.float32)))
    assert not audio_only.has_video and audio_only.has_audio
    with pytest.raises(SourceClosedError, match="no camera"):
        _ = audio_only.video
    with pytest.raises(InvalidConfigError, match=r"0\.\.100"):
        DeviceState(battery_percent=120)
    with pytest.raises(InvalidConfigError, match="throttle_level"):
        DeviceState(throttle_level=-1)
