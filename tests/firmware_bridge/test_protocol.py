"""Frames, messages and the streaming decoder of protocol 1.0."""

from __future__ import annotations

import contextlib
import inspect
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import firmware_bridge._errors as errors_module
from firmware_bridge._errors import (
    BadMagicError,
    BridgeError,
    CrcMismatchError,
    InvalidFieldError,
    MalformedPayloadError,
    OversizedPayloadError,
    ProtocolError,
    TruncatedFrameError,
    UnknownMessageTypeError,
)
from firmware_bridge.protocol import (
    FRAGMENT_EXTENSION,
    FRAME_HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_FRAME_BYTES,
    MESSAGE_TYPES,
    Ack,
    AudioChunk,
    AudioConfig,
    AudioFormat,
    BatteryStatus,
    ButtonEvent,
    CameraConfig,
    CameraFrame,
    CaptureLedState,
    Command,
    CommandKind,
    CommandResult,
    CommandResultCode,
    DisplayText,
    ErrorCode,
    ErrorReport,
    Fragment,
    Frame,
    FrameDecoder,
    FrameFlag,
    Gesture,
    Hello,
    ImuSample,
    Lane,
    LedStatus,
    Message,
    Ping,
    Pong,
    Resolution,
    SpeakerAudio,
    ThermalStatus,
    ThrottleLevel,
    TouchEvent,
    decode_frame,
    decode_message,
    error_code_for,
    frame_crc32,
    message_from_dict,
    message_to_dict,
)

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The per-class tests run once per message type: fewer examples each keeps the file fast.
PER_CLASS = settings(FAST, max_examples=40)


