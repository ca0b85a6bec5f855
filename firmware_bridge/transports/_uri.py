"""Link URIs: ``tcp://host:port``, ``serial:///dev/ttyX?baud=N``, ``ble://ADDRESS``."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from firmware_bridge._link_errors import LinkConfigError
from firmware_bridge.transports._base import Link

__all__ = ["LinkAddress", "open_link", "parse_link_uri"]

_FORMS = "tcp://HOST:PORT, serial:///dev/ttyX?baud=N or ble://ADDRESS"


@dataclass(frozen=True)
class LinkAddress:
    """A parsed link URI."""

    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""
    baud: int = 115_200


def _query_int(query: dict[str, list[str]], name: str, default: int, uri: str) -> int:
    values = query.pop(name, None)
    if values is None:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise LinkConfigError(f"{name} in {uri!r} must be an integer, got {values[-1]!r}") from None
    if value <= 0:
        raise LinkConfigError(f"{name} in {uri!r} must be positive, got {value}")
    return value


def parse_link_uri(uri: str) -> LinkAddress:
    """Parse and validate a link URI; raise :class:`LinkConfigError` saying the forms."""
    parts = urlsplit(uri)
    query = parse_qs(parts.query, keep_blank_values=True)
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or port == 0:
            raise LinkConfigError(f"expected tcp://HOST:PORT with a port in 1..65535, got {uri!r}")
        address = LinkAddress("tcp", host=parts.hostname, port=port)
    elif parts.scheme == "serial":
        if not parts.path or parts.netloc:
            raise LinkConfigError(f"expected serial:///dev/ttyX?baud=N, got {uri!r}")
        address = LinkAddress(
            "serial", path=parts.path, baud=_query_int(query, "baud", 115_200, uri)
        )
    elif parts.scheme == "ble":
        if not parts.netloc:
            raise LinkConfigError(f"expected ble://ADDRESS, got {uri!r}")
        address = LinkAddress("ble", host=parts.netloc)
    else:
        raise LinkConfigError(f"unsupported link {uri!r}; expected {_FORMS}")
    if query:
        raise LinkConfigError(f"unknown option(s) {', '.join(sorted(query))} in {uri!r}")
    return address


async def open_link(uri: str, *, ssl_context: ssl.SSLContext | None = None) -> Link:
    """Open the link a URI names (TLS over TCP when ``ssl_context`` is given)."""
    address = parse_link_uri(uri)
    if address.scheme == "tcp":
        from firmware_bridge.transports.tcp import TcpLink

        return await TcpLink.connect(address.host, address.port, ssl_context=ssl_context)
    if address.scheme == "serial":
        from firmware_bridge.transports.serial import SerialLink

        return await SerialLink.open(address.path, baud=address.baud)
    from firmware_bridge.transports.ble import BleLink

    return await BleLink.open(address.host)
