"""espeak-ng synthesis at 16 kHz, the speakers, phrase matching and the options."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from glasses_sdk._exceptions import (
    BackendUnavailableError,
    InvalidAudioError,
    InvalidConfigError,
    InvalidFrameError,
    InvalidInputError,
)
from glasses_sdk.assistant import (
    BUILTIN_PHRASES,
    AssistantOptions,
    BridgeSpeaker,
    FilteredFrame,
    MediaStore,
    PrivacyFilter,
    PrivacyOptions,
    RecordingSpeaker,
    match_intent,
    synthesize,
)
from tests.conftest import need_binary

pytestmark = pytest.mark.timeout(60)


def test_synthesize_speaks_at_16_khz() -> None:
    need_binary("espeak-ng")
    pcm, rate = synthesize("The quick brown fox jumps over the lazy dog.")
    samples = np.frombuffer(pcm, dtype="<i2")
    assert rate == 16_000 and len(pcm) % 2 == 0
    assert 1.5 < samples.size / rate < 6.0  # about 2.5 s of speech
    assert np.abs(samples).max() > 3000  # not silence
    # Text that looks like an option is spoken, never parsed as one.
    dash, _ = synthesize("--help me")
    assert len(dash) > 8000


def test_synthesize_uses_a_process_started_ahead_and_survives_its_death() -> None:
    need_binary("espeak-ng")
    import shutil
    import subprocess

    from glasses_sdk._espeak import parse_wav, resample_to_16k
    from glasses_sdk.assistant._speech import _WarmProcesses
    from glasses_sdk.preprocess.audio import float32_to_int16

    text = "Platform nine departs at ten forty-five."
    cold = subprocess.run(
        [shutil.which("espeak-ng") or "espeak-ng", "-v", "en-us", "-s", "170", "--stdout"],
        input=text.encode(),
        capture_output=True,
        check=True,
    ).stdout
    first, _ = synthesize(text)
    second, _ = synthesize(text)  # from the process the first call started
    # Both are what a process started for the call gives.
    pcm, rate = parse_wav(cold)
    expected = float32_to_int16(resample_to_16k(pcm, rate)).astype("<i2").tobytes()
    assert first == second == expected and len(first) > 16_000

    pool = _WarmProcesses()
    command = (shutil.which("espeak-ng") or "espeak-ng", "-v", "en-us", "--stdout")
    pool.replenish(command)
    waiting = pool._ready[command]
    waiting.kill()  # a spare that died while waiting is replaced, not used
    waiting.wait()
    process = pool.take(command)
    assert process is not waiting
    out, _ = process.communicate(b"hello")
    assert out[:4] == b"RIFF"
    for name in ("en-us", "en-gb", "en-sc", "en-rp", "en-029"):
        pool.replenish((*command[:2], name, command[3]))
    assert len(pool._ready) == _WarmProcesses._KEEP  # the oldest were stopped
    kept = list(pool._ready.values())
    pool.close()
    assert all(p.poll() is not None for p in kept) and pool._ready == {}


def test_synthesize_rejects_bad_input_and_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="non-empty"):
        synthesize("  ")
    with pytest.raises(InvalidInputError, match="at most 10 characters"):
        synthesize("x" * 11, max_chars=10)
    with pytest.raises(InvalidConfigError, match="voice"):
        synthesize("hello", voice="en; rm -rf /")
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on it
    with pytest.raises(BackendUnavailableError, match="apt-get install espeak-ng"):
        synthesize("hello")


def test_speakers() -> None:
    speaker = RecordingSpeaker()
    asyncio.run(speaker.play(b"\x01\x00\x02\x00", 16_000))
    assert speaker.played[0].pcm16 == b"\x01\x00\x02\x00"
    assert speaker.played[0].duration_s == pytest.approx(2 / 16_000)
    with pytest.raises(InvalidAudioError, match="even length"):
        asyncio.run(speaker.play(b"\x01", 16_000))
    with pytest.raises(InvalidAudioError, match="sample_rate_hz"):
        asyncio.run(speaker.play(b"", 0))
    with pytest.raises(InvalidConfigError, match="BridgeDevice"):
        BridgeSpeaker(object())


@pytest.mark.parametrize(
    ("heard", "skill"),
    [
        ("read the text", "read_text"),
        ("read", "read_text"),  # a prefix of the phrase, as a grammar decoder returns
        ("could you read this please", "read_text"),
        ("read the tax", "read_text"),  # misheard, still close
        ("describe the scene", "describe_scene"),
        ("what do you see", "describe_scene"),
        ("take a picture", "take_photo"),
        ("transcribe meet me at noon", "transcribe"),
    ],
)
def test_intent_matches_fuzzily(heard: str, skill: str) -> None:
    match = match_intent(heard, BUILTIN_PHRASES, 0.6)
    assert match is not None and match.skill == skill, match


@pytest.mark.parametrize("heard", ["", "the weather is nice today", "what do you", "hey"])
def test_intent_rejects_what_no_phrase_covers(heard: str) -> None:
    assert match_intent(heard, BUILTIN_PHRASES, 0.6) is None


def test_options_are_validated() -> None:
    bad_options: tuple[dict[str, object], ...] = (
        {"wake_words": ()},
        {"language": "fr"},
        {"deadline_ms": 0},
        {"deadline_ms": float("nan")},
        {"voice": "en us"},
        {"ocr_confidence_threshold": 1.5},
        {"intent_threshold": -0.1},
        {"event_queue": 0},
        {"privacy": "on"},
    )
    for bad in bad_options:
        with pytest.raises(InvalidConfigError):
            AssistantOptions(**bad)  # type: ignore[arg-type]
    bad_privacy: tuple[dict[str, object], ...] = (
        {"keep_media": True},  # where to?
        {"margin": -1.0},
        {"retention_s": 0},
        {"face_model": "tiny"},
        {"blur_faces": False},
    )
    for bad in bad_privacy:
        with pytest.raises(InvalidConfigError):
            PrivacyOptions(**bad)  # type: ignore[arg-type]


def test_filtered_frames_come_only_from_the_filter(caplog: pytest.LogCaptureFixture) -> None:
    image = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(InvalidFrameError, match="PrivacyFilter"):
        FilteredFrame(image, (), True)
    with caplog.at_level(logging.WARNING):
        passthrough = PrivacyFilter(PrivacyOptions(blur_faces=False, reason="unit test"))
    frame = passthrough.apply(image)
    assert not frame.blurred and frame.faces == () and not frame.image.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        frame.image[0, 0, 0] = 1
    assert image is not frame.image  # a copy: the caller's array is untouched
    with pytest.raises(InvalidFrameError, match="BGR uint8"):
        passthrough.apply(np.zeros((48, 64), np.uint8))


def test_media_store_purges_past_retention(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "kept", retention_s=60)
    first = store.save("photo", b"jpeg", "jpg")
    assert first.read_bytes() == b"jpeg" and (first.stat().st_mode & 0o777) == 0o600
    assert store.purge(now_s=first.stat().st_mtime + 30) == []
    assert store.purge(now_s=first.stat().st_mtime + 61) == [first] and not first.exists()
    with pytest.raises(InvalidConfigError):
        MediaStore(tmp_path, retention_s=0)