def _uint(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_short_text = _text.filter(lambda text: len(text.encode()) <= 255)
_pcm = st.binary(max_size=64).map(lambda raw: raw[: len(raw) // 2 * 2])

MESSAGE_STRATEGIES: dict[type[Message], st.SearchStrategy[Any]] = {
    Hello: st.builds(
        Hello,
        firmware_version=_short_text,
        device_name=_short_text,
        mtu_bytes=st.integers(20, MAX_FRAME_BYTES),
        has_display=st.booleans(),
        has_capture_led=st.booleans(),
        has_speaker=st.booleans(),
        has_touchpad=st.booleans(),
        has_imu=st.booleans(),
        camera_resolutions=st.lists(st.builds(Resolution, _uint(16), _uint(16)), max_size=4).map(
            tuple
        ),
        camera_fps=st.lists(st.integers(1, 255), max_size=4).map(tuple),
        audio_formats=st.lists(
            st.builds(AudioFormat, _uint(32), st.integers(1, 255)), max_size=3
        ).map(tuple),
    ),
    CameraConfig: st.builds(
        CameraConfig, _uint(16), _uint(16), st.integers(1, 255), st.integers(1, 100), st.booleans()
    ),
    CameraFrame: st.builds(
        CameraFrame, _uint(32), _uint(64), _uint(16), _uint(16), st.binary(max_size=64)
    ),
    AudioConfig: st.builds(
        AudioConfig, _uint(32), st.integers(1, 255), st.integers(1, 0xFFFF), st.booleans()
    ),
    AudioChunk: st.builds(AudioChunk, _uint(32), _uint(64), _pcm),
    TouchEvent: st.builds(TouchEvent, st.sampled_from(Gesture), _uint(64)),
    ButtonEvent: st.builds(ButtonEvent, _uint(8), st.booleans(), _uint(64)),
    ImuSample: st.builds(ImuSample, _uint(64), _f32, _f32, _f32, _f32, _f32, _f32),
    BatteryStatus: st.builds(BatteryStatus, st.integers(0, 100), st.booleans()),
    ThermalStatus: st.builds(ThermalStatus, _f32, st.sampled_from(ThrottleLevel)),
    LedStatus: st.builds(LedStatus, st.sampled_from(CaptureLedState)),
    SpeakerAudio: st.builds(SpeakerAudio, _uint(32), _uint(32), _pcm),
    DisplayText: st.builds(DisplayText, _uint(32), _text),
    Ping: st.builds(Ping, _uint(32), _uint(64)),
    Pong: st.builds(Pong, _uint(32), _uint(64), _uint(64)),
    ErrorReport: st.builds(ErrorReport, st.sampled_from(ErrorCode), _text),
    Ack: st.builds(Ack, st.sampled_from(Lane), _uint(16)),
    Command: st.builds(
        Command, _uint(32), st.sampled_from(CommandKind), st.integers(-(1 << 31), (1 << 31) - 1)
    ),
    CommandResult: st.builds(
        CommandResult, _uint(32), st.sampled_from(CommandResultCode), _uint(32), _text
    ),
}
any_message = st.one_of(*MESSAGE_STRATEGIES.values())


def _frame_for(message: Message, sequence: int = 0, *, ack_requested: bool = False) -> Frame:
    return Frame(
        message.TYPE,
        message.LANE,
        sequence,
        message.pack(),
        ack_requested=ack_requested,
        is_ack=isinstance(message, Ack),
    )


# -- layout ------------------------------------------------------------------------------


def test_header_layout_is_fourteen_little_endian_bytes() -> None:
    assert FRAME_HEADER.format == "<2sBBBBHHI"
    assert HEADER_SIZE == 14
    assert FRAGMENT_EXTENSION.size == 4
    raw = Frame(Ping.TYPE, Lane.CONTROL, 0x0102, b"\xaa\xbb", ack_requested=True).pack()
    assert raw[:2] == MAGIC == b"GB"
    assert raw[2] == 1  # version
    assert raw[3] == Ping.TYPE
    assert raw[4] == FrameFlag.ACK_REQUESTED
    assert raw[5] == Lane.CONTROL
    assert raw[6:8] == b"\x02\x01"  # sequence, little-endian
    assert raw[8:10] == b"\x02\x00"  # payload length
    assert raw[10:14] == struct.pack("<I", zlib.crc32(raw[:10] + raw[14:]))


def test_crc_is_zlib_crc32_over_header_prefix_then_body() -> None:
    assert frame_crc32(b"1234", b"56789") == 0xCBF43926  # the CRC-32/ISO-HDLC check value


def test_registry_covers_every_message_class_once() -> None:
    assert set(MESSAGE_TYPES.values()) == set(MESSAGE_STRATEGIES)
    assert all(MESSAGE_TYPES[cls.TYPE] is cls for cls in MESSAGE_STRATEGIES)
    with pytest.raises(TypeError):
        MESSAGE_TYPES[0x7F] = Ping  # type: ignore[index]


def test_messages_are_frozen_dataclasses_with_named_formats() -> None:
    for cls in MESSAGE_TYPES.values():
        params = getattr(cls, "__dataclass_params__", None)  # set by @dataclass
        assert params is not None and params.frozen
        assert isinstance(cls.FORMAT, struct.Struct)
        assert cls.FORMAT.format.startswith("<")
        assert cls.__doc__


def test_lanes_by_type() -> None:
    assert CameraFrame.LANE is Lane.VIDEO
    assert {AudioChunk.LANE, SpeakerAudio.LANE} == {Lane.AUDIO}
    assert Ping.LANE is Lane.CONTROL and Ack.LANE is Lane.CONTROL


# -- messages ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(MESSAGE_STRATEGIES), ids=lambda cls: cls.__name__)
def test_message_round_trips(cls: type[Message]) -> None:
    @PER_CLASS
    @given(MESSAGE_STRATEGIES[cls])
    def check(message: Message) -> None:
        payload = message.pack()
        assert cls.unpack(payload) == message
        assert decode_message(cls.TYPE, payload) == message
        assert message_from_dict(cls, message_to_dict(message)) == message

    check()


@pytest.mark.parametrize("cls", list(MESSAGE_STRATEGIES), ids=lambda cls: cls.__name__)
def test_random_payload_is_rejected_or_canonical(cls: type[Message]) -> None:
    @PER_CLASS
    @given(st.binary(max_size=80))
    def check(payload: bytes) -> None:
        try:
            message = cls.unpack(payload)
        except MalformedPayloadError:
            return
        assert message.pack() == payload  # one encoding per meaning

    check()


@FAST
@given(any_message, st.data())
def test_truncated_payload_is_malformed_or_canonical(message: Message, data: st.DataObject) -> None:
    payload = message.pack()
    cut = data.draw(st.integers(0, max(len(payload) - 1, 0)))
    try:
        decoded = type(message).unpack(payload[:cut])
    except MalformedPayloadError:
        return
    assert decoded.pack() == payload[:cut]


def test_floats_are_rounded_to_float32_on_construction() -> None:
    sample = ImuSample(1, 0.1, 0.0, 9.81, 0.0, 0.0, 0.0)
    assert sample.accel_x_mps2 == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert ImuSample.unpack(sample.pack()) == sample


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: BatteryStatus(101, False), "0..100"),
        (lambda: CameraConfig(640, 480, 0, 80, True), "1..255"),
        (lambda: CameraConfig(640, 480, 30, 101, True), "1..100"),
        (lambda: CameraFrame(-1, 0, 0, 0, b""), "0..4294967295"),
        (lambda: AudioChunk(0, 0, b"\x00"), "even"),
        (lambda: TouchEvent(99, 0), "TAP=1"),  # type: ignore[arg-type]
        (lambda: ThermalStatus(float("nan"), ThrottleLevel.NONE), "finite"),
        (lambda: ThermalStatus(1e39, ThrottleLevel.NONE), "finite"),
        (lambda: Hello("x" * 256, "d", 244), "255 UTF-8 bytes"),
        (lambda: Hello("1", "d", 19), "20..65535"),
        (lambda: ButtonEvent(1, 1, 0), "bool"),  # type: ignore[arg-type]
        (lambda: DisplayText(0, "\ud800"), "UTF-8"),
        (lambda: Command(1, CommandKind.SET_LED, 1 << 31), "-2147483648..2147483647"),
    ],
)
def test_out_of_range_fields_raise_invalid_field_error(build: Any, expected: str) -> None:
    with pytest.raises(InvalidFieldError, match=expected) as caught:
        build()
    assert isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, ProtocolError)


