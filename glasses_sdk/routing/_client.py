"""The cloud client: deadlines, retries under a budget, a circuit breaker, idempotency.

Every request carries ``Authorization: Bearer``, an ``Idempotency-Key`` (generated when
the caller gives none, and the same on every retry and replay, so that the server runs
it once), ``X-Deadline-Ms`` (the milliseconds left, recomputed for each attempt) and the
W3C trace context of a ``network`` span (a no-op unless the app configured an
OpenTelemetry SDK).

Retries: at most ``max_retries``, on connection errors, timeouts, 408, 409 (the same key
still running on the server), 429, 502, 503 and 504; the wait is full-jitter
exponential backoff, or the server's ``Retry-After`` when longer, and never past the
deadline; each retry must be allowed by the :class:`RetryBudget` and the breaker. Other
4xx are final (:class:`CloudRequestError`).

``durable=True`` writes the request to the :class:`Outbox` before the first send; it is
deleted when the cloud acknowledges it (a 2xx) or refuses it for good (a final 4xx,
recorded as failed). When the cloud cannot be reached, the deadline passes first, or
the server fails with a 5xx, it stays there, and :meth:`CloudClient.replay_outbox`
sends it later with its original key.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
from opentelemetry import propagate, trace

from glasses_sdk._exceptions import (
    CloudRequestError,
    CloudUnavailableError,
    DeadlineExceededError,
    InvalidConfigError,
    InvalidInputError,
)
from glasses_sdk.routing._breaker import (
    BreakerOptions,
    CircuitBreaker,
    RetryBudget,
    RetryBudgetOptions,
    full_jitter_backoff_s,
)
from glasses_sdk.routing._outbox import Outbox, OutboxItem

__all__ = ["CloudClient", "CloudClientOptions", "CloudResponse", "ReplayReport"]

logger = logging.getLogger("glasses_sdk.routing")
_tracer = trace.get_tracer("glasses_sdk.routing")

_RETRY_STATUSES = frozenset({408, 409, 429, 502, 503, 504})
# Answers from a server that is there and working: they close a half-open breaker.
_REACHABLE_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class CloudClientOptions:
    """Timeouts, retries and breaker of a :class:`CloudClient`."""

    timeout_s: float = 10.0
    """The longest one attempt may take (the deadline shortens it)."""
    connect_timeout_s: float = 2.0
    max_retries: int = 3
    backoff_base_s: float = 0.1
    backoff_max_s: float = 2.0
    retry_budget_ratio: float = 0.2
    retry_budget_min_per_s: float = 10.0
    breaker: BreakerOptions = field(default_factory=BreakerOptions)
    replay_deadline_ms: float = 30_000.0
    """The deadline given to each item sent by :meth:`CloudClient.replay_outbox`."""
    seed: int | None = None
    """Seeds the jitter (tests, the chaos run); None: unpredictable."""

    def __post_init__(self) -> None:
        for name in ("timeout_s", "connect_timeout_s", "backoff_base_s", "backoff_max_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InvalidConfigError(f"{name} must be a number of seconds > 0, got {value}")
        if not 0 <= self.max_retries <= 10:
            raise InvalidConfigError(f"max_retries must be within 0..10, got {self.max_retries}")
        if not self.replay_deadline_ms > 0:
            raise InvalidConfigError(
                f"replay_deadline_ms must be > 0, got {self.replay_deadline_ms}"
            )
        RetryBudgetOptions(self.retry_budget_ratio, self.retry_budget_min_per_s)


@dataclass(frozen=True, slots=True)
class CloudResponse:
    """A 2xx answer of the cloud."""

    status: int
    body: dict[str, Any]
    latency_ms: float
    """From the first attempt to the answer, retries and waits included."""
    attempts: int
    idempotency_key: str
    replayed: bool
    """The server answered from its idempotency store (the request had run before)."""
    server_ms: float | None = None
    """The server's own time for the answer (its ``Server-Timing: app;dur=`` header), so
    that the network's share is ``latency_ms - server_ms``; None when it sent none."""


