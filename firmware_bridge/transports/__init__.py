"""Transports: one small :class:`Link` base; memory now, TCP, serial and BLE beside it."""

from firmware_bridge.transports._base import Link, MemoryLink

__all__ = ["Link", "MemoryLink"]