def test_enum_fields_accept_plain_ints() -> None:
    assert TouchEvent(1, 0).gesture is Gesture.TAP  # type: ignore[arg-type]


def test_decode_message_unknown_type() -> None:
    with pytest.raises(UnknownMessageTypeError, match="0x7f"):
        decode_message(0x7F, b"")


def test_message_to_dict_is_json_friendly() -> None:
    hello = Hello("1.0", "g", 244, camera_resolutions=(Resolution(2, 1),))
    as_dict = message_to_dict(hello)
    assert as_dict["camera_resolutions"] == [{"width_px": 2, "height_px": 1}]
    assert message_to_dict(LedStatus(CaptureLedState.ON)) == {"state": "ON"}
    assert message_to_dict(AudioChunk(1, 2, b"\x01\x02")) == {
        "sequence": 1,
        "timestamp_us": 2,
        "pcm": "0102",
    }


# -- frames ------------------------------------------------------------------------------


@FAST
@given(any_message, _uint(16), st.booleans())
def test_frame_round_trips(message: Message, sequence: int, ack: bool) -> None:
    ack = ack and message.LANE is Lane.CONTROL and not isinstance(message, Ack)
    frame = _frame_for(message, sequence, ack_requested=ack)
    raw = frame.pack()
    assert len(raw) == frame.size_bytes
    assert decode_frame(raw) == frame
    assert Frame.unpack(raw) == frame


def test_fragment_frame_round_trips() -> None:
    frame = Frame(CameraFrame.TYPE, Lane.VIDEO, 9, b"abc", fragment=Fragment(1, 3))
    raw = frame.pack()
    assert raw[4] == FrameFlag.FRAGMENT
    assert raw[14:18] == b"\x01\x00\x03\x00"
    assert decode_frame(raw) == frame


def test_oversized_payload_checked_against_mtu_before_reading_it() -> None:
    raw = Frame(CameraFrame.TYPE, Lane.VIDEO, 1, bytes(300)).pack()
    with pytest.raises(OversizedPayloadError, match="244"):
        decode_frame(raw[:HEADER_SIZE], max_frame_bytes=244)  # only the header is needed


def test_truncated_and_bad_magic_messages_say_what_was_expected() -> None:
    with pytest.raises(TruncatedFrameError, match="at least 14"):
        decode_frame(b"GB")
    with pytest.raises(BadMagicError, match="4742"):
        decode_frame(bytes(20))


@FAST
@given(st.binary(max_size=120), st.integers(20, MAX_FRAME_BYTES))
def test_random_bytes_raise_only_protocol_errors(raw: bytes, max_frame_bytes: int) -> None:
    with contextlib.suppress(ProtocolError):
        decode_frame(raw, max_frame_bytes=max_frame_bytes)


@FAST
@given(any_message, st.data())
def test_mutated_frames_raise_only_protocol_errors(message: Message, data: st.DataObject) -> None:
    raw = bytearray(_frame_for(message, 3).pack())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    try:
        frame = decode_frame(bytes(raw))
        decode_message(frame.message_type, frame.data)
    except ProtocolError:
        pass


