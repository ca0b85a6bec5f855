"""firmware_bridge: the wire protocol between glasses-sdk and the glasses' firmware.

The protocol is specified in ``PROTOCOL.md`` beside this file; the codec is pure and
I/O-free, and links (TCP, serial, BLE, memory) implement one small base class.
"""

from firmware_bridge._link_errors import LinkClosedError, LinkConfigError, LinkError
from firmware_bridge.transports._base import Link, MemoryLink

__all__ = ["Link", "LinkClosedError", "LinkConfigError", "LinkError", "MemoryLink"]
