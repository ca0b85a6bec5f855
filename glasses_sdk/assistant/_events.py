"""What the assistant tells the app, as frozen dataclasses with ``t_s`` on the SDK clock.

``AssistantEvent`` is their union; the app reads them from :meth:`Assistant.events`
(one bounded queue per subscriber) or registers callbacks with :meth:`Assistant.on`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from glasses_sdk._device import DeviceState
from glasses_sdk.assistant._privacy import FilteredFrame
from glasses_sdk.capture._base import monotonic_s

if TYPE_CHECKING:
    from glasses_sdk.routing import Decision, Route

__all__ = [
    "AnswerEvent",
    "AssistantEvent",
    "DecisionEvent",
    "DeviceStateEvent",
    "ErrorEvent",
    "SpeechEndEvent",
    "SpeechStartEvent",
    "WakeEvent",
]


@dataclass(frozen=True, slots=True)
class WakeEvent:
    """A wake word was heard (``phrase``, model ``score``), or a tap (``phrase="tap"``,
    score 1) started listening."""

    phrase: str
    score: float
    t_s: float = field(default_factory=monotonic_s)


@dataclass(frozen=True, slots=True)
class SpeechStartEvent:
    """The VAD heard the command start."""

    t_s: float = field(default_factory=monotonic_s)


@dataclass(frozen=True, slots=True)
class SpeechEndEvent:
    """The command ended: ``reason`` is ``"silence"``, ``"max_length"``, ``"no_speech"``
    or ``"end_of_stream"``; ``duration_s`` is the command audio's length."""

    duration_s: float
    reason: str
    t_s: float = field(default_factory=monotonic_s)


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """The routing policy decided where a task runs (with its reasons)."""

    decision: Decision
    t_s: float = field(default_factory=monotonic_s)


@dataclass(frozen=True, slots=True)
class AnswerEvent:
    """The answer to one command.

    ``skill`` is the skill that answered (``"unknown"`` when no skill matched);
    ``source`` where it was computed; ``latency_ms`` per stage, those that happened:
    ``endpointing_wait`` (trailing silence the endpointer waited), ``intent``
    (transcription and matching; a cloud transcription's time is also in
    ``network``/``server``), ``capture``, ``privacy``, ``inference``, ``network``,
    ``server``, ``speech_synthesis`` (the first spoken part), ``first_audio`` (from
    the last voiced sample, or the call, to the first part reaching the speaker),
    ``speech_synthesis_rest``, ``playback`` and ``total``; ``audio_pcm16`` the spoken
    answer (16 kHz mono,
    empty when speech is off); ``frame`` the privacy-filtered photo the skill used;
    ``data`` the skill's details (text lines, face boxes, ...); ``transcript`` what the
    command was understood as; ``decision`` the skill's routing decision.
    """

    skill: str
    text: str
    source: Route
    latency_ms: dict[str, float]
    audio_pcm16: bytes = b""
    frame: FilteredFrame | None = None
    data: dict[str, Any] = field(default_factory=dict)
    transcript: str | None = None
    decision: Decision | None = None
    sample_rate_hz: int = 16_000
    t_s: float = field(default_factory=monotonic_s)


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """Something failed: ``error`` says what; ``skill`` which skill, if any."""

    error: str
    skill: str | None = None
    t_s: float = field(default_factory=monotonic_s)


@dataclass(frozen=True, slots=True)
class DeviceStateEvent:
    """The device's battery, heat, throttling or LED changed."""

    state: DeviceState
    t_s: float = field(default_factory=monotonic_s)


AssistantEvent = (
    WakeEvent
    | SpeechStartEvent
    | SpeechEndEvent
    | DecisionEvent
    | AnswerEvent
    | ErrorEvent
    | DeviceStateEvent
)
"""Every event the assistant emits."""
