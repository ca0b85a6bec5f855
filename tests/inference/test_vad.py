"""Voice activity on real speech, silence and noise; streaming equals whole clip."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from glasses_sdk._exceptions import InvalidAudioError, InvalidConfigError
from glasses_sdk.inference import (
    ModelRegistry,
    SessionManager,
    SpeechSegment,
    VadOptions,
    VoiceActivityDetector,
)
from glasses_sdk.preprocess.audio import resample


def _voiced_frames(x: NDArray[np.float32], rate: int, frame_s: float = 0.032) -> NDArray[np.bool_]:
    """An energy reference of voiced time, independent of the model: 32 ms frames within
    20 dB of the loudest one, in runs of at least 3 frames (~100 ms). The recording's
    floor sits 25-40 dB down with clicks and breaths up to -15 dB, which a lower bound
    or single frames would count as voice."""
    n = int(rate * frame_s)
    frames = x[: x.size // n * n].reshape(-1, n)
    rms_db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = rms_db > rms_db.max() - 20
    voiced = np.zeros_like(loud)
    start = None
    for i, flag in enumerate([*loud.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= 3:
                voiced[start:i] = True
            start = None
    return voiced


def _flagged(
    segments: list[SpeechSegment], count: int, frame_s: float = 0.032
) -> NDArray[np.bool_]:
    centres = (np.arange(count) + 0.5) * frame_s
    flagged = np.zeros(count, dtype=bool)
    for s in segments:
        flagged |= (centres >= s.start_s) & (centres < s.end_s)
    return flagged


def test_speech_is_found_in_real_speech(
    registry: ModelRegistry, speech_16k: NDArray[np.float32]
) -> None:
    result = VoiceActivityDetector().detect(speech_16k, 16000)
    voiced = _voiced_frames(speech_16k, 16000)
    flagged = _flagged(result.segments, voiced.size)
    recall = (voiced & flagged).sum() / voiced.sum()
    assert recall >= 0.8, (recall, result.segments)
    assert len(result.segments) >= 3  # a read passage has pauses between phrases
    assert result.duration_s == pytest.approx(speech_16k.size / 16000)
    assert result.probabilities.size == -(-speech_16k.size // 512)


@pytest.mark.parametrize("kind", ["silence", "white", "pink", "hum"])
@pytest.mark.parametrize("level", [0.003, 0.1, 0.5])
def test_no_speech_in_silence_or_noise(registry: ModelRegistry, kind: str, level: float) -> None:
    rng = np.random.default_rng(7)
    n = 16000 * 6
    if kind == "silence":
        x = np.zeros(n)
    elif kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
        x = np.fft.irfft(spectrum, n)
    else:
        t = np.arange(n) / 16000
        x = np.sin(2 * np.pi * 50 * t) + 0.3 * np.sin(2 * np.pi * 150 * t)
    if x.any():
        x = x / np.abs(x).max() * level
    result = VoiceActivityDetector().detect(x.astype(np.float32), 16000)
    assert result.segments == [], (kind, level, result.segments)


def test_streaming_in_any_chunks_equals_the_whole_clip(
    registry: ModelRegistry, speech_16k: NDArray[np.float32]
) -> None:
    detector = VoiceActivityDetector()
    whole = detector.detect(speech_16k, 16000).segments
    rng = np.random.default_rng(3)
    streamed: list[SpeechSegment] = []
    i = 0
    while i < speech_16k.size:
        n = int(rng.integers(1, 3000))
        streamed += detector.push(speech_16k[i : i + n])
        i += n
    streamed += detector.flush()
    assert streamed == whole
    detector.reset()
    again = detector.push(speech_16k) + detector.flush()
    assert again == whole


@pytest.mark.parametrize("rate", [8000, 22050, 48000, 37800])
def test_other_sample_rates_are_resampled(
    registry: ModelRegistry, speech_16k: NDArray[np.float32], rate: int
) -> None:
    reference = VoiceActivityDetector().detect(speech_16k, 16000)
    if rate == 37800:  # not a rate of the preprocessing core: detect() uses scipy
        from scipy.signal import resample_poly

        x = resample_poly(speech_16k, 189, 80).astype(np.float32)
    else:
        x = resample(speech_16k, 16000, rate)
    result = VoiceActivityDetector().detect(x, rate)
    flagged_ref = _flagged(reference.segments, reference.probabilities.size)
    flagged = _flagged(result.segments, reference.probabilities.size)
    agreement = (flagged_ref == flagged).mean()
    assert agreement >= 0.9, (rate, agreement)


def test_streaming_at_48k_finds_the_same_speech(
    registry: ModelRegistry, speech_16k: NDArray[np.float32]
) -> None:
    x = resample(speech_16k, 16000, 48000)
    detector = VoiceActivityDetector(VadOptions(sample_rate_hz=48000))
    segments: list[SpeechSegment] = []
    for i in range(0, x.size, 4800):
        segments += detector.push(x[i : i + 4800])
    segments += detector.flush()
    whole = VoiceActivityDetector().detect(speech_16k, 16000).segments
    assert len(segments) == len(whole)
    for a, b in zip(segments, whole, strict=True):
        assert a.start_s == pytest.approx(b.start_s, abs=0.07)
        assert a.end_s == pytest.approx(b.end_s, abs=0.07)


def test_int16_input_is_accepted(registry: ModelRegistry, speech_16k: NDArray[np.float32]) -> None:
    pcm = np.round(speech_16k * 32767).astype(np.int16)
    a = VoiceActivityDetector().detect(pcm, 16000).segments
    b = VoiceActivityDetector().detect(speech_16k, 16000).segments
    assert len(a) == len(b)


def test_options_change_the_segments(
    registry: ModelRegistry, speech_16k: NDArray[np.float32]
) -> None:
    default = VoiceActivityDetector().detect(speech_16k, 16000).segments
    merged = VoiceActivityDetector(VadOptions(min_silence_ms=1500)).detect(speech_16k, 16000)
    assert len(merged.segments) < len(default)
    strict = VoiceActivityDetector(VadOptions(min_speech_ms=2000)).detect(speech_16k, 16000)
    assert all(s.duration_s >= 2.0 for s in strict.segments)


def test_process_scores_one_chunk_and_keeps_context(
    registry: ModelRegistry, speech_16k: NDArray[np.float32], sessions: SessionManager
) -> None:
    detector = VoiceActivityDetector(sessions=sessions)
    probs = [detector.process(speech_16k[i : i + 512]) for i in range(0, 16000 * 3, 512)]
    assert max(probs) > 0.9
    assert all(0.0 <= p <= 1.0 for p in probs)
    with pytest.raises(InvalidAudioError, match="512 float32 samples"):
        detector.process(speech_16k[:500])
    with pytest.raises(InvalidAudioError, match="float32"):
        detector.process(speech_16k[:512].astype(np.float64))  # type: ignore[arg-type]


def test_bad_input_and_options_are_rejected(registry: ModelRegistry) -> None:
    detector = VoiceActivityDetector()
    with pytest.raises(InvalidAudioError, match="mono"):
        detector.push(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(InvalidAudioError, match="finite"):
        detector.push(np.array([0.0, np.nan], dtype=np.float32))
    with pytest.raises(InvalidAudioError, match="sample_rate_hz"):
        detector.detect(np.zeros(100, dtype=np.float32), 0)
    with pytest.raises(InvalidConfigError, match="threshold"):
        VadOptions(threshold=1.5)
    with pytest.raises(InvalidConfigError, match="streaming accepts"):
        VadOptions(sample_rate_hz=37800)
