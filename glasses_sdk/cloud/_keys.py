"""API keys: random 256-bit tokens, kept only as SHA-256 digests, with scopes and quotas.

A token is ``gsk_`` plus 43 URL-safe base64 characters (32 random bytes). The store
keeps its SHA-256 digest, never the token: a leaked database does not leak keys, and a
lookup is one indexed ``SELECT`` by digest (constant time in the token's content, so no
comparison timing leaks it). Usage against the daily quota is counted in the same
SQLite file (WAL mode), so the CLI can create and revoke keys while a server runs.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glasses_sdk._exceptions import InvalidInputError

__all__ = ["SCOPES", "ApiKey", "KeyStore", "hash_token"]

SCOPES: dict[str, str] = {
    "inference": "call the model routes (/v1/...)",
    "metrics": "read /metrics and /readyz details",
    "admin": "manage keys (/v1/admin/...); implies every other scope",
}
"""The scopes a key can hold, and what each allows."""

_TOKEN_PREFIX = "gsk_"
_MAX_CACHED_KEYS = 10_000


def hash_token(token: str) -> str:
    """The hex SHA-256 digest a token is stored and looked up by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One key's record (never its token)."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_s: float
    revoked_s: float | None = None
    rate_per_s: float | None = None
    """Overrides the server's default refill rate when set."""
    burst: int | None = None
    quota_per_day: int | None = None
    """Requests allowed per UTC day; None is unlimited."""

    def allows(self, scope: str) -> bool:
        """Whether this key holds ``scope`` (admin holds every scope)."""
        return scope in self.scopes or "admin" in self.scopes

    def to_json(self) -> dict[str, Any]:
        """The key as ``keys list --json`` shows it."""
        return {
            "id": self.key_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_s": round(self.created_s, 3),
            "revoked": self.revoked_s is not None,
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
            "quota_per_day": self.quota_per_day,
        }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_s REAL NOT NULL,
    revoked_s REAL,
    rate_per_s REAL,
    burst INTEGER,
    quota_per_day INTEGER
);
CREATE TABLE IF NOT EXISTS usage (
    key_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (key_id, day)
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A WAL-mode SQLite connection usable from any thread (callers hold a lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable across process crashes in WAL mode; only power loss can lose the
    # last transactions.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _row_to_key(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(
        key_id=row[0],
        name=row[1],
        scopes=tuple(json.loads(row[2])),
        created_s=row[3],
        revoked_s=row[4],
        rate_per_s=row[5],
        burst=row[6],
        quota_per_day=row[7],
    )


_COLUMNS = "key_id, name, scopes, created_s, revoked_s, rate_per_s, burst, quota_per_day"


class KeyStore:
    """API keys in SQLite: create, look up by token, list, revoke, count usage."""

    def __init__(self, path: Path) -> None:
        """Open (creating if needed) the store at ``path``."""
        self.path = path
        self._lock = threading.Lock()
        self._conn = connect(path)
        self._conn.executescript(_SCHEMA)
        # verify() answers from this cache while the file is unchanged: SQLite's
        # data_version moves whenever another connection (the CLI, another worker)
        # commits, and our own create/revoke clear it, so a revoked key is refused at
        # once. A lookup is then one PRAGMA (7 us) instead of a SELECT and a row (24 us).
        self._verified: dict[str, ApiKey | None] = {}
        self._data_version = -1

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create(
        self,
        name: str,
        scopes: Iterable[str] = ("inference",),
        *,
        rate_per_s: float | None = None,
        burst: int | None = None,
        quota_per_day: int | None = None,
    ) -> tuple[str, ApiKey]:
        """A new key: returns its token (shown once, never stored) and its record."""
        scope_list = tuple(sorted(set(scopes)))
        unknown = [s for s in scope_list if s not in SCOPES]
        if unknown or not scope_list:
            raise InvalidInputError(
                f"scopes: expected one or more of {sorted(SCOPES)}, got {list(scopes)}"
            )
        if not name or len(name) > 200:
            raise InvalidInputError(f"name: expected 1 to 200 characters, got {name!r}")
        if rate_per_s is not None and rate_per_s <= 0:
            raise InvalidInputError(f"rate_per_s: expected > 0, got {rate_per_s}")
        if burst is not None and burst < 1:
            raise InvalidInputError(f"burst: expected >= 1, got {burst}")
        if quota_per_day is not None and quota_per_day < 0:
            raise InvalidInputError(f"quota_per_day: expected >= 0, got {quota_per_day}")
        token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            key_id="key_" + secrets.token_hex(8),
            name=name,
            scopes=scope_list,
            created_s=time.time(),
            rate_per_s=rate_per_s,
            burst=burst,
            quota_per_day=quota_per_day,
        )
        with self._lock:
            self._conn.execute(
                f"INSERT INTO keys ({_COLUMNS}, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.key_id,
                    key.name,
                    json.dumps(list(key.scopes)),
                    key.created_s,
                    None,
                    key.rate_per_s,
                    key.burst,
                    key.quota_per_day,
                    hash_token(token),
                ),
            )
        return token, key

    def verify(self, token: str) -> ApiKey | None:
        """The live key whose token this is, or None (unknown or revoked)."""
        if not token.startswith(_TOKEN_PREFIX) or len(token) > 100:
            return None
        digest = hash_token(token)
        with self._lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._verified.clear()
                self._data_version = version
            elif digest in self._verified:
                return self._verified[digest]
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM keys WHERE digest = ? AND revoked_s IS NULL",
                (digest,),
            ).fetchone()
            key = None if row is None else _row_to_key(row)
            # Unknown tokens are not kept: a client sending random ones must not grow it.
            if key is not None and len(self._verified) < _MAX_CACHED_KEYS:
                self._verified[digest] = key
        return key

    def get(self, key_id: str) -> ApiKey | None:
        """A key by its id, revoked or not."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        return None if row is None else _row_to_key(row)

    def list(self) -> list[ApiKey]:
        """Every key, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM keys ORDER BY created_s, key_id"
            ).fetchall()
        return [_row_to_key(r) for r in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; False when no live key has this id."""
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE keys SET revoked_s = ? WHERE key_id = ? AND revoked_s IS NULL",
                (time.time(), key_id),
            )
            # Our own commits do not move data_version: forget what was verified.
            self._verified.clear()
        return cursor.rowcount == 1

    def count_request(self, key: ApiKey, now_s: float | None = None) -> int | None:
        """Count one request against the key's daily quota.

        Returns None when it is within quota (or the key has none), otherwise the seconds
        until the quota resets (the next UTC midnight).
        """
        if key.quota_per_day is None:
            return None
        now_s = time.time() if now_s is None else now_s
        day = int(now_s // 86400)
        with self._lock:
            row = self._conn.execute(
                "INSERT INTO usage (key_id, day, requests) VALUES (?, ?, 1) "
                "ON CONFLICT (key_id, day) DO UPDATE SET requests = requests + 1 "
                "WHERE requests < ? RETURNING requests",
                (key.key_id, day, key.quota_per_day),
            ).fetchone()
        if row is None or row[0] > key.quota_per_day:
            return max(1, int((day + 1) * 86400 - now_s))
        return None
