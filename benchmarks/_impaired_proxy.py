"""An impaired TCP link for the chaos run: a seeded asyncio proxy on 127.0.0.1.

Each accepted connection draws, from one seeded ``random.Random``, what the link does to
it: refuse it (closed before anything is forwarded) or delay it; and each chunk the
server sends may be lost (swallowed, and the connection cut: the case where the server
ran and committed the request but the client never heard). The
upstream port can be changed while running, so that a restarted server (on a new
port) is reached through the same address.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

__all__ = ["ImpairedProxy", "Impairment"]


@dataclass(frozen=True)
class Impairment:
    """Probabilities per connection, and the delay range."""

    refuse: float = 0.03
    lose_answer: float = 0.03
    delay_ms: tuple[float, float] = (0.0, 20.0)
    delay: float = 0.2


@dataclass
class ProxyCounts:
    """What the proxy did."""

    connections: int = 0
    refused: int = 0
    lost_answers: int = 0
    delayed: int = 0
    upstream_down: int = 0
    events: list[str] = field(default_factory=list)


class ImpairedProxy:
    """A TCP proxy 127.0.0.1:<port> → 127.0.0.1:<upstream_port> with seeded faults."""

    def __init__(self, upstream_port: int, *, seed: int, impairment: Impairment) -> None:
        self.upstream_port = upstream_port
        self.impairment = impairment
        self.counts = ProxyCounts()
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._relay(reader, writer)
        except asyncio.CancelledError:
            pass  # closing the proxy: end quietly (asyncio's stream callback re-raises)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts, imp, rng = self.counts, self.impairment, self._rng
        counts.connections += 1
        draw = rng.random()
        if draw < imp.refuse:
            counts.refused += 1
            return
        if rng.random() < imp.delay:
            counts.delayed += 1
            await asyncio.sleep(rng.uniform(*imp.delay_ms) / 1000)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            counts.upstream_down += 1
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, swallow: bool) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while chunk := await src.read(65536):
                    if swallow and rng.random() < imp.lose_answer:
                        # The server answered; the link loses it and drops the connection.
                        counts.lost_answers += 1
                        return
                    dst.write(chunk)
                    await dst.drain()

        upload = asyncio.ensure_future(pipe(reader, up_writer, False))
        download = asyncio.ensure_future(pipe(up_reader, writer, True))
        try:
            await asyncio.wait({upload, download}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            upload.cancel()
            download.cancel()
            await asyncio.gather(upload, download, return_exceptions=True)
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()
