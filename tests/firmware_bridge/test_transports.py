"""Real transports: TCP on 127.0.0.1 (plain and TLS) and pyserial over a pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import tty

import pytest

from firmware_bridge._link_errors import LinkClosedError, LinkConfigError
from firmware_bridge.transports import LinkAddress, open_link, parse_link_uri
from firmware_bridge.transports.serial import SerialLink
from firmware_bridge.transports.tcp import TcpLink, TcpServer


async def _receive_exactly(link: TcpLink | SerialLink, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += await asyncio.wait_for(link.receive(), timeout=5)
    return data


def test_tcp_echo_over_loopback() -> None:
    async def echo(link: TcpLink) -> None:
        try:
            while True:
                await link.send(await link.receive())
        except LinkClosedError:
            pass

    async def run() -> None:
        async with TcpServer(echo) as server:
            link = await TcpLink.connect("127.0.0.1", server.port)
            payload = bytes(range(256)) * 200  # 51,200 bytes
            await link.send(payload)
            assert await _receive_exactly(link, len(payload)) == payload
            assert link.peer == ("127.0.0.1", server.port)
            assert link.peer_certificate_der is None
            with pytest.raises(LinkConfigError, match="exceeds the link MTU"):
                await link.send(b"x" * 70_000)
            await link.close()
            with pytest.raises(LinkClosedError):
                await link.send(b"late")

    asyncio.run(run())


def test_tcp_server_close_is_seen_by_the_client() -> None:
    async def hang_up(link: TcpLink) -> None:
        await link.close()

    async def run() -> None:
        async with TcpServer(hang_up) as server:
            link = await TcpLink.connect("127.0.0.1", server.port)
            with pytest.raises(LinkClosedError, match="closed"):
                await asyncio.wait_for(link.receive(), timeout=5)
            await link.close()

    asyncio.run(run())


def test_tcp_connect_refused_is_a_link_error() -> None:
    async def run() -> None:
        async with TcpServer(lambda link: link.close()) as server:
            port = server.port
        with pytest.raises(LinkClosedError, match=f"cannot connect to 127.0.0.1:{port}"):
            await TcpLink.connect("127.0.0.1", port, timeout_s=2)

    asyncio.run(run())


def test_serial_over_a_pseudo_terminal() -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    path = os.ttyname(slave)

    async def run() -> None:
        link = await SerialLink.open(path, baud=115_200, mtu_bytes=244)
        try:
            payload = bytes(range(200))
            await link.send(payload)
            loop = asyncio.get_running_loop()
            got = b""
            while len(got) < len(payload):
                got += await loop.run_in_executor(None, os.read, master, 4096)
            assert got == payload
            os.write(master, b"\x01\x02from the board")
            assert await _receive_exactly(link, 16) == b"\x01\x02from the board"
            with pytest.raises(LinkConfigError, match="MTU of 244"):
                await link.send(b"x" * 245)
        finally:
            await link.close()
        with pytest.raises(LinkClosedError):
            await link.receive()

    try:
        asyncio.run(run())
    finally:
        os.close(master)
        os.close(slave)


def test_serial_open_failure_names_the_port() -> None:
    async def run() -> None:
        with pytest.raises(LinkClosedError, match="/dev/nonexistent-tty"):
            await SerialLink.open("/dev/nonexistent-tty")

    asyncio.run(run())


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("tcp://127.0.0.1:7000", LinkAddress("tcp", host="127.0.0.1", port=7000)),
        (
            "serial:///dev/ttyACM0?baud=921600",
            LinkAddress("serial", path="/dev/ttyACM0", baud=921600),
        ),
        ("serial:///dev/ttyUSB1", LinkAddress("serial", path="/dev/ttyUSB1")),
        ("ble://AA:BB:CC:DD:EE:FF", LinkAddress("ble", host="AA:BB:CC:DD:EE:FF")),
    ],
)
def test_link_uris_parse(uri: str, expected: LinkAddress) -> None:
    assert parse_link_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("tcp://127.0.0.1", "tcp://HOST:PORT"),
        ("tcp://127.0.0.1:99999", "tcp://HOST:PORT"),
        ("serial:///dev/ttyS0?baud=fast", "baud .* must be an integer"),
        ("serial:///dev/ttyS0?parity=odd", "unknown option"),
        ("http://example", "unsupported link"),
        ("ble://", "ble://ADDRESS"),
    ],
)
def test_bad_link_uris_say_what_was_expected(uri: str, match: str) -> None:
    with pytest.raises(LinkConfigError, match=match):
        parse_link_uri(uri)


def test_open_link_connects_over_tcp() -> None:
    async def run() -> None:
        async def greet(link: TcpLink) -> None:
            await link.send(b"hi")

        async with TcpServer(greet) as server:
            link = await open_link(f"tcp://127.0.0.1:{server.port}")
            assert await asyncio.wait_for(link.receive(), 5) == b"hi"
            await link.close()

    asyncio.run(run())
