"""Idempotency records: a request with an ``Idempotency-Key`` header runs once.

Records are keyed by (tenant, key), so one tenant can never see, replay or block
another's. Each holds a fingerprint of the request (method, path, body), a state
(``running`` or ``done``) and, once done, the stored response. :meth:`begin` decides
atomically, in one SQLite transaction, what a request gets:

- no live record: it runs (a ``running`` record is written first);
- a record with another fingerprint: 422 (the key was reused for a different request);
- a ``running`` record: 409 (a duplicate arrived while the first is still running);
- a ``done`` record: the stored response, replayed.

A request that fails with a 5xx or is refused for load (429, 503) releases its record,
so that the client's retry runs again. Records expire after the TTL; a ``running``
record older than the TTL is treated as abandoned (its process died).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from glasses_sdk.cloud._keys import connect

__all__ = ["Begin", "IdempotencyBackend", "IdempotencyStore", "Outcome", "StoredResponse"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    created_s REAL NOT NULL,
    status INTEGER,
    headers TEXT,
    body BLOB,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX IF NOT EXISTS records_created ON records (created_s);
"""


class Outcome(Enum):
    """What :meth:`IdempotencyStore.begin` decided."""

    RUN = "run"
    REPLAY = "replay"
    IN_PROGRESS = "in_progress"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class StoredResponse:
    """A response kept for replay."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Begin:
    """The outcome, and the stored response when it is a replay."""

    outcome: Outcome
    response: StoredResponse | None = None


class IdempotencyBackend(Protocol):
    """What the gateway asks of an idempotency store: the seam for a shared one (Redis)
    when several machines serve the same keys. ``begin`` must decide atomically."""

    def begin(self, tenant: str, key: str, fingerprint: str) -> Begin:
        """Run, replay, or refuse (see the module)."""
        ...

    def finish(self, tenant: str, key: str, response: StoredResponse) -> None:
        """Store the response of a request that ran."""
        ...

    def release(self, tenant: str, key: str) -> None:
        """Forget a running record so that a retry runs again."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class IdempotencyStore:
    """Idempotency records in SQLite (WAL), tenant-scoped, with a TTL."""

    def __init__(self, path: Path, ttl_s: float) -> None:
        """Open (creating if needed) the store at ``path``."""
        self.path = path
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._conn = connect(path)
        self._conn.executescript(_SCHEMA)
        self._last_purge_s = 0.0

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def _purge(self, now_s: float) -> None:
        if now_s - self._last_purge_s < 60:
            return
        self._last_purge_s = now_s
        self._conn.execute("DELETE FROM records WHERE created_s < ?", (now_s - self.ttl_s,))

    def begin(self, tenant: str, key: str, fingerprint: str) -> Begin:
        """Decide, atomically, whether this request runs, replays, or is refused."""
        now_s = time.time()
        with self._lock:
            self._purge(now_s)
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT fingerprint, state, created_s, status, headers, body FROM records "
                    "WHERE tenant = ? AND key = ?",
                    (tenant, key),
                ).fetchone()
                if row is not None and row[2] < now_s - self.ttl_s:
                    conn.execute("DELETE FROM records WHERE tenant = ? AND key = ?", (tenant, key))
                    row = None
                if row is None:
                    conn.execute(
                        "INSERT INTO records (tenant, key, fingerprint, state, created_s) "
                        "VALUES (?, ?, ?, 'running', ?)",
                        (tenant, key, fingerprint, now_s),
                    )
                    result = Begin(Outcome.RUN)
                elif row[0] != fingerprint:
                    result = Begin(Outcome.MISMATCH)
                elif row[1] == "running":
                    result = Begin(Outcome.IN_PROGRESS)
                else:
                    headers = [(str(k), str(v)) for k, v in json.loads(row[4])]
                    result = Begin(Outcome.REPLAY, StoredResponse(row[3], headers, bytes(row[5])))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return result

    def finish(self, tenant: str, key: str, response: StoredResponse) -> None:
        """Store the response of a request that ran."""
        with self._lock:
            self._conn.execute(
                "UPDATE records SET state = 'done', status = ?, headers = ?, body = ? "
                "WHERE tenant = ? AND key = ? AND state = 'running'",
                (response.status, json.dumps(response.headers), response.body, tenant, key),
            )

    def release(self, tenant: str, key: str) -> None:
        """Forget a running record (the request failed in a way a retry may fix)."""
        with self._lock:
            self._conn.execute(
                "DELETE FROM records WHERE tenant = ? AND key = ? AND state = 'running'",
                (tenant, key),
            )

    def count(self, tenant: str | None = None) -> int:
        """Live records (of one tenant, or of all)."""
        with self._lock:
            if tenant is None:
                row = self._conn.execute("SELECT COUNT(*) FROM records").fetchone()
            else:
                row = self._conn.execute(
                    "SELECT COUNT(*) FROM records WHERE tenant = ?", (tenant,)
                ).fetchone()
        return int(row[0])
