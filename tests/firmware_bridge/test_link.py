"""The in-memory link pair: both directions, MTU, back-pressure and close."""

from __future__ import annotations

import asyncio

import pytest

from firmware_bridge._link_errors import LinkClosedError, LinkConfigError
from firmware_bridge.transports import MemoryLink


def test_packets_flow_both_ways_in_order() -> None:
    async def run() -> None:
        host, device = MemoryLink.pair(mtu_bytes=244)
        async with host, device:
            for i in range(5):
                await host.send(bytes([i]) * 10)
            await device.send(b"pong")
            assert [await device.receive() for _ in range(5)] == [bytes([i]) * 10 for i in range(5)]
            assert await host.receive() == b"pong"
            assert host.mtu_bytes == 244

    asyncio.run(run())


def test_mtu_is_enforced_and_settings_validated() -> None:
    async def run() -> None:
        host, _device = MemoryLink.pair(mtu_bytes=20)
        with pytest.raises(LinkConfigError, match="exceeds the link MTU of 20"):
            await host.send(b"x" * 21)

    asyncio.run(run())
    with pytest.raises(LinkConfigError, match=r"20\.\.65535"):
        MemoryLink(mtu_bytes=10)


def test_a_full_link_applies_back_pressure() -> None:
    async def run() -> None:
        host, device = MemoryLink.pair(capacity_packets=2)
        await host.send(b"a")
        await host.send(b"b")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(host.send(b"c"), timeout=0.05)
        assert await device.receive() == b"a"

    asyncio.run(run())


def test_close_wakes_the_peer_after_pending_packets() -> None:
    async def run() -> None:
        host, device = MemoryLink.pair()
        reader = asyncio.create_task(device.receive())
        await asyncio.sleep(0)
        await host.send(b"last")
        assert await reader == b"last"
        await host.close()
        with pytest.raises(LinkClosedError, match="peer closed"):
            await device.receive()
        with pytest.raises(LinkClosedError):
            await host.send(b"more")
        assert host.closed and device.closed

    asyncio.run(run())
