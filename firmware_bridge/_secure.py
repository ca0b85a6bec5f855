"""TCP links to a device: the connection preamble, pairing, and pinned mutual TLS 1.3.

Every TCP connection to a device (or the emulator) starts with an 8-byte plaintext
preamble from the host that says what it wants, and an 8-byte answer (PROTOCOL.md §13):

=============  ==============================================================
``GSLINK1P``   pair: SPAKE2 over the pairing code follows (``pairing.py``)
``GSLINK1T``   TLS 1.3 with client and server certificates, each side pinned
``GSLINK1I``   plaintext frames; only a device started ``--insecure`` accepts it
``GSLINK1+``   (answer) go ahead
``GSLINK1-``   (answer) refused; a 2-byte big-endian length and a UTF-8 reason
               follow, then the device closes the connection
=============  ==============================================================

After a TLS handshake the device sends ``GSLINK1+`` once more, inside TLS, to confirm
that it accepted the host's certificate (in TLS 1.3 the client finishes its handshake
before the server has checked the client). So pairing and sessions share one port, and
a refused host learns why instead of seeing a reset. The pairing store keeps the host's
identity and, per device address, the device certificate pinned at pairing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import ssl
from pathlib import Path

from firmware_bridge._link_errors import LinkClosedError
from firmware_bridge.pairing import Identity, PairingError, fingerprint, pair_as_host, tls_context
from firmware_bridge.transports.tcp import TcpLink

__all__ = [
    "PAIRING_DIR_ENV",
    "PREAMBLE_INSECURE",
    "PREAMBLE_PAIR",
    "PREAMBLE_TLS",
    "PairingRequiredError",
    "PairingStore",
    "config_dir",
    "connect_tcp",
    "pair_tcp",
    "read_answer",
]

PREAMBLE_PAIR = b"GSLINK1P"
PREAMBLE_TLS = b"GSLINK1T"
PREAMBLE_INSECURE = b"GSLINK1I"
ANSWER_OK = b"GSLINK1+"
ANSWER_REFUSED = b"GSLINK1-"
PREAMBLE_BYTES = 8

PAIRING_DIR_ENV = "GLASSES_PAIRING_DIR"
"""Environment variable that overrides the host's pairing store folder."""


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/glasses-sdk`` (else ``~/.config/glasses-sdk``): pairings and the
    emulator's identity live below it."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "glasses-sdk"


class PairingRequiredError(PairingError):
    """The device does not know this host (or this host has not paired with it)."""


class PairingStore:
    """The host's identity and the device certificates it pinned, in one folder.

    ``<folder>/host/{cert,key}.pem`` is this host; ``<folder>/devices/<address>.pem``
    each paired device, by ``host_port`` address. The default folder is
    ``$GLASSES_PAIRING_DIR``, else ``$XDG_CONFIG_HOME/glasses-sdk/pairing``, else
    ``~/.config/glasses-sdk/pairing`` (configuration, not cache: losing it means
    pairing again).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def default(cls) -> PairingStore:
        """The store in the default folder (not created until used)."""
        env = os.environ.get(PAIRING_DIR_ENV)
        if env:
            return cls(Path(env).expanduser())
        return cls(config_dir() / "pairing")

    def identity(self) -> Identity:
        """This host's identity, created on first use."""
        return Identity.load_or_create(self.folder / "host", "glasses-sdk host")

    def _device_file(self, address: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", address)
        return self.folder / "devices" / f"{safe}.pem"

    def device_cert(self, address: str) -> bytes | None:
        """The certificate pinned for the device at ``address`` (``host:port``), if any."""
        path = self._device_file(address)
        return path.read_bytes() if path.is_file() else None

    def save_device(self, address: str, cert_pem: bytes) -> Path:
        """Pin ``cert_pem`` for ``address``; returns the file written."""
        path = self._device_file(address)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(cert_pem)
        return path


async def read_answer(reader: asyncio.StreamReader, what: str) -> None:
    """Read the device's answer to a preamble; raise :class:`PairingRequiredError` with
    the device's reason when it refused."""
    try:
        answer = await reader.readexactly(PREAMBLE_BYTES)
        if answer == ANSWER_OK:
            return
        if answer == ANSWER_REFUSED:
            size = int.from_bytes(await reader.readexactly(2), "big")
            reason = (await reader.readexactly(min(size, 1024))).decode("utf-8", "replace")
            raise PairingRequiredError(f"the device refused {what}: {reason}")
    except asyncio.IncompleteReadError as exc:
        raise LinkClosedError(f"the device closed the connection before answering {what}") from exc
    raise PairingError(f"not a glasses device: unexpected answer {answer!r} to {what}")


async def _open(
    host: str, port: int, preamble: bytes, timeout_s: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), timeout=timeout_s
        )
    except TimeoutError as exc:
        raise LinkClosedError(f"no answer from {host}:{port} within {timeout_s:g} s") from exc
    except OSError as exc:
        raise LinkClosedError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    writer.write(preamble)
    try:
        await asyncio.wait_for(read_answer(reader, _WHAT[preamble]), timeout=timeout_s)
    except BaseException:
        writer.close()
        raise
    return reader, writer


