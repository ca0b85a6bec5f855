"""MicrophoneSource over PortAudio, recording a PulseAudio null sink's monitor while
the test plays real speech into the sink."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from glasses_sdk._exceptions import InvalidConfigError, NoMicrophoneError
from glasses_sdk.capture._audio import MicrophoneSource
from glasses_sdk.capture._base import AudioChunk, monotonic_s
from glasses_sdk.capture._events import AudioOverflow
from tests.capture.conftest import PulseSink

PLAY_S = 3.0


@pytest.fixture(scope="module")
def speech_excerpt(speech_wav_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3 s of the real speech recording, as a 16 kHz WAV."""
    pcm, rate = sf.read(str(speech_wav_path), dtype="int16")
    path = tmp_path_factory.mktemp("speech") / "excerpt.wav"
    sf.write(str(path), pcm[: int(PLAY_S * rate)], rate, subtype="PCM_16")
    return path


def _ncc(recorded: np.ndarray, reference: np.ndarray) -> float:
    """Normalized cross-correlation at the best lag, over the overlap (0 for silence)."""
    corr = scipy.signal.correlate(recorded, reference, mode="full", method="fft")
    lag = int(np.argmax(np.abs(corr))) - (len(reference) - 1)
    a = recorded[max(lag, 0) :]
    b = reference[max(-lag, 0) :]
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 0.0 if norm == 0.0 else float(np.dot(a, b)) / norm


def _record_while_playing(sink: PulseSink, path: Path) -> tuple[list[AudioChunk], MicrophoneSource]:
    async def run() -> tuple[list[AudioChunk], MicrophoneSource]:
        chunks: list[AudioChunk] = []
        async with MicrophoneSource("pulse") as mic:
            chunks.append(await mic.read())
            player = sink.play(path)
            try:
                loop = asyncio.get_running_loop()
                stop_at = loop.time() + PLAY_S + 5.0  # bounded even if paplay hangs
                while player.poll() is None and loop.time() < stop_at:
                    chunks.append(await mic.read())
                for _ in range(15):  # the tail still in the server's buffers
                    chunks.append(await mic.read())
            finally:
                if player.poll() is None:
                    player.kill()
                player.wait(timeout=5)
            return chunks, mic

    return asyncio.run(asyncio.wait_for(run(), timeout=30))


def test_the_microphone_records_what_is_played(pulse_sink: PulseSink, speech_excerpt: Path) -> None:
    reference = sf.read(str(speech_excerpt), dtype="float32")[0]
    chunks, mic = _record_while_playing(pulse_sink, speech_excerpt)
    recorded = np.concatenate([c.samples for c in chunks])
    assert all(c.sample_rate_hz == 16_000 and c.samples.dtype == np.float32 for c in chunks)
    assert _ncc(recorded, reference) >= 0.9
    assert mic.stats.samples_dropped == 0 and mic.events == ()
    # One clock: chunks follow each other by their duration (drift-corrected).
    stamps = np.array([c.timestamp_s for c in chunks])
    np.testing.assert_allclose(np.diff(stamps), 0.032, atol=0.01)
    assert [c.sequence for c in chunks] == list(range(len(chunks)))


def test_a_muted_sink_records_nothing_like_the_speech(
    pulse_sink: PulseSink, speech_excerpt: Path
) -> None:
    reference = sf.read(str(speech_excerpt), dtype="float32")[0]
    pulse_sink.pactl("set-sink-mute", pulse_sink.sink, "1")
    try:
        chunks, _ = _record_while_playing(pulse_sink, speech_excerpt)
    finally:
        pulse_sink.pactl("set-sink-mute", pulse_sink.sink, "0")
    recorded = np.concatenate([c.samples for c in chunks])
    assert len(recorded) >= 16_000 * PLAY_S * 0.9  # the stream ran all along
    assert _ncc(recorded, reference) <= 0.2


def test_a_reader_that_falls_behind_gets_an_overflow_event(pulse_sink: PulseSink) -> None:
    async def run() -> tuple[list[AudioOverflow], MicrophoneSource, list[AudioChunk]]:
        events: list[AudioOverflow] = []
        async with MicrophoneSource("pulse", buffer_ms=100, chunk_ms=20) as mic:
            mic.subscribe(lambda e: events.append(e) if isinstance(e, AudioOverflow) else None)
            first = await mic.read()
            await asyncio.sleep(0.5)  # a consumer stuck for 500 ms
            after = [await mic.read() for _ in range(3)]
            return events, mic, [first, *after]

    events, mic, chunks = asyncio.run(asyncio.wait_for(run(), timeout=20))
    assert events and events[0].dropped_samples > 0
    assert mic.stats.samples_dropped >= events[0].dropped_samples
    # The audio after the gap is stamped after it: time is not compressed.
    stamps = np.array([c.timestamp_s for c in chunks])
    assert np.diff(stamps).max() >= 0.3


def test_the_native_format_is_available(pulse_sink: PulseSink) -> None:
    async def run() -> tuple[AudioChunk, MicrophoneSource]:
        async with MicrophoneSource("pulse", sample_rate_hz=None, sample_format="int16") as mic:
            return await mic.read(), mic

    chunk, mic = asyncio.run(asyncio.wait_for(run(), timeout=20))
    assert chunk.samples.dtype == np.int16
    assert chunk.sample_rate_hz == mic.device_rate_hz == mic.sample_rate_hz


def test_a_missing_device_raises_no_microphone_error(pulse_sink: PulseSink) -> None:
    async def run() -> None:
        async with MicrophoneSource("no-such-microphone"):
            pass

    with pytest.raises(NoMicrophoneError, match="no-such-microphone"):
        asyncio.run(asyncio.wait_for(run(), timeout=20))
    with pytest.raises(InvalidConfigError, match="two chunks"):
        MicrophoneSource(buffer_ms=40, chunk_ms=32)


def test_a_reader_that_is_always_late_never_lags_more_than_the_buffer(
    pulse_sink: PulseSink,
) -> None:
    """Reading 20 ms of audio every 60 ms: the backlog stays in the 200 ms ring, where
    the oldest audio is dropped (and reported), so delivered audio is never older than
    the ring plus one chunk, however long this goes on."""

    async def run() -> tuple[list[float], MicrophoneSource]:
        ages = []
        async with MicrophoneSource("pulse", buffer_ms=200, chunk_ms=20) as mic:
            for _ in range(25):
                chunk = await mic.read()
                ages.append(monotonic_s() - chunk.timestamp_s)
                await asyncio.sleep(0.06)
        return ages, mic

    ages, mic = asyncio.run(asyncio.wait_for(run(), timeout=20))
    assert max(ages[-10:]) <= 0.2 + 0.02 + 0.1  # ring + chunk + scheduling slack
    assert mic.stats.samples_dropped > 0
    assert any(isinstance(e, AudioOverflow) for e in mic.events)
