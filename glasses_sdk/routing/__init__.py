"""Routing: decide per request whether the device or the cloud answers, and reach the
cloud without losing or repeating a request.

- :class:`RoutingPolicy` — the pure local-or-cloud decision, with reasons;
- :class:`CloudClient` — the async HTTP client: deadlines, retries with full jitter
  under a :class:`RetryBudget`, a :class:`CircuitBreaker`, idempotency keys, tracing;
- :class:`Outbox` — the durable, encrypted queue of requests that must reach the cloud.
"""

from glasses_sdk.routing._breaker import (
    BreakerOptions,
    BreakerState,
    CircuitBreaker,
    RetryBudget,
    RetryBudgetOptions,
    full_jitter_backoff_s,
)
from glasses_sdk.routing._client import (
    CloudClient,
    CloudClientOptions,
    CloudResponse,
    ReplayReport,
)
from glasses_sdk.routing._outbox import (
    FailedItem,
    Outbox,
    OutboxCounters,
    OutboxItem,
    OutboxOptions,
)
from glasses_sdk.routing._policy import (
    Conditions,
    Decision,
    PolicyOptions,
    Route,
    RouteRequest,
    RoutingPolicy,
)

__all__ = [
    "BreakerOptions",
    "BreakerState",
    "CircuitBreaker",
    "CloudClient",
    "CloudClientOptions",
    "CloudResponse",
    "Conditions",
    "Decision",
    "FailedItem",
    "Outbox",
    "OutboxCounters",
    "OutboxItem",
    "OutboxOptions",
    "PolicyOptions",
    "ReplayReport",
    "RetryBudget",
    "RetryBudgetOptions",
    "Route",
    "RouteRequest",
    "RoutingPolicy",
    "full_jitter_backoff_s",
]
