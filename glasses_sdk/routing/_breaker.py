"""A circuit breaker and a retry budget: what keeps a failing cloud from being hammered.

Both take an injectable clock (``time.monotonic`` by default) so that tests drive them
with a fake one, and both are thread-safe.

:class:`CircuitBreaker` — closed, open, half-open. It opens after ``consecutive_failures``
failures in a row, or when at least ``failure_ratio`` of the last ``window_calls`` calls
failed once at least ``min_calls`` were seen; after ``cool_down_s`` it lets
``half_open_probes`` calls through; one success closes it, one failure reopens it.

:class:`RetryBudget` — retries as a ratio of requests (Finagle's ``RetryBudget``, gRPC's
retry throttling): every request deposits ``ratio`` of a retry, every retry withdraws
one, over a sliding ``ttl_s`` window, plus a floor of ``min_retries_per_s`` so that a
quiet client can still retry. When many requests fail, retries stop at about
``ratio`` extra load instead of multiplying it by ``max_retries``.
"""

from __future__ import annotations

import enum
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from glasses_sdk._exceptions import InvalidConfigError

__all__ = [
    "BreakerOptions",
    "BreakerState",
    "CircuitBreaker",
    "RetryBudget",
    "RetryBudgetOptions",
    "full_jitter_backoff_s",
]

Clock = Callable[[], float]


class BreakerState(enum.StrEnum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerOptions:
    """When a :class:`CircuitBreaker` opens and how it probes."""

    consecutive_failures: int = 5
    failure_ratio: float = 0.5
    min_calls: int = 10
    window_calls: int = 20
    """The sliding window (last calls) over which ``failure_ratio`` is judged."""
    cool_down_s: float = 5.0
    half_open_probes: int = 1

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise InvalidConfigError(
                f"consecutive_failures must be >= 1, got {self.consecutive_failures}"
            )
        if not 0.0 < self.failure_ratio <= 1.0:
            raise InvalidConfigError(f"failure_ratio must be in (0, 1], got {self.failure_ratio}")
        if not 1 <= self.min_calls <= self.window_calls:
            raise InvalidConfigError(
                f"expected 1 <= min_calls <= window_calls, got {self.min_calls} and "
                f"{self.window_calls}"
            )
        if not (math.isfinite(self.cool_down_s) and self.cool_down_s >= 0):
            raise InvalidConfigError(f"cool_down_s must be >= 0, got {self.cool_down_s}")
        if self.half_open_probes < 1:
            raise InvalidConfigError(f"half_open_probes must be >= 1, got {self.half_open_probes}")


class CircuitBreaker:
    """Closed, open, half-open (see the module); ``clock`` returns seconds."""

    def __init__(
        self, options: BreakerOptions | None = None, *, clock: Clock = time.monotonic
    ) -> None:
        """A closed breaker."""
        self.options = options or BreakerOptions()
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._window: deque[bool] = deque(maxlen=self.options.window_calls)
        self._consecutive = 0
        self._opened_s = 0.0
        self._probes = 0
        self.opened_count = 0
        """How many times it has opened."""

    def _tick(self) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_s >= self.options.cool_down_s
        ):
            self._state = BreakerState.HALF_OPEN
            self._probes = 0

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker turns half-open once its cool-down is over)."""
        with self._lock:
            self._tick()
            return self._state

    def retry_after_s(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        with self._lock:
            self._tick()
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_s + self.options.cool_down_s - self._clock())

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open this takes one probe slot."""
        with self._lock:
            self._tick()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                return False
            if self._probes < self.options.half_open_probes:
                self._probes += 1
                return True
            return False

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_s = self._clock()
        self._window.clear()
        self._consecutive = 0
        self.opened_count += 1

    def record_success(self) -> None:
        """A call reached the service and it answered."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._state = BreakerState.CLOSED
                self._window.clear()
            self._consecutive = 0
            self._window.append(True)

    def record_failure(self) -> None:
        """A call failed: unreachable, timed out, or a 5xx."""
        with self._lock:
            self._tick()
            if self._state is BreakerState.HALF_OPEN:
                self._open()
                return
            if self._state is BreakerState.OPEN:
                return
            self._consecutive += 1
            self._window.append(False)
            failures = self._window.count(False)
            if self._consecutive >= self.options.consecutive_failures or (
                len(self._window) >= self.options.min_calls
                and failures >= self.options.failure_ratio * len(self._window)
            ):
                self._open()


@dataclass(frozen=True, slots=True)
class RetryBudgetOptions:
    """How many retries a :class:`RetryBudget` allows."""

    ratio: float = 0.2
    """Retries allowed per request, on average over the window."""
    min_retries_per_s: float = 10.0
    ttl_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1000.0:
            raise InvalidConfigError(f"retry ratio must be within 0..1000, got {self.ratio}")
        if not self.min_retries_per_s >= 0:
            raise InvalidConfigError(
                f"min_retries_per_s must be >= 0, got {self.min_retries_per_s}"
            )
        if not (math.isfinite(self.ttl_s) and 0 < self.ttl_s <= 3600):
            raise InvalidConfigError(f"ttl_s must be within (0, 3600], got {self.ttl_s}")


class RetryBudget:
    """Retries as a ratio of requests over a sliding window (see the module)."""

    def __init__(
        self, options: RetryBudgetOptions | None = None, *, clock: Clock = time.monotonic
    ) -> None:
        """An empty budget (only the ``min_retries_per_s`` floor is available)."""
        self.options = options or RetryBudgetOptions()
        self._clock = clock
        self._lock = threading.Lock()
        self._deposits: deque[float] = deque()
        self._withdrawals: deque[float] = deque()

    def _expire(self, now_s: float) -> None:
        horizon = now_s - self.options.ttl_s
        for times in (self._deposits, self._withdrawals):
            while times and times[0] <= horizon:
                times.popleft()

    def _balance(self) -> float:
        floor = self.options.min_retries_per_s * self.options.ttl_s
        return floor + self.options.ratio * len(self._deposits) - len(self._withdrawals)

    @property
    def balance(self) -> float:
        """Retries available now."""
        with self._lock:
            self._expire(self._clock())
            return self._balance()

    def deposit(self) -> None:
        """Record one request (not a retry)."""
        with self._lock:
            now_s = self._clock()
            self._expire(now_s)
            self._deposits.append(now_s)

    def try_withdraw(self) -> bool:
        """Take one retry if the budget allows it."""
        with self._lock:
            now_s = self._clock()
            self._expire(now_s)
            if self._balance() < 1.0:
                return False
            self._withdrawals.append(now_s)
            return True


def full_jitter_backoff_s(
    attempt: int, base_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """The wait before retry ``attempt`` (0 for the first retry): uniform in
    ``[0, min(max_s, base_s * 2**attempt)]`` ("full jitter", which spreads the retries of
    many clients that failed together instead of synchronising them)."""
    if attempt < 0:
        raise InvalidConfigError(f"attempt must be >= 0, got {attempt}")
    cap = min(max_s, base_s * 2.0 ** min(attempt, 62))
    return (rng or random).uniform(0.0, cap)