_WHAT = {
    PREAMBLE_PAIR: "pairing",
    PREAMBLE_TLS: "a TLS session",
    PREAMBLE_INSECURE: "an insecure (plaintext) session",
}


async def pair_tcp(
    host: str, port: int, code: str, identity: Identity, *, timeout_s: float = 10.0
) -> bytes:
    """Pair with the device at ``host:port`` using its ``code``; return its certificate.

    Raises:
        PairingRefusedError: the code is wrong.
        PairingError: anything else went wrong during pairing.
    """
    reader, writer = await _open(host, port, PREAMBLE_PAIR, timeout_s)
    link = TcpLink(reader, writer)
    try:
        return await asyncio.wait_for(pair_as_host(link, code, identity), timeout=timeout_s)
    except TimeoutError as exc:
        raise PairingError(f"pairing with {host}:{port} took over {timeout_s:g} s") from exc
    finally:
        await link.close()


async def connect_tcp(
    host: str,
    port: int,
    *,
    identity: Identity | None,
    device_cert_pem: bytes | None,
    timeout_s: float = 10.0,
) -> TcpLink:
    """Open a session link: pinned mutual TLS 1.3, or plaintext when both are None.

    Raises:
        PairingRequiredError: the device refused (it does not know this host, or it
            requires TLS), or its certificate is not the pinned one.
        LinkClosedError: no connection.
    """
    if identity is None or device_cert_pem is None:
        reader, writer = await _open(host, port, PREAMBLE_INSECURE, timeout_s)
        return TcpLink(reader, writer)
    context = tls_context(identity, device_cert_pem, server=False)
    reader, writer = await _open(host, port, PREAMBLE_TLS, timeout_s)
    try:
        await asyncio.wait_for(writer.start_tls(context), timeout=timeout_s)
    except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as exc:
        writer.close()
        raise PairingRequiredError(
            f"TLS with {host}:{port} failed ({exc}); the device does not accept this host's "
            f"certificate or presented another one: pair again with "
            f"`glasses pair tcp://{host}:{port} --code CODE`"
        ) from exc
    link = TcpLink(reader, writer)
    der = link.peer_certificate_der
    if der is None or hashlib.sha256(der).hexdigest() != fingerprint(device_cert_pem):
        await link.close()
        raise PairingRequiredError(f"{host}:{port} presented a certificate that is not pinned")
    # In TLS 1.3 the client finishes its handshake before the server has checked the
    # client's certificate, so the device confirms inside TLS that it accepted us.
    try:
        await asyncio.wait_for(read_answer(reader, "this host's certificate"), timeout=timeout_s)
    except (LinkClosedError, ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
        await link.close()
        raise PairingRequiredError(
            f"{host}:{port} refused this host's certificate: pair again with "
            f"`glasses pair tcp://{host}:{port} --code CODE`"
        ) from exc
    return link
