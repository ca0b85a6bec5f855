"""TCP links: the emulator and Wi-Fi devices, optionally under TLS.

TCP is a byte stream: :meth:`TcpLink.receive` returns whatever bytes arrived (up to
``read_bytes``), and the protocol's stream decoder finds frame boundaries. ``mtu_bytes``
is the largest frame the host will send (the protocol's TCP maximum, 65,535).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable

from firmware_bridge._link_errors import LinkClosedError, LinkConfigError
from firmware_bridge.transports._base import Link

__all__ = ["TCP_MTU_BYTES", "TcpLink", "TcpServer"]

TCP_MTU_BYTES = 65_535
"""The largest frame on a TCP link (the protocol's 16-bit payload length bounds it)."""

_READ_BYTES = 65_536


class TcpLink(Link):
    """One TCP connection, as a :class:`Link` of byte chunks."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        mtu_bytes: int = TCP_MTU_BYTES,
        read_bytes: int = _READ_BYTES,
    ) -> None:
        if not 20 <= mtu_bytes <= TCP_MTU_BYTES:
            raise LinkConfigError(f"mtu_bytes must be within 20..65535, got {mtu_bytes}")
        self._reader = reader
        self._writer = writer
        self._mtu = mtu_bytes
        self._read_bytes = read_bytes
        self._closed = False

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout_s: float = 10.0,
    ) -> TcpLink:
        """Open a connection (TLS when ``ssl_context`` is given) within ``timeout_s``."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host,
                    port,
                    ssl=ssl_context,
                    server_hostname=server_hostname if ssl_context is not None else None,
                ),
                timeout=timeout_s,
            )
        except TimeoutError as exc:
            raise LinkClosedError(f"no answer from {host}:{port} within {timeout_s:g} s") from exc
        except OSError as exc:
            raise LinkClosedError(
                f"cannot connect to {host}:{port}: {exc.strerror or exc}"
            ) from exc
        return cls(reader, writer)

    @property
    def mtu_bytes(self) -> int:
        return self._mtu

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def peer(self) -> tuple[str, int] | None:
        """The remote address, when the socket knows it."""
        peer = self._writer.get_extra_info("peername")
        return None if peer is None else (str(peer[0]), int(peer[1]))

    @property
    def peer_certificate_der(self) -> bytes | None:
        """The peer's TLS certificate (DER), for pinning; None without TLS."""
        ssl_object = self._writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        der: bytes | None = ssl_object.getpeercert(binary_form=True)
        return der

    async def send(self, packet: bytes) -> None:
        self._check_sendable(packet, "TCP")
        try:
            self._writer.write(packet)
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._closed = True
            raise LinkClosedError(f"TCP link lost while sending: {exc}") from exc

    async def receive(self) -> bytes:
        if self._closed:
            raise LinkClosedError("receive on a closed TCP link")
        try:
            data = await self._reader.read(self._read_bytes)
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            self._closed = True
            raise LinkClosedError(f"TCP link lost while receiving: {exc}") from exc
        if not data:
            self._closed = True
            raise LinkClosedError("the peer closed the TCP link")
        return data

    async def close(self) -> None:
        if self._closed and self._writer.is_closing():
            return
        self._closed = True
        self._writer.close()
        # A peer that vanished cannot complete the TLS close; that is not our error.
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), timeout=2.0)


class TcpServer:
    """Accepts TCP (or TLS) connections and hands each to ``handler`` as a :class:`TcpLink`.

    Binds to 127.0.0.1 unless told otherwise; port 0 picks a free port (see :attr:`port`).
    """

    def __init__(
        self,
        handler: Callable[[TcpLink], Awaitable[None]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, ssl=self._ssl
        )

    @property
    def port(self) -> int:
        """The port actually bound."""
        if self._server is None:
            raise LinkConfigError("the server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = TcpLink(reader, writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handler(link)
        finally:
            await link.close()
            if task is not None:
                self._tasks.discard(task)

    async def close(self) -> None:
        """Stop listening and end every connection."""
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> TcpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
