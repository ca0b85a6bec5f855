"""Redis-backed rate limits and idempotency records, shared by every process and node.

With several uvicorn workers, Ray Serve replicas or machines, per-process token buckets
let a key send its rate once per process, and an SQLite file is not shared between
machines. These two stores keep the same contracts over one Redis
(``rate_limit_store = "redis"``, ``idempotency_store = "redis"``, ``redis_url``):

- :class:`RedisTokenBuckets` (a :class:`~glasses_sdk.cloud.RateLimiter`): one hash per
  key, refilled and taken in one Lua script that reads the *Redis server's* clock
  (``TIME``), so that the hosts' clocks need not agree and two replicas never both take
  the last token.
- :class:`RedisIdempotencyStore` (an :class:`~glasses_sdk.cloud.IdempotencyBackend`):
  one hash per (tenant, key) with the same run / replay / 409 / 422 semantics as the
  SQLite store. Each transition is one Lua script, atomic on the server: ``begin``
  creates the ``running`` record only if none exists (``SET NX`` semantics on a hash, with
  the record's TTL set in the same step) and otherwise classifies the existing record in
  the same round trip; ``finish`` and ``release`` act only on a ``running`` record. The
  TTL is Redis's own key expiry, counted from ``begin``, as the SQLite store counts it.
  A ``running`` record names its writer, and one left by a dead process on this host is
  replaced when a retry meets it; ``finish`` counts the execution (``executions``).

A Redis that cannot be reached makes ``take`` and ``begin`` answer 503 with
``Retry-After`` (code ``store_unavailable``); the request does not run unguarded.
``finish`` and ``release`` run after the answer is decided and only log a failure: the
``running`` record then expires with its TTL.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from typing import Any

from glasses_sdk._exceptions import InvalidConfigError, MissingDependencyError
from glasses_sdk.cloud._errors import ApiError
from glasses_sdk.cloud._idempotency import (
    Begin,
    Outcome,
    StoredResponse,
    instance_id,
    owner_alive,
)
from glasses_sdk.cloud._settings import CloudSettings

__all__ = ["RedisIdempotencyStore", "RedisTokenBuckets", "connect_redis"]

log = logging.getLogger("glasses_sdk.cloud")

# KEYS[1]: the bucket; ARGV: rate per second, burst, expiry in ms. Returns the seconds
# to wait as a string (a Lua number returned to Redis is truncated to an integer).
_TAKE = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now_s
end
tokens = math.min(burst, tokens + math.max(0, now_s - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now_s))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return tostring(wait)
"""

# KEYS[1]: the record; ARGV: fingerprint, TTL in ms, this writer, and the writer of an
# abandoned record to replace ('' for none). A running record names its writer: the
# caller, which can tell whether a writer on its own host is alive, asks again with
# ARGV[4] set when the one it was told about has died.
_BEGIN = """
local record = redis.call('HMGET', KEYS[1], 'fingerprint', 'state', 'status', 'headers',
                          'body', 'owner')
if record[1] and ARGV[4] ~= '' and record[2] == 'running' and record[6] == ARGV[4] then
  redis.call('DEL', KEYS[1])
  record = {false}
end
if not record[1] then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'state', 'running', 'owner', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'run'}
end
if record[2] == 'running' then
  if record[1] ~= ARGV[1] then
    return {'mismatch', record[6] or ''}
  end
  return {'in_progress', record[6] or ''}
end
if record[1] ~= ARGV[1] then
  return {'mismatch', ''}
end
return {'replay', record[3], record[4], record[5]}
"""

# KEYS[1]: the record, KEYS[2]: the tenant's execution counts; ARGV: status, headers
# (JSON), body, the record's key, the counts' expiry in ms. HSET keeps the record's TTL.
_FINISH = """
if redis.call('HGET', KEYS[1], 'state') == 'running' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[1], 'headers', ARGV[2],
             'body', ARGV[3])
  redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  return 1
end
return 0
"""

