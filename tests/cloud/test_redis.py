"""The shared stores on a real redis-server: the idempotency and rate-limit contracts,
run against both backends (SQLite / in-process and Redis), and two uvicorn servers that
share one Redis so that a key's rate limit and an idempotency key hold across both."""

from __future__ import annotations

import concurrent.futures
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from glasses_sdk._exceptions import InvalidConfigError
from glasses_sdk.cloud import TokenBuckets, create_app, load_settings
from glasses_sdk.cloud._errors import ApiError
from glasses_sdk.cloud._idempotency import IdempotencyStore, Outcome, StoredResponse
from glasses_sdk.cloud._redis import RedisIdempotencyStore, RedisTokenBuckets, connect_redis
from tests.cloud.conftest import (
    FakeFaces,
    auth,
    fake_backends,
    make_key,
    redis_server,
    serve,
    server_settings,
)

# --- the contracts, over both backends ----------------------------------------------------

_prefixes = iter(range(10**6))


def _redis_client(url: str) -> Any:
    return connect_redis(load_settings(env={}, redis_url=url))


def _idempotency(kind: str, tmp_path: Path, redis_url: str, ttl_s: float) -> Any:
    if kind == "sqlite":
        return IdempotencyStore(tmp_path / "idem.sqlite3", ttl_s=ttl_s)
    # A fresh prefix per test: one Redis serves the module, each test sees only its keys.
    return RedisIdempotencyStore(_redis_client(redis_url), ttl_s, prefix=f"t{next(_prefixes)}:")


def _limiter(kind: str, redis_url: str) -> Any:
    if kind == "memory":
        return TokenBuckets()
    return RedisTokenBuckets(_redis_client(redis_url), prefix=f"t{next(_prefixes)}:")


@pytest.fixture(params=["sqlite", "redis"])
def idem(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Iterator[Any]:
    store = _idempotency(request.param, tmp_path, redis_url, ttl_s=60)
    yield store
    store.close()


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest, redis_url: str) -> Any:
    return _limiter(request.param, redis_url)


def test_idempotency_outcomes(idem: Any) -> None:
    assert idem.begin("t1", "k", "f1").outcome is Outcome.RUN
    assert idem.begin("t1", "k", "f1").outcome is Outcome.IN_PROGRESS
    assert idem.begin("t1", "k", "f2").outcome is Outcome.MISMATCH
    assert idem.begin("t2", "k", "f2").outcome is Outcome.RUN  # another tenant
    stored = StoredResponse(200, [("content-type", "text/plain"), ("x-a", "1")], b"hi\x00\xff")
    idem.finish("t1", "k", stored)
    replay = idem.begin("t1", "k", "f1")
    assert replay.outcome is Outcome.REPLAY
    assert replay.response == stored
    assert idem.begin("t1", "k", "f2").outcome is Outcome.MISMATCH  # still, once done
    idem.release("t1", "k")  # a done record is not released
    assert idem.begin("t1", "k", "f1").outcome is Outcome.REPLAY
    idem.release("t2", "k")
    assert idem.begin("t2", "k", "f3").outcome is Outcome.RUN
    idem.finish("t3", "never-begun", stored)  # no record: nothing is stored
    assert idem.begin("t3", "never-begun", "f").outcome is Outcome.RUN
    assert idem.count("t1") == 1
    assert idem.count() == 3


def test_idempotency_tenants_cannot_collide_through_separators(idem: Any) -> None:
    # ("a:b", "c") and ("a", "b:c") must be two records, whatever the key layout.
    assert idem.begin("a:b", "c", "f1").outcome is Outcome.RUN
    assert idem.begin("a", "b:c", "f2").outcome is Outcome.RUN
    assert idem.begin("a*", "x", "f3").outcome is Outcome.RUN
    assert idem.count("a") == 1
    assert idem.count("a*") == 1


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_idempotency_records_expire(kind: str, tmp_path: Path, redis_url: str) -> None:
    store = _idempotency(kind, tmp_path, redis_url, ttl_s=0.2)
    try:
        assert store.begin("t", "k", "f1").outcome is Outcome.RUN
        store.finish("t", "k", StoredResponse(200, [], b"x"))
        assert store.begin("t", "k", "f1").outcome is Outcome.REPLAY
        time.sleep(0.35)
        assert store.begin("t", "k", "f2").outcome is Outcome.RUN
    finally:
        store.close()


