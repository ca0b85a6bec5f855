"""The source bases and their fakes: iteration, timestamps, pacing, close, bad input."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from glasses_sdk import (
    AudioChunk,
    FakeAudioSource,
    FakeVideoSource,
    InvalidAudioError,
    InvalidConfigError,
    InvalidFrameError,
    SourceClosedError,
    VideoFrame,
)


def _images(n: int) -> list[np.ndarray]:
    return [np.full((4, 6, 3), i, dtype=np.uint8) for i in range(n)]


def test_fake_video_yields_each_frame_in_order_with_rising_timestamps() -> None:
    async def run() -> list[VideoFrame]:
        async with FakeVideoSource(_images(3)) as source:
            return [frame async for frame in source]

    frames = asyncio.run(run())
    assert [f.frame_number for f in frames] == [0, 1, 2]
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 1, 2]
    stamps = [f.timestamp_s for f in frames]
    assert stamps == sorted(stamps)
    assert (frames[0].width, frames[0].height) == (6, 4)


def test_fake_video_is_paced_at_its_fps() -> None:
    async def run() -> list[float]:
        source = FakeVideoSource(_images(1), fps=50, loop=True)
        stamps = [(await source.read()).timestamp_s for _ in range(6)]
        await source.close()
        return stamps

    stamps = asyncio.run(run())
    gaps = np.diff(stamps)
    assert gaps.min() >= 0.015, gaps  # 20 ms apart, with scheduler slack
    assert stamps[-1] - stamps[0] >= 0.095


def test_read_after_close_raises_and_iteration_stops() -> None:
    async def run() -> None:
        source = FakeVideoSource(_images(2), loop=True)
        await source.read()
        await source.close()
        assert source.closed
        with pytest.raises(SourceClosedError, match="after close"):
            await source.read()
        assert [f async for f in source] == []

    asyncio.run(run())


def test_fake_audio_chunks_cover_the_samples_with_consistent_timestamps() -> None:
    samples = np.linspace(-1, 1, 4000, dtype=np.float32)

    async def run() -> list[AudioChunk]:
        async with FakeAudioSource(samples, chunk_samples=1280) as source:
            assert source.sample_rate_hz == 16_000
            return [chunk async for chunk in source]

    chunks = asyncio.run(run())
    assert [len(c.samples) for c in chunks] == [1280, 1280, 1280, 160]
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), samples)
    assert [c.sequence for c in chunks] == [0, 1, 2, 3]
    starts = [c.timestamp_s - chunks[0].timestamp_s for c in chunks]
    np.testing.assert_allclose(starts, [0, 0.08, 0.16, 0.24], atol=1e-9)
    assert chunks[0].duration_s == pytest.approx(0.08)


def test_fake_audio_realtime_takes_the_duration_of_the_audio() -> None:
    samples = np.zeros(1600, dtype=np.float32)  # 100 ms

    async def run() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with FakeAudioSource(samples, chunk_samples=320, realtime=True) as source:
            _ = [c async for c in source]
        return loop.time() - start

    assert asyncio.run(run()) >= 0.095


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((4, 4), np.uint8), "shape"),
        (np.zeros((4, 4, 3), np.float32), "dtype float32"),
        (np.zeros((0, 4, 3), np.uint8), r"\(0, 4, 3\)"),
        (np.zeros((4, 4, 4), np.uint8), "BGR"),
    ],
)
def test_bad_frames_are_rejected_with_what_was_expected(image: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidFrameError, match=match):
        VideoFrame(image, 0.0, 0)


def test_bad_audio_is_rejected() -> None:
    with pytest.raises(InvalidAudioError, match="1-D"):
        AudioChunk(np.zeros((2, 2), np.float32), 16_000, 0.0, 0)
    with pytest.raises(InvalidAudioError, match="float32 or int16"):
        AudioChunk(np.zeros(4, np.float64), 16_000, 0.0, 0)
    with pytest.raises(InvalidAudioError, match="positive sample rate"):
        AudioChunk(np.zeros(4, np.int16), 0, 0.0, 0)
    with pytest.raises(InvalidAudioError, match="NaN"):
        FakeAudioSource(np.array([0.0, np.nan], np.float32))
    with pytest.raises(InvalidConfigError):
        FakeVideoSource([])
    with pytest.raises(InvalidConfigError):
        FakeVideoSource(_images(1), fps=0)
