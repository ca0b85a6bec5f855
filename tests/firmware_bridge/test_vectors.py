"""The JSON test vectors, both directions: decode each hex, re-encode each meaning."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import firmware_bridge._errors as errors_module
from firmware_bridge._reassembly import (
    LaneScheduler,
    Reassembler,
    ReassemblyLimits,
    ReceivedMessage,
    fragment_message,
)
from firmware_bridge.protocol import (
    MESSAGE_TYPES,
    Fragment,
    Frame,
    FrameDecoder,
    Lane,
    Message,
    decode_frame,
    decode_message,
    message_from_dict,
    message_to_dict,
)

VECTORS = Path(__file__).resolve().parents[2] / "firmware_bridge" / "vectors"
CLASSES = {cls.__name__: cls for cls in MESSAGE_TYPES.values()}


def _load(name: str) -> list[dict[str, Any]]:
    content = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    assert content["protocol_version"] == "1.0"
    vectors: list[dict[str, Any]] = content["vectors"]
    return vectors


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [vector["name"] for vector in vectors]


def _message(spec: dict[str, Any]) -> Message:
    return message_from_dict(CLASSES[spec["type"]], spec["fields"])


def _error_class(name: str) -> type[errors_module.ProtocolError]:
    cls = getattr(errors_module, name)
    assert issubclass(cls, errors_module.ProtocolError)
    return cls  # type: ignore[no-any-return]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_vectors_generate", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MESSAGES = _load("messages.json")
FRAGMENTATION = _load("fragmentation.json")
BAD = _load("bad_frames.json")
STREAMS = _load("stream.json")


def test_committed_vectors_match_the_generator() -> None:
    generator = _generator()
    for name, content in generator.build_vectors().items():
        committed = (VECTORS / name).read_text(encoding="utf-8")
        assert committed == generator.render(content), f"{name} is stale: run generate.py"


def test_every_message_type_has_a_vector() -> None:
    covered = {vector["message"]["type"] for vector in MESSAGES}
    assert covered == set(CLASSES)


@pytest.mark.parametrize("vector", MESSAGES, ids=_ids(MESSAGES))
def test_message_vector_decodes(vector: dict[str, Any]) -> None:
    frame = decode_frame(bytes.fromhex(vector["hex"]))
    expected = vector["frame"]
    assert frame.message_type == expected["message_type"]
    assert frame.lane.name == expected["lane"]
    assert frame.sequence == expected["sequence"]
    assert frame.ack_requested == expected["ack_requested"]
    assert frame.is_ack == expected["is_ack"]
    assert frame.fragment is None and expected["fragment"] is None
    assert frame.data.hex() == expected["data"]
    message = decode_message(frame.message_type, frame.data)
    assert type(message).__name__ == vector["message"]["type"]
    assert message_to_dict(message) == vector["message"]["fields"]


@pytest.mark.parametrize("vector", MESSAGES, ids=_ids(MESSAGES))
def test_message_vector_encodes(vector: dict[str, Any]) -> None:
    message = _message(vector["message"])
    expected = vector["frame"]
    frame = Frame(
        message.TYPE,
        Lane[expected["lane"]],
        expected["sequence"],
        message.pack(),
        ack_requested=expected["ack_requested"],
        is_ack=expected["is_ack"],
    )
    assert frame.pack().hex() == vector["hex"]


@pytest.mark.parametrize("vector", FRAGMENTATION, ids=_ids(FRAGMENTATION))
def test_fragmentation_vector_encodes(vector: dict[str, Any]) -> None:
    if "schedule" in vector:
        scheduler = LaneScheduler(mtu_bytes=vector["mtu_bytes"])
        sent: list[str] = []
        for step in vector["schedule"]:
            while len(sent) < step["after_frames"]:
                frame = scheduler.next_frame()
                assert frame is not None
                sent.append(frame.pack().hex())
            scheduler.enqueue(_message(step["message"]), ack_requested=step["ack_requested"])
        sent.extend(frame.pack().hex() for frame in scheduler.frames())
        assert sent == vector["frames"]
        return
    frames = fragment_message(
        _message(vector["message"]),
        sequence=vector["sequence"],
        mtu_bytes=vector["mtu_bytes"],
        ack_requested=vector["ack_requested"],
    )
    assert [frame.pack().hex() for frame in frames] == vector["frames"]
    assert all(frame.size_bytes <= vector["mtu_bytes"] for frame in frames)


@pytest.mark.parametrize("vector", FRAGMENTATION, ids=_ids(FRAGMENTATION))
def test_fragmentation_vector_reassembles(vector: dict[str, Any]) -> None:
    reassembler = Reassembler()
    delivered: list[Message] = []
    for raw in vector["frames"]:
        frame = decode_frame(bytes.fromhex(raw), max_frame_bytes=vector["mtu_bytes"])
        for event in reassembler.push(frame, now_ms=0.0):
            assert isinstance(event, ReceivedMessage), event
            delivered.append(event.message)
    if "schedule" in vector:
        expected = [_message(step["message"]) for step in reversed(vector["schedule"])]
    else:
        expected = [_message(vector["message"])]
    assert delivered == expected
    assert reassembler.buffered_bytes == 0


_FRAME_STAGE = [vector for vector in BAD if vector["stage"] == "frame"]
_PAYLOAD_STAGE = [vector for vector in BAD if vector["stage"] == "payload"]
_REASSEMBLY_STAGE = [vector for vector in BAD if vector["stage"] == "reassembly"]


@pytest.mark.parametrize("vector", _FRAME_STAGE, ids=_ids(_FRAME_STAGE))
def test_bad_frame_vector_is_rejected(vector: dict[str, Any]) -> None:
    error = _error_class(vector["error"])
    with pytest.raises(error) as caught:
        decode_frame(bytes.fromhex(vector["hex"]), max_frame_bytes=vector["max_frame_bytes"])
    assert type(caught.value) is error


@pytest.mark.parametrize("vector", _PAYLOAD_STAGE, ids=_ids(_PAYLOAD_STAGE))
def test_bad_payload_vector_is_rejected(vector: dict[str, Any]) -> None:
    frame = decode_frame(bytes.fromhex(vector["hex"]), max_frame_bytes=vector["max_frame_bytes"])
    error = _error_class(vector["error"])
    with pytest.raises(error) as caught:
        decode_message(frame.message_type, frame.data)
    assert type(caught.value) is error


@pytest.mark.parametrize("vector", _REASSEMBLY_STAGE, ids=_ids(_REASSEMBLY_STAGE))
def test_bad_reassembly_vector_events(vector: dict[str, Any]) -> None:
    limits = ReassemblyLimits(max_message_bytes=vector.get("max_message_bytes", 4 << 20))
    reassembler = Reassembler(limits)
    names: list[str] = []
    for raw in vector["frames"]:
        for event in reassembler.push(decode_frame(bytes.fromhex(raw)), now_ms=0.0):
            if isinstance(event, ReceivedMessage):
                names.append(type(event.message).__name__)
            else:
                names.append(type(event).__name__)
    assert names == vector["events"]
    assert reassembler.buffered_bytes == 0


@pytest.mark.parametrize("vector", STREAMS, ids=_ids(STREAMS))
@pytest.mark.parametrize("chunk_bytes", [1, 7, 1 << 16])
def test_stream_vector_events(vector: dict[str, Any], chunk_bytes: int) -> None:
    data = bytes.fromhex(vector["hex"])
    decoder = FrameDecoder()
    events = []
    for start in range(0, len(data), chunk_bytes):
        events += decoder.feed(data[start : start + chunk_bytes])
    events += decoder.flush()
    names = [
        f"frame:{type(decode_message(e.message_type, e.data)).__name__}"
        if isinstance(e, Frame)
        else type(e).__name__
        for e in events
    ]
    assert names == vector["events"]
    assert decoder.buffered_bytes == 0


def test_vector_fragments_have_consistent_info() -> None:
    for vector in FRAGMENTATION:
        if "schedule" in vector:
            continue
        frames = [decode_frame(bytes.fromhex(raw)) for raw in vector["frames"]]
        assert [frame.fragment for frame in frames] == [
            Fragment(index, len(frames)) for index in range(len(frames))
        ]
