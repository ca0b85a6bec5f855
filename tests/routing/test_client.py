"""The cloud client against real servers on 127.0.0.1: a small test server that fails on
demand (retries, Retry-After, breaker, deadlines, headers) and the real glasses cloud app
(the happy path, a replay by the server, one committed execution)."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from glasses_sdk import data
from glasses_sdk._exceptions import (
    CloudRequestError,
    CloudUnavailableError,
    DeadlineExceededError,
    InvalidConfigError,
    InvalidInputError,
)
from glasses_sdk.cloud import load_backends
from glasses_sdk.cloud._idempotency import read_executions
from glasses_sdk.routing import (
    BreakerOptions,
    BreakerState,
    CloudClient,
    CloudClientOptions,
    Outbox,
)
from tests.cloud.conftest import create_app, make_key, serve, server_settings
from tests.conftest import missing, need_data

TOKEN = "test-token"
T = TypeVar("T")


def sync(test: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async test in its own event loop (fixtures pass through the signature)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> T:
        return asyncio.run(asyncio.wait_for(test(*args, **kwargs), timeout=60))

    return run


class FlakyServer:
    """A test server (not the glasses cloud): fails each key's first ``fail`` attempts
    with ``status``, and records every request's headers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.attempts: defaultdict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        app = FastAPI()

        @app.post("/flaky")
        async def flaky(request: Request) -> JSONResponse:
            params = request.query_params
            key = request.headers.get("idempotency-key", "")
            with self.lock:
                self.seen.append(dict(request.headers))
                self.attempts[key] += 1
                attempt = self.attempts[key]
            await asyncio.sleep(float(params.get("sleep_ms", 0)) / 1000)
            if attempt <= int(params.get("fail", 0)):
                headers = {}
                if "retry_after" in params:
                    headers["Retry-After"] = params["retry_after"]
                status = int(params.get("status", 503))
                return JSONResponse(
                    {"error": {"message": f"failing on purpose ({attempt})", "type": "test"}},
                    status_code=status,
                    headers=headers,
                )
            body = await request.body()
            return JSONResponse({"attempt": attempt, "bytes": len(body)})

        self.app = app

    def keys(self) -> list[str]:
        return [h.get("idempotency-key", "") for h in self.seen]


@pytest.fixture(scope="module")
def flaky() -> Iterator[tuple[str, FlakyServer]]:
    server = FlakyServer()
    with serve(server.app) as url:
        yield url, server


@pytest.fixture
def server(flaky: tuple[str, FlakyServer]) -> FlakyServer:
    flaky[1].seen.clear()
    return flaky[1]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there now


FAST = CloudClientOptions(backoff_base_s=0.01, backoff_max_s=0.05, seed=1)


def client(
    url: str, options: CloudClientOptions = FAST, outbox: Outbox | None = None
) -> CloudClient:
    return CloudClient(url, api_key=TOKEN, options=options, outbox=outbox)


@sync
async def test_retries_reuse_the_key_and_recompute_the_deadline(
    flaky: tuple[str, FlakyServer], server: FlakyServer
) -> None:
    async with client(flaky[0]) as c:
        response = await c.post(
            "/flaky?fail=2&status=503&sleep_ms=30", json={"x": 1}, deadline_ms=5000
        )
    assert response.status == 200
    assert response.body["attempt"] == 3
    assert response.attempts == 3
    assert not response.replayed
    keys = server.keys()
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0] == response.idempotency_key
    deadlines = [float(h["x-deadline-ms"]) for h in server.seen]
    assert deadlines[0] <= 5000
    assert deadlines[0] > deadlines[1] > deadlines[2]  # the time left, per attempt
    assert all(h["authorization"] == f"Bearer {TOKEN}" for h in server.seen)


@pytest.mark.parametrize("status", [408, 409, 429, 502, 503, 504])
@sync
async def test_retryable_statuses(flaky: tuple[str, FlakyServer], status: int) -> None:
    async with client(flaky[0]) as c:
        response = await c.post(f"/flaky?fail=1&status={status}", json={}, deadline_ms=5000)
    assert response.attempts == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
@sync
async def test_final_4xx_is_not_retried_and_is_recorded_failed(
    flaky: tuple[str, FlakyServer], server: FlakyServer, tmp_path: Path, status: int
) -> None:
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        async with client(flaky[0], outbox=outbox) as c:
            with pytest.raises(CloudRequestError) as info:
                await c.post(
                    f"/flaky?fail=5&status={status}", json={}, deadline_ms=5000, durable=True
                )
        assert info.value.status == status
        assert info.value.error["message"] == "failing on purpose (1)"
        assert len(server.seen) == 1
        assert len(outbox) == 0
        (failed,) = outbox.failed()
        assert failed.status == status
        assert outbox.counters().failed == 1


