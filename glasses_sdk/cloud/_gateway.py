"""The gateway in front of every route, as one ASGI middleware, in this order:

1. ``/healthz`` passes (liveness must not depend on the key store);
2. authentication (``Authorization: Bearer``) and the route's scope — before any body
   byte is read, so an anonymous client cannot make the server buffer anything;
3. the key's token bucket (429), then its daily quota (429, code ``insufficient_quota``);
4. ``X-Deadline-Ms``: malformed is 400, already spent is 504;
5. the body limit: a ``Content-Length`` over it is refused at once; otherwise the stream
   is counted while it is read, and refused (413) the moment it passes the limit —
   chunked bodies included — before anything parses it;
6. idempotency (``Idempotency-Key``): run once, replay, 409 or 422 (see
   :mod:`glasses_sdk.cloud._idempotency`);
7. metrics for everything above, including refusals, and a ``Server-Timing: app;dur=``
   header on every answer (the server's time up to the answer's headers).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from glasses_sdk.cloud._errors import ApiError
from glasses_sdk.cloud._faults import faults
from glasses_sdk.cloud._idempotency import Outcome, StoredResponse
from glasses_sdk.cloud._keys import ApiKey
from glasses_sdk.cloud._limits import Deadline
from glasses_sdk.cloud._redis import RedisIdempotencyStore, RedisTokenBuckets
from glasses_sdk.cloud._state import ServerState

__all__ = ["Gateway"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

T = TypeVar("T")

_PUBLIC = frozenset({"/healthz"})
# Stores whose calls are network round trips (see Gateway._shared_store_call).
_REDIS_STORES = (RedisTokenBuckets, RedisIdempotencyStore)
_MAX_IDEMPOTENCY_KEY = 255
# Answers that a retry may change: they release the idempotency record.
_NOT_STORED = frozenset({408, 409, 425, 429})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _required_scope(path: str) -> str | None:
    if path.startswith("/v1/admin"):
        return "admin"
    if path == "/metrics":
        return "metrics"
    if path.startswith("/v1/"):
        return "inference"
    return None  # /readyz, /openapi.json, /docs: any valid key


async def _send_error(send: Send, error: ApiError) -> None:
    body = error.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Gateway:
    """Authentication, limits, deadlines, the body limit and idempotency (see module)."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        """Wrap ``app``; ``state`` holds the stores and limits."""
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection event."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in self.state.known_routes else "other"
        method = scope["method"]
        status = [500]

        start = time.perf_counter()

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                # The server's own time up to the answer's headers (W3C Server-Timing):
                # clients and the benchmark measure the overhead with it.
                dur = f"app;dur={(time.perf_counter() - start) * 1e3:.3f}".encode()
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"server-timing", dur)],
                }
            await send(message)

        try:
            try:
                await self._handle(scope, receive, send_counted)
            except ApiError as error:
                await _send_error(send_counted, error)
        finally:
            metrics = self.state.metrics
            metrics.requests.labels(route, method, str(status[0])).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - start)

    def _reject(self, reason: str, error: ApiError) -> ApiError:
        self.state.metrics.rejections.labels(reason).inc()
        return error

    def _authenticate(self, scope: Scope) -> ApiKey:
        header = _header(scope, b"authorization")
        scheme, _, token = (header or "").partition(" ")
        if header is None or scheme.lower() != "bearer" or not token.strip():
            raise self._reject(
                "unauthenticated",
                ApiError(
                    401,
                    "authentication_error",
                    "missing API key: send 'Authorization: Bearer <key>' "
                    "(create one with 'glasses cloud keys create')",
                    code="invalid_api_key",
                    headers={"WWW-Authenticate": "Bearer"},
                ),
            )
        key = self.state.keys.verify(token.strip())
        if key is None:
            raise self._reject(
                "unauthenticated",
                ApiError(
                    401,
                    "authentication_error",
                    "invalid API key: it is unknown or was revoked",
                    code="invalid_api_key",
                    headers={"WWW-Authenticate": "Bearer"},
                ),
            )
        return key

    async def _shared_store_call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call a store method: a Redis store's in a worker thread, any other inline.

        A Redis call is a network round trip that may wait up to ``redis_timeout_s``; on
        the event loop it would stall every other request meanwhile. The SQLite and
        in-memory stores answer in microseconds, less than the hop to a thread costs, so
        they stay on the loop. A 503 ``store_unavailable`` is counted as a rejection.
        """
        try:
            if isinstance(getattr(fn, "__self__", None), _REDIS_STORES):
                return await asyncio.to_thread(fn, *args)
            return fn(*args)
        except ApiError as error:
            if error.code == "store_unavailable":
                raise self._reject("store_unavailable", error) from None
            raise

    async def _limit(self, key: ApiKey) -> None:
        settings = self.state.settings
        rate = key.rate_per_s if key.rate_per_s is not None else settings.rate_per_s
        burst = key.burst if key.burst is not None else settings.burst
        wait_s = await self._shared_store_call(self.state.buckets.take, key.key_id, rate, burst)
        if wait_s > 0:
            raise self._reject(
                "rate_limited",
                ApiError(
                    429,
                    "rate_limit_error",
                    f"rate limit of this key reached ({rate:g} requests/s, burst {burst}); "
                    f"retry in {wait_s:.2f} s",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
                ),
            )
        reset_s = self.state.keys.count_request(key)
        if reset_s is not None:
            raise self._reject(
                "quota",
                ApiError(
                    429,
                    "insufficient_quota",
                    f"this key's daily quota of {key.quota_per_day} requests is used up; "
                    f"it resets in {reset_s} s (UTC midnight)",
                    code="insufficient_quota",
                    headers={"Retry-After": str(reset_s)},
                ),
            )

    def _deadline(self, scope: Scope) -> Deadline:
        raw = _header(scope, b"x-deadline-ms")
        try:
            deadline = Deadline.from_header(raw)
        except ValueError:
            raise self._reject(
                "bad_deadline",
                ApiError(
                    400,
                    "invalid_request_error",
                    f"X-Deadline-Ms: expected the milliseconds left as a number, got {raw!r}",
                    param="X-Deadline-Ms",
                ),
            ) from None
        if deadline.expired():
            raise self._reject(
                "deadline",
                ApiError(
                    504,
                    "deadline_exceeded",
                    f"X-Deadline-Ms is {raw}: the deadline passed before the request started",
                    code="deadline_exceeded",
                ),
            )
        return deadline

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.state.settings.max_body_bytes
        too_large = ApiError(
            413,
            "invalid_request_error",
            f"request body is over this server's limit of {limit} bytes",
            code="request_too_large",
        )
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise ApiError(
                    400, "invalid_request_error", f"Content-Length: not a number: {length!r}"
                ) from None
            if declared > limit:
                raise self._reject("body_too_large", too_large)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "invalid_request_error", "the client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._reject("body_too_large", too_large)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path in _PUBLIC:
            await self.app(scope, receive, send)
            return
        key = self._authenticate(scope)
        needed = _required_scope(path)
        if needed is not None and not key.allows(needed):
            raise self._reject(
                "forbidden",
                ApiError(
                    403,
                    "permission_error",
                    f"this key lacks the {needed!r} scope that {path} needs "
                    f"(it has {', '.join(key.scopes)})",
                    code="insufficient_scope",
                ),
            )
        await self._limit(key)
        deadline = self._deadline(scope)
        state = scope.setdefault("state", {})
        state["api_key"] = key
        state["deadline"] = deadline

        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        body = await self._read_body(scope, receive)
        sent = [False]

        async def replay() -> Message:
            if sent[0]:
                # After the body, the app's next receive() waits for the real disconnect
                # (a streaming response listens for it while it streams).
                return await receive()
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}

        idem_key = _header(scope, b"idempotency-key")
        if idem_key is None:
            await self.app(scope, replay, send)
            return
        await self._idempotent(scope, key, idem_key, body=body, receive=replay, send=send)

    async def _idempotent(
        self,
        scope: Scope,
        key: ApiKey,
        idem_key: str,
        *,
        body: bytes,
        receive: Receive,
        send: Send,
    ) -> None:
        if not idem_key or len(idem_key) > _MAX_IDEMPOTENCY_KEY:
            raise ApiError(
                400,
                "invalid_request_error",
                f"Idempotency-Key: expected 1 to {_MAX_IDEMPOTENCY_KEY} characters",
                param="Idempotency-Key",
            )
        digest = hashlib.sha256()
        for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode()):
            digest.update(part.encode("utf-8") + b"\0")
        # A multipart body's boundary is random per request: a retry of the same upload
        # must have the same fingerprint, so the boundary is replaced by a constant.
        content_type = _header(scope, b"content-type") or ""
        _, found, boundary = content_type.partition("boundary=")
        if found and boundary:
            body = body.replace(boundary.strip('"').encode("latin-1"), b"<boundary>")
        digest.update(body)
        store = self.state.idempotency
        begin = await self._shared_store_call(store.begin, key.key_id, idem_key, digest.hexdigest())
        if begin.outcome is Outcome.MISMATCH:
            raise self._reject(
                "idempotency",
                ApiError(
                    422,
                    "idempotency_error",
                    "this Idempotency-Key was already used with a different request; "
                    "use a new key for a new request",
                    code="idempotency_key_reused",
                    param="Idempotency-Key",
                ),
            )
        if begin.outcome is Outcome.IN_PROGRESS:
            raise self._reject(
                "idempotency",
                ApiError(
                    409,
                    "idempotency_error",
                    "a request with this Idempotency-Key is still running; retry later",
                    code="request_in_progress",
                    param="Idempotency-Key",
                    headers={"Retry-After": "1"},
                ),
            )
        if begin.outcome is Outcome.REPLAY:
            stored = begin.response
            assert stored is not None
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers]
            headers.append((b"idempotent-replayed", b"true"))
            await send({"type": "http.response.start", "status": stored.status, "headers": headers})
            await send({"type": "http.response.body", "body": stored.body})
            return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": [], "held": None}
        committed = False

        def storable() -> bool:
            status = int(captured["status"])
            return status < 500 and status not in _NOT_STORED

        def response() -> StoredResponse:
            body = b"".join(captured["body"])
            return StoredResponse(int(captured["status"]), captured["headers"], body)

        async def send_captured(message: Message) -> None:
            nonlocal committed
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                    for k, v in message.get("headers", [])
                ]
                if storable():
                    # The model call is done, nothing is sent or committed yet: the
                    # chaos run's crash point (a no-op unless the fault is configured).
                    faults.after_model_call()
                    content_type = dict(captured["headers"]).get("content-type", "")
                    if not content_type.startswith("text/event-stream"):
                        # Hold the answer until it is committed: a crash after sending
                        # and before committing would let a retry run the request again.
                        captured["held"] = [message]
                        return
            elif message["type"] == "http.response.body":
                captured["body"].append(bytes(message.get("body", b"")))
                held = captured["held"]
                if held is not None:
                    held.append(message)
                    if message.get("more_body", False):
                        return
                    await self._shared_store_call(store.finish, key.key_id, idem_key, response())
                    committed = True
                    captured["held"] = None
                    for pending in held:
                        await send(pending)
                    return
            await send(message)

        try:
            await self.app(scope, receive, send_captured)
        except BaseException:
            if not committed:
                if isinstance(store, _REDIS_STORES):
                    # Handed to a thread and not awaited: a cancelled request still
                    # releases its record, without blocking the loop on Redis.
                    loop = asyncio.get_running_loop()
                    loop.run_in_executor(None, store.release, key.key_id, idem_key)
                else:
                    store.release(key.key_id, idem_key)
            raise
        if committed:
            return
        if not storable():
            await self._shared_store_call(store.release, key.key_id, idem_key)
            return
        # A streamed answer (server-sent events) went out as it came; it is stored now.
        await self._shared_store_call(store.finish, key.key_id, idem_key, response())