@FAST
@given(any_message, st.integers(0, 31), st.integers(0, 7))
def test_single_bit_flips_are_always_detected(message: Message, byte: int, bit: int) -> None:
    raw = bytearray(_frame_for(message, 3).pack())
    raw[byte % len(raw)] ^= 1 << bit
    with pytest.raises(ProtocolError):
        decode_frame(bytes(raw))


# -- streaming decoder -------------------------------------------------------------------


def _frames_of(events: list[Frame | ProtocolError]) -> list[Frame]:
    return [event for event in events if isinstance(event, Frame)]


@FAST
@given(
    st.lists(
        st.tuples(st.binary(max_size=20).map(lambda g: g.replace(b"G", b"")), any_message),
        max_size=6,
    ),
    st.lists(st.integers(1, 50), min_size=1, max_size=10),
)
def test_stream_recovers_every_frame_after_garbage(
    items: list[tuple[bytes, Message]], chunk_sizes: list[int]
) -> None:
    frames = [_frame_for(message, index) for index, (_, message) in enumerate(items)]
    stream = b"".join(
        garbage + frame.pack() for (garbage, _), frame in zip(items, frames, strict=True)
    )
    decoder = FrameDecoder()
    events: list[Frame | ProtocolError] = []
    position, turn = 0, 0
    while position < len(stream):
        size = chunk_sizes[turn % len(chunk_sizes)]
        events += decoder.feed(stream[position : position + size])
        position, turn = position + size, turn + 1
    events += decoder.flush()
    assert _frames_of(events) == frames
    assert all(isinstance(e, BadMagicError) for e in events if not isinstance(e, Frame))
    assert decoder.frames_decoded == len(frames)


_stream_piece = st.one_of(
    st.binary(max_size=24),
    any_message.map(lambda message: _frame_for(message).pack()),
)


@FAST
@given(
    st.lists(_stream_piece, max_size=6).map(b"".join),
    st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 255)), max_size=3),
    st.lists(st.integers(1, 64), min_size=1, max_size=8),
)
def test_stream_events_do_not_depend_on_chunking(
    pieces: bytes, corruptions: list[tuple[int, int]], chunk_sizes: list[int]
) -> None:
    raw = bytearray(pieces)
    for position, value in corruptions:
        if raw:
            raw[position % len(raw)] = value
    stream = bytes(raw)

    def run(sizes: list[int]) -> list[object]:
        decoder = FrameDecoder(max_frame_bytes=64)
        events: list[Frame | ProtocolError] = []
        position, turn = 0, 0
        while position < len(stream):
            size = sizes[turn % len(sizes)]
            events += decoder.feed(stream[position : position + size])
            position, turn = position + size, turn + 1
            assert decoder.buffered_bytes <= 64
        events += decoder.flush()
        assert decoder.buffered_bytes == 0
        return [e if isinstance(e, Frame) else type(e) for e in events]

    assert run(chunk_sizes) == run([len(stream) or 1])


@FAST
@given(
    st.lists(any_message, min_size=1, max_size=5),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
)
def test_stream_with_corruption_never_raises_and_stays_bounded(
    messages: list[Message], corruptions: list[tuple[int, int]]
) -> None:
    stream = bytearray(b"".join(_frame_for(m, i).pack() for i, m in enumerate(messages)))
    for position, value in corruptions:
        stream[position % len(stream)] = value
    decoder = FrameDecoder(max_frame_bytes=256)
    for start in range(0, len(stream), 13):
        for event in decoder.feed(bytes(stream[start : start + 13])):
            assert isinstance(event, Frame | ProtocolError)
        assert decoder.buffered_bytes <= 256
    decoder.flush()
    assert decoder.buffered_bytes == 0
    assert sum(decoder.errors.values()) + decoder.frames_decoded >= 1


def test_decoder_counts_errors_by_kind() -> None:
    good = _frame_for(BatteryStatus(50, True), 1).pack()
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    decoder = FrameDecoder()
    events = decoder.feed(b"noise" + bytes(bad) + good)
    assert [type(e) for e in events] == [BadMagicError, CrcMismatchError, Frame]
    assert decoder.errors == {"BadMagicError": 1, "CrcMismatchError": 1}
    assert decoder.frames_decoded == 1
    assert decoder.bytes_discarded == len(b"noise") + len(bad)


