"""The two small bases every camera and microphone implements, and their in-memory fakes.

A source is an async iterator of timestamped items with ``read``, ``close`` and an async
context manager. Consumers take a source in their constructor (never build one), so
that tests and apps can pass a fake, a file or real hardware alike.

Timestamps are seconds on one monotonic clock (:func:`monotonic_s`), the capture time of
the frame or of the chunk's first sample; every source maps its own clock onto it.

Sources that open a device do it in ``start()`` (``async with`` calls it); what goes
wrong while they run (lost audio, a stalled stream) is reported as typed events
(:mod:`glasses_sdk.capture._events`) through ``subscribe()`` and kept in ``events``.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Self, TypeVar

import numpy as np
import numpy.typing as npt

from glasses_sdk._exceptions import (
    InvalidAudioError,
    InvalidConfigError,
    InvalidFrameError,
    SourceClosedError,
)
from glasses_sdk.capture._events import CaptureEvent

__all__ = [
    "AudioChunk",
    "AudioSource",
    "FakeAudioSource",
    "FakeVideoSource",
    "VideoFrame",
    "VideoSource",
    "monotonic_s",
]


def monotonic_s() -> float:
    """The SDK's one clock: seconds from an arbitrary origin, never going backwards."""
    return time.monotonic()


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One camera frame: BGR ``uint8`` pixels ``(height, width, 3)`` and when it was taken."""

    image: npt.NDArray[np.uint8]
    timestamp_s: float
    frame_number: int

    def __post_init__(self) -> None:
        img = self.image
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
            raise InvalidFrameError(
                "expected a non-empty BGR uint8 image of shape (height, width, 3), "
                f"got dtype {img.dtype} and shape {img.shape}"
            )

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Consecutive mono PCM samples (float32 in [-1, 1], or int16 in a native format)."""

    samples: npt.NDArray[np.float32] | npt.NDArray[np.int16]
    sample_rate_hz: int
    timestamp_s: float
    sequence: int

    def __post_init__(self) -> None:
        s = self.samples
        if s.ndim != 1 or s.dtype not in (np.float32, np.int16):
            raise InvalidAudioError(
                "expected 1-D mono samples of dtype float32 or int16, "
                f"got dtype {s.dtype} and shape {s.shape}"
            )
        if self.sample_rate_hz <= 0:
            raise InvalidAudioError(f"expected a positive sample rate, got {self.sample_rate_hz}")

    @property
    def duration_s(self) -> float:
        """Length of the chunk in seconds."""
        return len(self.samples) / self.sample_rate_hz


_T = TypeVar("_T")


