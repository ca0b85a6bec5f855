"""The server's parts on their own: settings, keys, buckets, idempotency, media, batching."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from glasses_sdk._exceptions import (
    DeadlineExceededError,
    InvalidConfigError,
    InvalidFrameError,
    InvalidInputError,
    OverloadedError,
)
from glasses_sdk.cloud import Deadline, KeyStore, TokenBuckets, WorkQueue, load_settings
from glasses_sdk.cloud._batching import Batcher
from glasses_sdk.cloud._idempotency import IdempotencyStore, Outcome, StoredResponse
from glasses_sdk.cloud._keys import hash_token
from glasses_sdk.cloud._media import image_size

# --- settings --------------------------------------------------------------------------


def test_settings_layers_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text(
        '[cloud]\nport = 9000\nmax_queue = 4\nbackends = ["faces"]\nrequired_backends = []\n'
    )
    settings = load_settings(
        config, env={"GLASSES_CLOUD_MAX_QUEUE": "7", "GLASSES_CLOUD_BATCHING": "false"}
    )
    assert settings.port == 9000
    assert settings.max_queue == 7
    assert settings.batching is False
    assert settings.backends == ("faces",)
    assert settings.host == "127.0.0.1"
    env = {"GLASSES_CLOUD_CONFIG": str(config), "GLASSES_CLOUD_BACKENDS": "faces,ocr"}
    assert load_settings(env=env).backends == ("faces", "ocr")


def test_settings_errors_name_field_and_origin(tmp_path: Path) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text("port = 70000\nmodel_treads = 2\n")
    with pytest.raises(InvalidConfigError) as info:
        load_settings(config, env={"GLASSES_CLOUD_RATE_PER_S": "fast"})
    message = str(info.value)
    assert f"port: Input should be less than or equal to 65535, got 70000 (from file {config})" in (
        message
    )
    assert "model_treads: unknown setting" in message
    assert "rate_per_s:" in message and "GLASSES_CLOUD_RATE_PER_S" in message
    with pytest.raises(InvalidConfigError, match="not valid TOML"):
        bad = tmp_path / "bad.toml"
        bad.write_text("port = = 1")
        load_settings(bad, env={})
    with pytest.raises(InvalidConfigError, match="does not exist"):
        load_settings(tmp_path / "none.toml", env={})
    with pytest.raises(InvalidConfigError, match="http"):
        load_settings(env={"GLASSES_CLOUD_UPSTREAM_BASE_URL": "ftp://x"})
    with pytest.raises(InvalidConfigError, match="required but not in backends"):
        load_settings(env={"GLASSES_CLOUD_BACKENDS": "faces"})


# --- keys ------------------------------------------------------------------------------


def test_keys_are_random_256_bit_and_stored_as_digests(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "keys.sqlite3") as store:
        tokens = {store.create(f"k{i}")[0] for i in range(20)}
        assert len(tokens) == 20
        token = next(iter(tokens))
        assert len(token) == len("gsk_") + 43  # 32 bytes, URL-safe base64
        key = store.verify(token)
        assert key is not None and key.scopes == ("inference",)
        assert store.verify(token + "x") is None
        assert store.verify("not-even-prefixed") is None
        row = store._conn.execute("SELECT digest FROM keys WHERE key_id = ?", (key.key_id,))
        assert row.fetchone()[0] == hash_token(token)
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with pytest.raises(InvalidInputError, match="scopes"):
            store.create("x", ["root"])
        with pytest.raises(InvalidInputError, match="name"):
            store.create("")


def test_quota_counts_per_utc_day(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "keys.sqlite3") as store:
        _, key = store.create("q", quota_per_day=2)
        day = 20_000 * 86400.0
        assert store.count_request(key, day + 10) is None
        assert store.count_request(key, day + 20) is None
        assert store.count_request(key, day + 30) == 86400 - 30
        assert store.count_request(key, day + 86400 + 1) is None  # the next day
        _, zero = store.create("z", quota_per_day=0)
        assert store.count_request(zero, day) is not None


def test_token_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(clock=lambda: now[0])
    assert [buckets.take("a", 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 2.0, 3) == pytest.approx(0.5)
    assert buckets.take("b", 2.0, 3) == 0.0
    now[0] += 0.5
    assert buckets.take("a", 2.0, 3) == 0.0
    now[0] += 100
    assert [buckets.take("a", 2.0, 3) for _ in range(4)][-1] > 0  # capped at the burst


# --- deadlines and the work queue -----------------------------------------------------


def test_deadline_from_header() -> None:
    assert Deadline.from_header(None).remaining_s() is None
    assert Deadline.from_header("250", now_s=10.0).at_s == pytest.approx(10.25)
    for bad in ("soon", "nan", "inf"):
        with pytest.raises(ValueError):
            Deadline.from_header(bad)
    assert Deadline.from_header("-5").expired()


def test_work_queue_sheds_and_meets_deadlines() -> None:
    async def scenario() -> None:
        queue = WorkQueue(threads=1, max_queue=1)
        gate = threading.Event()
        first = asyncio.ensure_future(queue.run(lambda d: gate.wait(5), Deadline.none(), "a"))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(queue.run(lambda d: 2, Deadline.none(), "b"))
        await asyncio.sleep(0.05)
        assert queue.depth == 2
        with pytest.raises(OverloadedError):
            await queue.run(lambda d: 3, Deadline.none(), "c")
        gate.set()
        assert await first is True
        assert await second == 2
        # Waiting past the deadline is a 504, not a 503.
        gate.clear()
        blocker = asyncio.ensure_future(queue.run(lambda d: gate.wait(5), Deadline.none(), "d"))
        await asyncio.sleep(0.05)
        with pytest.raises(DeadlineExceededError, match="waiting"):
            await queue.run(lambda d: 4, Deadline(time.monotonic() + 0.05), "e")
        gate.set()
        await blocker
        queue.close()

    asyncio.run(scenario())


# --- idempotency store -----------------------------------------------------------------


def test_idempotency_store_outcomes(tmp_path: Path) -> None:
    store = IdempotencyStore(tmp_path / "idem.sqlite3", ttl_s=60)
    try:
        assert store.begin("t1", "k", "f1").outcome is Outcome.RUN
        assert store.begin("t1", "k", "f1").outcome is Outcome.IN_PROGRESS
        assert store.begin("t1", "k", "f2").outcome is Outcome.MISMATCH
        assert store.begin("t2", "k", "f2").outcome is Outcome.RUN  # another tenant
        store.finish("t1", "k", StoredResponse(200, [("content-type", "text/plain")], b"hi"))
        replay = store.begin("t1", "k", "f1")
        assert replay.outcome is Outcome.REPLAY
        assert replay.response == StoredResponse(200, [("content-type", "text/plain")], b"hi")
        store.release("t2", "k")
        assert store.begin("t2", "k", "f3").outcome is Outcome.RUN
        assert store.count("t1") == 1
    finally:
        store.close()


def test_idempotency_records_expire(tmp_path: Path) -> None:
    store = IdempotencyStore(tmp_path / "idem.sqlite3", ttl_s=0.05)
    try:
        assert store.begin("t", "k", "f1").outcome is Outcome.RUN
        time.sleep(0.1)
        assert store.begin("t", "k", "f2").outcome is Outcome.RUN
    finally:
        store.close()


# --- media -----------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_image_size_from_headers(ext: str) -> None:
    ok, data = cv2.imencode(ext, np.zeros((37, 91, 3), dtype=np.uint8))
    assert ok
    assert image_size(data.tobytes()) == (91, 37)


def test_image_size_rejects_corrupt_headers() -> None:
    with pytest.raises(InvalidFrameError):
        image_size(b"\xff\xd8\xff\xe0" + struct.pack(">H", 2))
    with pytest.raises(InvalidFrameError):
        image_size(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(InvalidFrameError, match="JPEG or PNG"):
        image_size(b"BM....")


# --- batching --------------------------------------------------------------------------


def test_batcher_groups_concurrent_items() -> None:
    sizes: list[int] = []

    def double(items: Sequence[int], deadline: Deadline) -> list[int]:
        sizes.append(len(items))
        return [2 * i for i in items]

    async def scenario() -> list[int]:
        queue = WorkQueue(threads=1, max_queue=8)
        batcher: Batcher[int, int] = Batcher(
            double, queue, task="double", max_batch_size=4, max_wait_ms=20
        )
        results = await asyncio.gather(*(batcher.submit(i, Deadline.none()) for i in range(10)))
        queue.close()
        return list(results)

    assert asyncio.run(scenario()) == [2 * i for i in range(10)]
    assert sizes == [4, 4, 2]


@pytest.mark.parametrize("package", ["fastapi", "prometheus_client"])
def test_missing_extra_names_the_install_command(package: str) -> None:
    import subprocess
    import sys

    code = (
        f"import sys; sys.modules[{package!r}] = None\n"
        "try:\n    import glasses_sdk.cloud\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "MissingDependencyError" in result.stdout
    assert "pip install 'glasses-sdk[cloud]'" in result.stdout


def test_verified_keys_are_cached_until_the_file_changes(tmp_path: Path) -> None:
    # verify() answers repeated lookups from memory; a revoke through another connection
    # (the CLI, another worker) or through this store is seen by the very next call.
    with KeyStore(tmp_path / "keys.sqlite3") as server, KeyStore(tmp_path / "keys.sqlite3") as cli:
        token, record = server.create("cached")
        other, other_record = cli.create("other")
        assert server.verify(token) == record
        assert server.verify(token) == record
        assert server.verify("gsk_unknown") is None
        assert len(server._verified) == 1  # unknown tokens are not kept
        assert cli.revoke(record.key_id)
        assert server.verify(token) is None
        assert server.verify(other) == other_record
        assert server.revoke(other_record.key_id)
        assert server.verify(other) is None
