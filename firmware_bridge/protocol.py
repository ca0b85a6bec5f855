"""Wire protocol 1.0 of the firmware bridge: frames, messages and a streaming decoder.

Pure and I/O-free: bytes in, typed values out. ``PROTOCOL.md`` beside this file is the
normative description; this module follows it and the JSON test vectors in ``vectors/``
pin both together. Fragmentation, reassembly, lanes and acknowledgements live in
``_reassembly.py``.

Decoding untrusted bytes raises only :class:`~firmware_bridge._errors.ProtocolError`
subclasses (or, for :class:`FrameDecoder`, returns them as events); building a message
with an out-of-range field raises :class:`~firmware_bridge._errors.InvalidFieldError`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import struct
import types
import typing
import zlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from firmware_bridge._errors import (
    BadMagicError,
    CrcMismatchError,
    FramingError,
    InvalidFieldError,
    MalformedFrameError,
    MalformedPayloadError,
    OversizedPayloadError,
    ProtocolError,
    ReassemblyError,
    ReassemblyLimitError,
    TruncatedFrameError,
    UnknownMessageTypeError,
    UnsupportedVersionError,
)

__all__ = [
    "Ack",
    "AudioChunk",
    "AudioConfig",
    "AudioFormat",
    "BatteryStatus",
    "ButtonEvent",
    "CameraConfig",
    "CameraFrame",
    "CaptureLedState",
    "Command",
    "CommandKind",
    "CommandResult",
    "CommandResultCode",
    "DEFAULT_MTU_BYTES",
    "DisplayText",
    "ErrorCode",
    "ErrorReport",
    "FRAGMENT_EXTENSION",
    "FRAME_HEADER",
    "Fragment",
    "Frame",
    "FrameDecoder",
    "FrameFlag",
    "Gesture",
    "HEADER_SIZE",
    "Hello",
    "ImuSample",
    "Lane",
    "LedStatus",
    "MAGIC",
    "MAX_BLE_MTU_BYTES",
    "MAX_FRAME_BYTES",
    "MESSAGE_TYPES",
    "MIN_MTU_BYTES",
    "Message",
    "PROTOCOL_VERSION",
    "Ping",
    "Pong",
    "RawFrame",
    "Resolution",
    "SpeakerAudio",
    "ThermalStatus",
    "ThrottleLevel",
    "TouchEvent",
    "decode_frame",
    "decode_frame_raw",
    "decode_message",
    "error_code_for",
    "frame_crc32",
    "message_from_dict",
    "message_to_dict",
    "raw_to_frame",
]

# --------------------------------------------------------------------------------------
# Frame layer
# --------------------------------------------------------------------------------------

MAGIC = b"GB"
"""The two bytes every frame starts with (0x47 0x42, ASCII ``GB``)."""

PROTOCOL_VERSION = 1
"""The version byte of protocol 1.0 frames (the major version; 1.x keep the layout)."""

FRAME_HEADER = struct.Struct("<2sBBBBHHI")
"""magic, version, message_type, flags, lane, sequence, payload_length, crc32: 14 bytes."""

FRAGMENT_EXTENSION = struct.Struct("<HH")
"""fragment_index, fragment_count: the 4 bytes after the header when FRAGMENT is set."""

HEADER_SIZE = FRAME_HEADER.size
_CRC_OFFSET = HEADER_SIZE - 4  # the CRC is the header's last field and is not covered

MIN_MTU_BYTES = 20
"""Smallest MTU (whole frame) a link may negotiate: the BLE 4.0 ATT payload (23 - 3)."""

DEFAULT_MTU_BYTES = 244
"""MTU before the handshake completes: BLE 4.2 data length extension payload (251 - 7)."""

MAX_BLE_MTU_BYTES = 512
"""Largest MTU on BLE (the ATT attribute value limit)."""

MAX_FRAME_BYTES = 65_535
"""Largest frame on any link (TCP, serial): header + payload fit a 16-bit length."""


class Lane(enum.IntEnum):
    """Logical channels. A lower value has strictly higher send priority."""

    CONTROL = 0
    AUDIO = 1
    VIDEO = 2


class FrameFlag(enum.IntFlag):
    """Bits of the header's flags byte. Bits 3 to 7 are reserved and must be zero."""

    FRAGMENT = 0x01
    ACK_REQUESTED = 0x02
    IS_ACK = 0x04


_KNOWN_FLAGS = FrameFlag.FRAGMENT | FrameFlag.ACK_REQUESTED | FrameFlag.IS_ACK
# Plain ints and a dict on the decoder's hot path: IntFlag and Enum calls cost about a
# microsecond each, several per frame (thousands of frames a second at MTU 512).
_FRAGMENT_BIT = int(FrameFlag.FRAGMENT)
_ACK_REQUESTED_BIT = int(FrameFlag.ACK_REQUESTED)
_IS_ACK_BIT = int(FrameFlag.IS_ACK)
_LANES: dict[int, Lane] = {int(lane): lane for lane in Lane}
_KNOWN_FLAG_BITS = int(_KNOWN_FLAGS)
_MAGIC_FIRST = MAGIC[0]
_EXTENSION_SIZE = FRAGMENT_EXTENSION.size
# Bound methods looked up once: the receive loop runs them for every frame.
_UNPACK_HEADER = FRAME_HEADER.unpack_from
_UNPACK_EXTENSION = FRAGMENT_EXTENSION.unpack_from
_PACK_EXTENSION = FRAGMENT_EXTENSION.pack
_PACK_PREFIX = struct.Struct("<2sBBBBHH").pack  # FRAME_HEADER without its CRC field
_PACK_CRC = struct.Struct("<I").pack
_crc32 = zlib.crc32


