"""The chaos run: durable requests through an impaired link to a server that is killed.

Run from a checkout: ``python -m benchmarks.bench_chaos [--requests N] [--seed S]
[--baseline] [--json]``; ``tests/routing/test_chaos.py`` runs :func:`run_chaos` in
``make test``.

The real fallback server (``glasses cloud serve``, faces backend, its own data folder
and an API key made with ``glasses cloud keys create``) runs as a subprocess on
127.0.0.1. Between it and the client sits a seeded impaired TCP proxy
(``benchmarks/_impaired_proxy.py``: refused connections, delays, answers lost after
the server ran the request). ``requests`` durable ``POST /v1/vision/faces`` of a small
real photo go through :class:`~glasses_sdk.routing.CloudClient` with an
:class:`~glasses_sdk.routing.Outbox`, 8 at a time. The server is SIGKILLed at ``kills``
seeded points: the first by itself (``GLASSES_FAULT_CRASH_AFTER_MODEL``: after a model
call, before the idempotency record is committed), the others from outside after a
seeded number of answers. Each time it is restarted on a new port behind the same
proxy. At the end the outbox is replayed until empty.

What is checked comes from both sides: the client's answers and the outbox's counters
and failed list; and, for "executed twice", the server's idempotency database, which
counts committed executions per key in the same transaction as the stored response.

``--baseline`` also runs the same requests with no impairment and no kill, and reports
the ratio of the chaos run's wall time to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ChaosResult", "main", "run_chaos"]

CONCURRENCY = 8
DEADLINE_MS = 4000.0
ARRIVAL_S = 0.05
"""One request every 50 ms: 200 requests arrive over 10 s, through kills and restarts."""
START_TIMEOUT_S = 60.0


@dataclass
class ChaosResult:
    """The figures of one chaos run."""

    requests: int
    kills: int
    kill_points: list[str]
    answered_first_time: int
    answered_after_replay: int
    failed: int
    missing: int
    duplicates: int
    """Keys whose committed execution count on the server is above 1."""
    answered_without_commit: int
    """Answered keys with no committed execution (a crash between answer and commit)."""
    server_replays: int
    """Answers the server gave from its idempotency store (the request had run)."""
    recover_s: float
    """From the last restart (server ready) to an empty outbox."""
    wall_s: float
    restarts: int
    proxy: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)
    baseline_wall_s: float | None = None

    @property
    def answered(self) -> int:
        """Answered in the end, first time or after replay."""
        return self.answered_first_time + self.answered_after_replay

    def to_json(self) -> dict[str, Any]:
        """Everything, plus the ratios."""
        document = asdict(self)
        document["answered"] = self.answered
        document["answered_ratio"] = round(self.answered / self.requests, 4)
        if self.baseline_wall_s:
            document["wall_ratio_vs_baseline"] = round(self.wall_s / self.baseline_wall_s, 2)
        return document


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _photo_jpeg() -> bytes:
    import cv2

    from glasses_sdk import data

    image = data.load_photo("astronaut")
    ok, encoded = cv2.imencode(".jpg", cv2.resize(image, (160, 160)))
    assert ok
    return bytes(encoded)


class _Server:
    """The server subprocess, restartable on a new port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = data_dir / "server.log"

    def env(self, crash_after: int | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GLASSES_")}
        env |= {
            "GLASSES_CLOUD_DATA_DIR": str(self.data_dir),
            "GLASSES_CLOUD_BACKENDS": '["faces"]',
            "GLASSES_CLOUD_REQUIRED_BACKENDS": '["faces"]',
            "GLASSES_CLOUD_MAX_QUEUE": "64",
            "GLASSES_CLOUD_MODEL_THREADS": "1",
        }
        if crash_after is not None:
            env["GLASSES_FAULT_CRASH_AFTER_MODEL"] = str(crash_after)
        return env

    def create_key(self) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "glasses_sdk.cli", "cloud", "keys", "create",
             "--name", "chaos", "--rate", "100000", "--burst", "100000", "--json"],
            env=self.env(None), capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        token: str = json.loads(out.stdout)["token"]
        return token

    async def start(self, token: str, crash_after: int | None = None) -> None:
        import httpx

        self.port = _free_port()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "glasses_sdk.cli", "cloud", "serve",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env(crash_after), stdout=log, stderr=log,
            )  # fmt: skip
        end = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient() as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited at start-up; see {self.log}")
                if time.monotonic() > end:
                    raise RuntimeError(f"the server did not get ready in {START_TIMEOUT_S} s")
                try:
                    response = await client.get(
                        f"http://127.0.0.1:{self.port}/readyz",
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=1,
                    )
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