def _server_timing_ms(header: str | None, metric: str = "app") -> float | None:
    """The ``dur`` of one metric of a W3C ``Server-Timing`` header, in milliseconds."""
    if not header:
        return None
    for entry in header.split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        if name != metric:
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "dur":
                try:
                    return max(0.0, float(value.strip().strip('"')))
                except ValueError:
                    return None
    return None


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What :meth:`CloudClient.replay_outbox` did."""

    sent: int
    """Acknowledged now (2xx)."""
    failed: int
    """Refused for good (recorded in the outbox's failed list)."""
    remaining: int
    """Still waiting (the cloud became unreachable again, or a 5xx)."""
    server_replayed: int
    """Of ``sent``, those the server had already run (it answered from its store)."""


class _RetryableError(Exception):
    def __init__(self, reason: str, *, retry_after_s: float = 0.0, breaker_failure: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.breaker_failure = breaker_failure


def _retry_after_s(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0  # unreadable: fall back to our own backoff
    return max(0.0, parsed.timestamp() - time.time())


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        return {"message": response.text[:500]}
    if isinstance(document, dict):
        error = document.get("error", document)
        if isinstance(error, dict):
            return error
        return {"message": str(error)}
    return {"message": str(document)[:500]}


class CloudClient:
    """An async client of the glasses cloud API (see the module)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        options: CloudClientOptions | None = None,
        outbox: Outbox | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """A client of the server at ``base_url``; ``outbox`` is needed for ``durable``."""
        if not base_url.startswith(("http://", "https://")):
            raise InvalidConfigError(f"base_url: expected an http(s):// URL, got {base_url!r}")
        if not api_key:
            raise InvalidConfigError("api_key: expected a key ('glasses cloud keys create')")
        self.options = options or CloudClientOptions()
        self.outbox = outbox
        self._api_key = api_key
        self._breaker = CircuitBreaker(self.options.breaker)
        self.budget = RetryBudget(
            RetryBudgetOptions(self.options.retry_budget_ratio, self.options.retry_budget_min_per_s)
        )
        self._rng = random.Random(self.options.seed)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=httpx.Timeout(self.options.timeout_s, connect=self.options.connect_timeout_s),
        )

    @property
    def available(self) -> bool:
        """Whether the breaker lets requests through (it is not open)."""
        return self._breaker.state != "open"

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker of this client."""
        return self._breaker

    async def aclose(self) -> None:
        """Close the connections (the outbox stays open: it belongs to the caller)."""
        await self._http.aclose()

    async def __aenter__(self) -> CloudClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def post(
        self,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, str] | None = None,
        deadline_ms: float,
        idempotency_key: str | None = None,
        durable: bool = False,
    ) -> CloudResponse:
        """POST ``path`` with retries, the breaker and the deadline (see the module).

        Raises :class:`DeadlineExceededError` when the deadline passes,
        :class:`CloudUnavailableError` when the breaker is open or every attempt failed,
        :class:`CloudRequestError` for an answer no retry changes.
        """
        if not path.startswith("/"):
            raise InvalidInputError(f"path: expected an absolute path such as /v1/x, got {path!r}")
        if not (math.isfinite(deadline_ms) and deadline_ms > 0):
            raise InvalidInputError(f"deadline_ms: expected a number > 0, got {deadline_ms}")
        if json is not None and (files is not None or data is not None):
            raise InvalidInputError("expected either json or files/data, not both")
        if durable and self.outbox is None:
            raise InvalidConfigError("durable=True needs a CloudClient built with an outbox")
        key = idempotency_key or uuid.uuid4().hex
        item = OutboxItem(
            idempotency_key=key,
            path=path,
            json=dict(json) if json is not None else None,
            data=dict(data) if data is not None else None,
            files=dict(files) if files is not None else None,
        )
        if durable:
            assert self.outbox is not None
            self.outbox.put(item)
        self.budget.deposit()
        return await self._send(item, deadline_ms=deadline_ms, durable=durable, replay=False)

    async def _send(
        self, item: OutboxItem, *, deadline_ms: float, durable: bool, replay: bool
    ) -> CloudResponse:
        start = time.monotonic()
        end = start + deadline_ms / 1000
        attempts = 0
        with _tracer.start_as_current_span("network") as span:
            span.set_attribute("http.route", item.path)
            while True:
                if not self._breaker.allow():
                    raise CloudUnavailableError(
                        "the circuit breaker is open after repeated failures",
                        attempts=attempts,
                        retry_after_s=self._breaker.retry_after_s(),
                    )
                left_s = end - time.monotonic()
                if left_s <= 0:
                    raise DeadlineExceededError(
                        f"POST {item.path}: the deadline of {deadline_ms:.0f} ms passed "
                        f"after {attempts} attempt(s)"
                    )
                attempts += 1
                try:
                    response = await self._attempt(item, left_s)
                except _RetryableError as failure:
                    if failure.breaker_failure:
                        self._breaker.record_failure()
                    else:
                        self._breaker.record_success()
                    wait_s = max(
                        full_jitter_backoff_s(
                            attempts - 1,
                            self.options.backoff_base_s,
                            self.options.backoff_max_s,
                            self._rng,
                        ),
                        failure.retry_after_s,
                    )
                    no_time = time.monotonic() + wait_s >= end
                    why = self._give_up(attempts, no_time=no_time)
                    if why is None and no_time:
                        logger.info("POST %s: deadline, last %s", item.path, failure.reason)
                        raise DeadlineExceededError(
                            f"POST {item.path}: no time left within {deadline_ms:.0f} ms for a "
                            f"retry after {attempts} attempt(s) (last: {failure.reason})"
                        ) from None
                    if why is not None:
                        logger.info("POST %s gave up (%s): %s", item.path, why, failure.reason)
                        raise CloudUnavailableError(
                            f"POST {item.path} failed after {attempts} attempt(s), {why}: "
                            f"{failure.reason}",
                            attempts=attempts,
                            retry_after_s=failure.retry_after_s or None,
                        ) from None
                    await asyncio.sleep(wait_s)
                    continue
                return self._finish(
                    item, response, start=start, attempts=attempts, durable=durable, replay=replay
                )

    def _give_up(self, attempts: int, *, no_time: bool) -> str | None:
        """Why no retry may follow ``attempts`` attempts (None: one may, or only the
        deadline stops it); the budget is only drawn on for a retry that will be sent."""
        if attempts > self.options.max_retries:
            return f"max_retries {self.options.max_retries} used"
        if not self.available:
            return "circuit breaker open"
        if no_time:
            return None
        if not self.budget.try_withdraw():
            return "retry budget spent"
        return None

    async def _attempt(self, item: OutboxItem, left_s: float) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Idempotency-Key": item.idempotency_key,
            "X-Deadline-Ms": f"{left_s * 1000:.0f}",
        }
        propagate.inject(headers)
        timeout = httpx.Timeout(
            min(self.options.timeout_s, left_s),
            connect=min(self.options.connect_timeout_s, left_s),
        )
        try:
            response = await self._http.post(
                item.path,
                json=item.json,
                data=item.data,
                files=item.files,
                headers=headers,
                timeout=timeout,
            )
        except httpx.TimeoutException as exc:
            raise _RetryableError(
                f"timed out ({type(exc).__name__})", breaker_failure=True
            ) from None
        except httpx.TransportError as exc:
            raise _RetryableError(
                f"unreachable ({type(exc).__name__}: {exc})", breaker_failure=True
            ) from None
        if response.status_code in _RETRY_STATUSES:
            raise _RetryableError(
                f"{response.status_code}: {_error_body(response).get('message', '')}",
                retry_after_s=_retry_after_s(response.headers.get("retry-after")),
                breaker_failure=response.status_code not in _REACHABLE_STATUSES,
            )
        return response

    def _finish(
        self,
        item: OutboxItem,
        response: httpx.Response,
        *,
        start: float,
        attempts: int,
        durable: bool,
        replay: bool,
    ) -> CloudResponse:
        status = response.status_code
        if status >= 500:
            # Neither retryable nor final: the server failed. A durable item stays in the
            # outbox for a later replay.
            self._breaker.record_failure()
            raise CloudRequestError(status, _error_body(response), path=item.path)
        self._breaker.record_success()
        if not 200 <= status < 300:  # a final 4xx; or a 1xx/3xx, which acknowledges nothing
            error = _error_body(response)
            if durable and self.outbox is not None:
                self.outbox.fail(
                    item.idempotency_key,
                    path=item.path,
                    status=status,
                    reason=str(error.get("message", "")),
                )
            raise CloudRequestError(status, error, path=item.path)
        if durable and self.outbox is not None:
            self.outbox.ack(item.idempotency_key, replayed=replay)
        try:
            document = response.json() if response.content else {}
        except ValueError:
            raise CloudRequestError(
                status, {"message": f"expected a JSON body, got {response.text[:200]!r}"}
            ) from None
        return CloudResponse(
            status=status,
            body=document if isinstance(document, dict) else {"data": document},
            latency_ms=(time.monotonic() - start) * 1000,
            attempts=attempts,
            idempotency_key=item.idempotency_key,
            replayed=response.headers.get("idempotent-replayed") == "true",
            server_ms=_server_timing_ms(response.headers.get("server-timing")),
        )

    async def replay_outbox(self) -> ReplayReport:
        """Send the outbox's items, oldest first, with their original keys.

        Stops at the first item the cloud cannot take now (unreachable, breaker open,
        deadline, 5xx), so that order is kept; that item and the rest stay.
        """
        if self.outbox is None:
            raise InvalidConfigError("replay_outbox needs a CloudClient built with an outbox")
        sent = failed = server_replayed = 0
        for item in self.outbox.pending():
            self.budget.deposit()
            try:
                response = await self._send(
                    item,
                    deadline_ms=self.options.replay_deadline_ms,
                    durable=True,
                    replay=True,
                )
            except CloudRequestError as error:
                if error.status >= 500:
                    break
                failed += 1
                continue
            except (CloudUnavailableError, DeadlineExceededError):
                break
            sent += 1
            server_replayed += response.replayed
        return ReplayReport(sent, failed, len(self.outbox), server_replayed)