def test_idempotency_begin_is_atomic_under_contention(idem: Any) -> None:
    barrier = threading.Barrier(12)

    def attempt(_: int) -> Outcome:
        barrier.wait(timeout=10)
        outcome: Outcome = idem.begin("t", "race", "f").outcome
        return outcome

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(attempt, range(12)))
    assert outcomes.count(Outcome.RUN) == 1
    assert outcomes.count(Outcome.IN_PROGRESS) == 11


def test_token_bucket_grants_the_burst_then_says_how_long(limiter: Any) -> None:
    assert [limiter.take("a", 4.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a", 4.0, 3)
    assert 0.0 < wait <= 0.25 + 1e-6  # one token refills in 1/4 s
    assert limiter.take("b", 4.0, 3) == 0.0  # another key has its own bucket
    time.sleep(wait + 0.02)
    assert limiter.take("a", 4.0, 3) == 0.0


def test_token_bucket_is_atomic_under_contention(limiter: Any) -> None:
    barrier = threading.Barrier(10)

    def attempt(_: int) -> list[float]:
        barrier.wait(timeout=10)
        return [limiter.take("hot", 0.01, 7) for _ in range(3)]

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        waits = [w for batch in pool.map(attempt, range(10)) for w in batch]
    assert waits.count(0.0) == 7
    assert all(w > 50 for w in waits if w > 0)  # at 0.01/s the next token is ~100 s away


# --- an unreachable Redis, and the settings ------------------------------------------------


def test_unreachable_redis_answers_503_not_a_hang(tmp_path: Path) -> None:
    settings = load_settings(
        env={}, redis_url=f"unix://{tmp_path}/absent.sock", redis_timeout_s=0.5
    )
    client = connect_redis(settings)
    limiter = RedisTokenBuckets(client)
    store = RedisIdempotencyStore(client, 60)
    start = time.monotonic()
    with pytest.raises(ApiError) as limited:
        limiter.take("k", 1.0, 1)
    with pytest.raises(ApiError) as begun:
        store.begin("t", "k", "f")
    store.finish("t", "k", StoredResponse(200, [], b""))  # logged, not raised
    store.release("t", "k")
    assert time.monotonic() - start < 10
    for error in (limited.value, begun.value):
        assert error.status == 503
        assert error.code == "store_unavailable"
        assert error.headers["Retry-After"] == "1"
        assert "absent.sock" not in error.message  # the URL (a password) is never told
    store.close()


def test_settings_need_a_redis_url_for_a_redis_store() -> None:
    for name in ("rate_limit_store", "idempotency_store"):
        with pytest.raises(InvalidConfigError, match=f"{name} is 'redis' but redis_url"):
            load_settings(env={}, **{name: "redis"})
    with pytest.raises(InvalidConfigError, match=r"redis_url: .*redis://, rediss:// or unix://"):
        load_settings(env={}, redis_url="http://127.0.0.1:6379")
    with pytest.raises(InvalidConfigError, match=r"rate_limit_store: .*'memory' or 'redis'"):
        load_settings(env={}, rate_limit_store="sqlite")
    env = {
        "GLASSES_CLOUD_RATE_LIMIT_STORE": "redis",
        "GLASSES_CLOUD_IDEMPOTENCY_STORE": "redis",
        "GLASSES_CLOUD_REDIS_URL": "redis://10.0.0.5:6379/0",
    }
    settings = load_settings(env=env)
    assert (settings.rate_limit_store, settings.idempotency_store) == ("redis", "redis")


def test_readyz_reports_an_unreachable_store(tmp_path: Path) -> None:
    settings = server_settings(
        tmp_path,
        idempotency_store="redis",
        redis_url=f"unix://{tmp_path}/absent.sock",
        redis_timeout_s=0.5,
        required_backends=(),
    )
    token = make_key(settings)
    with serve(create_app(settings, backends=fake_backends())) as url:
        response = httpx.get(f"{url}/readyz", headers=auth(token), timeout=10)
    assert response.status_code == 503
    document = response.json()
    assert document["missing"] == ["idempotency_store"]
    assert document["stores"]["idempotency"] == {"store": "redis", "reachable": False}
    assert document["stores"]["rate_limit"] == {"store": "memory", "reachable": True}


def test_an_unreachable_rate_limit_store_refuses_with_503(tmp_path: Path) -> None:
    settings = server_settings(
        tmp_path,
        rate_limit_store="redis",
        redis_url=f"unix://{tmp_path}/absent.sock",
        redis_timeout_s=0.5,
    )
    token = make_key(settings)
    with serve(create_app(settings, backends=fake_backends())) as url:
        refused = httpx.post(
            f"{url}/v1/vision/faces",
            headers=auth(token),
            files={"image": ("a.png", _png(16))},
            timeout=10,
        )
        health = httpx.get(f"{url}/healthz", timeout=10)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "store_unavailable"
    assert health.status_code == 200  # liveness does not depend on the store


def test_store_unavailable_refusals_are_counted(tmp_path: Path) -> None:
    # The idempotency store is the unreachable one, so that /metrics (a GET, which takes no
    # idempotency record) still answers.
    settings = server_settings(
        tmp_path,
        idempotency_store="redis",
        redis_url=f"unix://{tmp_path}/absent.sock",
        redis_timeout_s=0.5,
    )
    token = make_key(settings)
    metrics_key = make_key(settings, "metrics")
    with serve(create_app(settings, backends=fake_backends())) as url:
        for attempt in range(2):
            refused = httpx.post(
                f"{url}/v1/vision/faces",
                headers={**auth(token), "Idempotency-Key": f"attempt-{attempt}"},
                files={"image": ("a.png", _png(16))},
                timeout=10,
            )
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "store_unavailable"
        text = httpx.get(f"{url}/metrics", headers=auth(metrics_key), timeout=10).text
    assert 'glasses_cloud_rejections_total{reason="store_unavailable"} 2.0' in text


@contextmanager
def _silent_listener() -> Iterator[tuple[int, threading.Event]]:
    """A TCP listener on 127.0.0.1 that reads what it is sent and never answers: a hung
    Redis, as the client sees one (a real socket, no fake inside the client). Yields its
    port and an event set once a command has arrived."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    received = threading.Event()
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:  # the 0.1 s timeout: look at stop again
                continue
            conn.settimeout(0.1)
            accepted.append(conn)
        for conn in accepted:
            conn.close()

    def read() -> None:
        while not stop.is_set():
            for conn in list(accepted):
                try:
                    if conn.recv(4096):
                        received.set()
                except OSError:
                    pass
            time.sleep(0.01)

    threads = [threading.Thread(target=f, daemon=True) for f in (accept, read)]
    for thread in threads:
        thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        listener.close()


def test_a_hung_redis_does_not_stall_other_requests(tmp_path: Path) -> None:
    # The rate-limit call waits on Redis in a worker thread: meanwhile the event loop
    # answers other requests (on the loop it would hold them for redis_timeout_s).
    timeout_s = 4.0
    with _silent_listener() as (port, received):
        settings = server_settings(
            tmp_path,
            rate_limit_store="redis",
            redis_url=f"redis://127.0.0.1:{port}/0",
            redis_timeout_s=timeout_s,
        )
        token = make_key(settings)
        with (
            serve(create_app(settings, backends=fake_backends())) as url,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            stuck = pool.submit(
                httpx.post,
                f"{url}/v1/vision/faces",
                headers=auth(token),
                files={"image": ("a.png", _png(16))},
                timeout=30,
            )
            assert received.wait(timeout=20), "the request never reached the hung Redis"
            start = time.monotonic()
            health = httpx.get(f"{url}/healthz", timeout=30)
            elapsed_s = time.monotonic() - start
            refused = stuck.result(timeout=30)
    assert health.status_code == 200
    assert elapsed_s < timeout_s / 2, f"/healthz waited {elapsed_s:.2f} s behind Redis"
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "store_unavailable"


# --- two servers, one Redis ------------------------------------------------------------------


def _png(side: int) -> bytes:
    rng = np.random.default_rng(side)
    ok, data = cv2.imencode(".png", rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
    assert ok
    return bytes(data.tobytes())


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Any, FakeFaces]]:
    """Two uvicorn servers (two apps, two token-bucket and idempotency clients) over one
    key store and one Redis of their own; the first one's face backend can be held."""
    data_dir = tmp_path_factory.mktemp("pair")
    with redis_server() as url:
        settings = server_settings(
            data_dir,
            rate_limit_store="redis",
            idempotency_store="redis",
            redis_url=url,
            rate_per_s=1000.0,
            burst=1000,
        )
        held = FakeFaces()
        first = create_app(settings, backends=fake_backends(held))
        second = create_app(settings, backends=fake_backends())
        with serve(first) as a, serve(second) as b:
            yield a, b, settings, held


def test_two_servers_share_a_keys_rate_limit(pair: tuple[str, str, Any, FakeFaces]) -> None:
    a, b, settings, _ = pair
    token = make_key(settings, rate_per_s=0.01, burst=4)
    statuses = []
    for i in range(8):
        url = a if i % 2 == 0 else b
        statuses.append(httpx.get(f"{url}/readyz", headers=auth(token), timeout=10).status_code)
    # Four tokens in all, whichever server is asked: not four per server.
    assert statuses == [200, 200, 200, 200, 429, 429, 429, 429]
    other = make_key(settings, rate_per_s=0.01, burst=4)
    assert httpx.get(f"{b}/readyz", headers=auth(other), timeout=10).status_code == 200


def test_two_servers_share_idempotency(pair: tuple[str, str, Any, FakeFaces]) -> None:
    a, b, settings, held = pair
    token = make_key(settings)
    image = _png(24)

    def faces(url: str, idem: str, body: bytes = image) -> httpx.Response:
        return httpx.post(
            f"{url}/v1/vision/faces",
            headers={**auth(token), "Idempotency-Key": idem},
            files={"image": ("a.png", body)},
            timeout=20,
        )

    first = faces(a, "across")
    assert first.status_code == 200
    replay = faces(b, "across")
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert faces(b, "across", _png(30)).status_code == 422

    # A duplicate sent to the other server while the first still runs is a 409.
    before = len(held.calls)
    held.gate.clear()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(faces, a, "in-flight")
            held.wait_for_calls(before + 1)
            duplicate = faces(b, "in-flight")
            held.gate.set()
            assert running.result().status_code == 200
    finally:
        held.gate.set()
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "request_in_progress"
    assert faces(b, "in-flight").headers["idempotent-replayed"] == "true"


# --- a writer that dies while its request runs ----------------------------------------------

_DIE_WHILE_RUNNING = """
import os, signal, sys
from pathlib import Path
kind, where = sys.argv[1], sys.argv[2]
if kind == "sqlite":
    from glasses_sdk.cloud._idempotency import IdempotencyStore
    store = IdempotencyStore(Path(where), ttl_s=60)
else:
    from glasses_sdk.cloud import load_settings
    from glasses_sdk.cloud._redis import RedisIdempotencyStore, connect_redis
    client = connect_redis(load_settings(env={}, redis_url=where))
    store = RedisIdempotencyStore(client, 60, prefix=sys.argv[3])
assert store.begin("t", "crash", "f").outcome.value == "run"
os.kill(os.getpid(), signal.SIGKILL)  # dies with its record running, as on a crash
"""


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_dead_writers_running_record_is_released_on_retry(
    kind: str, tmp_path: Path, redis_url: str
) -> None:
    prefix = f"t{next(_prefixes)}:"
    where = str(tmp_path / "idem.sqlite3") if kind == "sqlite" else redis_url
    died = subprocess.run(
        [sys.executable, "-c", _DIE_WHILE_RUNNING, kind, where, prefix],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-2000:]
    if kind == "sqlite":
        store: Any = IdempotencyStore(tmp_path / "idem.sqlite3", ttl_s=60)
    else:
        store = RedisIdempotencyStore(_redis_client(redis_url), 60, prefix=prefix)
    try:
        # A live writer's record is a 409; the dead one's is replaced: the retry runs.
        assert store.begin("t", "alive", "f").outcome is Outcome.RUN
        assert store.begin("t", "alive", "f").outcome is Outcome.IN_PROGRESS
        assert store.begin("t", "crash", "f").outcome is Outcome.RUN
        assert store.begin("t", "crash", "f").outcome is Outcome.IN_PROGRESS  # now ours
        store.finish("t", "crash", StoredResponse(200, [], b"once"))
        assert store.begin("t", "crash", "f").outcome is Outcome.REPLAY
        assert store.executions("t") == {("t", "crash"): 1}
    finally:
        store.close()


def test_redis_release_dead_sweeps_this_hosts_dead_writers(redis_url: str) -> None:
    prefix = f"t{next(_prefixes)}:"
    died = subprocess.run(
        [sys.executable, "-c", _DIE_WHILE_RUNNING, "redis", redis_url, prefix],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-2000:]
    store = RedisIdempotencyStore(_redis_client(redis_url), 60, prefix=prefix)
    try:
        assert store.begin("t", "mine", "f").outcome is Outcome.RUN  # a live writer: kept
        assert store.count("t") == 2
        assert store.release_dead() == 1
        assert store.count("t") == 1
        assert store.begin("t", "mine", "f").outcome is Outcome.IN_PROGRESS
    finally:
        store.close()
