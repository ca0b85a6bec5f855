"""Pairing over a real TCP link, then mutual TLS 1.3 with pinned certificates."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from firmware_bridge._link_errors import LinkClosedError
from firmware_bridge.pairing import (
    Identity,
    PairingError,
    PairingRefusedError,
    fingerprint,
    new_pairing_code,
    pair_as_device,
    pair_as_host,
    tls_context,
)
from firmware_bridge.transports import MemoryLink
from firmware_bridge.transports.tcp import TcpLink, TcpServer


@pytest.fixture(scope="module")
def host_identity() -> Identity:
    return Identity.generate("test host")


@pytest.fixture(scope="module")
def device_identity() -> Identity:
    return Identity.generate("test device")


def _pair(
    host_code: str, device_code: str, host: Identity, device: Identity
) -> tuple[object, object]:
    async def run() -> tuple[object, object]:
        a, b = MemoryLink.pair()
        results = await asyncio.gather(
            pair_as_host(a, host_code, host),
            pair_as_device(b, device_code, device),
            return_exceptions=True,
        )
        return results[0], results[1]

    return asyncio.run(run())


def test_matching_codes_exchange_certificates(
    host_identity: Identity, device_identity: Identity
) -> None:
    code = new_pairing_code()
    assert len(code) == 6 and code.isdigit()
    device_pem, host_pem = _pair(code, code, host_identity, device_identity)
    assert device_pem == device_identity.cert_pem
    assert host_pem == host_identity.cert_pem


def test_a_wrong_code_is_refused_on_both_sides(
    host_identity: Identity, device_identity: Identity
) -> None:
    host_result, device_result = _pair("123456", "654321", host_identity, device_identity)
    assert isinstance(host_result, PairingRefusedError)
    assert isinstance(device_result, PairingRefusedError)


def test_malformed_requests_are_pairing_errors(device_identity: Identity) -> None:
    async def run() -> None:
        a, b = MemoryLink.pair()
        await a.send(b"\x00\x05HELLO")
        with pytest.raises(PairingError, match="bad magic"):
            await pair_as_device(b, "123456", device_identity)
        with pytest.raises(PairingError, match="6 digits"):
            await pair_as_host(a, "12ab", device_identity)

    asyncio.run(run())


def test_identity_is_saved_owner_only(tmp_path: Path) -> None:
    first = Identity.load_or_create(tmp_path / "id", "x")
    again = Identity.load_or_create(tmp_path / "id", "x")
    assert first == again
    assert (tmp_path / "id" / "key.pem").stat().st_mode & 0o077 == 0
    assert fingerprint(first.cert_pem) == first.fingerprint and len(first.fingerprint) == 64


def test_pinned_mutual_tls_accepts_the_pair_and_rejects_strangers(
    host_identity: Identity, device_identity: Identity
) -> None:
    stranger = Identity.generate("stranger")
    server_ctx = tls_context(device_identity, host_identity.cert_pem, server=True)

    async def serve(link: TcpLink) -> None:
        try:
            await link.send(b"frames for my host only")
            await link.receive()
        except LinkClosedError:
            pass

    async def run() -> None:
        async with TcpServer(serve, ssl_context=server_ctx) as server:
            good = tls_context(host_identity, device_identity.cert_pem, server=False)
            link = await TcpLink.connect("127.0.0.1", server.port, ssl_context=good)
            assert await asyncio.wait_for(link.receive(), 5) == b"frames for my host only"
            assert link.peer_certificate_der is not None
            await link.close()

            # A client whose certificate the device did not pin gets no data.
            bad = tls_context(stranger, device_identity.cert_pem, server=False)
            with pytest.raises((LinkClosedError, ssl.SSLError)):
                link = await TcpLink.connect("127.0.0.1", server.port, ssl_context=bad)
                try:
                    await asyncio.wait_for(link.receive(), 5)
                finally:
                    await link.close()

            # A host that pinned another device refuses to talk to this one.
            wrong_pin = tls_context(host_identity, stranger.cert_pem, server=False)
            with pytest.raises(LinkClosedError, match="CERTIFICATE_VERIFY_FAILED"):
                await TcpLink.connect("127.0.0.1", server.port, ssl_context=wrong_pin)

    asyncio.run(run())
