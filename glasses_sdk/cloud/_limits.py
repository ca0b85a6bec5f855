"""Rate limits, deadlines and the bounded work queue: the server's load controls.

- :class:`TokenBuckets`: one token bucket per key; an empty bucket says how long until
  the next token (the ``Retry-After`` of a 429).
- :class:`Deadline`: the ``X-Deadline-Ms`` budget as an absolute monotonic time, passed
  down to the model call, which checks it between chunks of work.
- :class:`WorkQueue`: model calls run on a fixed pool of threads; at most ``max_queue``
  calls wait for one, and a call past that is refused at once (503 + ``Retry-After``)
  rather than queued: a queue that grows only turns overload into timeouts for everyone.

:class:`TokenBuckets` are in-process: with several workers each has its own buckets
(the per-key rate is then per worker). ``rate_limit_store = "redis"`` puts them in Redis
instead (:class:`glasses_sdk.cloud._redis.RedisTokenBuckets`, the same contract), for
several processes, Ray Serve replicas or machines.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from glasses_sdk._exceptions import DeadlineExceededError, OverloadedError

__all__ = ["Deadline", "RateLimiter", "TokenBuckets", "WorkQueue"]

T = TypeVar("T")


class RateLimiter(Protocol):
    """What the gateway asks of a rate limiter: the seam for a shared one (Redis) when
    several processes or Ray replicas serve the same keys."""

    def take(self, key: str, rate_per_s: float, burst: int) -> float:
        """Take one token: 0.0 when granted, else the seconds until one is available."""
        ...


class TokenBuckets:
    """Token buckets keyed by tenant, in this process: ``rate_per_s`` refill, ``burst``
    capacity (a :class:`RateLimiter`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Empty; each key's bucket starts full on its first request."""
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)
        self._lock = threading.Lock()

    def take(self, key: str, rate_per_s: float, burst: int) -> float:
        """Take one token: 0.0 when granted, else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate_per_s)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate_per_s


@dataclass(frozen=True)
class Deadline:
    """An absolute time (``time.monotonic()`` seconds) by which an answer is needed."""

    at_s: float | None

    @classmethod
    def none(cls) -> Deadline:
        """No deadline."""
        return cls(None)

    @classmethod
    def from_header(cls, value: str | None, now_s: float | None = None) -> Deadline:
        """From ``X-Deadline-Ms`` (milliseconds left); raises ValueError when malformed."""
        if value is None or value.strip() == "":
            return cls(None)
        ms = float(value.strip())
        if not math.isfinite(ms):
            raise ValueError(f"X-Deadline-Ms: expected a finite number, got {value!r}")
        now_s = time.monotonic() if now_s is None else now_s
        return cls(now_s + ms / 1000.0)

    def remaining_s(self) -> float | None:
        """Seconds left (negative once passed), or None without a deadline."""
        return None if self.at_s is None else self.at_s - time.monotonic()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.at_s is not None and time.monotonic() >= self.at_s

    def check(self, what: str) -> None:
        """Raise :class:`DeadlineExceededError` naming ``what`` if the deadline passed."""
        if self.expired():
            raise DeadlineExceededError(f"the request's deadline passed during {what}")


class WorkQueue:
    """A fixed pool of model threads with a bounded wait line in front of it."""

    def __init__(
        self,
        threads: int,
        max_queue: int,
        retry_after_s: float = 1.0,
        max_admitted: int | None = None,
    ) -> None:
        """``threads`` calls run at once; ``max_queue`` more may wait; ``max_admitted``
        requests at most may be between :meth:`admit` and their answer."""
        self.threads = threads
        self.max_queue = max_queue
        self.max_admitted = max_admitted
        self.admitted = 0
        self.retry_after_s = retry_after_s
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="glasses-model")
        self._slots: asyncio.Semaphore | None = None
        self.waiting = 0
        self.running = 0

    def _semaphore(self) -> asyncio.Semaphore:
        # Created on first use so that it binds to the server's event loop.
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.threads)
        return self._slots

    @property
    def depth(self) -> int:
        """Calls waiting plus calls running."""
        return self.waiting + self.running

    def _overloaded(self) -> OverloadedError:
        return OverloadedError(
            f"the server is at capacity ({self.running} model calls running, "
            f"{self.waiting} waiting, {self.admitted} requests admitted)",
            self.retry_after_s,
        )

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Admit one request to model work, or raise :class:`OverloadedError` at once.

        Routes enter this before decoding an upload, so that a shed request costs no
        decoding; it bounds the requests between admission and answer (those waiting in
        a batch included), which the wait line alone does not.
        """
        if self.max_admitted is not None and self.admitted >= self.max_admitted:
            raise self._overloaded()
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    async def run(self, fn: Callable[[Deadline], T], deadline: Deadline, what: str) -> T:
        """Run ``fn(deadline)`` on a model thread.

        Raises :class:`OverloadedError` when the wait line is full and
        :class:`DeadlineExceededError` when the deadline passes while waiting or before
        the result is back (the thread's work, once started, finishes on its own; ``fn``
        is expected to check the deadline between its chunks of work).
        """
        slots = self._semaphore()
        if slots.locked() and self.waiting >= self.max_queue:
            raise self._overloaded()
        deadline.check(f"{what} (before queueing)")
        self.waiting += 1
        try:
            remaining = deadline.remaining_s()
            try:
                await asyncio.wait_for(slots.acquire(), remaining)
            except TimeoutError:
                raise DeadlineExceededError(
                    f"the request's deadline passed while waiting for a model thread ({what})"
                ) from None
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, fn, deadline)
            result = await future
        finally:
            self.running -= 1
            slots.release()
        deadline.check(what)
        return result

    def close(self) -> None:
        """Stop the threads (waiting for the calls in progress)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
