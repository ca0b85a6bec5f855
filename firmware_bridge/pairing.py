"""Pairing and link security: a short code, SPAKE2, pinned certificates, mutual TLS 1.3.

A camera on someone's face must not be readable by whoever shares the network. Pairing
runs once per host and device:

1. The device shows or speaks a short code (:func:`new_pairing_code`, 6 digits).
2. Over a fresh connection, host (side A) and device (side B) run SPAKE2 keyed by the
   code. A passive capture of the exchange does not let anyone test guesses offline;
   an active attacker gets one guess per attempt, and the device limits attempts.
3. Each side sends its self-signed certificate encrypted with AES-GCM under a key
   derived (HKDF-SHA256) from the SPAKE2 key. A wrong code makes the first decryption
   fail: the device answers ``REFUSED`` and closes, and nothing else is exchanged.
4. Each side stores the other's certificate. From then on every TCP link is TLS 1.3
   with client and server certificates, each side trusting exactly the pinned
   certificate of the other (:func:`tls_context`).

Wire format of the pairing exchange (before TLS), every message length-prefixed with
a 2-byte big-endian length: ``host → "GSPAIR1" + spake_a``; ``device → spake_b``;
``host → nonce(12) + sealed(host cert DER)``; ``device → nonce(12) + sealed(device cert
DER)`` or ``"REFUSED"``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import secrets
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from firmware_bridge._link_errors import LinkClosedError, LinkError
from firmware_bridge.transports._base import Link

__all__ = [
    "Identity",
    "PairingError",
    "PairingRefusedError",
    "fingerprint",
    "new_pairing_code",
    "pair_as_device",
    "pair_as_host",
    "tls_context",
]

_MAGIC = b"GSPAIR1"
_REFUSED = b"REFUSED"
_ID_HOST = b"glasses-sdk host"
_ID_DEVICE = b"glasses-sdk device"
_MAX_MESSAGE = 4096  # certificates are about 500 bytes; anything larger is not ours
_CODE_DIGITS = 6


class PairingError(LinkError):
    """Pairing failed: a malformed or unexpected message, or a lost link."""


class PairingRefusedError(PairingError):
    """The other side refused: the code was wrong (or it stopped accepting attempts)."""


def new_pairing_code() -> str:
    """A fresh 6-digit code from the OS's secure random source."""
    return f"{secrets.randbelow(10**_CODE_DIGITS):0{_CODE_DIGITS}d}"


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER bytes, as lowercase hex: what is pinned."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class Identity:
    """A self-signed certificate and its private key (PEM), one per host or device."""

    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def generate(cls, common_name: str) -> Identity:
        """A new P-256 key and a self-signed certificate valid for ten years."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=3650))
            # A self-signed certificate pinned as its own trust anchor must be a CA to
            # OpenSSL's chain check; it signs nothing else.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the certificate."""
        return fingerprint(self.cert_pem)

    def save(self, folder: Path) -> None:
        """Write ``cert.pem`` and ``key.pem`` (readable by the owner only) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (folder / "cert.pem").write_bytes(self.cert_pem)
        key_path = folder / "key.pem"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.key_pem)

    @classmethod
    def load_or_create(cls, folder: Path, common_name: str) -> Identity:
        """The identity saved in ``folder``, created there on first use."""
        cert, key = folder / "cert.pem", folder / "key.pem"
        if cert.is_file() and key.is_file():
            return cls(cert.read_bytes(), key.read_bytes())
        identity = cls.generate(common_name)
        identity.save(folder)
        return identity


def tls_context(identity: Identity, peer_cert_pem: bytes, *, server: bool) -> ssl.SSLContext:
    """Mutual TLS 1.3 trusting only ``peer_cert_pem``; ``server`` picks the side."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    if not server:
        context.check_hostname = False  # the pin is the identity, not a host name
    context.load_verify_locations(cadata=peer_cert_pem.decode("ascii"))
    # ssl only loads a key from files: write them to a private folder and delete it.
    with tempfile.TemporaryDirectory() as folder:
        identity.save(Path(folder))
        context.load_cert_chain(Path(folder) / "cert.pem", Path(folder) / "key.pem")
    return context


