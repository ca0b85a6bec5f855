"""The durable outbox on real SQLite files: encryption at rest, the key file, caps, TTL,
the policy when full, counters and contents across a close/reopen, order."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from glasses_sdk._exceptions import InvalidConfigError, InvalidInputError, OutboxFullError
from glasses_sdk.routing import Outbox, OutboxItem, OutboxOptions

SECRET = "the-plaintext-secret-4711"


def item(i: int, *, size: int = 10, created_s: float | None = None) -> OutboxItem:
    return OutboxItem(
        idempotency_key=f"key-{i}",
        path="/v1/embeddings",
        json={"input": f"{SECRET} {i} " + "x" * size},
        created_s=time.time() if created_s is None else created_s,
    )


def raw_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("outbox"))


def test_contents_are_encrypted_at_rest(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.put(item(1))
        outbox.put(
            OutboxItem(
                "key-photo",
                "/v1/vision/faces",
                files={"image": ("a.jpg", b"\xff\xd8" + SECRET.encode(), "image/jpeg")},
            )
        )
        assert len(outbox) == 2
        assert SECRET.encode() not in raw_bytes(tmp_path)  # the database and its WAL
        pending = outbox.pending()
    assert pending[0].json == item(1).json
    assert pending[1].files == {"image": ("a.jpg", b"\xff\xd8" + SECRET.encode(), "image/jpeg")}


def test_key_file_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.put(item(1))
    key_file = tmp_path / "outbox.sqlite3.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes()
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:  # the same key after a restart
        assert [i.idempotency_key for i in outbox.pending()] == ["key-1"]
    assert key_file.read_bytes() == key


def test_a_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "my.key"
    key_file.write_bytes(Fernet.generate_key())
    key_file.chmod(0o644)
    with pytest.raises(InvalidConfigError, match="mode 644: expected 600"):
        Outbox(tmp_path / "o.sqlite3", options=OutboxOptions(key_path=key_file))


def test_a_given_key_and_a_wrong_key(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    with Outbox(tmp_path / "o.sqlite3", key=key) as outbox:
        outbox.put(item(1))
    assert not (tmp_path / "o.sqlite3.key").exists()
    with (
        Outbox(tmp_path / "o.sqlite3", key=Fernet.generate_key()) as outbox,
        pytest.raises(InvalidConfigError, match="another key"),
    ):
        outbox.pending()
    with pytest.raises(InvalidConfigError, match="Fernet key"):
        Outbox(tmp_path / "p.sqlite3", key=b"short")


def test_reject_new_when_full(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", options=OutboxOptions(max_items=3)) as outbox:
        for i in range(3):
            outbox.put(item(i))
        with pytest.raises(OutboxFullError, match="3 items of 3"):
            outbox.put(item(9))
        assert [i.idempotency_key for i in outbox.pending()] == ["key-0", "key-1", "key-2"]


def test_drop_oldest_when_full_counts_the_dropped(tmp_path: Path) -> None:
    options = OutboxOptions(max_items=3, when_full="drop_oldest")
    with Outbox(tmp_path / "o.sqlite3", options=options) as outbox:
        for i in range(5):
            outbox.put(item(i))
        assert [i.idempotency_key for i in outbox.pending()] == ["key-2", "key-3", "key-4"]
        assert outbox.counters().dropped == 2


def test_byte_cap(tmp_path: Path) -> None:
    options = OutboxOptions(max_bytes=4096, when_full="drop_oldest")
    with Outbox(tmp_path / "o.sqlite3", options=options) as outbox:
        for i in range(10):
            outbox.put(item(i, size=600))
        assert outbox.size_bytes <= 4096
        assert outbox.counters().dropped == 10 - len(outbox)
        with pytest.raises(OutboxFullError, match="over the outbox's max_bytes"):
            outbox.put(item(99, size=10_000))


def test_ttl_expires_and_counts(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", options=OutboxOptions(ttl_s=60)) as outbox:
        outbox.put(item(1, created_s=time.time() - 120))
        outbox.put(item(2))
        assert [i.idempotency_key for i in outbox.pending()] == ["key-2"]
        assert outbox.counters().expired == 1


def test_counters_items_and_failures_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as outbox:
        for i in range(4):
            outbox.put(item(i))
        assert outbox.ack("key-0")
        assert outbox.ack("key-1", replayed=True)
        assert outbox.fail("key-2", path="/v1/embeddings", status=422, reason="bad input")
        assert not outbox.ack("key-0")  # already gone: not counted twice
    with Outbox(path) as outbox:
        counters = outbox.counters()
        assert (counters.sent, counters.replayed, counters.failed) == (1, 1, 1)
        assert [i.idempotency_key for i in outbox.pending()] == ["key-3"]
        (failed,) = outbox.failed()
        assert (failed.idempotency_key, failed.status, failed.reason) == ("key-2", 422, "bad input")


def test_replay_order_is_insertion_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        order = [7, 3, 9, 1, 5]
        for i in order:
            outbox.put(item(i))
        outbox.ack("key-9")
        assert [i.idempotency_key for i in outbox.pending()] == ["key-7", "key-3", "key-1", "key-5"]
        with pytest.raises(InvalidInputError, match="already holds"):
            outbox.put(item(7))


def test_bad_options() -> None:
    with pytest.raises(InvalidConfigError, match="when_full"):
        OutboxOptions(when_full="spill")  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="max_items"):
        OutboxOptions(max_items=0)


def test_threads_share_one_outbox(tmp_path: Path) -> None:
    import threading

    with Outbox(tmp_path / "o.sqlite3") as outbox:

        def writer(t: int) -> None:
            for i in range(25):
                outbox.put(item(t * 1000 + i))
                if i % 5 == 0:
                    outbox.ack(f"key-{t * 1000 + i}")

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(outbox) == 4 * 20
        assert outbox.counters().sent == 4 * 5
