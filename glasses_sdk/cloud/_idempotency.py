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
record older than the TTL is treated as abandoned.

A process that dies while a request runs (SIGKILL, OOM, power) cannot release its
record. So each record names its writer (host, pid and the pid's start time, which
tells a reused pid apart), and a ``running`` record whose writer on this host is no
longer alive is released: all at once when a store opens, and on the spot when a
retry meets it. Without that, every retry after a crash would get 409 until the TTL.
Writers on another host are never judged dead here (the store is one host's SQLite).

Each response stored also adds one to the key's row in ``executions``, in the same
transaction: a count of committed executions that survives the record's expiry, so
that "no request ran twice" can be proved from the server's side.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from glasses_sdk.cloud._keys import connect

__all__ = [
    "Begin",
    "IdempotencyBackend",
    "IdempotencyStore",
    "Outcome",
    "StoredResponse",
    "instance_id",
    "owner_alive",
    "read_executions",
]

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
    owner TEXT,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX IF NOT EXISTS records_created ON records (created_s);
CREATE TABLE IF NOT EXISTS executions (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    count INTEGER NOT NULL,
    last_s REAL NOT NULL,
    PRIMARY KEY (tenant, key)
);
"""

_PROC_STAT = Path("/proc/self/stat")


def _start_ticks(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), or None if it is gone.

    Off Linux (no /proc) it is ``"?"`` while the pid exists: a reused pid then looks
    alive, which only delays a release until the TTL, never releases a live record.
    """
    if not _PROC_STAT.exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat.rsplit(")", 1)[1].split()[19]


def instance_id() -> str:
    """This process as an idempotency-record writer: ``host:pid:start-ticks``."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def owner_alive(owner: str | None) -> bool:
    """Whether the writer ``owner`` may still be running (unknown writers count as alive)."""
    if owner is None:
        return True
    host, _, rest = owner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    now = _start_ticks(int(pid_text))
    return now is not None and (now == ticks or "?" in (now, ticks))


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
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(records)")}
        if "owner" not in columns:  # a store written before records named their writer
            self._conn.execute("ALTER TABLE records ADD COLUMN owner TEXT")
        self._last_purge_s = 0.0
        self.instance = instance_id()
        self.released_at_start = self.release_dead()
        """How many ``running`` records of dead processes were released on opening."""

    def release_dead(self) -> int:
        """Release every ``running`` record whose writer has died; return how many."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT tenant, key, owner FROM records WHERE state = 'running'"
            ).fetchall()
            dead = [(t, k, o) for t, k, o in rows if not owner_alive(o)]
            for tenant, key, owner in dead:
                self._conn.execute(
                    "DELETE FROM records WHERE tenant = ? AND key = ? AND state = 'running' "
                    "AND owner = ?",
                    (tenant, key, owner),
                )
        return len(dead)

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
                    "SELECT fingerprint, state, created_s, status, headers, body, owner "
                    "FROM records "
                    "WHERE tenant = ? AND key = ?",
                    (tenant, key),
                ).fetchone()
                abandoned = row is not None and row[1] == "running" and not owner_alive(row[6])
                if row is not None and (abandoned or row[2] < now_s - self.ttl_s):
                    conn.execute("DELETE FROM records WHERE tenant = ? AND key = ?", (tenant, key))
                    row = None
                if row is None:
                    conn.execute(
                        "INSERT INTO records (tenant, key, fingerprint, state, created_s, owner) "
                        "VALUES (?, ?, ?, 'running', ?, ?)",
                        (tenant, key, fingerprint, now_s, self.instance),
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
        """Store the response of a request that ran, and count its execution, atomically."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    "UPDATE records SET state = 'done', status = ?, headers = ?, body = ? "
                    "WHERE tenant = ? AND key = ? AND state = 'running'",
                    (response.status, json.dumps(response.headers), response.body, tenant, key),
                )
                if cursor.rowcount == 1:
                    conn.execute(
                        "INSERT INTO executions (tenant, key, count, last_s) VALUES (?, ?, 1, ?) "
                        "ON CONFLICT (tenant, key) DO UPDATE SET count = count + 1, "
                        "last_s = excluded.last_s",
                        (tenant, key, time.time()),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

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

    def executions(self, tenant: str | None = None) -> dict[tuple[str, str], int]:
        """Committed executions per (tenant, key): 1 for every key that ran exactly once."""
        query = "SELECT tenant, key, count FROM executions"
        with self._lock:
            if tenant is None:
                rows = self._conn.execute(query).fetchall()
            else:
                rows = self._conn.execute(query + " WHERE tenant = ?", (tenant,)).fetchall()
        return {(str(t), str(k)): int(c) for t, k, c in rows}


def read_executions(path: Path) -> dict[tuple[str, str], int]:
    """The committed executions of the store at ``path``, read without opening a store
    (which would release records): for tests and the chaos benchmark, after a run."""
    conn = sqlite3.connect(path, timeout=5.0)
    try:
        rows = conn.execute("SELECT tenant, key, count FROM executions").fetchall()
    finally:
        conn.close()
    return {(str(t), str(k)): int(c) for t, k, c in rows}
