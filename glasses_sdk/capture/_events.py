"""Typed events that sources and the watchdog report, so that nothing fails silently.

A source keeps its last few events (``source.events``) and calls its listeners
(``source.subscribe(fn)``) on the thread that reads it. Events are emitted from
``read()`` (the reader's thread), never from a capture thread or an audio callback,
so a listener may touch the event loop and app state freely.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AudioOverflow",
    "AudioUnderflow",
    "CaptureEvent",
    "ReopenFailed",
    "StreamLost",
    "StreamRecovered",
    "StreamStalled",
]


@dataclass(frozen=True, slots=True)
class CaptureEvent:
    """Base of every capture event: which source, and when on the SDK clock."""

    source: str
    at_s: float


@dataclass(frozen=True, slots=True)
class StreamStalled(CaptureEvent):
    """No item for ``silent_s`` seconds although the source is open (reported once per stall)."""

    silent_s: float


@dataclass(frozen=True, slots=True)
class StreamLost(CaptureEvent):
    """The stream is considered gone (an error, or silent too long); a reopen follows."""

    reason: str


@dataclass(frozen=True, slots=True)
class ReopenFailed(CaptureEvent):
    """One reopen attempt failed; the next follows after ``retry_in_s`` (exponential backoff)."""

    attempt: int
    reason: str
    retry_in_s: float


@dataclass(frozen=True, slots=True)
class StreamRecovered(CaptureEvent):
    """Items flow again after a stall or a loss; ``downtime_s`` since the last good item."""

    downtime_s: float
    reopened: bool


@dataclass(frozen=True, slots=True)
class AudioOverflow(CaptureEvent):
    """Captured samples were lost: the reader was too slow (ring buffer full, oldest
    samples dropped) or the audio driver reported an input overflow."""

    dropped_samples: int
    """Samples (at the device rate) dropped since the previous report; 0 when only the
    driver reported the overflow and cannot say how many."""
    total_overflows: int


@dataclass(frozen=True, slots=True)
class AudioUnderflow(CaptureEvent):
    """The driver reported an input underflow (it had no samples to give in time)."""

    total_underflows: int