async def _run(
    work_dir: Path, *, requests: int, kills: int, seed: int, impaired: bool
) -> ChaosResult:
    from benchmarks._impaired_proxy import ImpairedProxy, Impairment
    from glasses_sdk._exceptions import GlassesError
    from glasses_sdk.cloud._idempotency import read_executions
    from glasses_sdk.routing import BreakerOptions, CloudClient, CloudClientOptions, Outbox

    rng = random.Random(seed)
    server = _Server(work_dir / "server")
    server.data_dir.mkdir(parents=True)
    token = server.create_key()
    photo = _photo_jpeg()
    # Kill points: the first inside the server, after a seeded model call and before its
    # commit; the others from outside, after a seeded number of client answers.
    crash_after = rng.randint(requests // 10, requests // 5) if kills else None
    outside = sorted(
        rng.randint(requests * (i + 1) // (kills + 1), requests * (i + 2) // (kills + 2))
        for i in range(max(0, kills - 1))
    )
    kill_points = [f"server, after model call {crash_after}, before commit"] if kills else []
    # An outside kill also waits until the server has served for a seeded while since
    # its last start, so that it lands amid traffic (new requests or the replay).
    serve_before_kill_s = [round(rng.uniform(0.5, 1.5), 2) for _ in outside]
    kill_points += [
        f"outside, after {n} requests sent and {t} s of serving"
        for n, t in zip(outside, serve_before_kill_s, strict=True)
    ]

    started = time.monotonic()
    await server.start(token, crash_after)
    proxy = ImpairedProxy(
        server.port,
        seed=seed,
        impairment=Impairment() if impaired else Impairment(0.0, 0.0, (0.0, 0.0), 0.0),
    )
    await proxy.start()
    outbox = Outbox(work_dir / "outbox.sqlite3")
    options = CloudClientOptions(
        timeout_s=3.0,
        connect_timeout_s=1.0,
        breaker=BreakerOptions(cool_down_s=0.5),
        seed=seed,
    )
    client = CloudClient(
        f"http://127.0.0.1:{proxy.port}", api_key=token, options=options, outbox=outbox
    )
    answered: dict[str, bool] = {}
    keys = [f"chaos-{seed}-{i:05d}" for i in range(requests)]
    done = 0
    kills_done = 0
    restarts = 0
    last_ready = started
    stop = asyncio.Event()
    gate = asyncio.Semaphore(CONCURRENCY)

    all_sent = False
    replays: list[asyncio.Future[Any]] = []

    async def supervise() -> None:
        nonlocal kills_done, restarts, last_ready
        while not stop.is_set():
            # Only a ready server is killed from outside: a kill during a restart would
            # be a second kill at the same point.
            serving_s = time.monotonic() - last_ready
            if (
                outside
                and (done >= outside[0] or all_sent)
                and serving_s >= serve_before_kill_s[0]
                and server.alive()
            ):
                serve_before_kill_s.pop(0)
                outside.pop(0)
                server.kill()
            if not server.alive():
                kills_done += 1
                await asyncio.sleep(rng.uniform(0.2, 0.8))  # down for a while
                await server.start(token)
                proxy.upstream_port = server.port
                restarts += 1
                last_ready = time.monotonic()
                # Reconnected: replay what waited, as an app does (in the background,
                # so that new requests keep flowing).
                replays.append(asyncio.ensure_future(client.replay_outbox()))
            await asyncio.sleep(0.02)

    async def one(key: str) -> None:
        async with gate:
            try:
                response = await client.post(
                    "/v1/vision/faces",
                    files={"image": ("astronaut.jpg", photo, "image/jpeg")},
                    deadline_ms=DEADLINE_MS,
                    idempotency_key=key,
                    durable=True,
                )
                answered[key] = response.replayed
            except GlassesError:
                pass  # stays in the outbox (or was recorded failed)

    supervisor = asyncio.ensure_future(supervise())
    try:
        tasks = []
        for key in keys:
            # Open loop: requests keep arriving while the server is down.
            tasks.append(asyncio.ensure_future(one(key)))
            done += 1
            await asyncio.sleep(ARRIVAL_S)
        await asyncio.gather(*tasks)
        all_sent = True
        # Every kill done (some may come after the last request: then they hit the
        # replay's server) and the server back up behind the proxy.
        while kills_done < kills or not server.alive() or proxy.upstream_port != server.port:
            if supervisor.done():
                supervisor.result()  # raises what stopped it
                raise RuntimeError("the supervisor stopped early")
            await asyncio.sleep(0.05)
        background = await asyncio.gather(*replays, return_exceptions=True)
        first_time = len(answered)
        server_replays = sum(answered.values())
        replayed = sum(r.sent for r in background if not isinstance(r, BaseException))
        server_replays += sum(
            r.server_replayed for r in background if not isinstance(r, BaseException)
        )
        # Recovery: replay until the outbox is empty (bounded).
        end = time.monotonic() + 60
        while len(outbox) and time.monotonic() < end:
            await asyncio.sleep(client.breaker.retry_after_s())
            report = await client.replay_outbox()
            replayed += report.sent
            server_replays += report.server_replayed
        recover_s = time.monotonic() - last_ready
    finally:
        stop.set()
        if not supervisor.done():
            await supervisor
        await client.aclose()
        await proxy.close()
        server.stop()
    counters = outbox.counters()
    failed_keys = {f.idempotency_key for f in outbox.failed()}
    remaining = len(outbox)
    outbox.close()
    executions = {
        k: n for (_, k), n in read_executions(server.data_dir / "idempotency.sqlite3").items()
    }
    answered_keys = set(answered) | {
        k for k in keys if k not in answered and k not in failed_keys and executions.get(k)
    }
    return ChaosResult(
        requests=requests,
        kills=kills_done,
        kill_points=kill_points,
        answered_first_time=first_time,
        answered_after_replay=replayed,
        failed=len(failed_keys),
        missing=requests - first_time - replayed - len(failed_keys),
        duplicates=sum(1 for k in keys if executions.get(k, 0) > 1),
        answered_without_commit=sum(1 for k in answered_keys if not executions.get(k)),
        server_replays=server_replays,
        recover_s=round(recover_s, 2),
        wall_s=round(time.monotonic() - started, 2),
        restarts=restarts,
        proxy={
            "connections": proxy.counts.connections,
            "refused": proxy.counts.refused,
            "lost_answers": proxy.counts.lost_answers,
            "delayed": proxy.counts.delayed,
            "upstream_down": proxy.counts.upstream_down,
            "remaining_in_outbox": remaining,
        },
        outbox=asdict(counters),
    )


def run_chaos(
    work_dir: Path | None = None,
    *,
    requests: int = 200,
    kills: int = 3,
    seed: int = 8,
    baseline: bool = False,
) -> ChaosResult:
    """One chaos run (see the module); ``baseline`` adds an unimpaired, unkilled run."""
    with tempfile.TemporaryDirectory(dir=work_dir) as folder:
        result = asyncio.run(
            _run(Path(folder) / "chaos", requests=requests, kills=kills, seed=seed, impaired=True)
        )
        if baseline:
            clean = asyncio.run(
                _run(Path(folder) / "clean", requests=requests, kills=0, seed=seed, impaired=False)
            )
            result.baseline_wall_s = clean.wall_s
    return result


def _print(result: ChaosResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="chaos run: SIGKILLed server, impaired link, durable outbox")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.to_json().items():
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args(argv)
    result = run_chaos(
        requests=args.requests, kills=args.kills, seed=args.seed, baseline=args.baseline
    )
    if args.json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        _print(result)


if __name__ == "__main__":
    main()
