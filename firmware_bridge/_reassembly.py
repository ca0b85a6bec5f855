"""Fragmentation, lanes, reassembly, acknowledgements and keepalive: the pure logic.

Nothing here reads a clock or touches I/O: callers pass ``now_ms`` (any monotonic
clock in milliseconds) and move bytes themselves. ``host.py`` and the emulator drive
these objects from their async loops; tests drive them with plain numbers.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from firmware_bridge._errors import (
    AckWindowFullError,
    FragmentSequenceError,
    InvalidFieldError,
    MessageTooLargeError,
    ProtocolError,
    ReassemblyLimitError,
    ReassemblyTimeoutError,
)
from firmware_bridge.protocol import (
    DEFAULT_MTU_BYTES,
    FRAGMENT_EXTENSION,
    HEADER_SIZE,
    MAX_FRAME_BYTES,
    MIN_MTU_BYTES,
    Ack,
    Frame,
    Lane,
    Message,
    Ping,
    RawFrame,
    _pack_raw,
    decode_message,
    raw_to_frame,
)

__all__ = [
    "AckPoll",
    "AckTracker",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DuplicateMessage",
    "KeepaliveTimer",
    "LaneScheduler",
    "PendingAck",
    "Reassembler",
    "ReassemblyEvent",
    "ReassemblyLimits",
    "ReceivedMessage",
    "fragment_message",
]

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest reassembled payload accepted and sent by default (4 MiB)."""

_SEQUENCE_MODULO = 1 << 16
_MAX_FRAGMENTS = 0xFFFF


def _fragment_plan(payload_bytes: int, mtu_bytes: int) -> tuple[int, int]:
    """(data bytes per fragment, fragment count) for a payload; count 1 = unfragmented."""
    if HEADER_SIZE + payload_bytes <= mtu_bytes:
        return payload_bytes, 1
    chunk = mtu_bytes - HEADER_SIZE - FRAGMENT_EXTENSION.size
    return chunk, math.ceil(payload_bytes / chunk)


def _check_sendable(
    message: Message, payload: bytes, mtu_bytes: int, max_message_bytes: int
) -> int:
    if len(payload) > max_message_bytes:
        raise MessageTooLargeError(
            f"{type(message).__name__} payload of {len(payload)} bytes exceeds the "
            f"{max_message_bytes}-byte message limit"
        )
    _, count = _fragment_plan(len(payload), mtu_bytes)
    if count > _MAX_FRAGMENTS:
        raise MessageTooLargeError(
            f"{type(message).__name__} payload of {len(payload)} bytes needs {count} fragments "
            f"at MTU {mtu_bytes}; at most {_MAX_FRAGMENTS} fit the fragment count field"
        )
    return count


def _check_mtu(mtu_bytes: int) -> int:
    if not MIN_MTU_BYTES <= mtu_bytes <= MAX_FRAME_BYTES:
        raise InvalidFieldError(
            f"mtu_bytes must be {MIN_MTU_BYTES}..{MAX_FRAME_BYTES}, got {mtu_bytes}"
        )
    return mtu_bytes


def _iter_raw(
    message: Message, payload: bytes, sequence: int, mtu_bytes: int, ack_requested: bool
) -> Iterator[RawFrame]:
    # Plain tuples over views of the payload: at MTU 512 a video frame is ~250 of
    # these, and the sender packs them straight to bytes (no Frame object each).
    chunk, count = _fragment_plan(len(payload), mtu_bytes)
    is_ack = isinstance(message, Ack)
    message_type, lane = message.TYPE, message.LANE
    if count == 1:
        yield (message_type, lane, sequence, ack_requested, is_ack, 0, 0, payload)
        return
    view = memoryview(payload)
    for index in range(count):
        data = view[index * chunk : (index + 1) * chunk]
        yield (message_type, lane, sequence, ack_requested, is_ack, index, count, data)