# KEYS[1]: the record; ARGV[1]: only if this writer holds it ('' for any).
_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') == 'running' then
  if ARGV[1] == '' or redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
    return redis.call('DEL', KEYS[1])
  end
end
return 0
"""

_GLOB = re.compile(r"([*?\[\]\\])")


def connect_redis(settings: CloudSettings) -> Any:
    """A ``redis.Redis`` client (a thread-safe connection pool) for ``settings.redis_url``.

    Connects lazily; raises :class:`InvalidConfigError` when no URL is set and
    :class:`MissingDependencyError` when the ``redis`` package is not installed.
    """
    if settings.redis_url is None:
        raise InvalidConfigError(
            "redis_url is not set: a Redis store needs it (e.g. redis://127.0.0.1:6379/0)"
        )
    try:
        import redis
    except ImportError:
        raise MissingDependencyError("redis", "cloud") from None
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
    )


def _unavailable(what: str, exc: Exception) -> ApiError:
    # The exception's text may hold the URL (and its password): only its type is told.
    log.error("shared store (Redis) failed during %s: %s", what, type(exc).__name__)
    return ApiError(
        503,
        "store_unavailable",
        f"the shared store (Redis) could not be reached during {what} "
        f"({type(exc).__name__}); retry later",
        code="store_unavailable",
        headers={"Retry-After": "1"},
    )


def _redis_error() -> type[Exception]:
    import redis

    error: type[Exception] = redis.RedisError
    return error


class RedisTokenBuckets:
    """Per-key token buckets in Redis, shared by every process (a ``RateLimiter``)."""

    def __init__(self, client: Any, prefix: str = "glasses:") -> None:
        """Use ``client`` (``redis.Redis``); keys are ``<prefix>bucket:<key id>``."""
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_TAKE)
        self._error = _redis_error()

    def take(self, key: str, rate_per_s: float, burst: int) -> float:
        """Take one token: 0.0 when granted, else the seconds until one is available."""
        # A bucket idle for the time it takes to refill is full again: it may go.
        expire_ms = max(1000, math.ceil(burst / rate_per_s * 1000) + 1000)
        try:
            wait = self._script(
                keys=[f"{self._prefix}bucket:{key}"], args=[rate_per_s, burst, expire_ms]
            )
        except self._error as exc:
            raise _unavailable("the rate limit check", exc) from None
        return float(wait)

    def ping(self) -> None:
        """Raise ``redis.RedisError`` when Redis does not answer."""
        self._client.ping()

    def close(self) -> None:
        """Release the connections."""
        self._client.close()


class RedisIdempotencyStore:
    """Idempotency records in Redis, tenant-scoped, with a TTL (an ``IdempotencyBackend``).

    As in the SQLite store, each record names its writer (``host:pid:start``), and a
    ``running`` record whose writer on this host has died is released when a retry meets
    it, so that a crash does not turn every retry into a 409 until the TTL. Writers on
    other hosts are never judged here (their records expire with the TTL). Unlike the
    SQLite store, records of dead writers are not swept when the store opens: a SCAN of a
    shared Redis at every replica start costs more than the on-the-spot release saves
    (:meth:`release_dead` does it on demand).
    """

    def __init__(self, client: Any, ttl_s: float, prefix: str = "glasses:") -> None:
        """Use ``client`` (``redis.Redis``); records expire ``ttl_s`` after ``begin``."""
        self.ttl_s = ttl_s
        self.instance = instance_id()
        self._client = client
        self._prefix = prefix
        self._ttl_ms = max(1, math.ceil(ttl_s * 1000))
        # Execution counts outlive the records (that is their point), but not forever.
        self._counts_ms = max(self._ttl_ms * 2, 7 * 24 * 3600 * 1000)
        self._begin = client.register_script(_BEGIN)
        self._finish = client.register_script(_FINISH)
        self._release = client.register_script(_RELEASE)
        self._error = _redis_error()

    def _tenant_part(self, tenant: str) -> str:
        # The tenant's length makes a key unambiguous whatever either part contains.
        return f"{len(tenant)}:{tenant}:"

    def _key(self, tenant: str, key: str) -> str:
        return f"{self._prefix}idem:{self._tenant_part(tenant)}{key}"

    def _counts_key(self, tenant: str) -> str:
        return f"{self._prefix}executions:{self._tenant_part(tenant)}"

    def begin(self, tenant: str, key: str, fingerprint: str) -> Begin:
        """Decide, atomically, whether this request runs, replays, or is refused."""
        name = self._key(tenant, key)
        try:
            reply = self._begin(keys=[name], args=[fingerprint, self._ttl_ms, self.instance, ""])
            outcome = Outcome(reply[0].decode())
            if outcome in (Outcome.IN_PROGRESS, Outcome.MISMATCH) and reply[1]:
                writer = reply[1].decode()
                if not owner_alive(writer):
                    # Abandoned by a dead process: replaced, in one step, unless another
                    # request got there first (then its outcome is this one's).
                    args = [fingerprint, self._ttl_ms, self.instance, writer]
                    reply = self._begin(keys=[name], args=args)
                    outcome = Outcome(reply[0].decode())
        except self._error as exc:
            raise _unavailable("the idempotency check", exc) from None
        if outcome is not Outcome.REPLAY:
            return Begin(outcome)
        headers = [(str(k), str(v)) for k, v in json.loads(reply[2])]
        return Begin(outcome, StoredResponse(int(reply[1]), headers, bytes(reply[3])))

    def finish(self, tenant: str, key: str, response: StoredResponse) -> None:
        """Store the response of a request that ran, and count its execution, atomically."""
        keys = [self._key(tenant, key), self._counts_key(tenant)]
        args = [response.status, json.dumps(response.headers), response.body, key]
        try:
            self._finish(keys=keys, args=[*args, self._counts_ms])
        except self._error as exc:
            _unavailable("storing an idempotent response", exc)

    def release(self, tenant: str, key: str) -> None:
        """Forget a running record (the request failed in a way a retry may fix)."""
        try:
            self._release(keys=[self._key(tenant, key)], args=[""])
        except self._error as exc:
            _unavailable("releasing an idempotency key", exc)

    def _scan(self, pattern: str) -> Iterator[Any]:
        yield from self._client.scan_iter(match=_GLOB.sub(r"\\\1", pattern) + "*", count=500)

    def release_dead(self) -> int:
        """Release every ``running`` record whose writer on this host has died (a SCAN of
        this prefix's records); return how many."""
        released = 0
        for name in self._scan(f"{self._prefix}idem:"):
            state, owner = self._client.hmget(name, "state", "owner")
            if state == b"running" and owner and not owner_alive(owner.decode()):
                released += int(self._release(keys=[name], args=[owner.decode()]))
        return released

    def count(self, tenant: str | None = None) -> int:
        """Live records (of one tenant, or of all), by a SCAN: for tests and operators."""
        part = self._tenant_part(tenant) if tenant is not None else ""
        return sum(1 for _ in self._scan(f"{self._prefix}idem:{part}"))

    def executions(self, tenant: str | None = None) -> dict[tuple[str, str], int]:
        """Committed executions per (tenant, key): 1 for every key that ran exactly once
        (kept ``max(2 x TTL, 7 days)`` after a tenant's last execution)."""
        out: dict[tuple[str, str], int] = {}
        part = self._tenant_part(tenant) if tenant is not None else ""
        start = len(f"{self._prefix}executions:")
        for name in self._scan(f"{self._prefix}executions:{part}"):
            length, _, rest = name.decode()[start:].partition(":")
            owner = rest[: int(length)]
            for key, count in self._client.hgetall(name).items():
                out[(owner, key.decode())] = int(count)
        return out

    def ping(self) -> None:
        """Raise ``redis.RedisError`` when Redis does not answer."""
        self._client.ping()

    def close(self) -> None:
        """Release the connections."""
        self._client.close()
