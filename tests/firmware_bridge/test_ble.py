"""The BLE link, driven by a stand-in for bleak's client (no adapter exists here)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from firmware_bridge._link_errors import LinkClosedError, LinkConfigError
from firmware_bridge.transports.ble import NUS_RX_UUID, NUS_TX_UUID, BleLink


class FakeBleakClient:
    """A fake of ``bleak.BleakClient``: records writes, lets the test notify."""

    def __init__(self, mtu_size: int = 247) -> None:
        self.mtu_size = mtu_size
        self.writes: list[tuple[str, bytes, bool]] = []
        self.callback: Any = None
        self.disconnected = False

    async def start_notify(self, char_specifier: str, callback: Any) -> None:
        assert char_specifier == NUS_TX_UUID
        self.callback = callback

    async def write_gatt_char(
        self, char_specifier: str, data: bytes, response: bool = False
    ) -> None:
        self.writes.append((char_specifier, bytes(data), response))

    async def disconnect(self) -> bool:
        self.disconnected = True
        return True


def test_frames_go_out_as_writes_and_come_in_as_notifications() -> None:
    async def run() -> None:
        client = FakeBleakClient(mtu_size=247)
        link = BleLink(client)
        await link.start()
        assert link.mtu_bytes == 244  # the protocol's default BLE MTU
        await link.send(b"\x01" * 244)
        assert client.writes == [(NUS_RX_UUID, b"\x01" * 244, False)]
        with pytest.raises(LinkConfigError, match="exceeds the link MTU of 244"):
            await link.send(b"\x01" * 245)
        client.callback(None, bytearray(b"notified"))
        assert await link.receive() == b"notified"
        await link.close()
        assert client.disconnected
        with pytest.raises(LinkClosedError):
            await link.receive()

    asyncio.run(run())


def test_a_slow_reader_drops_and_counts_notifications() -> None:
    async def run() -> None:
        client = FakeBleakClient()
        link = BleLink(client, max_pending=2)
        await link.start()
        for i in range(5):
            client.callback(None, bytearray([i]))
        assert link.dropped_notifications == 3
        assert [await link.receive(), await link.receive()] == [b"\x00", b"\x01"]

    asyncio.run(run())


def test_impossible_mtu_is_rejected() -> None:
    with pytest.raises(LinkConfigError, match=r"20\.\.512"):
        BleLink(FakeBleakClient(mtu_size=10))
