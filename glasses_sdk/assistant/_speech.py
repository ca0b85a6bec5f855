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
import atexit
import contextlib
import re
import shutil
import subprocess
import threading
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
    command = (exe, "-v", voice, "-s", str(int(speed_wpm)), "--stdout")
    process = _WARM.take(command)
    try:
        out, err = process.communicate(text.encode("utf-8"), timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _stop(process)
        raise BackendUnavailableError(
            "speech synthesis", f"espeak-ng took more than {_TIMEOUT_S:g} s"
        ) from None
    finally:
        _WARM.replenish(command)
    if process.returncode != 0:
        detail = err.decode(errors="replace").strip()
        raise BackendUnavailableError("speech synthesis", f"espeak-ng failed: {detail}")
    try:
        pcm, rate = parse_wav(out)
    except InvalidAudioError as exc:
        raise BackendUnavailableError(
            "speech synthesis", f"espeak-ng's output cannot be read: {exc}"
        ) from None
    pcm16 = float32_to_int16(resample_to_16k(pcm, rate))
    return pcm16.astype("<i2").tobytes(), SPEECH_SAMPLE_RATE_HZ


class _WarmProcesses:
    """espeak-ng processes started before they are needed, one per command line.

    Starting espeak-ng (loading its voice) is most of what a short sentence costs, and
    the first sentence of an answer delays its first sample (``bench_assistant``'s
    ``speech_synthesis`` stage); a process started ahead skips that wait.
    :meth:`take` hands over the waiting process, :meth:`replenish` starts the next one
    once the synthesis is done. A few command lines are kept (the newest ones; each waiting
    espeak-ng is a process of its own, with its own memory); the rest, and all of them
    at exit, are stopped.
    A waiting process whose parent dies reads end-of-file and exits by itself.
    """

    _KEEP = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: dict[tuple[str, ...], subprocess.Popen[bytes]] = {}
        self._registered = False

    @staticmethod
    def _start(command: tuple[str, ...]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def take(self, command: tuple[str, ...]) -> subprocess.Popen[bytes]:
        """A started espeak-ng running ``command``, waiting for its text on stdin: the
        one started ahead when there is one, else a new one."""
        with self._lock:
            process = self._ready.pop(command, None)
        if process is not None and process.poll() is None:
            return process
        if process is not None:
            _stop(process)
        return self._start(command)

    def replenish(self, command: tuple[str, ...]) -> None:
        """Start the process the next :meth:`take` of ``command`` gets (after this call's
        synthesis, so that starting it never delays the answer)."""
        with self._lock:
            if command in self._ready:
                return
            if not self._registered:
                atexit.register(self.close)
                self._registered = True
            with contextlib.suppress(OSError):  # the next call then starts its own
                self._ready[command] = self._start(command)
            while len(self._ready) > self._KEEP:
                _stop(self._ready.pop(next(iter(self._ready))))

    def close(self) -> None:
        """Stop every waiting process."""
        with self._lock:
            ready, self._ready = self._ready, {}
        for process in ready.values():
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate()  # reaps it and closes its pipes


_WARM = _WarmProcesses()


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