def test_decoder_accepts_a_bytearray_the_caller_then_resizes() -> None:
    chunk = bytearray(_frame_for(Ping(1, 2)).pack())
    decoder = FrameDecoder()
    assert len(_frames_of(decoder.feed(chunk))) == 1
    chunk.clear()  # would raise BufferError if the decoder kept a view on it


def test_decoder_buffer_is_bounded_by_max_frame_bytes() -> None:
    decoder = FrameDecoder(max_frame_bytes=100)
    header = FRAME_HEADER.pack(MAGIC, 1, Ping.TYPE, 0, 0, 0, 80, 0)[:10] + bytes(4)
    decoder.feed(header + bytes(50))
    assert decoder.buffered_bytes == 64
    events = decoder.feed(bytes(1000))  # completes the bogus frame (bad CRC), then garbage
    assert type(events[0]) is CrcMismatchError
    assert decoder.buffered_bytes <= 100


def test_decoder_mtu_can_be_raised_after_handshake() -> None:
    decoder = FrameDecoder(max_frame_bytes=244)
    big = Frame(CameraFrame.TYPE, Lane.VIDEO, 1, CameraFrame(1, 1, 1, 1, bytes(400)).pack())
    assert type(decoder.feed(big.pack())[0]) is OversizedPayloadError
    decoder.reset()
    decoder.max_frame_bytes = 512
    assert _frames_of(decoder.feed(big.pack())) == [big]
    with pytest.raises(InvalidFieldError):
        decoder.max_frame_bytes = 19


# -- exception tree ----------------------------------------------------------------------


def test_exception_tree_is_drawn_in_the_docstring() -> None:
    doc = errors_module.__doc__ or ""
    for name in errors_module.__all__:
        cls = getattr(errors_module, name)
        assert issubclass(cls, BridgeError)
        assert name in doc, name
        assert inspect.getdoc(cls)


def test_errors_map_to_wire_error_codes() -> None:
    assert error_code_for(errors_module.UnsupportedVersionError()) is ErrorCode.UNSUPPORTED_VERSION
    assert error_code_for(MalformedPayloadError()) is ErrorCode.MALFORMED_PAYLOAD
    assert error_code_for(errors_module.ReassemblyLimitError()) is ErrorCode.MESSAGE_TOO_LARGE
    assert error_code_for(errors_module.ReassemblyTimeoutError()) is ErrorCode.REASSEMBLY_FAILED
    assert error_code_for(CrcMismatchError()) is ErrorCode.PROTOCOL_VIOLATION


def test_protocol_errors_map_to_the_issue_list() -> None:
    for name in (
        "BadMagicError",
        "UnsupportedVersionError",
        "CrcMismatchError",
        "TruncatedFrameError",
        "OversizedPayloadError",
        "UnknownMessageTypeError",
        "MalformedPayloadError",
        "ReassemblyLimitError",
        "ReassemblyTimeoutError",
    ):
        assert issubclass(getattr(errors_module, name), ProtocolError)


# -- the spec and the code agree -----------------------------------------------------------

SPEC = Path(__file__).resolve().parents[2] / "firmware_bridge" / "PROTOCOL.md"


def test_protocol_md_message_table_matches_the_registry() -> None:
    text = SPEC.read_text(encoding="utf-8")
    assert text.startswith("# Firmware bridge wire protocol, version 1.0")
    rows = re.findall(r"^\| `0x([0-9A-F]{2})` \| (\w+) \| `(\w+)` \| (\w+) \|", text, re.M)
    table = {int(hex_id, 16): (cls, lane.upper()) for hex_id, _, cls, lane in rows}
    assert table == {
        type_id: (cls.__name__, cls.LANE.name) for type_id, cls in MESSAGE_TYPES.items()
    }


def test_protocol_md_error_codes_match_the_enum() -> None:
    text = SPEC.read_text(encoding="utf-8")
    section = text[text.index("## 12. Error codes") : text.index("## 13.")]
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", section, re.M)
    assert {int(code): name for code, name in rows} == {e.value: e.name for e in ErrorCode}


def test_protocol_md_states_each_fixed_payload_size() -> None:
    text = SPEC.read_text(encoding="utf-8")
    for cls in MESSAGE_TYPES.values():
        if cls is Hello:
            continue
        heading = re.search(rf"^### 11\.\d+ \w+ \(`0x{cls.TYPE:02X}`\), (\d+) bytes?", text, re.M)
        assert heading is not None, cls.__name__
        assert int(heading.group(1)) == cls.FORMAT.size, cls.__name__