class _Source(ABC, Generic[_T]):
    """What video and audio sources share: async iteration, ``close`` and ``async with``."""

    _EVENT_HISTORY = 64

    def __init__(self) -> None:
        self._closed = False
        self._listeners: list[Callable[[CaptureEvent], None]] = []
        self._events: deque[CaptureEvent] = deque(maxlen=self._EVENT_HISTORY)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def name(self) -> str:
        """What the source reads, for events and messages; subclasses say more."""
        return type(self).__name__

    @property
    def events(self) -> tuple[CaptureEvent, ...]:
        """The most recent events (up to 64), oldest first."""
        return tuple(self._events)

    def subscribe(self, listener: Callable[[CaptureEvent], None]) -> Callable[[], None]:
        """Call ``listener`` with every future event; returns a function that unsubscribes.

        Listeners run on the thread that reads the source, inside ``read()``; an
        exception in a listener propagates to the reader.
        """
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, event: CaptureEvent) -> None:
        self._events.append(event)
        for listener in list(self._listeners):
            listener(event)

    async def start(self) -> None:
        """Open the device now, raising if it cannot be opened; ``async with`` calls it,
        and a source that needs opening also opens on its first :meth:`read`. The fakes
        need nothing, so this does nothing by default."""

    @abstractmethod
    async def read(self) -> _T:
        """The next item; raises :class:`StopAsyncIteration` at the end of a finite
        source and :class:`SourceClosedError` after :meth:`close`."""

    async def close(self) -> None:
        """Release the source; idempotent. Subclasses extend this and call ``super()``."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise SourceClosedError(f"{type(self).__name__} was read after close()")

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> _T:
        if self._closed:
            raise StopAsyncIteration
        return await self.read()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class VideoSource(_Source[VideoFrame]):
    """Base class of every camera: an async iterator of :class:`VideoFrame`."""


class AudioSource(_Source[AudioChunk]):
    """Base class of every microphone: an async iterator of :class:`AudioChunk`."""

    @property
    @abstractmethod
    def sample_rate_hz(self) -> int:
        """The rate of the chunks this source delivers."""


class FakeVideoSource(VideoSource):
    """In-memory camera for tests: yields the given images, paced at ``fps`` (or at once).

    Timestamps are on the SDK clock: when each frame is due when paced (so that a late
    wake-up on a loaded machine does not shift a frame's timestamp), else when it is
    delivered; ``loop`` repeats the images until :meth:`close`.
    """

    def __init__(
        self,
        images: Sequence[npt.NDArray[np.uint8]],
        *,
        fps: float | None = None,
        loop: bool = False,
    ) -> None:
        super().__init__()
        if not images:
            raise InvalidConfigError("FakeVideoSource needs at least one image")
        if fps is not None and fps <= 0:
            raise InvalidConfigError(f"fps must be positive, got {fps}")
        self._frames = [VideoFrame(img, 0.0, 0).image for img in images]  # validates each
        self._interval_s = None if fps is None else 1.0 / fps
        self._loop = loop
        self._index = 0
        self._next_due_s: float | None = None

    async def read(self) -> VideoFrame:
        self._check_open()
        if self._index >= len(self._frames) and not self._loop:
            raise StopAsyncIteration
        stamp_s = monotonic_s()
        if self._interval_s is not None:
            if self._next_due_s is None:
                self._next_due_s = stamp_s
            if self._next_due_s > stamp_s:
                await asyncio.sleep(self._next_due_s - stamp_s)
            stamp_s = self._next_due_s
            self._next_due_s += self._interval_s
        image = self._frames[self._index % len(self._frames)]
        frame = VideoFrame(image, stamp_s, self._index)
        self._index += 1
        return frame


class FakeAudioSource(AudioSource):
    """In-memory microphone for tests: cuts ``samples`` into chunks of ``chunk_samples``.

    With ``realtime=True`` chunks are paced at the rate they would arrive from a real
    microphone; otherwise as fast as they are read. The last chunk may be shorter.
    """

    def __init__(
        self,
        samples: npt.NDArray[np.float32] | Iterable[float],
        *,
        sample_rate_hz: int = 16_000,
        chunk_samples: int = 1280,
        realtime: bool = False,
    ) -> None:
        super().__init__()
        data = np.asarray(samples, dtype=np.float32)
        if data.ndim != 1:
            raise InvalidAudioError(f"expected 1-D mono samples, got shape {data.shape}")
        if not np.all(np.isfinite(data)):
            raise InvalidAudioError("audio contains NaN or infinite samples")
        if chunk_samples <= 0 or sample_rate_hz <= 0:
            raise InvalidConfigError("chunk_samples and sample_rate_hz must be positive")
        self._data = data
        self._rate = sample_rate_hz
        self._chunk = chunk_samples
        self._realtime = realtime
        self._position = 0
        self._sequence = 0
        self._start_s: float | None = None

    @property
    def sample_rate_hz(self) -> int:
        return self._rate

    async def read(self) -> AudioChunk:
        self._check_open()
        if self._position >= len(self._data):
            raise StopAsyncIteration
        if self._start_s is None:
            self._start_s = monotonic_s()
        start = self._position
        end = min(start + self._chunk, len(self._data))
        if self._realtime:
            # A real microphone hands over a chunk once its last sample was captured.
            due = self._start_s + end / self._rate
            delay = due - monotonic_s()
            if delay > 0:
                await asyncio.sleep(delay)
        chunk = AudioChunk(
            self._data[start:end].copy(),
            self._rate,
            self._start_s + start / self._rate,
            self._sequence,
        )
        self._position = end
        self._sequence += 1
        return chunk
