"""Circuit breaker transitions and the retry budget on a fake clock; jitter bounds."""

from __future__ import annotations

import random

import pytest

from glasses_sdk._exceptions import InvalidConfigError
from glasses_sdk.routing import (
    BreakerOptions,
    BreakerState,
    CircuitBreaker,
    RetryBudget,
    RetryBudgetOptions,
    full_jitter_backoff_s,
)


class FakeClock:
    """A clock the test moves by hand (a fake of time.monotonic)."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_opens_after_five_consecutive_failures_then_probes_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerOptions(cool_down_s=5.0), clock=clock)
    for _ in range(4):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after_s() == pytest.approx(5.0)
    clock.now_s += 4.9
    assert breaker.state is BreakerState.OPEN
    clock.now_s += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # no second probe while the first is out
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.opened_count == 1


def test_failed_probe_reopens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerOptions(cool_down_s=1.0), clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now_s += 1.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_count == 2
    assert breaker.retry_after_s() == pytest.approx(1.0)


def test_opens_at_half_of_ten_calls_without_five_in_a_row() -> None:
    breaker = CircuitBreaker(clock=FakeClock())
    # S F S F ... : never two failures in a row, 50% over the window.
    for i in range(9):
        (breaker.record_failure if i % 2 else breaker.record_success)()
    assert breaker.state is BreakerState.CLOSED  # 4 of 9: not yet 10 calls
    breaker.record_failure()  # 5 of 10
    assert breaker.state is BreakerState.OPEN


def test_ratio_is_over_a_sliding_window() -> None:
    breaker = CircuitBreaker(BreakerOptions(window_calls=10, min_calls=10), clock=FakeClock())
    for _ in range(4):
        breaker.record_failure()
    for _ in range(10):
        breaker.record_success()  # pushes the failures out of the window
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED  # 4 of the last 10


def test_breaker_options_are_validated() -> None:
    with pytest.raises(InvalidConfigError, match="min_calls"):
        BreakerOptions(min_calls=30, window_calls=20)
    with pytest.raises(InvalidConfigError, match="failure_ratio"):
        BreakerOptions(failure_ratio=0)


def test_retry_budget_is_a_ratio_of_requests_over_a_window() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetOptions(ratio=0.2, min_retries_per_s=0, ttl_s=10), clock=clock)
    assert not budget.try_withdraw()  # no requests, no floor
    for _ in range(10):
        budget.deposit()
    assert budget.balance == pytest.approx(2.0)
    assert budget.try_withdraw()
    assert budget.try_withdraw()
    assert not budget.try_withdraw()  # 2 retries for 10 requests
    clock.now_s += 10.5  # deposits and withdrawals leave the window
    assert budget.balance == pytest.approx(0.0)


def test_retry_budget_floor() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetOptions(ratio=0.0, min_retries_per_s=1, ttl_s=3), clock=clock)
    assert [budget.try_withdraw() for _ in range(4)] == [True, True, True, False]
    clock.now_s += 3.1
    assert budget.try_withdraw()


def test_full_jitter_stays_within_its_bounds_and_spreads() -> None:
    rng = random.Random(7)
    for attempt, cap in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (6, 2.0), (60, 2.0)]:
        values = [full_jitter_backoff_s(attempt, 0.1, 2.0, rng) for _ in range(2000)]
        assert all(0.0 <= v <= cap for v in values)
        # Full jitter: uniform over [0, cap], so both halves are used.
        assert min(values) < cap * 0.05
        assert max(values) > cap * 0.95
        assert sum(values) / len(values) == pytest.approx(cap / 2, rel=0.1)
    with pytest.raises(InvalidConfigError):
        full_jitter_backoff_s(-1, 0.1, 2.0)
