"""The firmware bridge's exception tree.

::

    BridgeError                          base of everything the bridge raises on purpose
    ├── InvalidFieldError (ValueError)   a message built locally with an out-of-range field
    ├── MessageTooLargeError (ValueError) a message this side cannot send within the limits
    ├── AckWindowFullError               too many control messages waiting for an ACK
    ├── ImpairmentSpecError (ValueError) an ``--impair`` spec that does not parse (emulator)
    ├── ScenarioError (ValueError)       a scenario file that does not load (emulator)
    ├── SessionError                     a session with a device could not do its job (host)
    │   ├── HandshakeError               no HELLO exchange within the handshake timeout
    │   ├── DeliveryFailedError          a control message never acknowledged (§7.3)
    │   └── CommandError                 a COMMAND failed; ``code`` says why
    │       ├── CommandTimeoutError      no COMMAND_RESULT in time (or the link was lost)
    │       ├── LedBlockedError          the capture LED is blocked: no capture
    │       ├── ThermalLimitError        too hot to do it now
    │       ├── DeviceBusyError          the device is doing something that excludes it
    │       └── UnsupportedCommandError  the device cannot do it at all (or bad argument)
    ├── LinkError                        the transport (see ``_link_errors``)
    │   ├── LinkClosedError (ConnectionError)  closed by either side, or lost
    │   ├── LinkConfigError (ValueError)  a setting or packet the link cannot carry
    │   └── PairingError                 pairing failed (``pairing``)
    │       ├── PairingRefusedError      the other side refused the code
    │       └── PairingRequiredError     the device does not know this host (``_secure``)
    └── ProtocolError                    untrusted bytes broke PROTOCOL.md; the ONLY family
        │                                that decoding bytes from a peer may raise
        ├── FramingError                 the frame itself is unusable
        │   ├── BadMagicError            bytes that do not start with the magic (garbage)
        │   ├── UnsupportedVersionError  a version byte this codec does not speak
        │   ├── CrcMismatchError         CRC-32 of the frame does not match
        │   ├── TruncatedFrameError      fewer bytes than the header or its length promise
        │   ├── OversizedPayloadError    a length field larger than the MTU allows
        │   └── MalformedFrameError      reserved flag bits, unknown lane, bad fragment info
        ├── UnknownMessageTypeError      a message type id that is not in the registry
        ├── MalformedPayloadError        a payload that does not match its message layout
        └── ReassemblyError              fragments could not be put back together
            ├── ReassemblyLimitError     message size, fragment count or memory cap exceeded
            ├── ReassemblyTimeoutError   a partial message was not completed in time
            └── FragmentSequenceError    a gap, a reordering or an abandoned partial message

A fuzzer treats any exception outside ``ProtocolError`` that escapes
:func:`~firmware_bridge.protocol.decode_frame`, :class:`~firmware_bridge.protocol.FrameDecoder`
or :class:`~firmware_bridge.protocol.Reassembler` as a crash, so decoding code translates
``struct.error``, ``UnicodeDecodeError`` and enum ``ValueError`` into this tree at the
boundary. Stream decoders do not raise at all: they return the error as an event and
count it by class name.
"""

from __future__ import annotations

__all__ = [
    "AckWindowFullError",
    "BadMagicError",
    "BridgeError",
    "CommandError",
    "CommandTimeoutError",
    "CrcMismatchError",
    "DeliveryFailedError",
    "DeviceBusyError",
    "FragmentSequenceError",
    "FramingError",
    "HandshakeError",
    "ImpairmentSpecError",
    "InvalidFieldError",
    "LedBlockedError",
    "MalformedFrameError",
    "MalformedPayloadError",
    "MessageTooLargeError",
    "OversizedPayloadError",
    "ProtocolError",
    "ReassemblyError",
    "ReassemblyLimitError",
    "ReassemblyTimeoutError",
    "ScenarioError",
    "SessionError",
    "ThermalLimitError",
    "TruncatedFrameError",
    "UnknownMessageTypeError",
    "UnsupportedCommandError",
    "UnsupportedVersionError",
]


class BridgeError(Exception):
    """Base of every error the firmware bridge raises on purpose."""


class InvalidFieldError(BridgeError, ValueError):
    """A message was constructed with a field outside its wire range (a local bug).

    Decoding never raises this: a peer's out-of-range value becomes
    :class:`MalformedPayloadError`.
    """


class MessageTooLargeError(BridgeError, ValueError):
    """A message cannot be sent: larger than the message limit or than 65,535 fragments."""


class AckWindowFullError(BridgeError):
    """Too many acknowledged messages are outstanding; wait for ACKs before sending more."""


class ImpairmentSpecError(BridgeError, ValueError):
    """An impairment spec (``loss=0.05,seed=7``) with an unknown key or a bad value."""


class ScenarioError(BridgeError, ValueError):
    """A scenario file that cannot be read: bad TOML, unknown keys, missing media."""


class SessionError(BridgeError):
    """A session with a device could not do what was asked."""


class HandshakeError(SessionError):
    """The peer did not complete the HELLO exchange in time, or spoke another version."""


class DeliveryFailedError(SessionError):
    """A control message was not acknowledged after every retransmission (or the link
    was lost first); it may or may not have reached the peer."""


class CommandError(SessionError):
    """A COMMAND did not succeed. ``code`` is the device's result code (an int of
    ``CommandResultCode``), ``detail`` its explanation."""

    def __init__(self, message: str, *, code: int, detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


class CommandTimeoutError(CommandError):
    """No COMMAND_RESULT arrived within the command timeout, or the link went first."""


class LedBlockedError(CommandError):
    """The capture LED is blocked (covered or faulty), so the device refuses to capture."""


class ThermalLimitError(CommandError):
    """The device is throttling for heat and refuses the command for now."""


class DeviceBusyError(CommandError):
    """The device is busy with something the command conflicts with; retry later."""


class UnsupportedCommandError(CommandError):
    """The device does not support the command or its argument."""


class ProtocolError(BridgeError):
    """Bytes from the peer violate PROTOCOL.md. The frame or message is dropped."""


class FramingError(ProtocolError):
    """The frame header, length or checksum is unusable."""


class BadMagicError(FramingError):
    """The bytes do not start with the frame magic; a stream decoder skipped garbage."""


class UnsupportedVersionError(FramingError):
    """The frame's version byte is not one this codec speaks."""


class CrcMismatchError(FramingError):
    """The CRC-32 in the header does not match the frame's bytes."""


class TruncatedFrameError(FramingError):
    """Fewer bytes than the header, or than the header's payload length, promise."""


class OversizedPayloadError(FramingError):
    """The payload length makes the frame larger than the MTU in force."""


class MalformedFrameError(FramingError):
    """Reserved flag bits set, unknown lane, wrong lane for the type, or bad fragment info."""


class UnknownMessageTypeError(ProtocolError):
    """The message type id is not in the registry of this protocol version."""


class MalformedPayloadError(ProtocolError):
    """The payload does not match its message's layout (length, enum value, UTF-8, range)."""


class ReassemblyError(ProtocolError):
    """Fragments could not be reassembled into a message."""


class ReassemblyLimitError(ReassemblyError):
    """Message size, fragments per lane, or the global reassembly memory cap exceeded."""


class ReassemblyTimeoutError(ReassemblyError):
    """A partial message was not completed within the reassembly timeout."""


class FragmentSequenceError(ReassemblyError):
    """A fragment arrived out of order, with a gap, or with an inconsistent size or count."""
