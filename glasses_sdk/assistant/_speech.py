"""Spoken answers: espeak-ng synthesis at 16 kHz, and the speakers that play it.

:func:`synthesize` runs ``espeak-ng --stdout`` (about 100x faster than real time here)
with the text on stdin (so text starting with ``-`` is never read as an option),
parses its WAV (espeak-ng streams it with bogus size fields) and resamples 22,050 Hz to
16 kHz with the preprocessing core, both in :mod:`glasses_sdk._espeak`, which the
wake-word trainer shares. A :class:`Speaker` plays PCM16 mono:
:class:`BridgeSpeaker` on the glasses, :class:`SoundDeviceSpeaker` on this computer,
:class:`RecordingSpeaker` in memory (it ships for tests and reports).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from glasses_sdk._espeak import SAMPLE_RATE_HZ, parse_wav, resample_to_16k
from glasses_sdk._exceptions import (
    BackendUnavailableError,
    InvalidAudioError,
    InvalidConfigError,
    InvalidInputError,
)

__all__ = [
    "SPEECH_SAMPLE_RATE_HZ",
    "BridgeSpeaker",
    "PlayedAudio",
    "RecordingSpeaker",
    "SoundDeviceSpeaker",
    "Speaker",
    "synthesize",
]

SPEECH_SAMPLE_RATE_HZ = SAMPLE_RATE_HZ
"""The rate of every synthesized answer (the device speaker's native rate)."""
MAX_TEXT_CHARS = 2000
"""The longest text :func:`synthesize` accepts (about two minutes of speech)."""

_VOICE = re.compile(r"^[A-Za-z0-9_+\-]{1,40}$")
_TIMEOUT_S = 30.0


def synthesize(
    text: str, voice: str = "en-us", *, speed_wpm: int = 170, max_chars: int = MAX_TEXT_CHARS
) -> tuple[bytes, int]:
    """``text`` spoken by espeak-ng's ``voice``: ``(pcm16 little-endian mono, 16000)``.

    Raises:
        InvalidInputError: empty text, or text longer than ``max_chars``.
        InvalidConfigError: a voice name that is not an espeak-ng voice name.
        BackendUnavailableError: espeak-ng is not installed, or failed.
    """
    from glasses_sdk.preprocess.audio import float32_to_int16

    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("text: expected a non-empty string to speak")
    if len(text) > max_chars:
        raise InvalidInputError(
            f"text: expected at most {max_chars} characters to speak, got {len(text)}"
        )
    if not _VOICE.match(voice):
        raise InvalidConfigError(f"voice: expected an espeak-ng voice name, got {voice!r}")
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise BackendUnavailableError(
            "speech synthesis", "espeak-ng is not installed (Debian: apt-get install espeak-ng)"
        )
    try:
        done = subprocess.run(
            [exe, "-v", voice, "-s", str(int(speed_wpm)), "--stdout"],
            input=text.encode("utf-8"),
            capture_output=True,
            check=True,
            timeout=_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip()
        raise BackendUnavailableError("speech synthesis", f"espeak-ng failed: {detail}") from None
    except subprocess.TimeoutExpired:
        raise BackendUnavailableError(
            "speech synthesis", f"espeak-ng took more than {_TIMEOUT_S:g} s"
        ) from None
    try:
        pcm, rate = parse_wav(done.stdout)
    except InvalidAudioError as exc:
        raise BackendUnavailableError(
            "speech synthesis", f"espeak-ng's output cannot be read: {exc}"
        ) from None
    pcm16 = float32_to_int16(resample_to_16k(pcm, rate))
    return pcm16.astype("<i2").tobytes(), SPEECH_SAMPLE_RATE_HZ


def _check_pcm(pcm16: bytes, sample_rate_hz: int) -> None:
    if not isinstance(pcm16, bytes | bytearray | memoryview) or len(pcm16) % 2:
        raise InvalidAudioError("pcm16: expected bytes of 16-bit samples (an even length)")
    if not isinstance(sample_rate_hz, int) or sample_rate_hz <= 0:
        raise InvalidAudioError(
            f"sample_rate_hz: expected a positive integer, got {sample_rate_hz!r}"
        )


@runtime_checkable
class Speaker(Protocol):
    """Where spoken answers go: PCM16 mono at ``sample_rate_hz``."""

    async def play(self, pcm16: bytes, sample_rate_hz: int) -> None:
        """Play (or queue) the samples; returns once they are handed over."""
        ...


class BridgeSpeaker:
    """The glasses' own speaker, through the firmware bridge session's ``play_audio``."""

    def __init__(self, device: Any) -> None:
        """``device`` is a :class:`~glasses_sdk.BridgeDevice` (or anything with
        ``session.play_audio(pcm, sample_rate_hz=...)``)."""
        session = getattr(device, "session", None)
        if session is None or not hasattr(session, "play_audio"):
            raise InvalidConfigError(
                "BridgeSpeaker: expected a BridgeDevice (a device with session.play_audio)"
            )
        self._session = session

    async def play(self, pcm16: bytes, sample_rate_hz: int) -> None:
        _check_pcm(pcm16, sample_rate_hz)
        await self._session.play_audio(bytes(pcm16), sample_rate_hz=sample_rate_hz)


class SoundDeviceSpeaker:
    """This computer's default output device (sounddevice over PortAudio)."""

    def __init__(self, device: int | str | None = None) -> None:
        try:
            import sounddevice
        except (ImportError, OSError) as exc:
            raise BackendUnavailableError(
                "audio output", f"sounddevice cannot load PortAudio ({exc})"
            ) from None
        self._sd: Any = sounddevice
        self._device = device

    async def play(self, pcm16: bytes, sample_rate_hz: int) -> None:
        _check_pcm(pcm16, sample_rate_hz)
        samples = np.frombuffer(bytes(pcm16), dtype="<i2")

        def blocking() -> None:
            self._sd.play(samples, samplerate=sample_rate_hz, device=self._device, blocking=True)

        await asyncio.to_thread(blocking)


@dataclass(frozen=True, slots=True)
class PlayedAudio:
    """One clip a :class:`RecordingSpeaker` was given."""

    pcm16: bytes
    sample_rate_hz: int

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.pcm16) / 2 / self.sample_rate_hz


class RecordingSpeaker:
    """Keeps what it is asked to play, in memory (for tests, reports and the demo)."""

    def __init__(self) -> None:
        self.played: list[PlayedAudio] = []

    async def play(self, pcm16: bytes, sample_rate_hz: int) -> None:
        _check_pcm(pcm16, sample_rate_hz)
        self.played.append(PlayedAudio(bytes(pcm16), sample_rate_hz))
