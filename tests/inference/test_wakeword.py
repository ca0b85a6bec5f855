"""The shipped "hey glasses" wake word: held-out synthesized utterances are detected,
real speech and noise are not; streaming equals the whole clip; endpointing."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile
from numpy.typing import NDArray

from glasses_sdk import data
from glasses_sdk._exceptions import InvalidAudioError, InvalidConfigError, ModelError
from glasses_sdk.inference._registry import ModelRegistry
from glasses_sdk.inference.wakeword import (
    HOP_SAMPLES,
    EndpointOptions,
    WakeWordDetector,
    WakeWordListener,
    WakeWordModel,
    WakeWordOptions,
)
from glasses_sdk.preprocess.audio import resample
from glasses_sdk.wakeword_train._synth import Voice, espeak_voices, flite_voices, synthesize
from tests.conftest import need_binary, need_data

RATE = 16000


@pytest.fixture(scope="module")
def detector() -> WakeWordDetector:
    return WakeWordDetector()


def _stream(
    clips: list[NDArray[np.float32]], gap_s: float, seed: int
) -> tuple[NDArray[np.float32], list[float]]:
    """Clips separated by ``gap_s`` of quiet noise; returns the audio and each clip's end."""
    rng = np.random.default_rng(seed)
    parts, ends, t = [], [], 0
    for clip in clips:
        gap = (rng.standard_normal(int(gap_s * RATE)) * 1e-3).astype(np.float32)
        parts += [gap, clip]
        t += gap.size + clip.size
        ends.append(t / RATE)
    parts.append(np.zeros(RATE, np.float32))
    return np.concatenate(parts), ends


def _held_out_utterances() -> list[NDArray[np.float32]]:
    need_binary("espeak-ng")
    names = espeak_voices(held_out=True)[::5]
    rng = np.random.default_rng(7)
    return [
        synthesize(
            "hey glasses",
            Voice("espeak", n, int(rng.integers(130, 190)), int(rng.integers(30, 70))),
        )
        for n in names
    ]


def test_shipped_model_is_in_the_registry() -> None:
    registry = ModelRegistry()
    path = registry.path("hey-glasses")
    model = WakeWordModel.load(path)
    assert model.phrase == "hey glasses"
    assert path.stat().st_size < 1_000_000
    assert 0.0 < model.threshold < 1.0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == registry.get("hey-glasses").sha256


def test_held_out_espeak_voices_are_detected(detector: WakeWordDetector) -> None:
    clips = _held_out_utterances()
    audio, ends = _stream(clips, 2.0, seed=1)
    result = detector.detect(audio, RATE)
    hits = 0
    for end in ends:
        near = [d for d in result.detections if end - 0.5 <= d.end_s <= end + 1.0]
        hits += bool(near)
    assert hits >= 0.8 * len(ends), (hits, len(ends), [d.to_json() for d in result.detections])
    # Nothing fires in the gaps, far from an utterance.
    for d in result.detections:
        assert any(end - 0.5 <= d.end_s <= end + 1.0 for end in ends), d


@pytest.mark.xfail(
    strict=True,
    reason="known gap: trained on espeak-ng only, the model misses flite's voices "
    "(max scores 0.002-0.88); see benchmarks/bench_wakeword.py",
)
def test_other_synthesizer_is_detected(detector: WakeWordDetector) -> None:
    need_binary("flite")
    clips = [synthesize("hey glasses", Voice("flite", v, 150)) for v in flite_voices()]
    audio, ends = _stream(clips, 2.0, seed=2)
    result = detector.detect(audio, RATE)
    assert len(result.detections) >= len(ends) // 2, [d.to_json() for d in result.detections]


@pytest.mark.parametrize("name", ["beckett", "two_cities", "endgame"])
def test_silent_on_real_speech(detector: WakeWordDetector, name: str) -> None:
    samples, rate = soundfile.read(str(need_data(lambda: data.speech_path(name))), dtype="float32")
    mono = np.ascontiguousarray(samples if samples.ndim == 1 else samples.mean(axis=1))
    result = detector.detect(mono.astype(np.float32), int(rate))
    assert result.detections == [], [d.to_json() for d in result.detections]


@pytest.mark.parametrize("kind", ["silence", "white", "brown"])
def test_silent_on_noise(detector: WakeWordDetector, kind: str) -> None:
    rng = np.random.default_rng(3)
    n = 30 * RATE
    if kind == "silence":
        audio = np.zeros(n, np.float32)
    elif kind == "white":
        audio = (rng.standard_normal(n) * 0.05).astype(np.float32)
    else:
        brown = np.cumsum(rng.standard_normal(n))
        audio = (0.3 * (brown - brown.mean()) / np.abs(brown).max()).astype(np.float32)
    assert detector.detect(audio, RATE).detections == []


