"""A stream watchdog: typed events for a stall, a loss and a recovery, and reopening.

:class:`WatchedVideoSource` and :class:`WatchedAudioSource` wrap a *factory* of
sources rather than one source, so that they can build a fresh one after a loss. Each
``read()`` waits for the inner source with a deadline:

- no item for ``stall_after_s``: :class:`StreamStalled` (once per stall), keep waiting;
- no item for ``lost_after_s``, or the inner source raises a capture or OS error:
  :class:`StreamLost`, the inner source is closed and a new one opened, with
  exponential backoff between attempts (:class:`ReopenFailed` for each failure);
- the next item after either: :class:`StreamRecovered`.

The end of a finite source (``StopAsyncIteration``) passes through untouched. The
first open is not retried: a camera that was never there raises at once
(:class:`NoCameraError`), it does not turn into a retry loop. The decisions are
plain functions (:func:`backoff_s`) and one small options class; only the waiting is
async.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from glasses_sdk._exceptions import CaptureError, InvalidConfigError, StreamLostError
from glasses_sdk.capture._base import (
    AudioChunk,
    AudioSource,
    VideoFrame,
    VideoSource,
    _Source,
    monotonic_s,
)
from glasses_sdk.capture._events import (
    ReopenFailed,
    StreamLost,
    StreamRecovered,
    StreamStalled,
)

__all__ = ["WatchdogOptions", "WatchedAudioSource", "WatchedVideoSource", "backoff_s"]


@dataclass(frozen=True, slots=True)
class WatchdogOptions:
    """When a stream counts as stalled or lost, and how reopening backs off."""

    stall_after_s: float = 1.0
    lost_after_s: float = 5.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    backoff_factor: float = 2.0
    max_reopen_attempts: int | None = None
    """Attempts per loss before ``read()`` raises :class:`StreamLostError`; None: forever."""

    def __post_init__(self) -> None:
        if not 0 < self.stall_after_s <= self.lost_after_s:
            raise InvalidConfigError(
                "expected 0 < stall_after_s <= lost_after_s, got "
                f"{self.stall_after_s} and {self.lost_after_s}"
            )
        if self.backoff_initial_s <= 0 or self.backoff_max_s < self.backoff_initial_s:
            raise InvalidConfigError(
                "expected 0 < backoff_initial_s <= backoff_max_s, got "
                f"{self.backoff_initial_s} and {self.backoff_max_s}"
            )
        if self.backoff_factor < 1:
            raise InvalidConfigError(f"backoff_factor must be >= 1, got {self.backoff_factor}")
        if self.max_reopen_attempts is not None and self.max_reopen_attempts < 1:
            raise InvalidConfigError(
                f"max_reopen_attempts must be >= 1 or None, got {self.max_reopen_attempts}"
            )


def backoff_s(attempt: int, options: WatchdogOptions) -> float:
    """The wait after failed attempt ``attempt`` (1-based): initial × factor^(n-1), capped."""
    if attempt < 1:
        raise InvalidConfigError(f"attempt is 1-based, got {attempt}")
    delay = options.backoff_initial_s * options.backoff_factor ** (attempt - 1)
    return float(min(delay, options.backoff_max_s))


_T = TypeVar("_T")

# What counts as the stream going away (rather than a bug to surface): our capture
# errors, and the OS errors a device or socket raises when it disappears.
_LOSS_ERRORS = (CaptureError, OSError)


class _Watch(Generic[_T]):
    """The watchdog logic shared by the video and audio wrappers."""

    def __init__(
        self,
        owner: _Source[_T],
        open_source: Callable[[], _Source[_T]],
        options: WatchdogOptions,
    ) -> None:
        self._owner = owner
        self._open = open_source
        self._options = options
        self.inner: _Source[_T] | None = open_source()
        self._started = False
        self._unsubscribe: Callable[[], None] | None = None
        self._last_item_s = 0.0  # when the last item arrived (or the source started)
        self._waiting_since_s = 0.0  # start of the current deadline
        self._pending: asyncio.Future[_T] | None = None
        self._stalled = False
        self._lost = False
        self.reopens = 0

    def _attach(self, source: _Source[_T]) -> None:
        # Inner events (audio overflows, ...) show up on the wrapper too.
        self._unsubscribe = source.subscribe(self._owner._emit)

    async def start(self) -> None:
        if self._started or self.inner is None:
            return
        self._attach(self.inner)
        await self.inner.start()  # the first open is not retried
        self._started = True
        self._last_item_s = self._waiting_since_s = monotonic_s()

    async def _drop_inner(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_LOSS_ERRORS, StopAsyncIteration):
                await pending
        inner, self.inner = self.inner, None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if inner is not None:
            # Closing a device that is already gone may fail; it is gone either way.
            with contextlib.suppress(*_LOSS_ERRORS):
                await inner.close()

    async def _reopen(self) -> _Source[_T]:
        attempt = 0
        while True:
            if self._owner.closed:
                raise StopAsyncIteration
            attempt += 1
            source: _Source[_T] | None = None
            try:
                source = self._open()
                self._attach(source)
                await source.start()
            except _LOSS_ERRORS as exc:
                if self._unsubscribe is not None:
                    self._unsubscribe()
                    self._unsubscribe = None
                if source is not None:
                    with contextlib.suppress(*_LOSS_ERRORS):
                        await source.close()
                limit = self._options.max_reopen_attempts
                if limit is not None and attempt >= limit:
                    raise StreamLostError(
                        f"{self._owner.name}: could not reopen after {attempt} attempt(s): {exc}"
                    ) from exc
                wait_s = backoff_s(attempt, self._options)
                self._owner._emit(
                    ReopenFailed(self._owner.name, monotonic_s(), attempt, str(exc), wait_s)
                )
                await asyncio.sleep(wait_s)
                continue
            self.inner = source
            if self._closed_meanwhile():  # closed while the new source was opening
                await self._drop_inner()
                raise StopAsyncIteration
            self.reopens += 1
            return source

    def _closed_meanwhile(self) -> bool:
        # A call, not an attribute test, so that type checkers do not assume that an
        # await cannot change it.
        return self._owner.closed

    def _lose(self, reason: str) -> None:
        self._lost = True
        self._owner._emit(StreamLost(self._owner.name, monotonic_s(), reason))

    async def read(self) -> _T:
        await self.start()
        opts = self._options
        while True:
            if self._owner.closed:
                raise StopAsyncIteration  # closed by another task while this one waited
            if self.inner is None:
                await self._reopen()
                # A fresh source gets a fresh deadline; downtime still counts from the
                # last good item.
                self._waiting_since_s = monotonic_s()
                self._stalled = False
            source = self.inner
            assert source is not None
            if self._pending is None:
                # The inner read runs as a task that outlives a stall deadline, so no
                # inner source has to survive being cancelled mid-read, and an item
                # that arrives late is not lost.
                self._pending = asyncio.ensure_future(source.read())
            limit_s = opts.lost_after_s if self._stalled else opts.stall_after_s
            silent_s = monotonic_s() - self._waiting_since_s
            pending = self._pending
            done, _ = await asyncio.wait({pending}, timeout=max(limit_s - silent_s, 0.0))
            if not done:
                silent_s = monotonic_s() - self._waiting_since_s
                if not self._stalled:
                    self._stalled = True
                    self._owner._emit(StreamStalled(self._owner.name, monotonic_s(), silent_s))
                if silent_s >= opts.lost_after_s:
                    self._lose(f"no item for {silent_s:.2f} s")
                    await self._drop_inner()
                continue
            task = done.pop()
            if self._pending is task:
                self._pending = None
            if task.cancelled() and self._owner.closed:
                raise StopAsyncIteration  # closed by another task while this one waited
            try:
                item = task.result()
            except _LOSS_ERRORS as exc:
                self._lose(f"{type(exc).__name__}: {exc}")
                await self._drop_inner()
                continue
            now = monotonic_s()
            if self._stalled or self._lost:
                self._owner._emit(
                    StreamRecovered(
                        self._owner.name, now, now - self._last_item_s, reopened=self._lost
                    )
                )
                self._stalled = self._lost = False
            self._last_item_s = self._waiting_since_s = now
            return item

    async def close(self) -> None:
        await self._drop_inner()


class WatchedVideoSource(VideoSource):
    """A camera that reports stalls and losses as events and reopens itself.

    ``open_source`` builds an unstarted source (for example
    ``lambda: CameraSource(url)``); it is called once now and again after each loss.
    """

    def __init__(
        self, open_source: Callable[[], VideoSource], options: WatchdogOptions | None = None
    ) -> None:
        super().__init__()
        self._watch: _Watch[VideoFrame] = _Watch(self, open_source, options or WatchdogOptions())
        first = self._watch.inner
        self._name = f"watched {first.name}" if first is not None else "watched camera"

    @property
    def name(self) -> str:
        return self._name

    @property
    def inner(self) -> VideoSource | None:
        """The source being read now (None between a loss and a successful reopen)."""
        return cast(VideoSource | None, self._watch.inner)

    @property
    def reopens(self) -> int:
        """Successful reopens so far."""
        return self._watch.reopens

    async def start(self) -> None:
        self._check_open()
        await self._watch.start()

    async def read(self) -> VideoFrame:
        self._check_open()
        return await self._watch.read()

    async def close(self) -> None:
        await super().close()
        await self._watch.close()


class WatchedAudioSource(AudioSource):
    """A microphone that reports stalls and losses as events and reopens itself.

    Every source that ``open_source`` builds must deliver the same sample rate.
    """

    def __init__(
        self, open_source: Callable[[], AudioSource], options: WatchdogOptions | None = None
    ) -> None:
        super().__init__()
        self._watch: _Watch[AudioChunk] = _Watch(self, open_source, options or WatchdogOptions())
        first = cast(AudioSource, self._watch.inner)
        self._rate = first.sample_rate_hz
        self._name = f"watched {first.name}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def sample_rate_hz(self) -> int:
        return self._rate

    @property
    def inner(self) -> AudioSource | None:
        """The source being read now (None between a loss and a successful reopen)."""
        return cast(AudioSource | None, self._watch.inner)

    @property
    def reopens(self) -> int:
        """Successful reopens so far."""
        return self._watch.reopens

    async def start(self) -> None:
        self._check_open()
        await self._watch.start()

    async def read(self) -> AudioChunk:
        self._check_open()
        chunk = await self._watch.read()
        if chunk.sample_rate_hz != self._rate:
            raise StreamLostError(
                f"{self._name}: reopened source delivers {chunk.sample_rate_hz} Hz, "
                f"expected {self._rate} Hz"
            )
        return chunk

    async def close(self) -> None:
        await super().close()
        await self._watch.close()