def frame_crc32(frame_without_crc_prefix: bytes, after_header: bytes) -> int:
    """CRC-32 (zlib/IEEE 802.3) over header bytes 0..9 then every byte after the header.

    The CRC field itself (header bytes 10..13) is not covered, so the value can be
    computed in one pass by a sender that writes the CRC last.
    """
    return zlib.crc32(after_header, zlib.crc32(frame_without_crc_prefix)) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Fragment:
    """Position of a frame within a fragmented message: ``index`` of ``count`` (>= 2)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 2 <= self.count <= 0xFFFF:
            raise InvalidFieldError(f"fragment count must be 2..65535, got {self.count}")
        if not 0 <= self.index < self.count:
            raise InvalidFieldError(f"fragment index must be 0..{self.count - 1}, got {self.index}")


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame on the wire: header fields plus ``data`` (a whole payload or a fragment).

    ``data`` excludes the fragment extension; :attr:`fragment` carries it.
    """

    message_type: int
    lane: Lane
    sequence: int
    data: bytes
    ack_requested: bool = False
    is_ack: bool = False
    fragment: Fragment | None = None

    def __post_init__(self) -> None:
        _check_uint(self, "message_type", self.message_type, 8)
        _check_uint(self, "sequence", self.sequence, 16)
        object.__setattr__(self, "lane", _coerce_enum(self, "lane", self.lane, Lane))
        if len(self.data) > MAX_FRAME_BYTES - HEADER_SIZE - self._extension_size:
            raise InvalidFieldError(
                f"frame data of {len(self.data)} bytes exceeds a {MAX_FRAME_BYTES}-byte frame"
            )

    @property
    def _extension_size(self) -> int:
        return 0 if self.fragment is None else FRAGMENT_EXTENSION.size

    @property
    def flags(self) -> FrameFlag:
        """The flags byte this frame is sent with."""
        flags = FrameFlag(0)
        if self.fragment is not None:
            flags |= FrameFlag.FRAGMENT
        if self.ack_requested:
            flags |= FrameFlag.ACK_REQUESTED
        if self.is_ack:
            flags |= FrameFlag.IS_ACK
        return flags

    @property
    def size_bytes(self) -> int:
        """Length of the encoded frame, header included."""
        return HEADER_SIZE + self._extension_size + len(self.data)

    def pack(self) -> bytes:
        """Encode as header + [fragment extension] + data, CRC filled in."""
        fragment = self.fragment
        index, count = (0, 0) if fragment is None else (fragment.index, fragment.count)
        return _pack_raw(
            (
                self.message_type,
                self.lane,
                self.sequence,
                self.ack_requested,
                self.is_ack,
                index,
                count,
                self.data,
            )
        )

    @classmethod
    def unpack(cls, frame: bytes, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> Frame:
        """Decode exactly one frame; see :func:`decode_frame`."""
        return decode_frame(frame, max_frame_bytes=max_frame_bytes)


RawFrame = tuple[int, Lane, int, bool, bool, int, int, "bytes | memoryview"]
"""A decoded frame as plain values, for the receive hot path (no dataclass per frame):
``(message_type, lane, sequence, ack_requested, is_ack, fragment_index, fragment_count,
data)``. ``fragment_count`` is 0 for an unfragmented frame; ``data`` excludes the
fragment extension and may be a view into the received bytes (read it, do not keep it).
"""


def _pack_raw(raw: RawFrame) -> bytes:
    """Encode a :data:`RawFrame` whose fields are known valid (a checked :class:`Frame`,
    or a fragment cut by the sender from a message it checked)."""
    message_type, lane, sequence, ack_requested, is_ack, index, count, data = raw
    flags = (_ACK_REQUESTED_BIT if ack_requested else 0) | (_IS_ACK_BIT if is_ack else 0)
    if count:
        extension = _PACK_EXTENSION(index, count)
        prefix = _PACK_PREFIX(
            MAGIC,
            PROTOCOL_VERSION,
            message_type,
            flags | _FRAGMENT_BIT,
            lane,
            sequence,
            _EXTENSION_SIZE + len(data),
        )
        crc = _crc32(data, _crc32(extension, _crc32(prefix)))
        return b"".join((prefix, _PACK_CRC(crc), extension, data))
    prefix = _PACK_PREFIX(MAGIC, PROTOCOL_VERSION, message_type, flags, lane, sequence, len(data))
    return b"".join((prefix, _PACK_CRC(_crc32(data, _crc32(prefix))), data))


def raw_to_frame(raw: RawFrame) -> Frame:
    """The :class:`Frame` dataclass for a :data:`RawFrame` (``data`` copied to bytes)."""
    message_type, lane, sequence, ack_requested, is_ack, index, count, data = raw
    fragment = Fragment(index, count) if count else None
    return Frame(message_type, lane, sequence, bytes(data), ack_requested, is_ack, fragment)


def _raw_fields(
    buffer: bytes, view: memoryview, position: int, header: tuple[Any, ...]
) -> RawFrame:
    """Check the fields of a frame whose magic, version, length and CRC are known right.

    ``buffer[position:]`` starts with the frame, ``header`` is its unpacked
    :data:`FRAME_HEADER` and ``view`` a memoryview of ``buffer``.
    """
    _, _, message_type, flags, lane_value, sequence, payload_length, _ = header
    if flags & ~_KNOWN_FLAG_BITS:
        raise MalformedFrameError(f"reserved flag bits set: flags=0x{flags:02x}")
    lane = _LANES.get(lane_value)
    if lane is None:
        raise MalformedFrameError(f"unknown lane {lane_value}; expected 0, 1 or 2")
    start = position + HEADER_SIZE
    end = start + payload_length
    index = count = 0
    if flags & _FRAGMENT_BIT:
        if payload_length <= _EXTENSION_SIZE:
            raise MalformedFrameError(
                f"a fragment needs a 4-byte extension and at least 1 data byte, "
                f"got payload_length {payload_length}"
            )
        index, count = _UNPACK_EXTENSION(buffer, start)
        if count < 2 or index >= count:
            raise MalformedFrameError(f"bad fragment extension: index {index} of count {count}")
        start += _EXTENSION_SIZE
    rule = _FRAME_RULES.get(message_type)
    if rule is None:
        raise UnknownMessageTypeError(f"unknown message type 0x{message_type:02x}")
    name, message_lane, is_ack_type = rule
    if lane is not message_lane:
        raise MalformedFrameError(f"{name} travels on lane {message_lane.name}, got {lane.name}")
    is_ack = bool(flags & _IS_ACK_BIT)
    if is_ack != is_ack_type:
        raise MalformedFrameError("IS_ACK must be set on ACK frames and only on them")
    ack_requested = bool(flags & _ACK_REQUESTED_BIT)
    if ack_requested and (lane is not Lane.CONTROL or is_ack):
        raise MalformedFrameError("ACK_REQUESTED is allowed only on non-ACK control frames")
    return (message_type, lane, sequence, ack_requested, is_ack, index, count, view[start:end])


def decode_frame_raw(frame: bytes, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> RawFrame:
    """:func:`decode_frame` returning a :data:`RawFrame` (same checks, same errors)."""
    frame = bytes(frame)
    size = len(frame)
    if size < HEADER_SIZE:
        raise TruncatedFrameError(f"a frame needs at least {HEADER_SIZE} header bytes, got {size}")
    header = _UNPACK_HEADER(frame, 0)
    magic, version, _, _, _, _, payload_length, crc = header
    if magic != MAGIC:
        raise BadMagicError(f"expected magic {MAGIC.hex()}, got {bytes(magic).hex()}")
    total = _check_version_and_length(version, payload_length, max_frame_bytes)
    if size < total:
        raise TruncatedFrameError(f"header promises {total} bytes, got {size}")
    if size > total:
        raise MalformedFrameError(f"header promises {total} bytes, got {size}: trailing bytes")
    view = memoryview(frame)
    _check_crc(view, 0, total, crc)
    return _raw_fields(frame, view, 0, header)


def decode_frame(frame: bytes, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> Frame:
    """Decode exactly one frame (a datagram, e.g. one BLE notification).

    Checks, in the order PROTOCOL.md fixes: length >= header, magic, version, payload
    length against ``max_frame_bytes``, exact length, CRC, flags, lane, fragment
    extension, message type, lane and flags for that type.

    Raises:
        ProtocolError: a subclass naming what is wrong; nothing else escapes.
    """
    return raw_to_frame(decode_frame_raw(frame, max_frame_bytes=max_frame_bytes))


def _check_version_and_length(version: int, payload_length: int, max_frame_bytes: int) -> int:
    """The frame's total length, once its version and length are acceptable."""
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersionError(
            f"expected protocol version {PROTOCOL_VERSION}, got {version}"
        )
    total = HEADER_SIZE + payload_length
    if total > max_frame_bytes:
        raise OversizedPayloadError(
            f"payload_length {payload_length} makes a {total}-byte "
            f"frame; the MTU in force is {max_frame_bytes} bytes"
        )
    return total


def _check_crc(view: memoryview, position: int, total: int, expected: int) -> None:
    # Two crc32 calls over views: the CRC field (header bytes 10..13) is skipped without
    # copying the frame.
    actual = _crc32(
        view[position + HEADER_SIZE : position + total],
        _crc32(view[position : position + _CRC_OFFSET]),
    )
    if actual != expected:
        raise CrcMismatchError(f"CRC-32 in header 0x{expected:08x}, computed 0x{actual:08x}")


class FrameDecoder:
    """Turns arbitrary chunks of a byte stream (TCP, serial) into frames.

    ``feed()`` never raises on bad input: it returns each decoded :class:`Frame` and each
    :class:`ProtocolError` (as an event, not raised) in stream order, counts errors per
    class name in :attr:`errors`, and resynchronizes by searching for the magic again.
    The bytes kept between calls never exceed ``max_frame_bytes``.

    :meth:`feed_raw` is the same decoder returning :data:`RawFrame` tuples: the host's
    receive path uses it so that a 512-byte MTU (hundreds of frames per video frame)
    costs no dataclass and no copy per frame.
    """

    def __init__(self, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        # The tail of the stream that does not yet make a whole frame (immutable, so
        # that the views handed out by feed_raw stay valid).
        self._buffer = b""
        self._max_frame_bytes = _check_mtu(max_frame_bytes)
        # Set after a framing error or a skipped run: the bytes up to the next good frame
        # belong to the same fault, so reporting them again would count it twice and make
        # the events depend on how the stream was chunked.
        self._quiet = False
        self.errors: Counter[str] = Counter()
        """Dropped frames and garbage runs, by error class name."""
        self.frames_decoded = 0
        """Frames returned so far."""
        self.bytes_discarded = 0
        """Bytes skipped while resynchronizing."""

    @property
    def max_frame_bytes(self) -> int:
        """Largest frame accepted; raise it to the negotiated MTU after the handshake."""
        return self._max_frame_bytes

    @max_frame_bytes.setter
    def max_frame_bytes(self, value: int) -> None:
        self._max_frame_bytes = _check_mtu(value)

    @property
    def buffered_bytes(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | ProtocolError]:
        """Consume ``data`` and return the frames and errors it completes, in order."""
        return [
            event if isinstance(event, ProtocolError) else raw_to_frame(event)
            for event in self.feed_raw(data)
        ]

    def feed_raw(self, data: bytes | bytearray | memoryview) -> list[RawFrame | ProtocolError]:
        """:meth:`feed` returning :data:`RawFrame` tuples instead of :class:`Frame` objects.

        The tuples' ``data`` are views into an immutable copy of the stream, valid after
        the caller reuses ``data``.
        """
        # One pass over (kept tail + new bytes) with an offset: no per-frame slicing or
        # deleting at the front of a buffer. bytes(data) is free when data is bytes.
        chunk = bytes(data) if type(data) is not bytes else data
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[RawFrame | ProtocolError] = []
        self._drain(buffer, events, at_end=False)
        return events

    def flush(self) -> list[Frame | ProtocolError]:
        """End of stream or idle link: decode what can be decoded, report the rest.

        A header whose length field was corrupted makes the decoder wait for bytes that
        may never come; flushing drops it and recovers the frames buffered behind it.
        """
        events: list[RawFrame | ProtocolError] = []
        self._drain(self._buffer, events, at_end=True)
        return [
            event if isinstance(event, ProtocolError) else raw_to_frame(event) for event in events
        ]

    def reset(self) -> None:
        """Forget buffered bytes (a new connection); counters are kept."""
        self._buffer = b""
        self._quiet = False

    def _report(self, events: list[RawFrame | ProtocolError], error: ProtocolError) -> None:
        self.errors[type(error).__name__] += 1
        events.append(error)

    def _skip(self, events: list[RawFrame | ProtocolError], count: int) -> None:
        if count <= 0:
            return
        self.bytes_discarded += count
        if not self._quiet:
            self._report(events, BadMagicError(f"skipped {count} bytes before the next magic"))
            self._quiet = True

    def _drop_first_byte(
        self, events: list[RawFrame | ProtocolError], error: ProtocolError
    ) -> None:
        # Drop one byte, not the whole claimed frame: the header may be garbage that looks
        # like a magic, and a real frame can start inside the bytes it claimed.
        self._report(events, error)
        self.bytes_discarded += 1
        self._quiet = True

    def _drain(
        self, buffer: bytes, events: list[RawFrame | ProtocolError], *, at_end: bool
    ) -> None:
        view = memoryview(buffer)
        end = len(buffer)
        max_frame_bytes = self._max_frame_bytes
        decoded = 0
        position = 0
        while position < end:
            start = buffer.find(MAGIC, position)
            if start < 0:
                # Keep a trailing first magic byte: its partner may be in the next chunk.
                keep = 1 if buffer[end - 1] == _MAGIC_FIRST and not at_end else 0
                self._skip(events, end - keep - position)
                position = end - keep
                break
            self._skip(events, start - position)
            position = start
            if end - position < HEADER_SIZE:
                if at_end:
                    error: ProtocolError = TruncatedFrameError(
                        f"stream ended {end - position} bytes into a header"
                    )
                    self._drop_first_byte(events, error)
                    position += 1
                    continue
                break
            header = _UNPACK_HEADER(buffer, position)
            _, version, _, _, _, _, payload_length, crc = header
            try:
                total = _check_version_and_length(version, payload_length, max_frame_bytes)
            except FramingError as error:
                self._drop_first_byte(events, error)
                position += 1
                continue
            if end - position < total:
                if at_end:
                    self._drop_first_byte(
                        events,
                        TruncatedFrameError(f"header promises {total} bytes, got {end - position}"),
                    )
                    position += 1
                    continue
                break
            # _check_crc inlined: this runs for every frame.
            actual = _crc32(
                view[position + HEADER_SIZE : position + total],
                _crc32(view[position : position + _CRC_OFFSET]),
            )
            if actual != crc:
                self._drop_first_byte(
                    events,
                    CrcMismatchError(f"CRC-32 in header 0x{crc:08x}, computed 0x{actual:08x}"),
                )
                position += 1
                continue
            # The CRC vouches for the length, so a frame bad in other ways is dropped whole.
            try:
                raw = _raw_fields(buffer, view, position, header)
            except ProtocolError as error:
                self._report(events, error)
            else:
                decoded += 1
                events.append(raw)
            position += total
            self._quiet = False
        self.frames_decoded += decoded
        # What is kept is a partial header or a partial frame: under max_frame_bytes.
        self._buffer = buffer[position:] if position else buffer


def _check_mtu(value: int) -> int:
    if not MIN_MTU_BYTES <= value <= MAX_FRAME_BYTES:
        raise InvalidFieldError(
            f"MTU must be {MIN_MTU_BYTES}..{MAX_FRAME_BYTES} bytes, got {value}"
        )
    return value


# --------------------------------------------------------------------------------------
# Field validation and payload reading
# --------------------------------------------------------------------------------------

_E = TypeVar("_E", bound=enum.IntEnum)
_T = TypeVar("_T")

_F32 = struct.Struct("<f")
_F32_MAX = 3.4028234663852886e38


def _check_uint(owner: object, name: str, value: int, bits: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise InvalidFieldError(
            f"{type(owner).__name__}.{name} must be an integer in 0..{(1 << bits) - 1}, "
            f"got {value!r}"
        )


def _check_int(owner: object, name: str, value: int, bits: int) -> None:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidFieldError(
            f"{type(owner).__name__}.{name} must be an integer in {low}..{high}, got {value!r}"
        )


def _check_bool(owner: object, name: str, value: bool) -> None:
    if not isinstance(value, bool):
        raise InvalidFieldError(f"{type(owner).__name__}.{name} must be a bool, got {value!r}")


def _check_range(owner: object, name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidFieldError(
            f"{type(owner).__name__}.{name} must be in {low}..{high}, got {value!r}"
        )


def _round_f32(owner: object, name: str, value: float) -> float:
    """Round to the nearest float32 so that ``unpack(pack(m)) == m`` holds exactly."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFieldError(f"{type(owner).__name__}.{name} must be a float, got {value!r}")
    if not math.isfinite(value) or abs(value) > _F32_MAX:
        raise InvalidFieldError(
            f"{type(owner).__name__}.{name} must be a finite float32, got {value!r}"
        )
    rounded: float = _F32.unpack(_F32.pack(value))[0]
    return rounded


def _coerce_enum(owner: object, name: str, value: int, enum_class: type[_E]) -> _E:
    if type(value) is enum_class:
        return value  # already a member: skip the enum call (the decoder's hot path)
    try:
        return enum_class(value)
    except ValueError:
        allowed = ", ".join(f"{member.name}={member.value}" for member in enum_class)
        raise InvalidFieldError(
            f"{type(owner).__name__}.{name} must be one of {allowed}, got {value!r}"
        ) from None


def _check_bytes(owner: object, name: str, value: bytes) -> None:
    if not isinstance(value, bytes):
        raise InvalidFieldError(f"{type(owner).__name__}.{name} must be bytes, got {type(value)}")


def _check_text(owner: object, name: str, value: str, max_bytes: int | None = None) -> None:
    if not isinstance(value, str):
        raise InvalidFieldError(f"{type(owner).__name__}.{name} must be a str, got {value!r}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates cannot travel as UTF-8
        raise InvalidFieldError(
            f"{type(owner).__name__}.{name} is not encodable as UTF-8"
        ) from None
    if max_bytes is not None and size > max_bytes:
        raise InvalidFieldError(
            f"{type(owner).__name__}.{name} must be at most {max_bytes} UTF-8 bytes, got {size}"
        )


class _Reader:
    """Reads a payload front to back; every shortfall is a MalformedPayloadError."""

    def __init__(self, owner: type, payload: bytes) -> None:
        self._owner = owner.__name__
        self._payload = payload
        self._offset = 0

    def fixed(self, layout: struct.Struct) -> tuple[Any, ...]:
        if len(self._payload) - self._offset < layout.size:
            raise MalformedPayloadError(
                f"{self._owner}: expected {layout.size} bytes at offset {self._offset}, "
                f"payload has {len(self._payload)}"
            )
        values = layout.unpack_from(self._payload, self._offset)
        self._offset += layout.size
        return values

    def short_text(self) -> str:
        (length,) = self.fixed(_U8)
        return _decode_utf8(self._owner, self.take(length))

    def take(self, length: int) -> bytes:
        if len(self._payload) - self._offset < length:
            raise MalformedPayloadError(
                f"{self._owner}: expected {length} bytes at offset {self._offset}, "
                f"payload has {len(self._payload)}"
            )
        chunk = self._payload[self._offset : self._offset + length]
        self._offset += length
        return chunk

    def rest(self) -> bytes:
        chunk = self._payload[self._offset :]
        self._offset = len(self._payload)
        return chunk

    def end(self) -> None:
        if self._offset != len(self._payload):
            raise MalformedPayloadError(
                f"{self._owner}: {len(self._payload) - self._offset} unexpected trailing bytes "
                f"after offset {self._offset}"
            )


def _decode_utf8(owner: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedPayloadError(f"{owner}: text is not valid UTF-8 ({error.reason})") from None


def _as_bool(owner: str, name: str, value: int) -> bool:
    if value not in (0, 1):
        raise MalformedPayloadError(f"{owner}.{name}: a boolean byte must be 0 or 1, got {value}")
    return value == 1


def _build(cls: Callable[..., _T], **fields: Any) -> _T:
    """Construct a decoded message; out-of-range values become MalformedPayloadError."""
    try:
        return cls(**fields)
    except ValueError as error:  # InvalidFieldError and enum lookups are ValueErrors
        raise MalformedPayloadError(str(error)) from None


def _short_text(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _U8.pack(len(raw)) + raw


_U8 = struct.Struct("<B")


# --------------------------------------------------------------------------------------
# Enumerations carried in payloads
# --------------------------------------------------------------------------------------


class Gesture(enum.IntEnum):
    """Touchpad gestures (TouchEvent.gesture)."""

    TAP = 1
    DOUBLE_TAP = 2
    LONG_PRESS = 3
    SWIPE_FORWARD = 4
    SWIPE_BACKWARD = 5


class ThrottleLevel(enum.IntEnum):
    """How hard the device is throttling for heat (ThermalStatus.throttle_level)."""

    NONE = 0
    LIGHT = 1
    HEAVY = 2
    CRITICAL = 3


class CaptureLedState(enum.IntEnum):
    """The capture (privacy) LED. BLOCKED: covered or faulty, so capture is refused."""

    OFF = 0
    ON = 1
    ABSENT = 2
    BLOCKED = 3


class ErrorCode(enum.IntEnum):
    """Codes of ErrorReport."""

    PROTOCOL_VIOLATION = 1
    UNSUPPORTED_VERSION = 2
    UNKNOWN_MESSAGE_TYPE = 3
    MALFORMED_PAYLOAD = 4
    MESSAGE_TOO_LARGE = 5
    REASSEMBLY_FAILED = 6
    HANDSHAKE_REQUIRED = 7
    BUSY = 8
    INTERNAL = 9


class CommandKind(enum.IntEnum):
    """What a Command asks for; ``argument`` means what the table in PROTOCOL.md says."""

    TAKE_PHOTO = 1
    SET_LED = 2
    SET_VOLUME = 3
    REBOOT = 4


class CommandResultCode(enum.IntEnum):
    """Outcome of a Command."""

    OK = 0
    TIMEOUT = 1
    LED_BLOCKED = 2
    THERMAL_LIMIT = 3
    BUSY = 4
    UNSUPPORTED = 5
    INVALID_ARGUMENT = 6


def error_code_for(error: ProtocolError) -> ErrorCode:
    """The ERROR code that reports ``error`` to the peer (PROTOCOL.md §12)."""
    if isinstance(error, UnsupportedVersionError):
        return ErrorCode.UNSUPPORTED_VERSION
    if isinstance(error, UnknownMessageTypeError):
        return ErrorCode.UNKNOWN_MESSAGE_TYPE
    if isinstance(error, MalformedPayloadError):
        return ErrorCode.MALFORMED_PAYLOAD
    if isinstance(error, ReassemblyLimitError):
        return ErrorCode.MESSAGE_TOO_LARGE
    if isinstance(error, ReassemblyError):
        return ErrorCode.REASSEMBLY_FAILED
    return ErrorCode.PROTOCOL_VIOLATION


# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------


class Message(ABC):
    """Base of every message: a frozen dataclass with a type id, a lane and a layout."""

    TYPE: ClassVar[int]
    """Message type id, the header's ``message_type`` byte."""
    LANE: ClassVar[Lane]
    """The lane this message type always travels on."""
    FORMAT: ClassVar[struct.Struct]
    """The fixed-size leading part of the payload; variable parts follow it."""

    @abstractmethod
    def pack(self) -> bytes:
        """Encode the payload (no frame header)."""

    @classmethod
    @abstractmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a payload; raises MalformedPayloadError when it does not fit."""


_FEATURE_BITS = ("has_display", "has_capture_led", "has_speaker", "has_touchpad", "has_imu")


@dataclass(frozen=True, slots=True)
class Resolution:
    """A camera resolution in pixels."""

    width_px: int
    height_px: int

    FORMAT: ClassVar[struct.Struct] = struct.Struct("<HH")

    def __post_init__(self) -> None:
        _check_uint(self, "width_px", self.width_px, 16)
        _check_uint(self, "height_px", self.height_px, 16)


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A microphone format: PCM16 little-endian at ``sample_rate_hz`` with ``channels``."""

    sample_rate_hz: int
    channels: int

    FORMAT: ClassVar[struct.Struct] = struct.Struct("<IB")

    def __post_init__(self) -> None:
        _check_uint(self, "sample_rate_hz", self.sample_rate_hz, 32)
        _check_range(self, "channels", self.channels, 1, 255)


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Capabilities, sent by each side first (handshake); ``mtu_bytes`` is what it accepts."""

    firmware_version: str
    device_name: str
    mtu_bytes: int
    has_display: bool = False
    has_capture_led: bool = False
    has_speaker: bool = False
    has_touchpad: bool = False
    has_imu: bool = False
    camera_resolutions: tuple[Resolution, ...] = ()
    camera_fps: tuple[int, ...] = ()
    audio_formats: tuple[AudioFormat, ...] = ()

    TYPE: ClassVar[int] = 0x01
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<HH")  # mtu_bytes, feature bits

    def __post_init__(self) -> None:
        _check_text(self, "firmware_version", self.firmware_version, 255)
        _check_text(self, "device_name", self.device_name, 255)
        _check_uint(self, "mtu_bytes", self.mtu_bytes, 16)
        _check_range(self, "mtu_bytes", self.mtu_bytes, MIN_MTU_BYTES, MAX_FRAME_BYTES)
        for name in _FEATURE_BITS:
            _check_bool(self, name, getattr(self, name))
        for name, items, kind in (
            ("camera_resolutions", self.camera_resolutions, Resolution),
            ("camera_fps", self.camera_fps, int),
            ("audio_formats", self.audio_formats, AudioFormat),
        ):
            if not isinstance(items, tuple) or len(items) > 255:
                raise InvalidFieldError(f"Hello.{name} must be a tuple of at most 255 items")
            for item in items:
                if not isinstance(item, kind) or isinstance(item, bool):
                    raise InvalidFieldError(f"Hello.{name} items must be {kind.__name__}")
        for fps in self.camera_fps:
            _check_range(self, "camera_fps", fps, 1, 255)

    def pack(self) -> bytes:
        """Encode: mtu, features, two short strings, three counted lists."""
        features = sum(1 << bit for bit, name in enumerate(_FEATURE_BITS) if getattr(self, name))
        parts = [
            self.FORMAT.pack(self.mtu_bytes, features),
            _short_text(self.firmware_version),
            _short_text(self.device_name),
            _U8.pack(len(self.camera_resolutions)),
            *(Resolution.FORMAT.pack(r.width_px, r.height_px) for r in self.camera_resolutions),
            _U8.pack(len(self.camera_fps)),
            bytes(self.camera_fps),
            _U8.pack(len(self.audio_formats)),
            *(AudioFormat.FORMAT.pack(a.sample_rate_hz, a.channels) for a in self.audio_formats),
        ]
        return b"".join(parts)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a HELLO payload."""
        reader = _Reader(cls, payload)
        mtu_bytes, features = reader.fixed(cls.FORMAT)
        if features >> len(_FEATURE_BITS):
            raise MalformedPayloadError(f"Hello: reserved feature bits set: 0x{features:04x}")
        firmware_version = reader.short_text()
        device_name = reader.short_text()
        (count,) = reader.fixed(_U8)
        resolutions = tuple(
            _build(Resolution, width_px=w, height_px=h)
            for w, h in (reader.fixed(Resolution.FORMAT) for _ in range(count))
        )
        (count,) = reader.fixed(_U8)
        fps = tuple(reader.take(count))
        (count,) = reader.fixed(_U8)
        formats = tuple(
            _build(AudioFormat, sample_rate_hz=rate, channels=channels)
            for rate, channels in (reader.fixed(AudioFormat.FORMAT) for _ in range(count))
        )
        reader.end()
        flags = {name: bool(features >> bit & 1) for bit, name in enumerate(_FEATURE_BITS)}
        return _build(
            cls,
            firmware_version=firmware_version,
            device_name=device_name,
            mtu_bytes=mtu_bytes,
            camera_resolutions=resolutions,
            camera_fps=fps,
            audio_formats=formats,
            **flags,
        )


@dataclass(frozen=True, slots=True)
class CameraConfig(Message):
    """Host asks the camera for a resolution, rate and JPEG quality, streaming or not."""

    width_px: int
    height_px: int
    fps: int
    jpeg_quality: int
    streaming: bool

    TYPE: ClassVar[int] = 0x02
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<HHBBB")

    def __post_init__(self) -> None:
        _check_uint(self, "width_px", self.width_px, 16)
        _check_uint(self, "height_px", self.height_px, 16)
        _check_range(self, "fps", self.fps, 1, 255)
        _check_range(self, "jpeg_quality", self.jpeg_quality, 1, 100)
        _check_bool(self, "streaming", self.streaming)

    def pack(self) -> bytes:
        """Encode the fixed 7-byte payload."""
        return self.FORMAT.pack(
            self.width_px, self.height_px, self.fps, self.jpeg_quality, int(self.streaming)
        )

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a CAMERA_CONFIG payload."""
        reader = _Reader(cls, payload)
        width, height, fps, quality, streaming = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(
            cls,
            width_px=width,
            height_px=height,
            fps=fps,
            jpeg_quality=quality,
            streaming=_as_bool(cls.__name__, "streaming", streaming),
        )


@dataclass(frozen=True, slots=True)
class CameraFrame(Message):
    """One JPEG image from the camera, stamped on the device's monotonic clock."""

    frame_number: int
    timestamp_us: int
    width_px: int
    height_px: int
    jpeg: bytes

    TYPE: ClassVar[int] = 0x03
    LANE: ClassVar[Lane] = Lane.VIDEO
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<IQHH")

    def __post_init__(self) -> None:
        _check_uint(self, "frame_number", self.frame_number, 32)
        _check_uint(self, "timestamp_us", self.timestamp_us, 64)
        _check_uint(self, "width_px", self.width_px, 16)
        _check_uint(self, "height_px", self.height_px, 16)
        _check_bytes(self, "jpeg", self.jpeg)

    def pack(self) -> bytes:
        """Encode the 16-byte header then the JPEG bytes."""
        fixed = self.FORMAT.pack(
            self.frame_number, self.timestamp_us, self.width_px, self.height_px
        )
        return fixed + self.jpeg

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a CAMERA_FRAME payload."""
        reader = _Reader(cls, payload)
        number, timestamp, width, height = reader.fixed(cls.FORMAT)
        return _build(
            cls,
            frame_number=number,
            timestamp_us=timestamp,
            width_px=width,
            height_px=height,
            jpeg=reader.rest(),
        )


@dataclass(frozen=True, slots=True)
class AudioConfig(Message):
    """Host asks the microphone for a format and chunk length, streaming or not."""

    sample_rate_hz: int
    channels: int
    chunk_ms: int
    streaming: bool

    TYPE: ClassVar[int] = 0x04
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<IBHB")

    def __post_init__(self) -> None:
        _check_uint(self, "sample_rate_hz", self.sample_rate_hz, 32)
        _check_range(self, "channels", self.channels, 1, 255)
        _check_uint(self, "chunk_ms", self.chunk_ms, 16)
        _check_range(self, "chunk_ms", self.chunk_ms, 1, 0xFFFF)
        _check_bool(self, "streaming", self.streaming)

    def pack(self) -> bytes:
        """Encode the fixed 8-byte payload."""
        return self.FORMAT.pack(
            self.sample_rate_hz, self.channels, self.chunk_ms, int(self.streaming)
        )

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode an AUDIO_CONFIG payload."""
        reader = _Reader(cls, payload)
        rate, channels, chunk_ms, streaming = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(
            cls,
            sample_rate_hz=rate,
            channels=channels,
            chunk_ms=chunk_ms,
            streaming=_as_bool(cls.__name__, "streaming", streaming),
        )


def _check_pcm16(owner: object, name: str, value: bytes) -> None:
    _check_bytes(owner, name, value)
    if len(value) % 2:
        raise InvalidFieldError(
            f"{type(owner).__name__}.{name} is PCM16: an even byte count, got {len(value)}"
        )


@dataclass(frozen=True, slots=True)
class AudioChunk(Message):
    """Microphone samples, PCM16 little-endian in the format of the last AudioConfig.

    ``sequence`` counts chunks of the audio stream (a gap means lost audio); it is
    independent of the frame header's sequence number.
    """

    sequence: int
    timestamp_us: int
    pcm: bytes

    TYPE: ClassVar[int] = 0x05
    LANE: ClassVar[Lane] = Lane.AUDIO
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<IQ")

    def __post_init__(self) -> None:
        _check_uint(self, "sequence", self.sequence, 32)
        _check_uint(self, "timestamp_us", self.timestamp_us, 64)
        _check_pcm16(self, "pcm", self.pcm)

    def pack(self) -> bytes:
        """Encode the 12-byte header then the samples."""
        return self.FORMAT.pack(self.sequence, self.timestamp_us) + self.pcm

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode an AUDIO_CHUNK payload."""
        reader = _Reader(cls, payload)
        sequence, timestamp = reader.fixed(cls.FORMAT)
        return _build(cls, sequence=sequence, timestamp_us=timestamp, pcm=reader.rest())


@dataclass(frozen=True, slots=True)
class TouchEvent(Message):
    """A gesture on the temple touchpad."""

    gesture: Gesture
    timestamp_us: int

    TYPE: ClassVar[int] = 0x06
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<BQ")

    def __post_init__(self) -> None:
        object.__setattr__(self, "gesture", _coerce_enum(self, "gesture", self.gesture, Gesture))
        _check_uint(self, "timestamp_us", self.timestamp_us, 64)

    def pack(self) -> bytes:
        """Encode the fixed 9-byte payload."""
        return self.FORMAT.pack(self.gesture, self.timestamp_us)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a TOUCH_EVENT payload."""
        reader = _Reader(cls, payload)
        gesture, timestamp = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(cls, gesture=gesture, timestamp_us=timestamp)


@dataclass(frozen=True, slots=True)
class ButtonEvent(Message):
    """A physical button went down (``pressed``) or up."""

    button_id: int
    pressed: bool
    timestamp_us: int

    TYPE: ClassVar[int] = 0x07
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<BBQ")

    def __post_init__(self) -> None:
        _check_uint(self, "button_id", self.button_id, 8)
        _check_bool(self, "pressed", self.pressed)
        _check_uint(self, "timestamp_us", self.timestamp_us, 64)

    def pack(self) -> bytes:
        """Encode the fixed 10-byte payload."""
        return self.FORMAT.pack(self.button_id, int(self.pressed), self.timestamp_us)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a BUTTON_EVENT payload."""
        reader = _Reader(cls, payload)
        button_id, pressed, timestamp = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(
            cls,
            button_id=button_id,
            pressed=_as_bool(cls.__name__, "pressed", pressed),
            timestamp_us=timestamp,
        )


_IMU_AXES = (
    "accel_x_mps2",
    "accel_y_mps2",
    "accel_z_mps2",
    "gyro_x_rad_s",
    "gyro_y_rad_s",
    "gyro_z_rad_s",
)


@dataclass(frozen=True, slots=True)
class ImuSample(Message):
    """One accelerometer (m/s²) and gyroscope (rad/s) reading; floats are float32."""

    timestamp_us: int
    accel_x_mps2: float
    accel_y_mps2: float
    accel_z_mps2: float
    gyro_x_rad_s: float
    gyro_y_rad_s: float
    gyro_z_rad_s: float

    TYPE: ClassVar[int] = 0x08
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<Q6f")

    def __post_init__(self) -> None:
        _check_uint(self, "timestamp_us", self.timestamp_us, 64)
        for name in _IMU_AXES:
            object.__setattr__(self, name, _round_f32(self, name, getattr(self, name)))

    def pack(self) -> bytes:
        """Encode the fixed 32-byte payload."""
        return self.FORMAT.pack(self.timestamp_us, *(getattr(self, name) for name in _IMU_AXES))

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode an IMU_SAMPLE payload."""
        reader = _Reader(cls, payload)
        timestamp, *axes = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(cls, timestamp_us=timestamp, **dict(zip(_IMU_AXES, axes, strict=True)))


@dataclass(frozen=True, slots=True)
class BatteryStatus(Message):
    """Battery charge in percent, and whether it is charging."""

    percent: int
    charging: bool

    TYPE: ClassVar[int] = 0x09
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<BB")

    def __post_init__(self) -> None:
        _check_uint(self, "percent", self.percent, 8)
        _check_range(self, "percent", self.percent, 0, 100)
        _check_bool(self, "charging", self.charging)

    def pack(self) -> bytes:
        """Encode the fixed 2-byte payload."""
        return self.FORMAT.pack(self.percent, int(self.charging))

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a BATTERY payload."""
        reader = _Reader(cls, payload)
        percent, charging = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(cls, percent=percent, charging=_as_bool(cls.__name__, "charging", charging))


@dataclass(frozen=True, slots=True)
class ThermalStatus(Message):
    """Device temperature (float32, °C) and the throttling it applies."""

    temperature_c: float
    throttle_level: ThrottleLevel

    TYPE: ClassVar[int] = 0x0A
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<fB")

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "temperature_c", _round_f32(self, "temperature_c", self.temperature_c)
        )
        object.__setattr__(
            self,
            "throttle_level",
            _coerce_enum(self, "throttle_level", self.throttle_level, ThrottleLevel),
        )

    def pack(self) -> bytes:
        """Encode the fixed 5-byte payload."""
        return self.FORMAT.pack(self.temperature_c, self.throttle_level)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a THERMAL payload."""
        reader = _Reader(cls, payload)
        temperature, level = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(cls, temperature_c=temperature, throttle_level=level)


@dataclass(frozen=True, slots=True)
class LedStatus(Message):
    """State of the capture LED, reported on change and after the handshake."""

    state: CaptureLedState

    TYPE: ClassVar[int] = 0x0B
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<B")

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", _coerce_enum(self, "state", self.state, CaptureLedState))

    def pack(self) -> bytes:
        """Encode the 1-byte payload."""
        return self.FORMAT.pack(self.state)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode an LED_STATE payload."""
        reader = _Reader(cls, payload)
        (state,) = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(cls, state=state)


@dataclass(frozen=True, slots=True)
class SpeakerAudio(Message):
    """PCM16 little-endian mono samples for the speaker to play, in order of ``sequence``."""

    sequence: int
    sample_rate_hz: int
    pcm: bytes

    TYPE: ClassVar[int] = 0x0C
    LANE: ClassVar[Lane] = Lane.AUDIO
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<II")

    def __post_init__(self) -> None:
        _check_uint(self, "sequence", self.sequence, 32)
        _check_uint(self, "sample_rate_hz", self.sample_rate_hz, 32)
        _check_pcm16(self, "pcm", self.pcm)

    def pack(self) -> bytes:
        """Encode the 8-byte header then the samples."""
        return self.FORMAT.pack(self.sequence, self.sample_rate_hz) + self.pcm

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a SPEAKER_AUDIO payload."""
        reader = _Reader(cls, payload)
        sequence, rate = reader.fixed(cls.FORMAT)
        return _build(cls, sequence=sequence, sample_rate_hz=rate, pcm=reader.rest())


@dataclass(frozen=True, slots=True)
class DisplayText(Message):
    """Text for the display, shown ``duration_ms`` (0: until replaced). Empty text clears."""

    duration_ms: int
    text: str

    TYPE: ClassVar[int] = 0x0D
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<I")

    def __post_init__(self) -> None:
        _check_uint(self, "duration_ms", self.duration_ms, 32)
        _check_text(self, "text", self.text)

    def pack(self) -> bytes:
        """Encode the duration then the UTF-8 text to the end of the payload."""
        return self.FORMAT.pack(self.duration_ms) + self.text.encode("utf-8")

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a DISPLAY_TEXT payload."""
        reader = _Reader(cls, payload)
        (duration,) = reader.fixed(cls.FORMAT)
        return _build(cls, duration_ms=duration, text=_decode_utf8(cls.__name__, reader.rest()))


@dataclass(frozen=True, slots=True)
class Ping(Message):
    """Keepalive probe; the peer answers with a Pong echoing ``nonce`` and ``timestamp_us``."""

    nonce: int
    timestamp_us: int

    TYPE: ClassVar[int] = 0x0E
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<IQ")

    def __post_init__(self) -> None:
        _check_uint(self, "nonce", self.nonce, 32)
        _check_uint(self, "timestamp_us", self.timestamp_us, 64)

    def pack(self) -> bytes:
        """Encode the fixed 12-byte payload."""
        return self.FORMAT.pack(self.nonce, self.timestamp_us)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a PING payload."""
        reader = _Reader(cls, payload)
        nonce, timestamp = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(cls, nonce=nonce, timestamp_us=timestamp)


@dataclass(frozen=True, slots=True)
class Pong(Message):
    """Answer to a Ping: its ``nonce`` and ``ping_timestamp_us``, plus the responder's clock.

    The pinger gets the round trip from its own clock and, with ``timestamp_us``, an
    estimate of the offset between the two clocks.
    """

    nonce: int
    ping_timestamp_us: int
    timestamp_us: int

    TYPE: ClassVar[int] = 0x0F
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<IQQ")

    def __post_init__(self) -> None:
        _check_uint(self, "nonce", self.nonce, 32)
        _check_uint(self, "ping_timestamp_us", self.ping_timestamp_us, 64)
        _check_uint(self, "timestamp_us", self.timestamp_us, 64)

    def pack(self) -> bytes:
        """Encode the fixed 20-byte payload."""
        return self.FORMAT.pack(self.nonce, self.ping_timestamp_us, self.timestamp_us)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a PONG payload."""
        reader = _Reader(cls, payload)
        nonce, ping_timestamp, timestamp = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(cls, nonce=nonce, ping_timestamp_us=ping_timestamp, timestamp_us=timestamp)


@dataclass(frozen=True, slots=True)
class ErrorReport(Message):
    """A peer tells why it dropped something or refuses to go on; ``message`` is for people."""

    code: ErrorCode
    message: str

    TYPE: ClassVar[int] = 0x10
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<H")

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", _coerce_enum(self, "code", self.code, ErrorCode))
        _check_text(self, "message", self.message)

    def pack(self) -> bytes:
        """Encode the code then the UTF-8 message to the end of the payload."""
        return self.FORMAT.pack(self.code) + self.message.encode("utf-8")

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode an ERROR payload."""
        reader = _Reader(cls, payload)
        (code,) = reader.fixed(cls.FORMAT)
        return _build(cls, code=code, message=_decode_utf8(cls.__name__, reader.rest()))


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """Acknowledges the message sent on ``acked_lane`` with ``acked_sequence``."""

    acked_lane: Lane
    acked_sequence: int

    TYPE: ClassVar[int] = 0x11
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<BH")

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "acked_lane", _coerce_enum(self, "acked_lane", self.acked_lane, Lane)
        )
        _check_uint(self, "acked_sequence", self.acked_sequence, 16)

    def pack(self) -> bytes:
        """Encode the fixed 3-byte payload."""
        return self.FORMAT.pack(self.acked_lane, self.acked_sequence)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode an ACK payload."""
        reader = _Reader(cls, payload)
        lane, sequence = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(cls, acked_lane=lane, acked_sequence=sequence)


@dataclass(frozen=True, slots=True)
class Command(Message):
    """Host asks the device to act; answered by a CommandResult with the same ``command_id``."""

    command_id: int
    kind: CommandKind
    argument: int = 0

    TYPE: ClassVar[int] = 0x12
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<IBi")

    def __post_init__(self) -> None:
        _check_uint(self, "command_id", self.command_id, 32)
        object.__setattr__(self, "kind", _coerce_enum(self, "kind", self.kind, CommandKind))
        _check_int(self, "argument", self.argument, 32)

    def pack(self) -> bytes:
        """Encode the fixed 9-byte payload."""
        return self.FORMAT.pack(self.command_id, self.kind, self.argument)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a COMMAND payload."""
        reader = _Reader(cls, payload)
        command_id, kind, argument = reader.fixed(cls.FORMAT)
        reader.end()
        return _build(cls, command_id=command_id, kind=kind, argument=argument)


@dataclass(frozen=True, slots=True)
class CommandResult(Message):
    """Outcome of a Command; ``value`` is kind-specific (TAKE_PHOTO: the frame_number)."""

    command_id: int
    result: CommandResultCode
    value: int = 0
    detail: str = ""

    TYPE: ClassVar[int] = 0x13
    LANE: ClassVar[Lane] = Lane.CONTROL
    FORMAT: ClassVar[struct.Struct] = struct.Struct("<IBI")

    def __post_init__(self) -> None:
        _check_uint(self, "command_id", self.command_id, 32)
        object.__setattr__(
            self, "result", _coerce_enum(self, "result", self.result, CommandResultCode)
        )
        _check_uint(self, "value", self.value, 32)
        _check_text(self, "detail", self.detail)

    def pack(self) -> bytes:
        """Encode the fixed 9 bytes then the UTF-8 detail to the end of the payload."""
        return self.FORMAT.pack(self.command_id, self.result, self.value) + self.detail.encode()

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Decode a COMMAND_RESULT payload."""
        reader = _Reader(cls, payload)
        command_id, result, value = reader.fixed(cls.FORMAT)
        detail = _decode_utf8(cls.__name__, reader.rest())
        return _build(cls, command_id=command_id, result=result, value=value, detail=detail)


def _registry(classes: Iterable[type[Message]]) -> Mapping[int, type[Message]]:
    registry: dict[int, type[Message]] = {}
    for cls in classes:
        if cls.TYPE in registry:  # a copy-pasted TYPE would silently shadow a message
            raise RuntimeError(f"{cls.__name__} reuses type 0x{cls.TYPE:02x}")
        registry[cls.TYPE] = cls
    return types.MappingProxyType(registry)


MESSAGE_TYPES: Mapping[int, type[Message]] = _registry(
    (
        Hello,
        CameraConfig,
        CameraFrame,
        AudioConfig,
        AudioChunk,
        TouchEvent,
        ButtonEvent,
        ImuSample,
        BatteryStatus,
        ThermalStatus,
        LedStatus,
        SpeakerAudio,
        DisplayText,
        Ping,
        Pong,
        ErrorReport,
        Ack,
        Command,
        CommandResult,
    )
)
"""Every message class of protocol 1.0, by type id (read-only)."""

# What the frame decoder checks per message type, in a plain dict: MESSAGE_TYPES is a
# read-only proxy, and its lookups cost more on a path that runs for every frame.
_FRAME_RULES: dict[int, tuple[str, Lane, bool]] = {
    message_type: (cls.__name__, cls.LANE, cls is Ack)
    for message_type, cls in MESSAGE_TYPES.items()
}


def decode_message(message_type: int, payload: bytes) -> Message:
    """Decode a whole (reassembled) payload of the given type.

    Raises:
        UnknownMessageTypeError: ``message_type`` is not in :data:`MESSAGE_TYPES`.
        MalformedPayloadError: the payload does not fit the type's layout.
    """
    cls = MESSAGE_TYPES.get(message_type)
    if cls is None:
        raise UnknownMessageTypeError(f"unknown message type 0x{message_type:02x}")
    return cls.unpack(payload)


# --------------------------------------------------------------------------------------
# JSON-friendly views (test vectors, scenario files, logs)
# --------------------------------------------------------------------------------------


def _to_jsonable(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return [_to_jsonable(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def message_to_dict(message: Message) -> dict[str, object]:
    """Fields of ``message`` as JSON values: enums by name, bytes as hex, tuples as lists."""
    result = _to_jsonable(message)
    assert isinstance(result, dict)
    return result


def _from_jsonable(annotation: Any, value: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is tuple:
        (item_type, _) = typing.get_args(annotation)
        return tuple(_from_jsonable(item_type, item) for item in value)
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return annotation[value]
        if annotation is bytes:
            return bytes.fromhex(value)
        if dataclasses.is_dataclass(annotation):
            return _dataclass_from_dict(annotation, value)
    return value


def _dataclass_from_dict(cls: type[Any], fields: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(**{name: _from_jsonable(hints[name], value) for name, value in fields.items()})


_M = TypeVar("_M", bound=Message)


def message_from_dict(cls: type[_M], fields: Mapping[str, Any]) -> _M:
    """Inverse of :func:`message_to_dict` for a known message class."""
    message: _M = _dataclass_from_dict(cls, fields)
    return message