def _key(shared: bytes) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"glasses-sdk pairing v1"
    ).derive(shared)
    return AESGCM(derived)


class _Stream:
    """Length-prefixed messages over a link that may split or join byte chunks."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._buffer = bytearray()

    async def send(self, message: bytes) -> None:
        await self._link.send(len(message).to_bytes(2, "big") + message)

    async def receive(self) -> bytes:
        while True:
            if len(self._buffer) >= 2:
                size = int.from_bytes(self._buffer[:2], "big")
                if size > _MAX_MESSAGE:
                    raise PairingError(f"pairing message of {size} bytes is too large")
                if len(self._buffer) >= 2 + size:
                    message = bytes(self._buffer[2 : 2 + size])
                    del self._buffer[: 2 + size]
                    return message
            try:
                self._buffer += await self._link.receive()
            except LinkClosedError as exc:
                raise PairingError(f"the link closed during pairing: {exc}") from exc


def _seal(box: AESGCM, data: bytes, role: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + box.encrypt(nonce, data, role)


def _open(box: AESGCM, sealed: bytes, role: bytes) -> bytes:
    if len(sealed) < 12 + 16:
        raise PairingError("pairing message too short")
    return box.decrypt(sealed[:12], sealed[12:], role)


def _cert_from_der(der: bytes) -> bytes:
    try:
        return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    except ValueError as exc:
        raise PairingError(f"the peer sent an invalid certificate: {exc}") from exc


def _check_code(code: str) -> bytes:
    if not (len(code) == _CODE_DIGITS and code.isdigit()):
        raise PairingError(f"a pairing code is {_CODE_DIGITS} digits, got {code!r}")
    return code.encode("ascii")


async def pair_as_host(link: Link, code: str, identity: Identity) -> bytes:
    """Run the host side of pairing; return the device's certificate (PEM) to pin."""
    from spake2 import SPAKE2_A  # lazy: only pairing needs it

    spake = SPAKE2_A(_check_code(code), idA=_ID_HOST, idB=_ID_DEVICE)
    stream = _Stream(link)
    await stream.send(_MAGIC + spake.start())
    try:
        box = _key(spake.finish(await stream.receive()))
    except (ValueError, TypeError) as exc:  # spake2 rejects a malformed element
        raise PairingError(f"malformed pairing message from the device: {exc}") from exc
    host_der = x509.load_pem_x509_certificate(identity.cert_pem).public_bytes(
        serialization.Encoding.DER
    )
    await stream.send(_seal(box, host_der, b"host"))
    answer = await stream.receive()
    if answer == _REFUSED:
        raise PairingRefusedError("the device refused the pairing code")
    try:
        return _cert_from_der(_open(box, answer, b"device"))
    except InvalidTag as exc:
        raise PairingRefusedError("the device does not know this pairing code") from exc


async def pair_as_device(link: Link, code: str, identity: Identity) -> bytes:
    """Run the device side of pairing; return the host's certificate (PEM) to pin.

    Raises :class:`PairingRefusedError` (after telling the host) when the code is wrong.
    """
    from spake2 import SPAKE2_B

    spake = SPAKE2_B(_check_code(code), idA=_ID_HOST, idB=_ID_DEVICE)
    stream = _Stream(link)
    first = await stream.receive()
    if not first.startswith(_MAGIC):
        raise PairingError("not a pairing request (bad magic)")
    await stream.send(spake.start())
    try:
        box = _key(spake.finish(first[len(_MAGIC) :]))
    except (ValueError, TypeError) as exc:
        raise PairingError(f"malformed pairing message from the host: {exc}") from exc
    try:
        host_pem = _cert_from_der(_open(box, await stream.receive(), b"host"))
    except InvalidTag as exc:
        with contextlib.suppress(LinkError):
            await stream.send(_REFUSED)
        raise PairingRefusedError("wrong pairing code") from exc
    device_der = x509.load_pem_x509_certificate(identity.cert_pem).public_bytes(
        serialization.Encoding.DER
    )
    await stream.send(_seal(box, device_der, b"device"))
    return host_pem
