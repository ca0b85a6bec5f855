"""The durable outbox: requests that must reach the cloud, kept until acknowledged.

SQLite in WAL mode (a process crash loses nothing that was committed). Each item is
the whole request — method, path, JSON body, form fields, files, idempotency key —
serialized and encrypted with Fernet (AES-128-CBC + HMAC-SHA256), so that photos and
audio waiting for the network are not readable on disk. The key is given by
configuration or created on first use in a file readable only by its owner (0600);
a key file that group or others can read is refused rather than trusted.

Bounds: ``max_items``, ``max_bytes`` (of the encrypted items) and ``ttl_s``. When full,
``reject_new`` raises :class:`OutboxFullError`; ``drop_oldest`` deletes the oldest
items to make room and counts them as dropped. Expired items are deleted and counted
when the outbox is read or written. Counters (sent, replayed, expired, dropped,
failed) are kept in the database, so they survive restarts; every failed item keeps a
record of why (status and the server's message, not the request's contents).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.fernet import Fernet, InvalidToken

from glasses_sdk._exceptions import InvalidConfigError, InvalidInputError, OutboxFullError

__all__ = ["FailedItem", "Outbox", "OutboxCounters", "OutboxItem", "OutboxOptions"]

FullPolicy = Literal["reject_new", "drop_oldest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_s REAL NOT NULL,
    size_bytes INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS failed (
    idempotency_key TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    failed_s REAL NOT NULL
);
"""
_COUNTERS = ("sent", "replayed", "expired", "dropped", "failed")