@sync
async def test_500_is_not_retried_and_a_durable_item_stays(
    flaky: tuple[str, FlakyServer], server: FlakyServer, tmp_path: Path
) -> None:
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        async with client(flaky[0], outbox=outbox) as c:
            with pytest.raises(CloudRequestError, match="500"):
                await c.post("/flaky?fail=1&status=500", json={}, deadline_ms=5000, durable=True)
        assert len(server.seen) == 1
        assert len(outbox) == 1


@sync
async def test_at_most_max_retries(flaky: tuple[str, FlakyServer], server: FlakyServer) -> None:
    async with client(flaky[0]) as c:
        with pytest.raises(CloudUnavailableError, match="max_retries 3") as info:
            await c.post("/flaky?fail=10&status=503", json={}, deadline_ms=5000)
    assert info.value.attempts == 4
    assert len(server.seen) == 4


@sync
async def test_retry_after_is_honoured(flaky: tuple[str, FlakyServer]) -> None:
    async with client(flaky[0]) as c:
        start = time.monotonic()
        response = await c.post("/flaky?fail=1&status=429&retry_after=1", json={}, deadline_ms=5000)
    assert response.attempts == 2
    assert time.monotonic() - start >= 1.0


@sync
async def test_retry_after_past_the_deadline_ends_at_once(
    flaky: tuple[str, FlakyServer], server: FlakyServer
) -> None:
    async with client(flaky[0]) as c:
        start = time.monotonic()
        with pytest.raises(DeadlineExceededError, match="no time left"):
            await c.post("/flaky?fail=1&status=503&retry_after=30", json={}, deadline_ms=800)
    assert time.monotonic() - start < 2.0  # not the 30 s of Retry-After
    assert len(server.seen) == 1


@sync
async def test_a_slow_server_hits_the_deadline(flaky: tuple[str, FlakyServer]) -> None:
    async with client(flaky[0]) as c:
        start = time.monotonic()
        with pytest.raises((DeadlineExceededError, CloudUnavailableError)):
            await c.post("/flaky?sleep_ms=5000", json={}, deadline_ms=300)
    assert time.monotonic() - start < 3.0  # not the 5 s the server takes


@sync
async def test_the_retry_budget_stops_retries(
    flaky: tuple[str, FlakyServer], server: FlakyServer
) -> None:
    options = CloudClientOptions(
        backoff_base_s=0.01, retry_budget_ratio=0.0, retry_budget_min_per_s=0.0, seed=1
    )
    async with client(flaky[0], options) as c:
        with pytest.raises(CloudUnavailableError, match="retry budget spent"):
            await c.post("/flaky?fail=1&status=503", json={}, deadline_ms=5000)
    assert len(server.seen) == 1


@sync
async def test_breaker_opens_on_an_unreachable_cloud_then_probes() -> None:
    options = CloudClientOptions(
        max_retries=0, connect_timeout_s=0.5, breaker=BreakerOptions(cool_down_s=0.3)
    )
    async with client(closed_port_url(), options) as c:
        for _ in range(5):
            with pytest.raises(CloudUnavailableError, match="unreachable"):
                await c.post("/x", json={}, deadline_ms=2000)
        assert not c.available
        assert c.breaker.state is BreakerState.OPEN
        with pytest.raises(CloudUnavailableError, match="breaker is open") as info:
            await c.post("/x", json={}, deadline_ms=2000)
        assert info.value.attempts == 0
        assert info.value.retry_after_s is not None
        await asyncio.sleep(0.35)
        assert c.breaker.state is BreakerState.HALF_OPEN
        with pytest.raises(CloudUnavailableError, match="unreachable"):
            await c.post("/x", json={}, deadline_ms=2000)  # the probe fails: open again
        assert c.breaker.state is BreakerState.OPEN


@sync
async def test_trace_context_travels_in_traceparent(
    flaky: tuple[str, FlakyServer], server: FlakyServer
) -> None:
    # No OpenTelemetry SDK is configured (the default: tracing off); the API's no-op
    # tracer still carries a caller's context, here set by hand.
    parent = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    async with client(flaky[0]) as c:
        with trace.use_span(NonRecordingSpan(parent)):
            await c.post("/flaky", json={}, deadline_ms=5000)
        await c.post("/flaky", json={}, deadline_ms=5000)
    assert server.seen[0]["traceparent"].startswith(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-"
    )
    assert "traceparent" not in server.seen[1]  # no context: nothing invented


