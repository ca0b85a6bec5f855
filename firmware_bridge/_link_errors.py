"""Errors of the transport layer (links); the protocol's own tree is in ``_errors``."""

from __future__ import annotations

from firmware_bridge._errors import BridgeError

__all__ = ["LinkClosedError", "LinkConfigError", "LinkError"]


class LinkError(BridgeError):
    """Base of the errors a :class:`~firmware_bridge.Link` raises."""


class LinkClosedError(LinkError, ConnectionError):
    """The link is closed, by this side or by the peer."""


class LinkConfigError(LinkError, ValueError):
    """A link setting or a packet that the link cannot carry (MTU, capacity)."""
