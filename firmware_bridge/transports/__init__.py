"""Transports: one small :class:`Link` base; memory, TCP (TLS), serial and BLE links.

``open_link(uri)`` opens ``tcp://host:port``, ``serial:///dev/ttyX?baud=N`` or
``ble://ADDRESS``.
"""

from firmware_bridge.transports._base import Link, MemoryLink
from firmware_bridge.transports._uri import LinkAddress, open_link, parse_link_uri
from firmware_bridge.transports.ble import BleLink
from firmware_bridge.transports.serial import SerialLink
from firmware_bridge.transports.tcp import TcpLink, TcpServer

__all__ = [
    "BleLink",
    "Link",
    "LinkAddress",
    "MemoryLink",
    "SerialLink",
    "TcpLink",
    "TcpServer",
    "open_link",
    "parse_link_uri",
]