def test_streaming_in_any_chunks_equals_the_whole_clip(detector: WakeWordDetector) -> None:
    clips = _held_out_utterances()[:3]
    audio, _ = _stream(clips, 1.0, seed=4)
    whole = detector.detect(audio, RATE)
    for chunk in (1, 160, 1000, HOP_SAMPLES, 4096):
        detector.reset()
        found = []
        for i in range(0, audio.size, chunk if chunk > 1 else 997):
            found += detector.push(audio[i : i + (chunk if chunk > 1 else 997)])
        found += detector.flush()
        # Equal up to float32 rounding (the log-mel takes other block paths).
        assert [(d.phrase, d.start_s, d.end_s) for d in found] == [
            (d.phrase, d.start_s, d.end_s) for d in whole.detections
        ], chunk
        assert [d.score for d in found] == pytest.approx(
            [d.score for d in whole.detections], abs=1e-5
        )
    int16 = (audio * 32767).astype(np.int16)
    assert len(detector.detect(int16, RATE).detections) == len(whole.detections)
    at_48k = detector.detect(resample(audio, RATE, 48000), 48000)
    assert len(at_48k.detections) == len(whole.detections)


def test_refractory_period_and_several_models_share_a_stream() -> None:
    clip = _held_out_utterances()[0]
    audio = np.concatenate([np.zeros(RATE, np.float32), clip, np.zeros(RATE, np.float32)])
    two = WakeWordDetector(WakeWordOptions(models=("hey-glasses", "hey-glasses")))
    result = two.detect(audio, RATE)
    assert result.scores.shape[1] == 2
    assert np.array_equal(result.scores[:, 0], result.scores[:, 1])
    # Each model fires at most once for one utterance: the refractory period.
    assert len(result.detections) in (0, 2)
    eager = WakeWordDetector(WakeWordOptions(sensitivity=1.0, refractory_s=0.0))
    shy = WakeWordDetector(WakeWordOptions(sensitivity=0.0))
    assert eager.thresholds[0] < two.thresholds[0] < shy.thresholds[0]


def test_listener_returns_the_command_after_the_wake_word(registry: ModelRegistry) -> None:
    from glasses_sdk.inference.vad import VoiceActivityDetector

    need_binary("espeak-ng")
    wake = synthesize("hey glasses", Voice("espeak", "en-us", 150))
    command = synthesize("what time is it in Tokyo", Voice("espeak", "en-gb", 150))
    quiet = np.zeros(int(0.3 * RATE), np.float32)
    audio = np.concatenate([quiet, wake, quiet, command, np.zeros(2 * RATE, np.float32)])
    listener = WakeWordListener(
        WakeWordDetector(), VoiceActivityDetector(), EndpointOptions(trailing_silence_ms=500)
    )
    commands = []
    for i in range(0, audio.size, 777):
        commands += listener.push(audio[i : i + 777])
    commands += listener.flush()
    assert len(commands) == 1, [c.to_json() for c in commands]
    got = commands[0]
    assert got.reason == "silence" and got.speech
    assert got.wake.phrase == "hey glasses"
    # The segment holds the command and ends within the trailing silence after it.
    command_end_s = (2 * quiet.size + wake.size + command.size) / RATE
    assert command_end_s <= got.end_s <= command_end_s + 0.5 + 0.3
    assert got.audio.size == round((got.end_s - got.start_s) * RATE)


def test_listener_ends_a_command_nobody_speaks(registry: ModelRegistry) -> None:
    from glasses_sdk.inference.vad import VoiceActivityDetector

    need_binary("espeak-ng")
    wake = synthesize("hey glasses", Voice("espeak", "en-us", 150))
    audio = np.concatenate([np.zeros(RATE // 2, np.float32), wake, np.zeros(4 * RATE, np.float32)])
    listener = WakeWordListener(
        WakeWordDetector(), VoiceActivityDetector(), EndpointOptions(no_speech_timeout_s=1.0)
    )
    commands = listener.push(audio) + listener.flush()
    assert [c.reason for c in commands] == ["no_speech"]
    assert abs(commands[0].end_s - commands[0].start_s - 1.0) < 0.05


def test_bad_input_and_options_are_rejected(detector: WakeWordDetector, tmp_path: object) -> None:
    with pytest.raises(InvalidAudioError):
        detector.push(np.zeros((2, 100), np.float32))
    with pytest.raises(InvalidAudioError):
        detector.push(np.zeros(100, np.float64))  # type: ignore[arg-type]
    with pytest.raises(InvalidAudioError):
        detector.push(np.full(100, np.nan, np.float32))
    with pytest.raises(InvalidConfigError):
        WakeWordOptions(sensitivity=1.5)
    with pytest.raises(InvalidConfigError):
        WakeWordOptions(models=())
    with pytest.raises(InvalidConfigError):
        EndpointOptions(max_command_s=0)
    with pytest.raises(ModelError):
        WakeWordModel.load(__import__("pathlib").Path("/nonexistent/folder"))
