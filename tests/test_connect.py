"""connect(): recordings as a device on one timeline, a clear error with no camera, and
a clear error for the bridge schemes that are not wired in yet."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from glasses_sdk._connect import connect
from glasses_sdk._device import Device
from glasses_sdk._exceptions import (
    InvalidConfigError,
    NoCameraError,
    NoMicrophoneError,
    UnsupportedUriError,
)
from glasses_sdk.capture._base import AudioChunk, VideoFrame


def _run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))  # type: ignore[arg-type]


def test_file_device_plays_video_and_audio_on_one_timeline(
    pedestrian_video_path: Path, speech_wav_path: Path
) -> None:
    uri = f"file:{pedestrian_video_path}?audio={speech_wav_path}"

    async def run() -> tuple[list[VideoFrame], list[AudioChunk], Device]:
        async with connect(uri) as device:
            assert device.has_video and device.has_audio
            frames = [await device.video.read() for _ in range(3)]
            chunks = [await device.audio.read() for _ in range(10)]
            return frames, chunks, device

    frames, chunks, device = _run(run())  # type: ignore[misc]
    assert device.closed and device.name == "file:vtest.avi"
    # Frame n and the audio sample at n / fps carry the same timestamp: the recording's
    # audio and video line up to well within one audio chunk (32 ms).
    for frame in frames:
        media_s = frame.frame_number / 10.0
        chunk = chunks[int(media_s / 0.032)]
        sample_time = chunk.timestamp_s + (media_s - chunk.sequence * 0.032)
        assert frame.timestamp_s == pytest.approx(sample_time, abs=1e-6)
    assert chunks[0].sample_rate_hz == 16_000


def test_file_device_can_be_audio_only_and_as_fast_as_possible(speech_wav_path: Path) -> None:
    async def run() -> int:
        device = await connect(f"file:?audio={speech_wav_path}&realtime=0")
        try:
            assert not device.has_video
            return len([c async for c in device.audio])
        finally:
            await device.close()

    assert _run(run()) == 312  # 9.96 s in 32 ms chunks


def test_local_without_a_camera_raises_no_camera_error() -> None:
    if any(Path("/dev").glob("video*")):
        pytest.skip("this machine has a camera; the error path needs one without")

    with pytest.raises(NoCameraError, match=r"no camera .*connect\('file:"):
        _run(connect("local").__aenter__())


def test_connect_opens_the_emulator_over_tcp() -> None:
    from tests.firmware_bridge.emulator_helpers import running_emulator

    async def run() -> None:
        async with running_emulator(insecure=True) as emulator:
            uri = f"{emulator.address}?insecure=1&width=320&height=240&fps=10"
            async with connect(uri) as device:
                frame = await asyncio.wait_for(device.video.read(), timeout=5)
                assert frame.image.shape == (240, 320, 3)
                chunk = await asyncio.wait_for(device.audio.read(), timeout=5)
                assert chunk.sample_rate_hz == 16_000

    asyncio.run(run())


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("tcp://127.0.0.1:7000?mode=all", "mode must be latest or queue"),
        ("tcp://127.0.0.1:7000?width=-3", "width must be a positive integer"),
        ("tcp://127.0.0.1:7000?insecure=maybe", "insecure must be 1 or 0"),
    ],
)
def test_bridge_options_are_validated(uri: str, match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        _run(connect(uri).__aenter__())


def test_bad_uris_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedUriError, match="unknown scheme 'http'"):
        _run(connect("http://example.invalid/cam").__aenter__())
    with pytest.raises(InvalidConfigError, match="name a video file"):
        _run(connect("file:").__aenter__())
    with pytest.raises(InvalidConfigError, match="unknown option"):
        _run(connect("file:a.avi?sound=b.wav").__aenter__())
    with pytest.raises(NoCameraError, match="does not exist"):
        _run(connect(f"file:{tmp_path / 'missing.avi'}").__aenter__())
    with pytest.raises(NoMicrophoneError, match="does not exist"):
        _run(connect(f"file:?audio={tmp_path / 'missing.wav'}").__aenter__())
    with pytest.raises(InvalidConfigError, match="URI string"):
        connect("")
