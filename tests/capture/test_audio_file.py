"""FileAudioSource: real speech as 16 kHz mono float32, the native format, other
containers and rates, real-time pacing, and bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from glasses_sdk._exceptions import InvalidAudioError, InvalidConfigError, NoMicrophoneError
from glasses_sdk.capture._audio import FileAudioSource
from glasses_sdk.capture._base import AudioChunk
from glasses_sdk.preprocess.audio import resample


def _chunks(source: FileAudioSource) -> list[AudioChunk]:
    async def run() -> list[AudioChunk]:
        async with source:
            return [c async for c in source]

    return asyncio.run(asyncio.wait_for(run(), timeout=30))


@pytest.fixture(scope="session")
def speech(speech_wav_path: Path) -> tuple[np.ndarray, int]:
    pcm, rate = sf.read(str(speech_wav_path), dtype="int16")
    assert rate == 16_000 and pcm.ndim == 1
    return pcm, rate


def test_speech_arrives_as_16k_mono_float32_chunks_with_sample_timestamps(
    speech_wav_path: Path, speech: tuple[np.ndarray, int]
) -> None:
    pcm, _ = speech
    chunks = _chunks(FileAudioSource(speech_wav_path, origin_s=100.0))
    assert all(c.samples.dtype == np.float32 and c.sample_rate_hz == 16_000 for c in chunks)
    assert {len(c.samples) for c in chunks[:-1]} == {512}  # 32 ms
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), pcm / 32768.0)
    assert [c.sequence for c in chunks] == list(range(len(chunks)))
    np.testing.assert_allclose(
        [c.timestamp_s for c in chunks], 100.0 + np.arange(len(chunks)) * 0.032, atol=1e-9
    )


def test_native_format_keeps_the_rate_and_int16(
    speech_wav_path: Path, speech: tuple[np.ndarray, int]
) -> None:
    chunks = _chunks(
        FileAudioSource(speech_wav_path, sample_rate_hz=None, sample_format="int16", chunk_ms=20)
    )
    assert chunks[0].samples.dtype == np.int16 and len(chunks[0].samples) == 320
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), speech[0])


def test_a_48k_stereo_flac_is_downmixed_and_resampled_by_the_preprocessing_core(
    tmp_path: Path, speech: tuple[np.ndarray, int]
) -> None:
    mono16 = speech[0][:32000].astype(np.float32) / 32768.0
    mono48 = resample(mono16, 16_000, 48_000)
    stereo = np.stack([mono48, mono48 * 0.5], axis=1)
    path = tmp_path / "speech48.flac"
    sf.write(str(path), stereo, 48_000, subtype="PCM_24")
    source = FileAudioSource(path)
    assert source.native_sample_rate_hz == 48_000
    got = np.concatenate([c.samples for c in _chunks(source)])
    decoded, _ = sf.read(str(path), dtype="float32")
    expected = resample(decoded.mean(axis=1, dtype=np.float32), 48_000, 16_000)
    np.testing.assert_allclose(got, expected, atol=1e-6)  # streaming == whole clip
    assert np.corrcoef(got[1000:-1000], mono16[1000:-1000] * 0.75)[0, 1] > 0.99


def test_ogg_vorbis_is_read(tmp_path: Path, speech: tuple[np.ndarray, int]) -> None:
    path = tmp_path / "speech.ogg"
    sf.write(str(path), speech[0][:16000].astype(np.float32) / 32768.0, 16_000, format="OGG")
    chunks = _chunks(FileAudioSource(path))
    assert abs(sum(len(c.samples) for c in chunks) - 16_000) < 600


def test_realtime_takes_the_duration_of_the_audio(tmp_path: Path) -> None:
    path = tmp_path / "quiet.wav"
    sf.write(str(path), np.zeros(3200, np.float32), 16_000)  # 200 ms

    async def run() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with FileAudioSource(path, realtime=True) as source:
            _ = [c async for c in source]
        return loop.time() - start

    assert 0.19 <= asyncio.run(run()) < 1.0


def test_a_cancelled_realtime_read_loses_nothing(speech_wav_path: Path) -> None:
    async def run() -> list[int]:
        async with FileAudioSource(speech_wav_path, realtime=True, chunk_ms=100) as source:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(source.read(), timeout=0.01)
            return [(await source.read()).sequence, (await source.read()).sequence]

    assert asyncio.run(run()) == [0, 1]


def test_bad_files_and_options_raise(tmp_path: Path, speech_wav_path: Path) -> None:
    with pytest.raises(NoMicrophoneError, match="does not exist"):
        FileAudioSource(tmp_path / "missing.wav")
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("hello")
    with pytest.raises(InvalidAudioError, match="WAV, FLAC or OGG"):
        FileAudioSource(not_audio)
    with pytest.raises(InvalidConfigError, match="sample_rate_hz"):
        FileAudioSource(speech_wav_path, sample_rate_hz=12_345)
    with pytest.raises(InvalidConfigError, match="sample_format"):
        FileAudioSource(speech_wav_path, sample_format="int8")  # type: ignore[arg-type]