def fragment_message(
    message: Message,
    *,
    sequence: int,
    mtu_bytes: int = DEFAULT_MTU_BYTES,
    ack_requested: bool = False,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[Frame]:
    """Split ``message`` into frames no larger than ``mtu_bytes`` (PROTOCOL.md §5).

    A payload that fits one frame is sent unfragmented; otherwise every fragment but the
    last carries ``mtu_bytes - 18`` data bytes.

    Raises:
        MessageTooLargeError: over ``max_message_bytes`` or over 65,535 fragments.
        InvalidFieldError: ``mtu_bytes`` outside 20..65535, or a bad sequence number.
    """
    _check_mtu(mtu_bytes)
    payload = message.pack()
    _check_sendable(message, payload, mtu_bytes, max_message_bytes)
    return [
        raw_to_frame(raw) for raw in _iter_raw(message, payload, sequence, mtu_bytes, ack_requested)
    ]


# --------------------------------------------------------------------------------------
# Sender: lanes and priorities
# --------------------------------------------------------------------------------------


@dataclass
class _Outgoing:
    frames: Iterator[RawFrame]
    lane: Lane
    sequence: int
    started: bool = False


class LaneScheduler:
    """Queues messages per lane and hands out frames, highest-priority lane first.

    Priority is strict: CONTROL before AUDIO before VIDEO, decided again before every
    frame, so a control message waits for at most one frame of a large video message.
    Within a lane, messages go out whole and in order (the receiver keeps one partial
    message per lane). Video is real-time: when more than ``max_queued_video`` video
    messages wait, the oldest not yet started is dropped rather than sent late.
    """

    def __init__(
        self,
        *,
        mtu_bytes: int = DEFAULT_MTU_BYTES,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_queued_video: int = 2,
    ) -> None:
        self._mtu_bytes = _check_mtu(mtu_bytes)
        self._max_message_bytes = max_message_bytes
        self._max_queued_video = max_queued_video
        self._queues: dict[Lane, deque[_Outgoing]] = {lane: deque() for lane in Lane}
        # The same queues in priority order: iterating the Lane enum costs a microsecond
        # or more per call, and this runs for every frame sent.
        self._by_priority = tuple(self._queues[lane] for lane in Lane)
        self._next_sequence: dict[Lane, int] = dict.fromkeys(Lane, 0)
        self.dropped_video_messages = 0
        """Video messages dropped unsent because newer ones were waiting."""

    @property
    def mtu_bytes(self) -> int:
        """Largest frame produced; set it to the negotiated MTU after the handshake.

        A change applies to messages whose first frame has not been produced yet.
        """
        return self._mtu_bytes

    @mtu_bytes.setter
    def mtu_bytes(self, value: int) -> None:
        self._mtu_bytes = _check_mtu(value)

    def enqueue(
        self, message: Message, *, ack_requested: bool = False, sequence: int | None = None
    ) -> int:
        """Queue ``message`` on its lane and return its sequence number.

        Pass ``sequence`` to retransmit a message under its original number; otherwise
        the lane's next number is taken.

        Raises:
            MessageTooLargeError: the message cannot be sent within the limits.
            InvalidFieldError: ``ack_requested`` on a non-control message or on an Ack.
        """
        lane = message.LANE
        if ack_requested and (lane != Lane.CONTROL or isinstance(message, Ack)):
            raise InvalidFieldError("only non-ACK control messages may request an ACK")
        payload = message.pack()
        _check_sendable(message, payload, self._mtu_bytes, self._max_message_bytes)
        if sequence is None:
            sequence = self._next_sequence[lane]
            self._next_sequence[lane] = (sequence + 1) % _SEQUENCE_MODULO
        elif not 0 <= sequence < _SEQUENCE_MODULO:
            raise InvalidFieldError(f"sequence must be 0..65535, got {sequence}")
        # Frames are cut lazily so that a change of MTU before the message starts applies
        # and a 4 MiB message does not sit in memory as thousands of frame objects.
        frames = _lazy_frames(message, payload, sequence, self, ack_requested)
        queue = self._queues[lane]
        queue.append(_Outgoing(frames, lane, sequence))
        if lane == Lane.VIDEO:
            self._drop_stale_video(queue)
        return sequence

    def _drop_stale_video(self, queue: deque[_Outgoing]) -> None:
        while len(queue) > self._max_queued_video:
            victim_index = 1 if queue[0].started else 0
            if victim_index >= len(queue) - 1:
                return  # never drop the message just queued
            del queue[victim_index]
            self.dropped_video_messages += 1

    def next_frame(self) -> Frame | None:
        """The next frame to send, or None when every lane is empty."""
        raw = self._next_raw()
        return None if raw is None else raw_to_frame(raw)

    def next_packed(self) -> bytes | None:
        """:meth:`next_frame` already encoded (no :class:`Frame` built on the way)."""
        raw = self._next_raw()
        return None if raw is None else _pack_raw(raw)

    def _next_raw(self) -> RawFrame | None:
        for queue in self._by_priority:
            while queue:
                head = queue[0]
                raw = next(head.frames, None)
                if raw is None:
                    queue.popleft()
                    continue
                head.started = True
                return raw
        return None

    def frames(self) -> Iterator[Frame]:
        """Drain every queued frame in send order (for tests and simple links)."""
        while (frame := self.next_frame()) is not None:
            yield frame

    def queued_messages(self, lane: Lane) -> int:
        """Messages waiting (or partly sent) on ``lane``."""
        return len(self._queues[lane])

    @property
    def has_pending(self) -> bool:
        """Whether any lane has something to send."""
        return any(self._queues.values())


def _lazy_frames(
    message: Message, payload: bytes, sequence: int, scheduler: LaneScheduler, ack: bool
) -> Iterator[RawFrame]:
    # The MTU is read when the first frame is wanted, not when the message is queued.
    mtu_bytes = scheduler.mtu_bytes
    if _fragment_plan(len(payload), mtu_bytes)[1] > _MAX_FRAGMENTS:
        return  # checked at enqueue against the MTU then; a smaller MTU since is dropped
    yield from _iter_raw(message, payload, sequence, mtu_bytes, ack)


# --------------------------------------------------------------------------------------
# Receiver: reassembly with limits, duplicate detection
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReassemblyLimits:
    """Bounds on what a peer can make the receiver hold (PROTOCOL.md §6)."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Largest reassembled payload."""
    max_fragments_per_lane: int = 32_768
    """Most fragments one lane may have in flight (one partial message per lane)."""
    max_buffered_bytes: int = 16 * 1024 * 1024
    """Global cap on bytes reserved by partial messages across all lanes."""
    reassembly_timeout_ms: float = 5_000.0
    """A partial message older than this is dropped."""
    duplicate_window: int = 256
    """How many recently delivered sequence numbers per lane are remembered."""

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_fragments_per_lane", "max_buffered_bytes"):
            if getattr(self, name) < 1:
                raise InvalidFieldError(f"ReassemblyLimits.{name} must be positive")
        if self.max_fragments_per_lane > _MAX_FRAGMENTS:
            raise InvalidFieldError("ReassemblyLimits.max_fragments_per_lane must be <= 65535")
        if self.reassembly_timeout_ms <= 0 or self.duplicate_window < 0:
            raise InvalidFieldError("ReassemblyLimits timeout must be > 0, window >= 0")


@dataclass(frozen=True)
class ReceivedMessage:
    """A whole message delivered once; answer with an Ack when ``ack_requested``."""

    message: Message
    lane: Lane
    sequence: int
    ack_requested: bool


@dataclass(frozen=True)
class DuplicateMessage:
    """A message already delivered arrived again (a retransmission): ACK it, do not use it."""

    lane: Lane
    sequence: int
    ack_requested: bool


ReassemblyEvent = ReceivedMessage | DuplicateMessage | ProtocolError


@dataclass(slots=True)
class _Partial:
    message_type: int
    sequence: int
    ack_requested: bool
    count: int
    chunk_bytes: int
    reserved_bytes: int
    started_ms: float
    # Grown by extending, not preallocated to reserved_bytes: a first fragment that lies
    # about its count would otherwise make us allocate and zero up to max_message_bytes
    # for a few hundred bytes received.
    data: bytearray
    next_index: int = 1


@dataclass
class _LaneState:
    partial: _Partial | None = None
    # Sequence of a message whose fragments are being discarded after an error, so that
    # one lost first fragment yields one error event, not one per remaining fragment.
    discarding: int | None = None
    recent: deque[int] = field(default_factory=deque)
    recent_set: set[int] = field(default_factory=set)


class Reassembler:
    """Turns decoded frames into whole messages, within :class:`ReassemblyLimits`.

    ``push()`` never raises on peer input: it returns events, each a
    :class:`ReceivedMessage`, a :class:`DuplicateMessage` or a :class:`ProtocolError`,
    and counts errors per class name in :attr:`errors`. Every limit is checked before
    bytes are buffered, and the bytes held never exceed ``max_buffered_bytes``.
    :meth:`push_raw` is the same logic for :data:`~firmware_bridge.protocol.RawFrame`
    tuples, for a receive loop that handles a batch of frames per read.
    """

    def __init__(self, limits: ReassemblyLimits | None = None) -> None:
        self.limits = limits if limits is not None else ReassemblyLimits()
        self._lanes: dict[Lane, _LaneState] = {lane: _LaneState() for lane in Lane}
        # Indexed by lane value: hashing an Enum member runs Python code, and push_raw
        # looks a lane up for every fragment.
        self._by_value = [self._lanes[lane] for lane in Lane]
        self._reserved_bytes = 0
        self.errors: Counter[str] = Counter()
        """Dropped messages and fragments, by error class name."""
        self.fragments_discarded = 0
        """Fragments dropped silently because their message had already failed."""

    @property
    def reserved_bytes(self) -> int:
        """Bytes reserved for partial messages (an upper bound on what they will hold)."""
        return self._reserved_bytes

    @property
    def buffered_bytes(self) -> int:
        """Bytes held in partial messages right now."""
        return sum(len(s.partial.data) for s in self._lanes.values() if s.partial is not None)

    def reset(self) -> None:
        """Forget partial messages and duplicate history (a new connection)."""
        self._lanes = {lane: _LaneState() for lane in Lane}
        self._by_value = [self._lanes[lane] for lane in Lane]
        self._reserved_bytes = 0

    def push(self, frame: Frame, now_ms: float) -> list[ReassemblyEvent]:
        """Feed one frame received at ``now_ms``; return what it completes or breaks."""
        events: list[ReassemblyEvent] = list(self.expire(now_ms))
        fragment = frame.fragment
        index, count = (0, 0) if fragment is None else (fragment.index, fragment.count)
        raw: RawFrame = (
            frame.message_type,
            frame.lane,
            frame.sequence,
            frame.ack_requested,
            frame.is_ack,
            index,
            count,
            frame.data,
        )
        self.push_raw(raw, now_ms, events)
        return events

    def push_raw(self, raw: RawFrame, now_ms: float, events: list[ReassemblyEvent]) -> None:
        """:meth:`push` for a :data:`RawFrame`, appending what it completes to ``events``.

        It does not call :meth:`expire`: call that once before a batch of frames that
        arrived at the same ``now_ms`` (the result is the same as once per frame, since
        no partial message can time out between frames of one batch).
        """
        message_type, lane, sequence, ack_requested, _, index, count, data = raw
        state = self._by_value[lane]
        partial = state.partial
        if not count:
            if partial is not None:
                self._abandon(lane, events, "an unfragmented message arrived")
            state.discarding = None
            self._complete(
                lane, message_type, sequence, bytes(data), events, ack_requested=ack_requested
            )
            return
        if index == 0:
            self._start(raw, now_ms, events)
            return
        if partial is None:
            self._orphan(lane, sequence, index, events)
            return
        size = len(data)
        if (
            sequence != partial.sequence
            or index != partial.next_index
            or count != partial.count
            or message_type != partial.message_type
            or size > partial.chunk_bytes
            or (size != partial.chunk_bytes and index < count - 1)
            or len(partial.data) + size > partial.reserved_bytes
        ):
            self._out_of_order(lane, partial, raw, events)
            return
        # Within the reservation by construction: index < count and size <= chunk_bytes.
        partial.data += data
        partial.next_index = index + 1
        if index + 1 == count:
            self._drop(lane, discard_rest=False)
            self._complete(
                lane,
                message_type,
                sequence,
                bytes(partial.data),
                events,
                ack_requested=partial.ack_requested,
            )

    def expire(self, now_ms: float) -> list[ProtocolError]:
        """Drop partial messages older than the reassembly timeout."""
        expired: list[ProtocolError] = []
        timeout_ms = self.limits.reassembly_timeout_ms
        for lane, state in self._lanes.items():
            partial = state.partial
            if partial is not None and now_ms - partial.started_ms > timeout_ms:
                self._drop(lane, discard_rest=True)
                error = ReassemblyTimeoutError(
                    f"lane {lane.name} message {partial.sequence} incomplete after "
                    f"{timeout_ms} ms ({partial.next_index} of {partial.count} fragments)"
                )
                self.errors[type(error).__name__] += 1
                expired.append(error)
        return expired

    def _report(self, events: list[ReassemblyEvent], error: ProtocolError) -> None:
        self.errors[type(error).__name__] += 1
        events.append(error)

    def _drop(self, lane: Lane, *, discard_rest: bool) -> None:
        state = self._lanes[lane]
        if state.partial is not None:
            self._reserved_bytes -= state.partial.reserved_bytes
            state.discarding = state.partial.sequence if discard_rest else None
            state.partial = None

    def _abandon(self, lane: Lane, events: list[ReassemblyEvent], why: str) -> None:
        partial = self._lanes[lane].partial
        assert partial is not None
        self._drop(lane, discard_rest=False)
        self._report(
            events,
            FragmentSequenceError(
                f"lane {lane.name} message {partial.sequence} abandoned after "
                f"{partial.next_index} of {partial.count} fragments: {why}"
            ),
        )

    def _fail(
        self, lane: Lane, sequence: int, events: list[ReassemblyEvent], error: ProtocolError
    ) -> None:
        self._drop(lane, discard_rest=False)
        self._lanes[lane].discarding = sequence
        self._report(events, error)

    def _start(self, raw: RawFrame, now_ms: float, events: list[ReassemblyEvent]) -> None:
        message_type, lane, sequence, ack_requested, _, _, count, data = raw
        limits = self.limits
        state = self._lanes[lane]
        if state.partial is not None:
            # A first fragment under the same number is a retransmission restarting.
            self._abandon(lane, events, f"message {sequence} started")
        state.discarding = None
        # Fragments other than the last are all as long as the first, so count * len is
        # an upper bound on the payload: check it before buffering a single byte.
        size = len(data)
        bound = count * size
        if count > limits.max_fragments_per_lane:
            error: ProtocolError = ReassemblyLimitError(
                f"lane {lane.name} message {sequence} has {count} fragments; "
                f"at most {limits.max_fragments_per_lane} may be in flight per lane"
            )
            self._fail(lane, sequence, events, error)
            return
        if bound - size >= limits.max_message_bytes:
            # Even a 1-byte last fragment would exceed the limit.
            error = ReassemblyLimitError(
                f"lane {lane.name} message {sequence}: {count} fragments of "
                f"{size} bytes exceed the {limits.max_message_bytes}-byte limit"
            )
            self._fail(lane, sequence, events, error)
            return
        reserve = min(bound, limits.max_message_bytes)
        if not self._make_room(lane, reserve, events):
            error = ReassemblyLimitError(
                f"lane {lane.name} message {sequence} needs {reserve} bytes; "
                f"{self._reserved_bytes} of {limits.max_buffered_bytes} are reserved"
            )
            self._fail(lane, sequence, events, error)
            return
        self._reserved_bytes += reserve
        state.partial = _Partial(
            message_type=message_type,
            sequence=sequence,
            ack_requested=ack_requested,
            count=count,
            chunk_bytes=size,
            reserved_bytes=reserve,
            started_ms=now_ms,
            data=bytearray(data),
        )

    def _make_room(self, lane: Lane, needed: int, events: list[ReassemblyEvent]) -> bool:
        """Evict partials of strictly lower-priority lanes until ``needed`` bytes fit.

        A large video frame in progress must not keep a control message out.
        """
        cap = self.limits.max_buffered_bytes
        for victim in reversed(Lane):
            if self._reserved_bytes + needed <= cap or victim <= lane:
                break
            partial = self._lanes[victim].partial
            if partial is not None:
                self._drop(victim, discard_rest=True)
                error = ReassemblyLimitError(
                    f"lane {victim.name} message {partial.sequence} evicted to make room "
                    f"for lane {lane.name} within {cap} buffered bytes"
                )
                self._report(events, error)
        return self._reserved_bytes + needed <= cap

    def _orphan(self, lane: Lane, sequence: int, index: int, events: list[ReassemblyEvent]) -> None:
        """A fragment after the first with no message in progress on its lane."""
        if self._lanes[lane].discarding == sequence:
            self.fragments_discarded += 1
            return
        error = FragmentSequenceError(
            f"lane {lane.name} message {sequence}: fragment {index} without fragment 0"
        )
        self._fail(lane, sequence, events, error)
        self.fragments_discarded += 1

    def _out_of_order(
        self, lane: Lane, partial: _Partial, raw: RawFrame, events: list[ReassemblyEvent]
    ) -> None:
        """A fragment that does not continue ``partial``: say why and drop the message."""
        message_type, _, sequence, _, _, index, count, data = raw
        size = len(data)
        if sequence != partial.sequence:
            problem = f"message {sequence} interleaved with message {partial.sequence}"
        elif index != partial.next_index:
            problem = f"fragment {index} where {partial.next_index} was expected"
        elif count != partial.count or message_type != partial.message_type:
            problem = "fragment count or message type changed within the message"
        elif size > partial.chunk_bytes or (index < count - 1 and size != partial.chunk_bytes):
            problem = (
                f"fragment {index} carries {size} bytes; "
                f"fragments before the last carry exactly {partial.chunk_bytes}"
            )
        else:
            # Only when the first fragment's bound was clipped to max_message_bytes.
            problem = f"message {partial.sequence} grows past the message limit"
        error = FragmentSequenceError(f"lane {lane.name}: {problem}")
        self._fail(lane, partial.sequence, events, error)
        if sequence != partial.sequence:
            self._lanes[lane].discarding = sequence

    def _complete(
        self,
        lane: Lane,
        message_type: int,
        sequence: int,
        payload: bytes,
        events: list[ReassemblyEvent],
        *,
        ack_requested: bool,
    ) -> None:
        if len(payload) > self.limits.max_message_bytes:
            error = ReassemblyLimitError(
                f"lane {lane.name} message {sequence} of {len(payload)} bytes exceeds the "
                f"{self.limits.max_message_bytes}-byte limit"
            )
            self._report(events, error)
            return
        state = self._lanes[lane]
        if sequence in state.recent_set:
            events.append(DuplicateMessage(lane, sequence, ack_requested))
            return
        try:
            message = decode_message(message_type, payload)
        except ProtocolError as error:
            self._report(events, error)
            return
        if self.limits.duplicate_window:
            state.recent.append(sequence)
            state.recent_set.add(sequence)
            if len(state.recent) > self.limits.duplicate_window:
                state.recent_set.discard(state.recent.popleft())
        events.append(ReceivedMessage(message, lane, sequence, ack_requested))


# --------------------------------------------------------------------------------------
# Acknowledgement and retransmission (sender side)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingAck:
    """A message waiting for its ACK: resend it under the same ``sequence``."""

    message: Message
    lane: Lane
    sequence: int
    attempts: int
    """Transmissions so far, the first included."""
    deadline_ms: float


@dataclass(frozen=True)
class AckPoll:
    """What :meth:`AckTracker.poll` decided: messages to resend and messages given up."""

    retransmit: tuple[PendingAck, ...] = ()
    failed: tuple[PendingAck, ...] = ()


class AckTracker:
    """Decides, from a clock value, what to retransmit and what has failed.

    The first retransmission happens ``ack_timeout_ms`` after the first transmission;
    each further wait is ``backoff`` times longer. After ``max_retries`` retransmissions
    and one more timeout, the message is reported in :attr:`AckPoll.failed`.
    """

    def __init__(
        self,
        *,
        ack_timeout_ms: float = 300.0,
        max_retries: int = 3,
        backoff: float = 2.0,
        max_outstanding: int = 32,
    ) -> None:
        if ack_timeout_ms <= 0 or max_retries < 0 or backoff < 1 or max_outstanding < 1:
            raise InvalidFieldError("AckTracker needs timeout > 0, retries >= 0, backoff >= 1")
        self.ack_timeout_ms = ack_timeout_ms
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_outstanding = max_outstanding
        self._pending: dict[tuple[Lane, int], PendingAck] = {}

    @property
    def outstanding(self) -> int:
        """Messages waiting for an ACK."""
        return len(self._pending)

    def track(self, message: Message, *, sequence: int, now_ms: float) -> None:
        """Start waiting for the ACK of ``message`` first sent at ``now_ms``.

        Raises:
            AckWindowFullError: ``max_outstanding`` messages already wait for an ACK.
        """
        key = (message.LANE, sequence)
        if key not in self._pending and len(self._pending) >= self.max_outstanding:
            raise AckWindowFullError(
                f"{len(self._pending)} messages already wait for an ACK "
                f"(max_outstanding={self.max_outstanding})"
            )
        self._pending[key] = PendingAck(
            message, message.LANE, sequence, 1, now_ms + self.ack_timeout_ms
        )

    def acknowledge(self, ack: Ack) -> PendingAck | None:
        """Settle the message an ACK names; None for an unknown or repeated ACK."""
        return self._pending.pop((ack.acked_lane, ack.acked_sequence), None)

    def next_deadline_ms(self) -> float | None:
        """When :meth:`poll` next has something to do, for a loop's sleep."""
        return min((p.deadline_ms for p in self._pending.values()), default=None)

    def poll(self, now_ms: float) -> AckPoll:
        """Messages due for retransmission at ``now_ms``, and messages that have failed."""
        retransmit: list[PendingAck] = []
        failed: list[PendingAck] = []
        for key, pending in list(self._pending.items()):
            if pending.deadline_ms > now_ms:
                continue
            if pending.attempts > self.max_retries:
                del self._pending[key]
                failed.append(pending)
                continue
            wait_ms = self.ack_timeout_ms * self.backoff**pending.attempts
            again = PendingAck(
                pending.message,
                pending.lane,
                pending.sequence,
                pending.attempts + 1,
                now_ms + wait_ms,
            )
            self._pending[key] = again
            retransmit.append(again)
        return AckPoll(tuple(retransmit), tuple(failed))


# --------------------------------------------------------------------------------------
# Keepalive
# --------------------------------------------------------------------------------------


class KeepaliveTimer:
    """Says when to send a Ping and when the link counts as dead (PROTOCOL.md §8).

    A Ping is due when nothing has been sent for ``ping_interval_ms``; the link is dead
    when nothing at all has been received for ``dead_after_ms``.
    """

    def __init__(
        self, *, now_ms: float, ping_interval_ms: float = 2_000.0, dead_after_ms: float = 6_000.0
    ) -> None:
        if not 0 < ping_interval_ms < dead_after_ms:
            raise InvalidFieldError("KeepaliveTimer needs 0 < ping_interval_ms < dead_after_ms")
        self.ping_interval_ms = ping_interval_ms
        self.dead_after_ms = dead_after_ms
        self._last_sent_ms = now_ms
        self._last_received_ms = now_ms
        self._nonce = 0

    def on_sent(self, now_ms: float) -> None:
        """Any frame was sent."""
        self._last_sent_ms = now_ms

    def on_received(self, now_ms: float) -> None:
        """Any valid frame was received."""
        self._last_received_ms = now_ms

    def is_dead(self, now_ms: float) -> bool:
        """Whether the peer has been silent for ``dead_after_ms``."""
        return now_ms - self._last_received_ms >= self.dead_after_ms

    def poll(self, now_ms: float, *, timestamp_us: int) -> Ping | None:
        """A Ping to send now, or None. ``timestamp_us`` is this side's clock."""
        if now_ms - self._last_sent_ms < self.ping_interval_ms:
            return None
        self._nonce = (self._nonce + 1) & 0xFFFFFFFF
        self._last_sent_ms = now_ms
        return Ping(self._nonce, timestamp_us)
