"""Listening: the wake word (or a tap), then the command, ended by silero VAD.

Like :class:`~glasses_sdk.inference.WakeWordListener`, but it also says when speech
starts (for :class:`SpeechStartEvent`), can be woken without a wake word (a tap on
the temple), and reports how long the endpointer waited in trailing silence. It is fed
16 kHz float32 from one thread at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glasses_sdk.inference.wakeword import HOP_SAMPLES, WAKE_SAMPLE_RATE_HZ

__all__ = ["CommandEnded", "Heard", "Listener", "SpeechStarted", "Woken"]


@dataclass(frozen=True, slots=True)
class Woken:
    """A wake word (or a tap) started a command."""

    phrase: str
    score: float


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The VAD heard the command begin."""


@dataclass(frozen=True, slots=True)
class CommandEnded:
    """The command's audio, why it ended, and the trailing silence waited for."""

    audio: NDArray[np.float32]
    reason: str
    trailing_silence_ms: float

    @property
    def duration_s(self) -> float:
        """Length of the command audio."""
        return self.audio.size / WAKE_SAMPLE_RATE_HZ


Heard = Woken | SpeechStarted | CommandEnded


class Listener:
    """Wake word detector plus VAD endpointing, as a small state machine."""

    def __init__(
        self,
        detector: Any,
        vad: Any,
        *,
        trailing_silence_ms: float,
        max_command_s: float,
        no_speech_timeout_s: float,
        vad_threshold: float = 0.5,
    ) -> None:
        from glasses_sdk.inference.vad import VAD_CHUNK_SAMPLES

        self.detector = detector
        self.vad = vad
        self._chunk = VAD_CHUNK_SAMPLES
        self._silence_end = int(trailing_silence_ms * WAKE_SAMPLE_RATE_HZ / 1000)
        self._max = int(max_command_s * WAKE_SAMPLE_RATE_HZ)
        self._no_speech = int(no_speech_timeout_s * WAKE_SAMPLE_RATE_HZ)
        self._threshold = vad_threshold
        self.listening = False
        self._reset_command()

    def _reset_command(self) -> None:
        self._parts: list[NDArray[np.float32]] = []
        self._length = 0
        self._speech = False
        self._silence = 0
        self._pending = np.zeros(0, np.float32)

    def wake(self) -> None:
        """Start listening for a command now (a tap), without a wake word."""
        if not self.listening:
            self.listening = True
            self._reset_command()
            self.vad.reset()

    def _end(self, reason: str) -> CommandEnded:
        audio = np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)
        waited = self._silence * 1000.0 / WAKE_SAMPLE_RATE_HZ if reason == "silence" else 0.0
        self.listening = False
        self._reset_command()
        self.detector.reset()
        return CommandEnded(audio, reason, waited)

    def _listen(self, x: NDArray[np.float32], out: list[Heard]) -> NDArray[np.float32]:
        buf = np.concatenate((self._pending, x)) if self._pending.size else x
        i = 0
        while i + self._chunk <= buf.size:
            chunk = buf[i : i + self._chunk]
            i += self._chunk
            self._parts.append(chunk.copy())
            self._length += chunk.size
            if self.vad.process(chunk) >= self._threshold:
                if not self._speech:
                    out.append(SpeechStarted())
                self._speech, self._silence = True, 0
            else:
                self._silence += chunk.size
            reason = None
            if self._speech and self._silence >= self._silence_end:
                reason = "silence"
            elif self._length >= self._max:
                reason = "max_length"
            elif not self._speech and self._length >= self._no_speech:
                reason = "no_speech"
            if reason is not None:
                out.append(self._end(reason))
                return buf[i:]
        self._pending = buf[i:].copy()
        return np.zeros(0, np.float32)

    def push(self, x: NDArray[np.float32]) -> list[Heard]:
        """Feed 16 kHz float32 audio; returns what it completed, in order."""
        out: list[Heard] = []
        while x.size:
            if not self.listening:
                take = min(HOP_SAMPLES, x.size)
                found = self.detector.push(x[:take])
                x = x[take:]
                if found:
                    self.listening = True
                    self._reset_command()
                    self.vad.reset()
                    out.append(Woken(found[0].phrase, float(found[0].score)))
            else:
                x = self._listen(x, out)
        return out

    def flush(self) -> list[Heard]:
        """End of the stream: an open command ends with ``end_of_stream``."""
        if not self.listening:
            return []
        if self._pending.size:
            self._parts.append(self._pending)
        return [self._end("end_of_stream")]
