"""Sources fed by the firmware bridge: real JPEG frames and real speech PCM pushed in
with device timestamps, mapped onto one clock; buffer policies and losses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from glasses_sdk._exceptions import StreamLostError
from glasses_sdk.capture._base import AudioChunk, VideoFrame
from glasses_sdk.capture._bridge import BridgeAudioSource, BridgeVideoSource
from glasses_sdk.capture._clock import ClockMapper
from glasses_sdk.capture._events import AudioOverflow
from glasses_sdk.preprocess.audio import resample

DEVICE_T0_US = 5_000_000_000  # the device booted long ago: its clock is far from ours


@pytest.fixture(scope="module")
def jpegs(pedestrian_video_path: Path) -> list[bytes]:
    cap = cv2.VideoCapture(str(pedestrian_video_path))
    out = []
    for _ in range(6):
        ok, image = cap.read()
        assert ok
        out.append(cv2.imencode(".jpg", image)[1].tobytes())
    cap.release()
    return out


@pytest.fixture(scope="module")
def pcm(speech_wav_path: Path) -> np.ndarray:
    samples, rate = sf.read(str(speech_wav_path), dtype="int16")
    assert rate == 16_000
    return np.asarray(samples[:32_000])  # 2 s


def _push_frames(source: BridgeVideoSource, jpegs: list[bytes]) -> None:
    for i, jpeg in enumerate(jpegs):
        source.push_jpeg(jpeg, frame_number=i, timestamp_us=DEVICE_T0_US + i * 33_333)


def test_latest_mode_delivers_the_newest_frame_decoded(jpegs: list[bytes]) -> None:
    async def run() -> tuple[VideoFrame, BridgeVideoSource]:
        source = BridgeVideoSource()
        _push_frames(source, jpegs)
        return await source.read(), source

    frame, source = asyncio.run(run())
    assert frame.frame_number == 5
    expected = cv2.imdecode(np.frombuffer(jpegs[5], np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(frame.image.astype(int) - expected.astype(int)).mean() < 1.0
    stats = source.stats
    assert (stats.frames_captured, stats.frames_delivered, stats.frames_dropped) == (6, 1, 5)


def test_queue_mode_keeps_the_newest_and_counts_what_it_drops(jpegs: list[bytes]) -> None:
    async def run() -> tuple[list[VideoFrame], BridgeVideoSource]:
        source = BridgeVideoSource(mode="queue", queue_size=3)
        _push_frames(source, jpegs)
        source.push_jpeg(b"\xff\xd8\xff\xe0 broken", frame_number=6, timestamp_us=DEVICE_T0_US)
        source.end()
        return [f async for f in source], source

    frames, source = asyncio.run(run())
    assert [f.frame_number for f in frames] == [4, 5]  # 3 kept, the corrupt one skipped
    assert source.stats.frames_dropped == 4 and source.stats.frames_invalid == 1
    gaps = np.diff([f.timestamp_s for f in frames])
    np.testing.assert_allclose(gaps, 0.033333, atol=1e-6)  # device spacing, our clock


def test_a_waiting_reader_is_woken_and_a_lost_link_raises(jpegs: list[bytes]) -> None:
    async def run() -> None:
        source = BridgeVideoSource()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, lambda: _push_frames(source, jpegs[:1]))
        frame = await asyncio.wait_for(source.read(), timeout=5)
        assert frame.frame_number == 0
        loop.call_later(0.05, source.fail, "link down")
        with pytest.raises(StreamLostError, match="link down"):
            await asyncio.wait_for(source.read(), timeout=5)

    asyncio.run(run())


def _push_audio(
    source: BridgeAudioSource, pcm: np.ndarray, rate: int, block: int, skip: set[int]
) -> None:
    for seq, start in enumerate(range(0, pcm.size, block)):
        if seq in skip:
            continue
        source.push_pcm16(
            pcm[start : start + block].astype("<i2").tobytes(),
            sequence=seq,
            timestamp_us=DEVICE_T0_US + start * 1_000_000 // rate,
        )


def _drain(source: BridgeAudioSource) -> list[AudioChunk]:
    async def run() -> list[AudioChunk]:
        return [c async for c in source]

    return asyncio.run(run())


def test_speech_passes_through_unchanged_at_16k(pcm: np.ndarray) -> None:
    source = BridgeAudioSource(device_rate_hz=16_000)
    _push_audio(source, pcm, 16_000, 320, skip=set())
    source.end()
    chunks = _drain(source)
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), pcm / 32768.0)
    np.testing.assert_allclose(np.diff([c.timestamp_s for c in chunks]), 0.032, atol=1e-6)
    assert source.events == ()


def test_48k_audio_is_resampled_like_the_whole_clip(pcm: np.ndarray) -> None:
    clip48 = resample(pcm.astype(np.float32) / 32768.0, 16_000, 48_000)
    pcm48 = np.clip(np.round(clip48 * 32768.0), -32768, 32767).astype(np.int16)
    source = BridgeAudioSource(device_rate_hz=48_000)
    _push_audio(source, pcm48, 48_000, 960, skip=set())
    source.end()
    got = np.concatenate([c.samples for c in _drain(source)])
    np.testing.assert_allclose(
        got, resample(pcm48 / np.float32(32768.0), 48_000, 16_000), atol=1e-6
    )


def test_audio_lost_on_the_link_is_an_event_and_time_is_kept(pcm: np.ndarray) -> None:
    source = BridgeAudioSource(device_rate_hz=16_000, chunk_ms=20)
    _push_audio(source, pcm, 16_000, 320, skip={10, 11})  # 40 ms lost
    source.end()
    chunks = _drain(source)
    lost = [e for e in source.events if isinstance(e, AudioOverflow)]
    assert len(lost) == 1 and lost[0].dropped_samples == 640
    stamps = np.array([c.timestamp_s for c in chunks])
    assert np.diff(stamps).max() == pytest.approx(0.060, abs=1e-6)  # 20 ms + the 40 ms gap
    assert sum(len(c.samples) for c in chunks) == pcm.size - 640


def test_a_slow_reader_loses_the_oldest_audio_beyond_the_buffer(pcm: np.ndarray) -> None:
    source = BridgeAudioSource(device_rate_hz=16_000, buffer_ms=500)
    _push_audio(source, pcm, 16_000, 320, skip=set())  # 2 s pushed, nobody reading
    source.end()
    chunks = _drain(source)
    assert source.stats.samples_dropped >= 16_000  # at least 1 s of the 2 s
    assert sum(len(c.samples) for c in chunks) <= 8_000 + 320
    assert isinstance(source.events[0], AudioOverflow)


def test_camera_and_microphone_of_one_device_share_one_clock(
    jpegs: list[bytes], pcm: np.ndarray
) -> None:
    clock = ClockMapper()
    video = BridgeVideoSource(mode="queue", queue_size=10, clock=clock)
    audio = BridgeAudioSource(device_rate_hz=16_000, clock=clock)
    _push_audio(audio, pcm[:8_000], 16_000, 320, skip=set())
    _push_frames(video, jpegs)
    audio.end()
    video.end()

    async def run() -> tuple[list[VideoFrame], list[AudioChunk]]:
        return [f async for f in video], [c async for c in audio]

    frames, chunks = asyncio.run(run())
    # Frame 3 was taken at device time +100 ms, the first sample of audio chunk 3 at
    # +96 ms: on the SDK clock they are 4 ms apart, well within one chunk.
    assert frames[3].timestamp_s - chunks[3].timestamp_s == pytest.approx(0.004, abs=1e-4)


def test_closing_wakes_a_waiting_reader() -> None:
    async def run() -> list[VideoFrame]:
        source = BridgeVideoSource()
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(source.close()))
        return [f async for f in source]

    assert asyncio.run(asyncio.wait_for(run(), timeout=5)) == []
