"""BLE links with bleak, on a Nordic-UART-style GATT service (extra ``ble``).

The device exposes one service with two characteristics: RX (host writes, without
response) and TX (device notifies). Each notification or write carries at most one
protocol frame of ``mtu_bytes`` (the negotiated ATT MTU less its 3-byte header), so the
protocol's fragmentation does the rest. Security relies on the OS's bonding and link
encryption. Written against bleak's public API; there is no Bluetooth adapter where
the tests run, so the tests drive this class with a stand-in client object (named as a
fake there) and the same codec.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from firmware_bridge._link_errors import LinkClosedError, LinkConfigError
from firmware_bridge.transports._base import Link

__all__ = [
    "ATT_HEADER_BYTES",
    "NUS_RX_UUID",
    "NUS_SERVICE_UUID",
    "NUS_TX_UUID",
    "BleClient",
    "BleLink",
]

NUS_SERVICE_UUID = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
"""The Nordic UART service."""
NUS_RX_UUID = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
"""Host → device characteristic (write without response)."""
NUS_TX_UUID = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
"""Device → host characteristic (notify)."""
ATT_HEADER_BYTES = 3
"""Opcode and handle of an ATT write/notification, taken from the ATT MTU."""


class BleClient(Protocol):
    """The part of ``bleak.BleakClient`` this link uses."""

    @property
    def mtu_size(self) -> int:
        """The negotiated ATT MTU."""

    async def start_notify(self, char_specifier: str, callback: Any) -> None:
        """Subscribe to notifications of a characteristic."""

    async def write_gatt_char(self, char_specifier: str, data: bytes, response: bool = ...) -> None:
        """Write a characteristic."""

    async def disconnect(self) -> Any:
        """Disconnect."""


class BleLink(Link):
    """A connected BLE client as a :class:`Link` of frames."""

    def __init__(self, client: BleClient, *, max_pending: int = 256) -> None:
        mtu = client.mtu_size - ATT_HEADER_BYTES
        if not 20 <= mtu <= 512:
            raise LinkConfigError(f"BLE payload MTU must be within 20..512, got {mtu}")
        self._client = client
        self._mtu = mtu
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue(max_pending)
        self._closed = False
        self.dropped_notifications = 0
        """Notifications dropped because the reader fell behind (the queue was full)."""

    @classmethod
    async def open(cls, address: str, *, timeout_s: float = 20.0) -> BleLink:
        """Connect to ``address`` with bleak and subscribe to the TX characteristic."""
        try:
            from bleak import BleakClient
        except ImportError as exc:
            raise LinkConfigError(
                "bleak is not installed; install it with: pip install 'glasses-sdk[ble]'"
            ) from exc
        client = BleakClient(address, timeout=timeout_s)
        try:
            await client.connect()
        except Exception as exc:  # bleak raises BleakError and OS-specific errors
            raise LinkClosedError(f"cannot connect to BLE device {address}: {exc}") from exc
        link = cls(client)
        await link.start()
        return link

    async def start(self) -> None:
        """Subscribe to the device's notifications."""
        await self._client.start_notify(NUS_TX_UUID, self._on_notify)

    def _on_notify(self, _characteristic: object, data: bytearray) -> None:
        # Called by bleak on the event loop; never block here.
        try:
            self._inbox.put_nowait(bytes(data))
        except asyncio.QueueFull:
            self.dropped_notifications += 1

    @property
    def mtu_bytes(self) -> int:
        return self._mtu

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, packet: bytes) -> None:
        self._check_sendable(packet, "BLE")
        try:
            await self._client.write_gatt_char(NUS_RX_UUID, packet, response=False)
        except Exception as exc:
            raise LinkClosedError(f"BLE write failed: {exc}") from exc

    async def receive(self) -> bytes:
        if self._closed and self._inbox.empty():
            raise LinkClosedError("receive on a closed BLE link")
        item = await self._inbox.get()
        if item is None:
            raise LinkClosedError("the BLE link was closed")
        return item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._inbox.put_nowait(None)
        except asyncio.QueueFull:
            _ = self._inbox.get_nowait()
            self._inbox.put_nowait(None)
        try:
            await self._client.disconnect()
        except Exception:  # already gone: closing is best effort
            return
