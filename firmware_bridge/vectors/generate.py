"""Write the protocol 1.0 test vectors (``*.json`` beside this file), deterministically.

Run ``python firmware_bridge/vectors/generate.py`` after a deliberate change of the wire
format; ``tests/firmware_bridge/test_vectors.py`` fails when the committed files and this
script disagree. Other implementations (the firmware's C codec) test against the JSON.

Files:

- ``messages.json``: one unfragmented frame per message type (some types twice).
- ``fragmentation.json``: messages split at a given MTU, and a scheduler run in which a
  control message overtakes a video frame.
- ``bad_frames.json``: frames, payloads and fragment runs that must be rejected, each with
  the name of the error class (see ``firmware_bridge/_errors.py``).
- ``stream.json``: byte streams with garbage for the streaming decoder, with the events
  it must report.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

if __name__ == "__main__" and __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from firmware_bridge._reassembly import LaneScheduler, fragment_message
from firmware_bridge.protocol import (
    FRAME_HEADER,
    MAGIC,
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
    Frame,
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
    message_to_dict,
)

VERSION = "1.0"
HERE = Path(__file__).resolve().parent

# A tiny but real JPEG would be longer than the point needs: SOI, a comment, EOI.
_JPEG = bytes.fromhex("ffd8fffe0004474266ffd9")
_PCM = struct.pack("<8h", 0, 1000, -1000, 32767, -32768, 256, -256, 1)


def _message_examples() -> list[tuple[str, Message, bool]]:
    """(name, message, ack_requested) for every message type."""
    return [
        (
            "hello_device",
            Hello(
                firmware_version="1.4.2",
                device_name="Glasses-7F",
                mtu_bytes=247,
                has_display=False,
                has_capture_led=True,
                has_speaker=True,
                has_touchpad=True,
                has_imu=True,
                camera_resolutions=(Resolution(640, 480), Resolution(1280, 720)),
                camera_fps=(15, 30),
                audio_formats=(AudioFormat(16_000, 1),),
            ),
            True,
        ),
        ("hello_host", Hello(firmware_version="0.1.0", device_name="host", mtu_bytes=512), True),
        ("camera_config", CameraConfig(640, 480, 15, 80, streaming=True), True),
        ("camera_frame", CameraFrame(42, 1_700_000_123_456, 640, 480, _JPEG), False),
        ("audio_config", AudioConfig(16_000, 1, 20, streaming=True), True),
        ("audio_chunk", AudioChunk(7, 1_700_000_200_000, _PCM), False),
        ("touch_event", TouchEvent(Gesture.DOUBLE_TAP, 5_000_000), False),
        ("button_event", ButtonEvent(1, pressed=True, timestamp_us=5_000_100), False),
        ("imu_sample", ImuSample(6_000_000, 0.5, -0.25, 9.8125, 0.125, -1.5, 0.0), False),
        ("battery", BatteryStatus(87, charging=False), False),
        ("thermal", ThermalStatus(41.5, ThrottleLevel.LIGHT), False),
        ("led_status_blocked", LedStatus(CaptureLedState.BLOCKED), True),
        ("speaker_audio", SpeakerAudio(3, 16_000, _PCM), False),
        ("display_text", DisplayText(3_000, "Hello, wörld"), True),
        ("ping", Ping(0xDEADBEEF, 123_456_789), False),
        ("pong", Pong(0xDEADBEEF, 123_456_789, 987_654_321), False),
        ("error", ErrorReport(ErrorCode.MALFORMED_PAYLOAD, "CameraConfig: fps 0"), False),
        ("ack", Ack(Lane.CONTROL, 513), False),
        ("command_take_photo", Command(1001, CommandKind.TAKE_PHOTO, 85), True),
        ("command_set_led", Command(1002, CommandKind.SET_LED, 1), True),
        ("command_result_ok", CommandResult(1001, CommandResultCode.OK, 42), True),
        (
            "command_result_led_blocked",
            CommandResult(1002, CommandResultCode.LED_BLOCKED, 0, "LED covered"),
            True,
        ),
    ]


def _frame_fields(frame: Frame) -> dict[str, Any]:
    return {
        "message_type": frame.message_type,
        "lane": frame.lane.name,
        "sequence": frame.sequence,
        "ack_requested": frame.ack_requested,
        "is_ack": frame.is_ack,
        "fragment": None
        if frame.fragment is None
        else {"index": frame.fragment.index, "count": frame.fragment.count},
        "data": frame.data.hex(),
    }


def _message_json(message: Message) -> dict[str, Any]:
    return {"type": type(message).__name__, "fields": message_to_dict(message)}


def message_vectors() -> list[dict[str, Any]]:
    """One unfragmented frame per example, sequence numbers counting from 0x0100."""
    vectors = []
    for number, (name, message, ack_requested) in enumerate(_message_examples()):
        frames = fragment_message(
            message, sequence=0x0100 + number, mtu_bytes=512, ack_requested=ack_requested
        )
        assert len(frames) == 1, name
        vectors.append(
            {
                "name": name,
                "hex": frames[0].pack().hex(),
                "frame": _frame_fields(frames[0]),
                "message": _message_json(message),
            }
        )
    return vectors


def fragmentation_vectors() -> list[dict[str, Any]]:
    """Messages cut at small MTUs, and one priority interleaving."""
    vectors: list[dict[str, Any]] = []
    cases: list[tuple[str, Message, int, int, bool]] = [
        ("display_text_mtu20", DisplayText(0, "fragmented!"), 20, 0x0010, True),
        ("camera_frame_mtu40", CameraFrame(9, 77, 4, 2, bytes(range(40))), 40, 0xFFFF, False),
        ("audio_chunk_mtu32", AudioChunk(1, 2, _PCM), 32, 0x0002, False),
    ]
    for name, message, mtu_bytes, sequence, ack_requested in cases:
        frames = fragment_message(
            message, sequence=sequence, mtu_bytes=mtu_bytes, ack_requested=ack_requested
        )
        vectors.append(
            {
                "name": name,
                "mtu_bytes": mtu_bytes,
                "sequence": sequence,
                "ack_requested": ack_requested,
                "frames": [frame.pack().hex() for frame in frames],
                "message": _message_json(message),
            }
        )
    # A video frame is queued first, then a control message: the control message's only
    # frame goes out right after the video frame's first fragment.
    scheduler = LaneScheduler(mtu_bytes=32)
    video = CameraFrame(1, 10, 2, 2, bytes(range(30)))
    control = Command(7, CommandKind.TAKE_PHOTO)
    scheduler.enqueue(video)
    sent = [scheduler.next_frame()]
    scheduler.enqueue(control, ack_requested=True)
    sent.extend(scheduler.frames())
    vectors.append(
        {
            "name": "control_overtakes_video_mtu32",
            "mtu_bytes": 32,
            "schedule": [
                {"after_frames": 0, "message": _message_json(video), "ack_requested": False},
                {"after_frames": 1, "message": _message_json(control), "ack_requested": True},
            ],
            "frames": [frame.pack().hex() for frame in sent if frame is not None],
        }
    )
    return vectors


def _raw_frame(
    message_type: int,
    lane: int,
    sequence: int,
    body: bytes,
    *,
    flags: int = 0,
    version: int = 1,
    length: int | None = None,
    crc_delta: int = 0,
) -> bytes:
    """A frame built by hand, able to break any rule; the CRC is right unless told."""
    length = len(body) if length is None else length
    header = FRAME_HEADER.pack(MAGIC, version, message_type, flags, lane, sequence, length, 0)
    crc = zlib.crc32(body, zlib.crc32(header[:10])) ^ crc_delta
    return header[:10] + struct.pack("<I", crc) + body


def bad_frame_vectors() -> list[dict[str, Any]]:
    """Frames that decode_frame rejects, payloads that decode_message rejects."""
    good = Frame(Ping.TYPE, Lane.CONTROL, 1, Ping(1, 2).pack()).pack()
    frames: list[tuple[str, bytes, str, int]] = [
        ("empty", b"", "TruncatedFrameError", 65_535),
        ("short_header", good[:13], "TruncatedFrameError", 65_535),
        ("short_payload", good[:-1], "TruncatedFrameError", 65_535),
        ("trailing_byte", good + b"\x00", "MalformedFrameError", 65_535),
        ("bad_magic", b"GC" + good[2:], "BadMagicError", 65_535),
        (
            "version_2",
            _raw_frame(Ping.TYPE, 0, 1, Ping(1, 2).pack(), version=2),
            "UnsupportedVersionError",
            65_535,
        ),
        (
            "crc_flipped_bit",
            _raw_frame(Ping.TYPE, 0, 1, Ping(1, 2).pack(), crc_delta=1),
            "CrcMismatchError",
            65_535,
        ),
        ("payload_bit_flip", good[:-1] + bytes([good[-1] ^ 0x80]), "CrcMismatchError", 65_535),
        (
            "oversized_for_mtu",
            _raw_frame(CameraFrame.TYPE, 2, 1, bytes(300)),
            "OversizedPayloadError",
            244,
        ),
        (
            "reserved_flag",
            _raw_frame(Ping.TYPE, 0, 1, Ping(1, 2).pack(), flags=0x80),
            "MalformedFrameError",
            65_535,
        ),
        (
            "unknown_lane",
            _raw_frame(Ping.TYPE, 3, 1, Ping(1, 2).pack()),
            "MalformedFrameError",
            65_535,
        ),
        (
            "wrong_lane_for_type",
            _raw_frame(Ping.TYPE, 2, 1, Ping(1, 2).pack()),
            "MalformedFrameError",
            65_535,
        ),
        (
            "ack_without_is_ack",
            _raw_frame(Ack.TYPE, 0, 1, Ack(Lane.CONTROL, 1).pack()),
            "MalformedFrameError",
            65_535,
        ),
        (
            "is_ack_on_ping",
            _raw_frame(Ping.TYPE, 0, 1, Ping(1, 2).pack(), flags=0x04),
            "MalformedFrameError",
            65_535,
        ),
        (
            "ack_requested_on_video",
            _raw_frame(CameraFrame.TYPE, 2, 1, CameraFrame(1, 1, 1, 1, b"").pack(), flags=0x02),
            "MalformedFrameError",
            65_535,
        ),
        (
            "fragment_count_1",
            _raw_frame(Ping.TYPE, 0, 1, b"\x00\x00\x01\x00" + b"x", flags=1),
            "MalformedFrameError",
            65_535,
        ),
        (
            "fragment_index_past_count",
            _raw_frame(Ping.TYPE, 0, 1, b"\x02\x00\x02\x00" + b"x", flags=1),
            "MalformedFrameError",
            65_535,
        ),
        (
            "fragment_without_data",
            _raw_frame(Ping.TYPE, 0, 1, b"\x00\x00\x02\x00", flags=1),
            "MalformedFrameError",
            65_535,
        ),
        ("unknown_message_type", _raw_frame(0x7F, 0, 1, b""), "UnknownMessageTypeError", 65_535),
    ]
    payloads: list[tuple[str, bytes, str]] = [
        (
            "ping_short",
            _raw_frame(Ping.TYPE, 0, 1, Ping(1, 2).pack()[:-1]),
            "MalformedPayloadError",
        ),
        (
            "ping_trailing",
            _raw_frame(Ping.TYPE, 0, 1, Ping(1, 2).pack() + b"\x00"),
            "MalformedPayloadError",
        ),
        (
            "touch_unknown_gesture",
            _raw_frame(TouchEvent.TYPE, 0, 1, b"\x09" + bytes(8)),
            "MalformedPayloadError",
        ),
        (
            "battery_percent_101",
            _raw_frame(BatteryStatus.TYPE, 0, 1, b"\x65\x00"),
            "MalformedPayloadError",
        ),
        (
            "battery_bool_2",
            _raw_frame(BatteryStatus.TYPE, 0, 1, b"\x10\x02"),
            "MalformedPayloadError",
        ),
        (
            "display_text_bad_utf8",
            _raw_frame(DisplayText.TYPE, 0, 1, bytes(4) + b"\xff\xfe"),
            "MalformedPayloadError",
        ),
        (
            "audio_chunk_odd_pcm",
            _raw_frame(AudioChunk.TYPE, 1, 1, bytes(12) + b"\x01"),
            "MalformedPayloadError",
        ),
        (
            "thermal_nan",
            _raw_frame(ThermalStatus.TYPE, 0, 1, struct.pack("<fB", float("nan"), 0)),
            "MalformedPayloadError",
        ),
        (
            "hello_reserved_feature_bit",
            _raw_frame(Hello.TYPE, 0, 1, struct.pack("<HH", 244, 0x8000) + bytes(5)),
            "MalformedPayloadError",
        ),
        (
            "hello_list_past_end",
            _raw_frame(Hello.TYPE, 0, 1, struct.pack("<HH", 244, 0) + b"\x00\x00\x05"),
            "MalformedPayloadError",
        ),
        (
            "hello_mtu_below_20",
            _raw_frame(Hello.TYPE, 0, 1, struct.pack("<HH", 19, 0) + bytes(5)),
            "MalformedPayloadError",
        ),
    ]
    vectors: list[dict[str, Any]] = [
        {"name": name, "stage": "frame", "hex": raw.hex(), "max_frame_bytes": mtu, "error": err}
        for name, raw, err, mtu in frames
    ]
    vectors += [
        {
            "name": name,
            "stage": "payload",
            "hex": raw.hex(),
            "max_frame_bytes": 65_535,
            "error": err,
        }
        for name, raw, err in payloads
    ]
    return vectors + _bad_reassembly_vectors()


def _bad_reassembly_vectors() -> list[dict[str, Any]]:
    """Fragment runs the Reassembler rejects, with the events it must produce."""
    text = DisplayText(0, "0123456789abcdef")
    whole = fragment_message(text, sequence=5, mtu_bytes=24)  # 6 data bytes per fragment
    hexes = [frame.pack().hex() for frame in whole]
    other = fragment_message(text, sequence=6, mtu_bytes=24)
    short_middle = Frame(
        DisplayText.TYPE, Lane.CONTROL, 5, whole[1].data[:3], fragment=whole[1].fragment
    )
    return [
        {
            "name": "missing_middle_fragment",
            "stage": "reassembly",
            "frames": [hexes[0], *hexes[2:]],
            "events": ["FragmentSequenceError"],
        },
        {
            "name": "fragment_without_first",
            "stage": "reassembly",
            "frames": hexes[1:],
            "events": ["FragmentSequenceError"],
        },
        {
            "name": "new_message_abandons_partial",
            "stage": "reassembly",
            "frames": [hexes[0], *(frame.pack().hex() for frame in other)],
            "events": ["FragmentSequenceError", "DisplayText"],
        },
        {
            "name": "short_middle_fragment",
            "stage": "reassembly",
            "frames": [hexes[0], short_middle.pack().hex(), *hexes[2:]],
            "events": ["FragmentSequenceError"],
        },
        {
            "name": "retransmission_is_duplicate",
            "stage": "reassembly",
            "frames": hexes + hexes,
            "events": ["DisplayText", "DuplicateMessage"],
        },
        {
            "name": "too_many_fragments_for_limit",
            "stage": "reassembly",
            "max_message_bytes": 12,
            "frames": hexes,
            "events": ["ReassemblyLimitError"],
        },
    ]


def stream_vectors() -> list[dict[str, Any]]:
    """Byte streams for FrameDecoder: the events, in order, after feeding and flushing."""
    ping = Frame(Ping.TYPE, Lane.CONTROL, 1, Ping(1, 2).pack()).pack()
    battery = Frame(BatteryStatus.TYPE, Lane.CONTROL, 2, BatteryStatus(50, True).pack()).pack()
    corrupted = bytearray(ping)
    corrupted[20] ^= 0xFF
    long_length = bytearray(ping)
    long_length[8] = 0xFF  # claims 255 more bytes: the decoder waits, then flush recovers
    return [
        {
            "name": "garbage_between_frames",
            "hex": (b"\x00\xffG" + ping + b"junk" + battery).hex(),
            "events": ["BadMagicError", "frame:Ping", "BadMagicError", "frame:BatteryStatus"],
        },
        {
            "name": "corrupted_frame_then_good",
            "hex": (bytes(corrupted) + battery).hex(),
            "events": ["CrcMismatchError", "frame:BatteryStatus"],
        },
        {
            "name": "corrupted_length_recovered_by_flush",
            "hex": (bytes(long_length) + battery).hex(),
            "events": ["TruncatedFrameError", "frame:BatteryStatus"],
        },
        {
            "name": "truncated_at_end",
            "hex": (ping + battery[:-3]).hex(),
            "events": ["frame:Ping", "TruncatedFrameError"],
        },
    ]


def build_vectors() -> dict[str, dict[str, Any]]:
    """Every vector file's content, by file name."""
    return {
        name: {"protocol_version": VERSION, "vectors": vectors}
        for name, vectors in (
            ("messages.json", message_vectors()),
            ("fragmentation.json", fragmentation_vectors()),
            ("bad_frames.json", bad_frame_vectors()),
            ("stream.json", stream_vectors()),
        )
    }


def render(content: dict[str, Any]) -> str:
    """The exact text of a vector file (stable key order, UTF-8, final newline)."""
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


def write_vectors(directory: Path = HERE) -> list[Path]:
    """Write every vector file into ``directory``; return their paths."""
    paths = []
    for name, content in build_vectors().items():
        path = directory / name
        path.write_text(render(content), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_vectors():
        print(written)
