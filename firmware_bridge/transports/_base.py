"""The one small base every link to a device implements, and an in-memory pair of links.

A :class:`Link` moves opaque byte packets in both directions; framing, CRCs and
fragmentation live above it in the protocol codec, so that the same codec runs over TCP,
a serial line, BLE or memory. ``mtu_bytes`` is the largest packet the link carries in
one piece (BLE: the negotiated ATT MTU less its overhead; TCP: 65,535).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from firmware_bridge._link_errors import LinkClosedError, LinkConfigError

__all__ = ["Link", "MemoryLink"]


class Link(ABC):
    """Bytes in and out of a device. Implementations: TCP, serial, BLE, memory."""

    @property
    @abstractmethod
    def mtu_bytes(self) -> int:
        """The largest packet :meth:`send` accepts."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once the link was closed by either side."""

    @abstractmethod
    async def send(self, packet: bytes) -> None:
        """Send one packet of at most :attr:`mtu_bytes`; raises :class:`LinkClosedError`
        once closed."""

    @abstractmethod
    async def receive(self) -> bytes:
        """The next packet (a byte chunk, for stream links); raises
        :class:`LinkClosedError` when the link is closed and nothing is left."""

    @abstractmethod
    async def close(self) -> None:
        """Close the link; idempotent."""

    def _check_sendable(self, packet: bytes, kind: str) -> None:
        """Raise unless the link is open and ``packet`` fits its MTU (for ``send``)."""
        if self.closed:
            raise LinkClosedError(f"send on a closed {kind} link")
        if len(packet) > self.mtu_bytes:
            raise LinkConfigError(
                f"packet of {len(packet)} bytes exceeds the link MTU of {self.mtu_bytes} bytes"
            )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


_CLOSED = object()


class MemoryLink(Link):
    """One end of an in-memory link pair, for tests and for the emulator in one process.

    The queue toward the peer is bounded (``capacity_packets``): a sender that outruns
    its receiver waits, as on a real link, rather than growing memory.
    """

    def __init__(self, mtu_bytes: int = 65_535, capacity_packets: int = 1024) -> None:
        if not 20 <= mtu_bytes <= 65_535:
            raise LinkConfigError(f"mtu_bytes must be within 20..65535, got {mtu_bytes}")
        if capacity_packets <= 0:
            raise LinkConfigError(f"capacity_packets must be positive, got {capacity_packets}")
        self._mtu = mtu_bytes
        self._inbox: asyncio.Queue[bytes | object] = asyncio.Queue(capacity_packets)
        self._peer: MemoryLink | None = None
        self._closed = False

    @classmethod
    def pair(cls, mtu_bytes: int = 65_535, capacity_packets: int = 1024) -> tuple[Self, Self]:
        """Two connected ends: what one sends, the other receives."""
        a = cls(mtu_bytes, capacity_packets)
        b = cls(mtu_bytes, capacity_packets)
        a._peer, b._peer = b, a
        return a, b

    @property
    def mtu_bytes(self) -> int:
        return self._mtu

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, packet: bytes) -> None:
        if self._peer is None or self._peer._closed:
            raise LinkClosedError("send on a closed memory link")
        self._check_sendable(packet, "memory")
        await self._peer._inbox.put(bytes(packet))

    async def receive(self) -> bytes:
        if self._closed and self._inbox.empty():
            raise LinkClosedError("receive on a closed memory link")
        item = await self._inbox.get()
        if item is _CLOSED:
            self._closed = True
            raise LinkClosedError("the peer closed the memory link")
        assert isinstance(item, bytes)
        return item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Wake our own reader and tell the peer, without blocking on a full queue.
        for queue in (self._inbox, None if self._peer is None else self._peer._inbox):
            if queue is not None:
                try:
                    queue.put_nowait(_CLOSED)
                except asyncio.QueueFull:
                    # A full queue means a stalled reader: its oldest packet is
                    # dropped so that the close marker always gets through.
                    _ = queue.get_nowait()
                    queue.put_nowait(_CLOSED)