@dataclass(frozen=True, slots=True)
class OutboxOptions:
    """Bounds and key location of an :class:`Outbox`."""

    max_items: int = 1000
    max_bytes: int = 64 * 1024 * 1024
    ttl_s: float = 24 * 3600.0
    when_full: FullPolicy = "reject_new"
    key_path: Path | None = None
    """The key file; None: beside the database, named ``<db name>.key``."""

    def __post_init__(self) -> None:
        if self.max_items < 1:
            raise InvalidConfigError(f"max_items must be >= 1, got {self.max_items}")
        if self.max_bytes < 1024:
            raise InvalidConfigError(f"max_bytes must be >= 1024, got {self.max_bytes}")
        if not self.ttl_s > 0:
            raise InvalidConfigError(f"ttl_s must be > 0 seconds, got {self.ttl_s}")
        if self.when_full not in ("reject_new", "drop_oldest"):
            raise InvalidConfigError(
                f"when_full must be 'reject_new' or 'drop_oldest', got {self.when_full!r}"
            )


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One request waiting for the cloud."""

    idempotency_key: str
    path: str
    json: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    created_s: float = field(default_factory=time.time)

    def to_bytes(self) -> bytes:
        """The item as JSON bytes (files' contents in base64)."""
        files = (
            {
                name: [filename, base64.b64encode(content).decode("ascii"), content_type]
                for name, (filename, content, content_type) in self.files.items()
            }
            if self.files is not None
            else None
        )
        document = {
            "idempotency_key": self.idempotency_key,
            "path": self.path,
            "json": self.json,
            "data": self.data,
            "files": files,
            "created_s": self.created_s,
        }
        return json.dumps(document, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> OutboxItem:
        """The inverse of :meth:`to_bytes`."""
        document = json.loads(raw)
        files = document.get("files")
        return cls(
            idempotency_key=document["idempotency_key"],
            path=document["path"],
            json=document.get("json"),
            data=document.get("data"),
            files={
                name: (filename, base64.b64decode(content), content_type)
                for name, (filename, content, content_type) in files.items()
            }
            if files is not None
            else None,
            created_s=float(document["created_s"]),
        )


@dataclass(frozen=True, slots=True)
class OutboxCounters:
    """What happened to the items, since the outbox was created."""

    sent: int
    """Acknowledged on their first send."""
    replayed: int
    """Acknowledged when replayed from the outbox."""
    expired: int
    dropped: int
    failed: int
    """Refused by the cloud for good (a 4xx that no retry changes)."""


@dataclass(frozen=True, slots=True)
class FailedItem:
    """Why one item was given up."""

    idempotency_key: str
    path: str
    status: int
    reason: str
    failed_s: float


def _load_or_create_key(path: Path) -> bytes:
    try:
        # O_EXCL: two processes starting together cannot both write a key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidConfigError(
                f"outbox key file {path} has mode {stat.S_IMODE(mode):o}: expected 600 "
                f"(readable by its owner only); fix it with 'chmod 600 {path}'"
            ) from None
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as file:
        file.write(key)
    return key


class Outbox:
    """A durable, encrypted, bounded queue of requests (see the module); thread-safe."""

    def __init__(
        self, path: Path, *, options: OutboxOptions | None = None, key: bytes | None = None
    ) -> None:
        """Open (creating if needed) the outbox at ``path``; ``key``: a Fernet key, or
        None for the per-install key file."""
        self.path = Path(path)
        self.options = options or OutboxOptions()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if key is None:
            key_path = self.options.key_path or self.path.with_name(self.path.name + ".key")
            key = _load_or_create_key(key_path)
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise InvalidConfigError(
                f"outbox key: expected a Fernet key (32 url-safe base64 bytes), {exc}"
            ) from None
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=5.0, check_same_thread=False, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged put survives power loss, not only a process crash.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        for name in _COUNTERS:
            self._conn.execute(
                "INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)", (name,)
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _bump(self, name: str, by: int = 1) -> None:
        self._conn.execute("UPDATE counters SET value = value + ? WHERE name = ?", (by, name))

    def _expire(self, now_s: float) -> None:
        cursor = self._conn.execute(
            "DELETE FROM items WHERE created_s < ?", (now_s - self.options.ttl_s,)
        )
        if cursor.rowcount:
            self._bump("expired", cursor.rowcount)

    def _totals(self) -> tuple[int, int]:
        row = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM items"
        ).fetchone()
        return int(row[0]), int(row[1])

    def put(self, item: OutboxItem) -> None:
        """Store ``item`` durably (committed when this returns); raises
        :class:`OutboxFullError` when full under ``reject_new``."""
        payload = self._fernet.encrypt(item.to_bytes())
        size = len(payload)
        options = self.options
        if size > options.max_bytes:
            raise OutboxFullError(
                f"outbox item of {size} bytes is over the outbox's max_bytes of {options.max_bytes}"
            )
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._expire(time.time())
                count, total = self._totals()
                if count + 1 > options.max_items or total + size > options.max_bytes:
                    if options.when_full == "reject_new":
                        raise OutboxFullError(
                            f"outbox {self.path} is full ({count} items of {options.max_items}, "
                            f"{total} bytes of {options.max_bytes}); policy reject_new",
                            retry_after_s=1.0,
                        )
                    dropped = 0
                    for row_id, row_size in conn.execute(
                        "SELECT id, size_bytes FROM items ORDER BY id"
                    ).fetchall():
                        if count + 1 <= options.max_items and total + size <= options.max_bytes:
                            break
                        conn.execute("DELETE FROM items WHERE id = ?", (row_id,))
                        count, total, dropped = count - 1, total - row_size, dropped + 1
                    self._bump("dropped", dropped)
                conn.execute(
                    "INSERT INTO items (idempotency_key, created_s, size_bytes, payload) "
                    "VALUES (?, ?, ?, ?)",
                    (item.idempotency_key, item.created_s, size, payload),
                )
                conn.execute("COMMIT")
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK")
                raise InvalidInputError(
                    f"outbox already holds a request with idempotency key {item.idempotency_key!r}"
                ) from None
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def pending(self, limit: int | None = None) -> list[OutboxItem]:
        """Items waiting, oldest first (expired ones are removed and counted first)."""
        with self._lock:
            self._expire(time.time())
            rows = self._conn.execute(
                "SELECT payload FROM items ORDER BY id LIMIT ?", (-1 if limit is None else limit,)
            ).fetchall()
        items = []
        for (payload,) in rows:
            try:
                items.append(OutboxItem.from_bytes(self._fernet.decrypt(bytes(payload))))
            except InvalidToken:
                raise InvalidConfigError(
                    f"outbox {self.path} was written with another key: its items cannot be "
                    "decrypted with this one"
                ) from None
        return items

    def contains(self, idempotency_key: str) -> bool:
        """Whether an item with this key is waiting."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM items WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        return row is not None

    def ack(self, idempotency_key: str, *, replayed: bool = False) -> bool:
        """The cloud acknowledged the item: delete it and count it; False if not held."""
        with self._lock:
            cursor = self._conn.execute(
                "DELETE FROM items WHERE idempotency_key = ?", (idempotency_key,)
            )
            if cursor.rowcount:
                self._bump("replayed" if replayed else "sent")
        return bool(cursor.rowcount)

    def fail(self, idempotency_key: str, *, path: str, status: int, reason: str) -> bool:
        """The cloud refused the item for good: delete it, count it, record why."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    "DELETE FROM items WHERE idempotency_key = ?", (idempotency_key,)
                )
                if cursor.rowcount:
                    self._bump("failed")
                    conn.execute(
                        "INSERT OR REPLACE INTO failed VALUES (?, ?, ?, ?, ?)",
                        (idempotency_key, path, status, reason, time.time()),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return bool(cursor.rowcount)

    def failed(self) -> list[FailedItem]:
        """Every item given up, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT idempotency_key, path, status, reason, failed_s FROM failed "
                "ORDER BY failed_s"
            ).fetchall()
        return [FailedItem(str(k), str(p), int(s), str(r), float(t)) for k, p, s, r, t in rows]

    def counters(self) -> OutboxCounters:
        """The persisted counters."""
        with self._lock:
            values: Mapping[str, int] = dict(
                self._conn.execute("SELECT name, value FROM counters").fetchall()
            )
        return OutboxCounters(**{name: int(values.get(name, 0)) for name in _COUNTERS})

    def __len__(self) -> int:
        with self._lock:
            return self._totals()[0]

    @property
    def size_bytes(self) -> int:
        """Bytes of the encrypted items held."""
        with self._lock:
            return self._totals()[1]
