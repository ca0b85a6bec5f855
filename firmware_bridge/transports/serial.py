"""Serial links (pyserial): the bench wire to a development board.

Reads are event-driven on the port's file descriptor (no polling thread); writes run in
a worker thread, since a 244-byte frame takes about 21 ms at 115,200 baud and must not
block the event loop. A serial line has no MTU of its own: ``mtu_bytes`` is what the
host chooses to send in one frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from firmware_bridge._link_errors import LinkClosedError, LinkConfigError
from firmware_bridge.transports._base import Link

__all__ = ["SerialLink"]


class SerialLink(Link):
    """A serial port as a :class:`Link` of byte chunks."""

    def __init__(self, port: Any, *, mtu_bytes: int = 512) -> None:
        """Wrap an open ``serial.Serial`` (use :meth:`open` to open one by path)."""
        if not 20 <= mtu_bytes <= 65_535:
            raise LinkConfigError(f"mtu_bytes must be within 20..65535, got {mtu_bytes}")
        self._port = port
        self._mtu = mtu_bytes
        self._closed = False
        self._readable = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(port.fileno(), self._readable.set)

    @classmethod
    async def open(cls, path: str, *, baud: int = 115_200, mtu_bytes: int = 512) -> SerialLink:
        """Open the serial device at ``path`` (8N1, no flow control)."""
        try:
            import serial
        except ImportError as exc:  # pragma: no cover - pyserial is a core dependency
            raise LinkConfigError("pyserial is not installed: pip install pyserial") from exc
        if baud <= 0:
            raise LinkConfigError(f"baud must be positive, got {baud}")
        try:
            port = serial.Serial(path, baudrate=baud, timeout=0, write_timeout=5.0)
        except (serial.SerialException, OSError) as exc:
            raise LinkClosedError(f"cannot open serial port {path}: {exc}") from exc
        return cls(port, mtu_bytes=mtu_bytes)

    @property
    def mtu_bytes(self) -> int:
        return self._mtu

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, packet: bytes) -> None:
        self._check_sendable(packet, "serial")
        try:
            await asyncio.to_thread(self._port.write, packet)
        except Exception as exc:  # pyserial raises SerialException, SerialTimeoutException
            raise LinkClosedError(f"serial write failed: {exc}") from exc

    async def receive(self) -> bytes:
        while True:
            if self._closed:
                raise LinkClosedError("receive on a closed serial link")
            try:
                data: bytes = self._port.read(max(1, self._port.in_waiting))
            except Exception as exc:  # the device was unplugged
                await self.close()
                raise LinkClosedError(f"serial read failed: {exc}") from exc
            if data:
                return data
            self._readable.clear()
            await self._readable.wait()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._port.fileno())
        self._readable.set()  # wake a reader blocked in receive()
        with contextlib.suppress(Exception):
            self._port.close()
