"""The idempotency store after a crash: records of a dead process are released (not
409 until the TTL), a live writer's are kept, and executions are counted on commit."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from glasses_sdk.cloud._idempotency import (
    IdempotencyStore,
    Outcome,
    StoredResponse,
    instance_id,
    owner_alive,
    read_executions,
)

CRASHING_WRITER = """
import os, signal, sys
from pathlib import Path
from glasses_sdk.cloud._idempotency import IdempotencyStore
store = IdempotencyStore(Path(sys.argv[1]), ttl_s=3600)
assert store.begin("tenant", "k1", "fp").outcome.value == "run"
os.kill(os.getpid(), signal.SIGKILL)  # dies while the request 'runs'
"""


def test_running_record_of_a_killed_process_is_released_on_open(tmp_path: Path) -> None:
    db = tmp_path / "idem.sqlite3"
    done = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(db)], timeout=60, check=False)
    assert done.returncode == -9
    state = sqlite3.connect(db).execute("SELECT state FROM records").fetchall()
    assert state == [("running",)]
    store = IdempotencyStore(db, ttl_s=3600)
    try:
        assert store.released_at_start == 1
        # The client's retry runs (it would have been 409 until the TTL before).
        assert store.begin("tenant", "k1", "fp").outcome is Outcome.RUN
    finally:
        store.close()


def test_a_live_writers_running_record_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "idem.sqlite3"
    first = IdempotencyStore(db, ttl_s=3600)
    second = IdempotencyStore(db, ttl_s=3600)  # another worker of the same (live) process
    try:
        assert first.begin("t", "k", "fp").outcome is Outcome.RUN
        assert second.release_dead() == 0
        assert second.begin("t", "k", "fp").outcome is Outcome.IN_PROGRESS
    finally:
        first.close()
        second.close()


def test_a_dead_owner_met_by_a_retry_is_released_on_the_spot(tmp_path: Path) -> None:
    db = tmp_path / "idem.sqlite3"
    store = IdempotencyStore(db, ttl_s=3600)
    try:
        assert store.begin("t", "k", "fp").outcome is Outcome.RUN
        host, pid, _ = instance_id().split(":")
        dead = f"{host}:{pid}:1"  # same pid, another start time: a reused pid
        assert not owner_alive(dead)
        assert owner_alive(instance_id())
        assert owner_alive(None)
        assert owner_alive("another-host:1:1")
        store._conn.execute("UPDATE records SET owner = ?", (dead,))
        assert store.begin("t", "k", "fp").outcome is Outcome.RUN
    finally:
        store.close()


def test_executions_are_counted_once_per_commit(tmp_path: Path) -> None:
    db = tmp_path / "idem.sqlite3"
    store = IdempotencyStore(db, ttl_s=3600)
    response = StoredResponse(200, [("content-type", "application/json")], b"{}")
    try:
        assert store.begin("t", "a", "fp").outcome is Outcome.RUN
        store.finish("t", "a", response)
        store.finish("t", "a", response)  # not running any more: no second count
        assert store.begin("t", "a", "fp").outcome is Outcome.REPLAY
        assert store.begin("t", "b", "fp").outcome is Outcome.RUN
        store.release("t", "b")  # a 5xx: released, not executed
        assert store.executions() == {("t", "a"): 1}
    finally:
        store.close()
    assert read_executions(db) == {("t", "a"): 1}