@sync
async def test_unreachable_durable_requests_wait_then_replay_in_order(
    flaky: tuple[str, FlakyServer], server: FlakyServer, tmp_path: Path
) -> None:
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as outbox:
        async with client(closed_port_url(), outbox=outbox) as offline:
            for i in range(3):
                with pytest.raises(CloudUnavailableError):
                    await offline.post(
                        "/flaky",
                        json={"i": i},
                        deadline_ms=2000,
                        idempotency_key=f"k{i}",
                        durable=True,
                    )
        assert [i.idempotency_key for i in outbox.pending()] == ["k0", "k1", "k2"]
    with Outbox(path) as outbox:  # a restart of the app
        async with client(flaky[0], outbox=outbox) as online:
            report = await online.replay_outbox()
        assert (report.sent, report.failed, report.remaining) == (3, 0, 0)
        assert server.keys() == ["k0", "k1", "k2"]
        counters = outbox.counters()
        assert (counters.sent, counters.replayed) == (0, 3)


@sync
async def test_bad_calls_say_what_was_expected(flaky: tuple[str, FlakyServer]) -> None:
    with pytest.raises(InvalidConfigError, match="http"):
        CloudClient("127.0.0.1:80", api_key=TOKEN)
    with pytest.raises(InvalidConfigError, match="api_key"):
        CloudClient(flaky[0], api_key="")
    async with client(flaky[0]) as c:
        with pytest.raises(InvalidInputError, match="deadline_ms"):
            await c.post("/flaky", json={}, deadline_ms=0)
        with pytest.raises(InvalidInputError, match="absolute path"):
            await c.post("flaky", json={}, deadline_ms=100)
        with pytest.raises(InvalidConfigError, match="outbox"):
            await c.post("/flaky", json={}, deadline_ms=100, durable=True)
    with pytest.raises(InvalidConfigError, match="max_retries"):
        CloudClientOptions(max_retries=-1)


@pytest.fixture(scope="module")
def real_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    folder = tmp_path_factory.mktemp("real-cloud")
    settings = server_settings(folder, backends=("faces",), required_backends=("faces",))
    backends = load_backends(settings)
    if backends.faces is None:
        missing(f"faces backend: {backends.reasons.get('faces')}")
    token = make_key(settings)
    with serve(create_app(settings, backends=backends)) as url:
        yield url, token, settings.idempotency_db


@sync
async def test_happy_path_on_the_real_cloud_app(
    real_cloud: tuple[str, str, Path], tmp_path: Path
) -> None:
    url, token, idempotency_db = real_cloud
    photo = need_data(lambda: data.photo_path("astronaut")).read_bytes()
    files = {"image": ("astronaut.png", photo, "image/png")}
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        async with CloudClient(url, api_key=token, outbox=outbox) as c:
            first = await c.post("/v1/vision/faces", files=files, deadline_ms=10_000, durable=True)
            again = await c.post(
                "/v1/vision/faces",
                files=files,
                deadline_ms=10_000,
                idempotency_key=first.idempotency_key,
            )
        assert first.status == 200 and first.attempts == 1 and not first.replayed
        assert len(first.body["faces"]) == 1
        assert again.replayed and again.body == first.body
        # The server's own share, from its Server-Timing header, fits inside the round trip.
        assert first.server_ms is not None and 0 < first.server_ms <= first.latency_ms
        assert len(outbox) == 0 and outbox.counters().sent == 1
    executions: dict[str, Any] = {k: n for (_, k), n in read_executions(idempotency_db).items()}
    assert executions[first.idempotency_key] == 1


@sync
async def test_a_spent_deadline_is_refused_by_the_real_server(
    real_cloud: tuple[str, str, Path],
) -> None:
    url, token, _ = real_cloud
    # The server reads X-Deadline-Ms: 1 ms is spent before the request starts there.
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{url}/v1/vision/faces",
            headers={"Authorization": f"Bearer {token}", "X-Deadline-Ms": "0"},
        )
    assert response.status_code == 504


def test_server_timing_header_is_read_leniently() -> None:
    from glasses_sdk.routing._client import _server_timing_ms

    assert _server_timing_ms("app;dur=12.5") == 12.5
    assert _server_timing_ms('db;dur=3, app;desc="x";dur="7"') == 7.0
    assert _server_timing_ms("db;dur=3") is None
    assert _server_timing_ms("app;dur=abc") is None
    assert _server_timing_ms(None) is None
