"""Fragmentation, lane scheduling, reassembly limits, acknowledgements and keepalive."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge._errors import (
    AckWindowFullError,
    FragmentSequenceError,
    InvalidFieldError,
    MalformedPayloadError,
    MessageTooLargeError,
    ProtocolError,
    ReassemblyLimitError,
    ReassemblyTimeoutError,
)
from firmware_bridge._reassembly import (
    AckTracker,
    DuplicateMessage,
    KeepaliveTimer,
    LaneScheduler,
    PendingAck,
    Reassembler,
    ReassemblyEvent,
    ReassemblyLimits,
    ReceivedMessage,
    fragment_message,
)
from firmware_bridge.protocol import (
    HEADER_SIZE,
    Ack,
    AudioChunk,
    BatteryStatus,
    CameraFrame,
    Command,
    CommandKind,
    DisplayText,
    Fragment,
    Frame,
    FrameDecoder,
    Lane,
    Message,
    Ping,
    decode_frame,
)

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _video(size: int, number: int = 1) -> CameraFrame:
    return CameraFrame(number, 0, 640, 480, bytes(index % 251 for index in range(size)))


def _delivered(events: list[ReassemblyEvent]) -> list[Message]:
    return [event.message for event in events if isinstance(event, ReceivedMessage)]


def _push_all(
    reassembler: Reassembler, frames: list[Frame], now_ms: float = 0.0
) -> list[ReassemblyEvent]:
    events: list[ReassemblyEvent] = []
    for frame in frames:
        events += reassembler.push(frame, now_ms)
    return events


# -- fragmentation -----------------------------------------------------------------------


@FAST
@given(st.integers(0, 3000), st.integers(20, 600), st.integers(0, 0xFFFF))
def test_fragment_then_reassemble_round_trips(size: int, mtu_bytes: int, sequence: int) -> None:
    message = _video(size)
    frames = fragment_message(message, sequence=sequence, mtu_bytes=mtu_bytes)
    encoded = [frame.pack() for frame in frames]
    assert all(len(raw) <= mtu_bytes for raw in encoded)
    if len(frames) > 1:
        sizes = {len(frame.data) for frame in frames[:-1]}
        assert sizes == {mtu_bytes - HEADER_SIZE - 4}  # the largest that fits
        assert 1 <= len(frames[-1].data) <= sizes.pop()
    else:
        assert frames[0].fragment is None
    reassembler = Reassembler()
    events = _push_all(
        reassembler, [decode_frame(raw, max_frame_bytes=mtu_bytes) for raw in encoded]
    )
    assert _delivered(events) == [message]
    assert reassembler.buffered_bytes == reassembler.reserved_bytes == 0


def test_message_that_fits_is_not_fragmented() -> None:
    payload_bytes = 244 - HEADER_SIZE
    message = _video(payload_bytes - CameraFrame.FORMAT.size)
    assert len(fragment_message(message, sequence=0, mtu_bytes=244)) == 1
    assert len(fragment_message(_video(len(message.jpeg) + 1), sequence=0, mtu_bytes=244)) == 2


def test_sending_limits() -> None:
    with pytest.raises(MessageTooLargeError, match="message limit"):
        fragment_message(_video(2000), sequence=0, max_message_bytes=1000)
    # At MTU 20 a fragment carries 2 bytes: 65,535 fragments hold 131,070 bytes.
    with pytest.raises(MessageTooLargeError, match="65535"):
        fragment_message(_video(131_070), sequence=0, mtu_bytes=20)
    with pytest.raises(InvalidFieldError):
        fragment_message(Ping(1, 1), sequence=0, mtu_bytes=19)


# -- lane scheduler ----------------------------------------------------------------------


def test_control_message_is_not_stuck_behind_a_large_video_frame() -> None:
    scheduler = LaneScheduler(mtu_bytes=244)
    scheduler.enqueue(_video(100_000))
    for _ in range(3):
        frame = scheduler.next_frame()
        assert frame is not None and frame.lane is Lane.VIDEO
    scheduler.enqueue(AudioChunk(0, 0, bytes(64)))
    sequence = scheduler.enqueue(Command(1, CommandKind.TAKE_PHOTO), ack_requested=True)
    first, second, third = scheduler.next_frame(), scheduler.next_frame(), scheduler.next_frame()
    assert first is not None and first.lane is Lane.CONTROL
    assert first.sequence == sequence and first.ack_requested
    assert second is not None and second.lane is Lane.AUDIO
    assert third is not None and third.lane is Lane.VIDEO
    assert third.fragment is not None and third.fragment.index == 3


def test_lane_sequences_are_independent_and_wrap() -> None:
    scheduler = LaneScheduler()
    assert [scheduler.enqueue(Ping(i, 0)) for i in range(3)] == [0, 1, 2]
    assert scheduler.enqueue(AudioChunk(0, 0, b"")) == 0
    scheduler.enqueue(Ping(9, 9), sequence=0xFFFF)  # retransmission keeps its number
    assert scheduler.enqueue(Ping(3, 0)) == 3
    for _ in range(0xFFFF - 3):
        scheduler.enqueue(Ack(Lane.CONTROL, 0))
        scheduler.next_frame()
    assert scheduler.enqueue(Ping(0, 0)) == 0  # 65535 then wraps to 0


def test_messages_within_a_lane_go_out_whole_and_in_order() -> None:
    scheduler = LaneScheduler(mtu_bytes=40)
    first = scheduler.enqueue(DisplayText(0, "a" * 100))
    second = scheduler.enqueue(DisplayText(0, "b" * 100))
    sequences = [frame.sequence for frame in scheduler.frames()]
    assert sequences == sorted(sequences)
    assert sequences[0] == first and sequences[-1] == second


def test_stale_video_is_dropped_not_sent_late() -> None:
    scheduler = LaneScheduler(mtu_bytes=100, max_queued_video=2)
    scheduler.enqueue(_video(500, 1))
    scheduler.next_frame()  # frame 1 has started: it is finished, never cut
    for number in (2, 3, 4):
        scheduler.enqueue(_video(500, number))
    assert scheduler.queued_messages(Lane.VIDEO) == 2
    assert scheduler.dropped_video_messages == 2
    reassembler = Reassembler()
    first = fragment_message(_video(500, 1), sequence=0, mtu_bytes=100)[0]
    delivered = _delivered(_push_all(reassembler, [first, *scheduler.frames()]))
    assert [message.frame_number for message in delivered] == [1, 4]  # type: ignore[attr-defined]


def test_mtu_change_applies_to_messages_not_started() -> None:
    scheduler = LaneScheduler(mtu_bytes=244)
    scheduler.enqueue(_video(1000))
    scheduler.mtu_bytes = 100
    assert all(frame.size_bytes <= 100 for frame in scheduler.frames())
    with pytest.raises(InvalidFieldError):
        scheduler.mtu_bytes = 70_000


def test_ack_request_only_on_control_messages() -> None:
    scheduler = LaneScheduler()
    with pytest.raises(InvalidFieldError):
        scheduler.enqueue(_video(10), ack_requested=True)
    with pytest.raises(InvalidFieldError):
        scheduler.enqueue(Ack(Lane.CONTROL, 1), ack_requested=True)
    assert not scheduler.has_pending


# -- reassembly limits -------------------------------------------------------------------


def _fragments(message: Message, sequence: int = 0, mtu_bytes: int = 64) -> list[Frame]:
    return fragment_message(message, sequence=sequence, mtu_bytes=mtu_bytes)


def test_message_size_limit_is_checked_on_the_first_fragment() -> None:
    reassembler = Reassembler(ReassemblyLimits(max_message_bytes=1000))
    frames = _fragments(_video(5000))
    events = reassembler.push(frames[0], 0.0)
    assert [type(e) for e in events] == [ReassemblyLimitError]
    assert reassembler.buffered_bytes == reassembler.reserved_bytes == 0
    assert _push_all(reassembler, frames[1:]) == []  # the rest is dropped quietly
    assert reassembler.fragments_discarded == len(frames) - 1
    assert reassembler.errors == {"ReassemblyLimitError": 1}


def test_a_lying_fragment_count_allocates_nothing() -> None:
    reassembler = Reassembler()
    frame = Frame(CameraFrame.TYPE, Lane.VIDEO, 1, bytes(46), fragment=Fragment(0, 0xFFFF))
    events = reassembler.push(frame, 0.0)
    assert [type(e) for e in events] == [ReassemblyLimitError]
    assert reassembler.buffered_bytes == 0


def test_last_fragment_cannot_push_a_message_past_the_limit() -> None:
    limits = ReassemblyLimits(max_message_bytes=100)
    reassembler = Reassembler(limits)
    frames = [
        Frame(CameraFrame.TYPE, Lane.VIDEO, 1, bytes(60), fragment=Fragment(0, 2)),
        Frame(CameraFrame.TYPE, Lane.VIDEO, 1, bytes(60), fragment=Fragment(1, 2)),
    ]
    events = _push_all(reassembler, frames)
    assert [type(e) for e in events] == [FragmentSequenceError]
    assert reassembler.buffered_bytes == 0


def test_fragments_per_lane_limit() -> None:
    reassembler = Reassembler(ReassemblyLimits(max_fragments_per_lane=4))
    events = _push_all(reassembler, _fragments(_video(400)))
    assert [type(e) for e in events] == [ReassemblyLimitError]


def test_global_cap_evicts_video_to_make_room_for_control() -> None:
    limits = ReassemblyLimits(max_buffered_bytes=2000)
    reassembler = Reassembler(limits)
    video = _fragments(_video(1900), sequence=1)
    control = _fragments(DisplayText(0, "x" * 300), sequence=1)
    assert _push_all(reassembler, video[:2]) == []
    events = reassembler.push(control[0], 0.0)
    assert [type(e) for e in events] == [ReassemblyLimitError]  # the video frame, evicted
    assert "evicted" in str(events[0])
    assert _delivered(_push_all(reassembler, control[1:] + video[2:])) == [
        DisplayText(0, "x" * 300)
    ]
    assert reassembler.reserved_bytes <= 2000


def test_global_cap_never_evicts_higher_priority() -> None:
    reassembler = Reassembler(ReassemblyLimits(max_buffered_bytes=2000))
    control = _fragments(DisplayText(0, "x" * 1500), sequence=1)
    video = _fragments(_video(1000), sequence=1)
    reassembler.push(control[0], 0.0)
    events = reassembler.push(video[0], 0.0)
    assert [type(e) for e in events] == [ReassemblyLimitError]
    assert _delivered(_push_all(reassembler, control[1:])) == [DisplayText(0, "x" * 1500)]


def test_partial_message_times_out() -> None:
    reassembler = Reassembler(ReassemblyLimits(reassembly_timeout_ms=100))
    frames = _fragments(_video(300))
    reassembler.push(frames[0], 0.0)
    assert reassembler.expire(100.0) == []
    expired = reassembler.expire(100.5)
    assert [type(e) for e in expired] == [ReassemblyTimeoutError]
    assert reassembler.buffered_bytes == reassembler.reserved_bytes == 0
    assert _push_all(reassembler, frames[1:], 101.0) == []  # late fragments dropped quietly


def test_new_first_fragment_abandons_partial() -> None:
    reassembler = Reassembler()
    old = _fragments(_video(300), sequence=1)
    new = _fragments(_video(300, 2), sequence=2)
    events = _push_all(reassembler, old[:2] + new)
    assert [type(e) for e in events] == [FragmentSequenceError, ReceivedMessage]


def test_unfragmented_message_abandons_partial_on_its_lane_only() -> None:
    reassembler = Reassembler()
    video = _fragments(_video(300), sequence=1)
    control = _fragments(DisplayText(0, "x" * 200), sequence=1)
    reassembler.push(video[0], 0.0)
    reassembler.push(control[0], 0.0)
    events = reassembler.push(_fragments(Ping(1, 2), sequence=2)[0], 0.0)
    assert [type(e) for e in events] == [FragmentSequenceError, ReceivedMessage]
    assert _delivered(_push_all(reassembler, video[1:])) == [_video(300)]


def test_malformed_payload_after_reassembly_is_an_event() -> None:
    reassembler = Reassembler()
    frames = [
        Frame(BatteryStatus.TYPE, Lane.CONTROL, 1, b"\xff", fragment=Fragment(0, 2)),
        Frame(BatteryStatus.TYPE, Lane.CONTROL, 1, b"\x00", fragment=Fragment(1, 2)),
    ]
    events = _push_all(reassembler, frames)
    assert [type(e) for e in events] == [MalformedPayloadError]
    assert reassembler.errors == {"MalformedPayloadError": 1}


# -- duplicates --------------------------------------------------------------------------


def test_retransmission_is_reported_as_duplicate_not_delivered_twice() -> None:
    reassembler = Reassembler()
    frame = fragment_message(Command(1, CommandKind.SET_LED, 1), sequence=7, ack_requested=True)
    first = reassembler.push(frame[0], 0.0)
    again = reassembler.push(frame[0], 10.0)
    assert first == [ReceivedMessage(Command(1, CommandKind.SET_LED, 1), Lane.CONTROL, 7, True)]
    assert again == [DuplicateMessage(Lane.CONTROL, 7, ack_requested=True)]


def test_duplicate_window_forgets_old_sequences() -> None:
    reassembler = Reassembler(ReassemblyLimits(duplicate_window=2))
    pings = [_fragments(Ping(i, 0), sequence=i)[0] for i in range(3)]
    _push_all(reassembler, pings)
    assert _delivered(reassembler.push(pings[0], 0.0)) == [Ping(0, 0)]
    assert isinstance(reassembler.push(pings[2], 0.0)[0], DuplicateMessage)


def test_same_sequence_on_another_lane_is_not_a_duplicate() -> None:
    reassembler = Reassembler()
    ping = _fragments(Ping(1, 0), sequence=4)[0]
    audio = _fragments(AudioChunk(1, 0, b""), sequence=4)[0]
    assert len(_delivered(_push_all(reassembler, [ping, audio]))) == 2


# -- robustness --------------------------------------------------------------------------

_frame_strategy = st.builds(
    Frame,
    message_type=st.sampled_from([CameraFrame.TYPE, DisplayText.TYPE, AudioChunk.TYPE, 0x7F]),
    lane=st.sampled_from(Lane),
    sequence=st.integers(0, 3),
    data=st.binary(min_size=1, max_size=80),
    ack_requested=st.booleans(),
    fragment=st.one_of(
        st.none(),
        st.integers(2, 200).flatmap(
            lambda count: st.builds(Fragment, st.integers(0, min(count - 1, 3)), st.just(count))
        ),
    ),
)


@FAST
@given(st.lists(st.tuples(_frame_strategy, st.floats(0, 50)), max_size=40))
def test_arbitrary_frames_never_raise_and_memory_stays_under_cap(
    frames: list[tuple[Frame, float]],
) -> None:
    limits = ReassemblyLimits(
        max_message_bytes=3000, max_buffered_bytes=4000, reassembly_timeout_ms=200
    )
    reassembler = Reassembler(limits)
    now_ms = 0.0
    for frame, step_ms in frames:
        now_ms += step_ms
        for event in reassembler.push(frame, now_ms):
            assert isinstance(event, ReceivedMessage | DuplicateMessage | ProtocolError)
        assert reassembler.buffered_bytes <= reassembler.reserved_bytes <= 4000
    reassembler.expire(now_ms + 1000)
    assert reassembler.buffered_bytes == reassembler.reserved_bytes == 0


# -- acknowledgements --------------------------------------------------------------------


def test_ack_tracker_retransmits_with_backoff_then_fails() -> None:
    tracker = AckTracker(ack_timeout_ms=300, max_retries=3, backoff=2)
    command = Command(5, CommandKind.TAKE_PHOTO)
    tracker.track(command, sequence=11, now_ms=0)
    assert tracker.poll(299).retransmit == ()
    times = []
    now = 0.0
    while tracker.outstanding:
        deadline = tracker.next_deadline_ms()
        assert deadline is not None
        now = deadline
        result = tracker.poll(now)
        times.append((now, len(result.retransmit), len(result.failed)))
    assert times == [(300, 1, 0), (900, 1, 0), (2100, 1, 0), (4500, 0, 1)]
    assert tracker.poll(10_000) == tracker.poll(20_000)


def test_ack_settles_the_pending_message() -> None:
    tracker = AckTracker()
    tracker.track(Ping(1, 1), sequence=3, now_ms=0)
    assert tracker.acknowledge(Ack(Lane.CONTROL, 4)) is None
    settled = tracker.acknowledge(Ack(Lane.CONTROL, 3))
    assert settled is not None and settled.message == Ping(1, 1)
    assert tracker.acknowledge(Ack(Lane.CONTROL, 3)) is None  # a repeated ACK is harmless
    assert tracker.poll(1e9).failed == ()


def test_ack_window_is_bounded() -> None:
    tracker = AckTracker(max_outstanding=2)
    tracker.track(Ping(1, 1), sequence=1, now_ms=0)
    tracker.track(Ping(1, 1), sequence=2, now_ms=0)
    with pytest.raises(AckWindowFullError):
        tracker.track(Ping(1, 1), sequence=3, now_ms=0)


def test_lossy_link_delivers_each_control_message_exactly_once() -> None:
    """Sender and receiver loops over a link that drops every third frame, both ways."""
    sender, receiver = LaneScheduler(mtu_bytes=40), LaneScheduler(mtu_bytes=40)
    tracker = AckTracker(ack_timeout_ms=50, max_retries=10)
    reassembler, echo = Reassembler(), Reassembler()
    commands = [Command(i, CommandKind.SET_VOLUME, i) for i in range(20)]
    for command in commands:
        tracker.track(command, sequence=sender.enqueue(command, ack_requested=True), now_ms=0)
    sender.enqueue(_video(500))
    delivered: list[Message] = []
    failed: list[PendingAck] = []
    counter, now = 0, 0.0
    while tracker.outstanding and now < 10_000:
        now += 5
        poll = tracker.poll(now)
        failed += poll.failed
        for pending in poll.retransmit:
            sender.enqueue(pending.message, ack_requested=True, sequence=pending.sequence)
        for link, destination in ((sender, reassembler), (receiver, echo)):
            for _ in range(4):
                frame = link.next_frame()
                if frame is None:
                    break
                counter += 1
                if counter % 3 == 0:
                    continue  # lost
                for event in destination.push(decode_frame(frame.pack()), now):
                    if destination is echo:
                        if isinstance(event, ReceivedMessage) and isinstance(event.message, Ack):
                            tracker.acknowledge(event.message)
                    elif isinstance(event, ReceivedMessage | DuplicateMessage):
                        if isinstance(event, ReceivedMessage):
                            delivered.append(event.message)
                        if event.ack_requested:
                            receiver.enqueue(Ack(event.lane, event.sequence))
    assert tracker.outstanding == 0 and failed == []
    # Retransmissions may overtake: exactly once matters, not the order.
    received = [m for m in delivered if isinstance(m, Command)]
    assert sorted(received, key=lambda command: command.command_id) == commands


# -- keepalive ---------------------------------------------------------------------------


def test_keepalive_pings_when_idle_and_declares_dead_link() -> None:
    timer = KeepaliveTimer(now_ms=0, ping_interval_ms=2000, dead_after_ms=6000)
    assert timer.poll(1999, timestamp_us=1) is None
    ping = timer.poll(2000, timestamp_us=2_000_000)
    assert ping == Ping(1, 2_000_000)
    timer.on_sent(2500)
    assert timer.poll(4000, timestamp_us=0) is None
    assert timer.poll(4500, timestamp_us=0) == Ping(2, 0)
    timer.on_received(3000)
    assert not timer.is_dead(8999)
    assert timer.is_dead(9000)
    with pytest.raises(InvalidFieldError):
        KeepaliveTimer(now_ms=0, ping_interval_ms=5, dead_after_ms=5)


def _damaged_stream() -> bytes:
    """Video, audio and control frames at MTU 64 with garbage and one corrupted frame."""
    scheduler = LaneScheduler(mtu_bytes=64, max_queued_video=10)
    for number in range(3):
        scheduler.enqueue(_video(700, number))
        scheduler.enqueue(AudioChunk(number, 0, bytes(96)))
    scheduler.enqueue(BatteryStatus(50, False), ack_requested=True)
    packed = list(iter(scheduler.next_packed, None))  # control, audio, then video
    packed[-5] = packed[-5][:-1] + bytes([packed[-5][-1] ^ 0xFF])  # breaks the last video
    packed.insert(9, b"\x00GBnoise")
    return b"".join(packed)


@FAST
@given(cuts=st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=40))
def test_the_raw_receive_path_matches_the_dataclass_path(cuts: list[int]) -> None:
    # feed_raw + push_raw (the host's hot path) must deliver exactly what feed + push do,
    # however the stream is cut, even when the caller reuses its receive buffer at once.
    stream = _damaged_stream()
    chunks, position = [], 0
    for size in cuts * (len(stream) // sum(cuts) + 1):
        if position >= len(stream):
            break
        chunks.append(stream[position : position + size])
        position += size
    decoder, reassembler = FrameDecoder(max_frame_bytes=64), Reassembler()
    expected: list[object] = []
    for chunk in chunks:
        for event in decoder.feed(chunk):
            if isinstance(event, ProtocolError):
                expected.append(type(event))
            else:
                expected.extend(
                    e.message if isinstance(e, ReceivedMessage) else type(e)
                    for e in reassembler.push(event, 0.0)
                )
    raw_decoder, raw_reassembler = FrameDecoder(max_frame_bytes=64), Reassembler()
    got: list[object] = []
    buffer = bytearray()
    for chunk in chunks:
        buffer[:] = chunk
        events = raw_decoder.feed_raw(buffer)
        buffer[:] = bytes(len(buffer))  # the caller reuses its buffer before we read
        results: list[ReassemblyEvent] = list(raw_reassembler.expire(0.0))
        for event in events:
            if isinstance(event, ProtocolError):
                results.append(event)
            else:
                raw_reassembler.push_raw(event, 0.0, results)
        got.extend(e.message if isinstance(e, ReceivedMessage) else type(e) for e in results)
    assert got == expected
    assert sum(isinstance(item, CameraFrame) for item in got) == 2  # one was corrupted
    assert BatteryStatus(50, False) in got
    assert raw_decoder.errors == decoder.errors and raw_reassembler.errors == reassembler.errors


def test_next_packed_is_next_frame_packed() -> None:
    a, b = LaneScheduler(mtu_bytes=100), LaneScheduler(mtu_bytes=100)
    for scheduler in (a, b):
        scheduler.enqueue(_video(1000))
        scheduler.enqueue(Ping(7, 1), ack_requested=False)
        scheduler.enqueue(BatteryStatus(10, True), ack_requested=True)
    packed = list(iter(a.next_packed, None))
    assert packed == [frame.pack() for frame in b.frames()]
    assert [decode_frame(raw) for raw in packed] == list(
        fragment_message(Ping(7, 1), sequence=0, mtu_bytes=100)
        + fragment_message(BatteryStatus(10, True), sequence=1, mtu_bytes=100, ack_requested=True)
        + fragment_message(_video(1000), sequence=0, mtu_bytes=100)
    )
