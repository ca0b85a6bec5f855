"""One connection of the protocol over a :class:`~firmware_bridge.transports.Link`, either side.

The host (``host.py``) and the emulated device (``emulator/``) run the same engine: a
reader task (bytes → frames → whole messages), a writer task (lanes → frames → bytes),
and a timer task (retransmissions, keepalive, reassembly timeouts, idle flush of the
stream decoder). The decisions are made by the pure objects of ``protocol.py`` and
``_reassembly.py``; this module only moves bytes between them and the link.

A :class:`FrameFilter` may sit between the frames and the link (the emulator's link
impairments): it sees every encoded frame, so that a corrupted frame exercises the CRC
and retransmission rather than the transport's own integrity checks (TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from firmware_bridge._errors import (
    AckWindowFullError,
    DeliveryFailedError,
    HandshakeError,
    ProtocolError,
    UnsupportedVersionError,
)
from firmware_bridge._link_errors import LinkClosedError, LinkError
from firmware_bridge._reassembly import (
    AckTracker,
    DuplicateMessage,
    KeepaliveTimer,
    LaneScheduler,
    Reassembler,
    ReassemblyEvent,
    ReassemblyLimits,
    ReceivedMessage,
)
from firmware_bridge.protocol import (
    DEFAULT_MTU_BYTES,
    MAX_FRAME_BYTES,
    Ack,
    ErrorCode,
    ErrorReport,
    Frame,
    FrameDecoder,
    Hello,
    Lane,
    Message,
    Ping,
    Pong,
    RawFrame,
    decode_frame,
    decode_frame_raw,
)
from firmware_bridge.transports._base import Link

__all__ = [
    "Connection",
    "ConnectionOptions",
    "ConnectionStats",
    "DUPLICATE_WINDOW",
    "FrameFilter",
    "RateWindow",
    "Role",
    "device_clock_us",
]

_log = logging.getLogger("firmware_bridge.session")

Role = Literal["host", "device"]

_HANDSHAKE_TYPES = (Hello, Ack, Ping, Pong, ErrorReport)
_TICK_S = 0.02
_IDLE_FLUSH_MS = 100.0  # PROTOCOL.md §4.2: flush the stream decoder after 100 ms idle
_BATCH_BYTES = 60_000  # stream links: frames joined per write (under the TCP link MTU)
_DELAY_LINE_BYTES = 256 * 1024  # impaired links: bytes held back before the writer waits

DUPLICATE_WINDOW = 4096
"""Delivered sequence numbers remembered per lane. PROTOCOL.md §7.4 asks for at least
256; at a few hundred control messages a second (ACKs count too) a retransmission
2.1 s late falls out of 256 and would be delivered twice. 4,096 covers the 4.5 s
retransmission span up to 900 messages a second and stays far from the 16-bit wrap."""


def device_clock_us() -> int:
    """This process's monotonic clock in microseconds (the emulator's device clock)."""
    return time.monotonic_ns() // 1000


def _now_ms() -> float:
    return time.monotonic() * 1000.0


class FrameFilter(Protocol):
    """What stands between frames and the link: the emulator's impairment model."""

    def outgoing(self, frame: bytes, now_ms: float) -> list[tuple[float, bytes]]:
        """Frames to put on the link for one encoded frame, each with its release time."""

    def incoming(self, frame: bytes, now_ms: float) -> list[bytes]:
        """Frames to decode for one frame that arrived (dropped, doubled, damaged...)."""

    def hold_until_ms(self, now_ms: float) -> float:
        """Nothing leaves before this time (a stall); ``now_ms`` or earlier when none."""


@dataclass(frozen=True)
class ConnectionOptions:
    """Timers and limits of a connection; defaults are PROTOCOL.md's."""

    mtu_bytes: int = MAX_FRAME_BYTES
    """The largest frame this side accepts (advertised in HELLO); capped by the link's."""
    handshake_timeout_ms: float = 5_000.0
    ping_interval_ms: float = 2_000.0
    dead_after_ms: float = 6_000.0
    ack_timeout_ms: float = 300.0
    max_retries: int = 3
    max_outstanding: int = 32
    max_queued_video: int = 2
    limits: ReassemblyLimits = field(
        default_factory=lambda: ReassemblyLimits(duplicate_window=DUPLICATE_WINDOW)
    )
    """Reassembly limits; the duplicate window is wider than §7.4's 256 (see below)."""
    stream: bool | None = None
    """Whether the link is a byte stream (TCP, serial); None: guess from its class."""


@dataclass
class ConnectionStats:
    """Counters of one connection (mutable, updated in place)."""

    frames_sent: int = 0
    frames_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    frames_dropped: Counter[str] = field(default_factory=Counter)
    """Bad frames and failed reassemblies, by error class name."""
    control_sent: int = 0
    """Acknowledged control messages sent (first transmissions)."""
    retransmissions: int = 0
    acked: int = 0
    delivery_failed: int = 0
    duplicates: int = 0
    video_dropped_by_sender: int = 0
    rtt_ms: float | None = None
    """Smoothed round trip of PING/PONG (EWMA, 1/8)."""
    clock_offset_us: float | None = None
    """Local monotonic µs minus the peer's (from the last PONG)."""
    framing_cpu_s: float = 0.0
    """CPU time (this thread's) spent decoding frames, reassembling and dispatching
    messages (pure code, no awaits)."""


class Connection:
    """The protocol over one link, for one side (``role``) — handshake included.

    ``on_message`` receives every whole message from the peer after the handshake
    (ACK, PING and PONG are handled here); it runs on the reader task and must not
    block. ``on_error`` receives each frame or message dropped as a ProtocolError.
    """

    def __init__(
        self,
        link: Link,
        *,
        role: Role,
        hello: Hello,
        on_message: Callable[[Message], None],
        on_error: Callable[[ProtocolError], None] | None = None,
        options: ConnectionOptions | None = None,
        frame_filter: FrameFilter | None = None,
    ) -> None:
        self.options = options if options is not None else ConnectionOptions()
        self.link = link
        self.role: Role = role
        self._on_message = on_message
        self._on_error = on_error
        self._filter = frame_filter
        own_mtu = min(self.options.mtu_bytes, link.mtu_bytes, hello.mtu_bytes)
        self.initial_mtu_bytes = min(DEFAULT_MTU_BYTES, link.mtu_bytes)
        self.hello = dataclasses.replace(hello, mtu_bytes=max(own_mtu, self.initial_mtu_bytes))
        self.peer_hello: Hello | None = None
        stream = self.options.stream
        if stream is None:
            stream = type(link).__name__ in {"TcpLink", "SerialLink"}
        self.stream = stream
        self.scheduler = LaneScheduler(
            mtu_bytes=self.initial_mtu_bytes,
            max_message_bytes=self.options.limits.max_message_bytes,
            max_queued_video=self.options.max_queued_video,
        )
        self.decoder = FrameDecoder(max_frame_bytes=self.initial_mtu_bytes)
        self.reassembler = Reassembler(self.options.limits)
        self.acks = AckTracker(
            ack_timeout_ms=self.options.ack_timeout_ms,
            max_retries=self.options.max_retries,
            max_outstanding=self.options.max_outstanding,
        )
        self.keepalive = KeepaliveTimer(
            now_ms=_now_ms(),
            ping_interval_ms=self.options.ping_interval_ms,
            dead_after_ms=self.options.dead_after_ms,
        )
        self.stats = ConnectionStats()
        self._pending: dict[tuple[Lane, int], asyncio.Future[None]] = {}
        self._window = asyncio.Event()
        self._wake = asyncio.Event()
        self._hello_acked = False
        self._handshake_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task[None]] = []
        self._delay_line: list[tuple[float, int, bytes]] = []
        self._delay_bytes = 0
        self._delay_wake = asyncio.Event()
        self._counter = itertools.count()
        self._last_rx_ms = _now_ms()
        self._last_error_sent_ms = -1e9
        self._started_ms = _now_ms()
        self.negotiated_mtu_bytes = self.initial_mtu_bytes

    # ---------------------------------------------------------------- lifecycle

    @property
    def handshake_complete(self) -> bool:
        """Both HELLOs exchanged (sent and acknowledged, received)."""
        return self._handshake_done.done() and self._handshake_done.exception() is None

    @property
    def closed(self) -> bool:
        """The connection has ended."""
        return self._closed.done()

    @property
    def close_reason(self) -> str | None:
        """Why the connection ended, once it has."""
        return self._closed.result() if self._closed.done() else None

    async def start(self) -> None:
        """Start the tasks and the handshake; wait until it completes.

        Raises:
            HandshakeError: no HELLO exchange within ``handshake_timeout_ms``.
            LinkClosedError: the link went during the handshake.
        """
        self._tasks = [
            asyncio.create_task(self._reader(), name=f"{self.role}-reader"),
            asyncio.create_task(self._writer(), name=f"{self.role}-writer"),
            asyncio.create_task(self._timer(), name=f"{self.role}-timer"),
        ]
        if self._filter is not None:
            self._tasks.append(asyncio.create_task(self._pacer(), name=f"{self.role}-pacer"))
        if self.role == "host":
            self._send_hello()
        timeout_s = self.options.handshake_timeout_ms / 1000.0
        futures: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(asyncio.shield(self._handshake_done)),
            asyncio.ensure_future(asyncio.shield(self._closed)),
        ]
        try:
            await asyncio.wait(futures, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in futures:
                future.cancel()
                if future.done() and not future.cancelled():
                    future.exception()
        if self._handshake_done.done() and self._handshake_done.exception() is None:
            return
        if self._closed.done():
            reason = self._closed.result()
            await self.close(reason)
            exception = self._handshake_done.exception() if self._handshake_done.done() else None
            if isinstance(exception, HandshakeError):
                raise exception
            raise LinkClosedError(f"the link closed during the handshake: {reason}")
        await self.close("handshake timeout")
        raise HandshakeError(
            f"no HELLO exchange with the {'device' if self.role == 'host' else 'host'} "
            f"within {self.options.handshake_timeout_ms:g} ms"
        )

    async def wait_closed(self) -> str:
        """Wait until the connection ends; return why."""
        return await asyncio.shield(self._closed)

    async def close(self, reason: str = "closed by this side") -> None:
        """End the connection: fail what waits for an ACK, close the link, stop tasks."""
        self._mark_closed(reason)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not current), return_exceptions=True)
        with contextlib.suppress(LinkError, OSError):
            await asyncio.wait_for(self.link.close(), timeout=2.0)

    def _mark_closed(self, reason: str) -> None:
        if self._closed.done():
            return
        self._closed.set_result(reason)
        if not self._handshake_done.done():
            self._handshake_done.set_exception(HandshakeError(f"link ended: {reason}"))
            self._handshake_done.exception()  # mark retrieved
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DeliveryFailedError(f"the link was lost: {reason}"))
                future.exception()
        self._pending.clear()
        self._wake.set()
        self._delay_wake.set()
        self._window.set()

    # ---------------------------------------------------------------- sending

    def send_nowait(self, message: Message) -> None:
        """Queue a message that is not acknowledged (streams, events, keepalive)."""
        if self.closed:
            raise LinkClosedError(f"the connection is closed: {self.close_reason}")
        self.scheduler.enqueue(message)
        self._wake.set()

    async def send_reliable(self, message: Message, *, window_timeout_s: float = 5.0) -> None:
        """Send a control message with ACK_REQUESTED and wait for its ACK.

        Waits (up to ``window_timeout_s``) while 32 messages already wait for ACKs.

        Raises:
            DeliveryFailedError: no ACK after every retransmission, or the link went.
            AckWindowFullError: the window stayed full for ``window_timeout_s``.
        """
        future = await self._enqueue_reliable(message, window_timeout_s)
        await future

    async def _enqueue_reliable(
        self, message: Message, window_timeout_s: float
    ) -> asyncio.Future[None]:
        deadline = time.monotonic() + window_timeout_s
        while not self.closed and self.acks.outstanding >= self.acks.max_outstanding:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AckWindowFullError(
                    f"{self.acks.outstanding} control messages still wait for an ACK "
                    f"after {window_timeout_s:g} s"
                )
            self._window.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._window.wait(), timeout=remaining)
        return self._track(message)

    def _track(self, message: Message) -> asyncio.Future[None]:
        if self.closed:
            raise LinkClosedError(f"the connection is closed: {self.close_reason}")
        sequence = self.scheduler.enqueue(message, ack_requested=True)
        self.acks.track(message, sequence=sequence, now_ms=_now_ms())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[(message.LANE, sequence)] = future
        self.stats.control_sent += 1
        self._wake.set()
        return future

    def _send_hello(self) -> None:
        future = self._track(self.hello)
        # The decoder accepts our advertised MTU from the moment our HELLO is sent.
        self.decoder.max_frame_bytes = self.hello.mtu_bytes
        future.add_done_callback(self._on_hello_settled)

    def _on_hello_settled(self, future: asyncio.Future[None]) -> None:
        if future.cancelled() or future.exception() is not None:
            if not self._handshake_done.done():
                self._handshake_done.set_exception(
                    HandshakeError("the peer never acknowledged our HELLO")
                )
                self._handshake_done.exception()
                self._mark_closed("HELLO not acknowledged")
            return
        self._hello_acked = True
        self._check_handshake()

    def _check_handshake(self) -> None:
        if self._hello_acked and self.peer_hello is not None and not self._handshake_done.done():
            self._handshake_done.set_result(None)

    async def _writer(self) -> None:
        try:
            while not self.closed:
                packed = self.scheduler.next_packed()
                if packed is None:
                    self.stats.video_dropped_by_sender = self.scheduler.dropped_video_messages
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if self._filter is not None:
                    await self._through_filter(packed)
                    continue
                if not self.stream:
                    await self._put(packed, 1)
                    continue
                # Join frames into one write (fewer syscalls and TLS records); a frame
                # that would overflow the link's write size goes first next round.
                parts = [packed]
                size = len(packed)
                limit = min(_BATCH_BYTES, self.link.mtu_bytes)
                while size < limit:
                    raw = self.scheduler.next_packed()
                    if raw is None:
                        break
                    if size + len(raw) > limit:
                        await self._put(b"".join(parts), len(parts))
                        parts, size = [], 0
                    parts.append(raw)
                    size += len(raw)
                await self._put(b"".join(parts), len(parts))
        except LinkError as exc:
            self._mark_closed(f"send failed: {exc}")

    async def _put(self, data: bytes, frames: int) -> None:
        await self.link.send(data)
        self.stats.frames_sent += frames
        self.stats.bytes_sent += len(data)
        self.keepalive.on_sent(_now_ms())

    async def _through_filter(self, packed: bytes) -> None:
        assert self._filter is not None
        now = _now_ms()
        for release_ms, raw in self._filter.outgoing(packed, now):
            heapq.heappush(self._delay_line, (release_ms, next(self._counter), raw))
            self._delay_bytes += len(raw)
        self._delay_wake.set()
        while self._delay_bytes > _DELAY_LINE_BYTES and not self.closed:
            await asyncio.sleep(0.002)

    async def _pacer(self) -> None:
        assert self._filter is not None
        try:
            while not self.closed:
                if not self._delay_line:
                    self._delay_wake.clear()
                    await self._delay_wake.wait()
                    continue
                now = _now_ms()
                due = max(self._delay_line[0][0], self._filter.hold_until_ms(now))
                if due > now:
                    await asyncio.sleep(min((due - now) / 1000.0, 0.05))
                    continue
                _, _, raw = heapq.heappop(self._delay_line)
                self._delay_bytes -= len(raw)
                if self.stream:
                    parts, size = [raw], len(raw)
                    limit = min(_BATCH_BYTES, self.link.mtu_bytes)
                    while (
                        self._delay_line
                        and self._delay_line[0][0] <= now
                        and size + len(self._delay_line[0][2]) <= limit
                    ):
                        parts.append(heapq.heappop(self._delay_line)[2])
                        size += len(parts[-1])
                        self._delay_bytes -= len(parts[-1])
                    await self._put(b"".join(parts), len(parts))
                else:
                    await self._put(raw, 1)
        except LinkError as exc:
            self._mark_closed(f"send failed: {exc}")

    # ---------------------------------------------------------------- receiving

    async def _reader(self) -> None:
        try:
            while not self.closed:
                data = await self.link.receive()
                now = _now_ms()
                self._last_rx_ms = now
                self.stats.bytes_received += len(data)
                # CPU time of this thread, not wall time: on a loaded machine the wall
                # clock also counts the time other processes held the core.
                started = time.thread_time()
                if self._filter is not None:
                    # The emulator's impairments act on encoded frames: keep Frame objects.
                    if self.stream:
                        events = self.decoder.feed(data)
                    else:
                        events = [_decode_packet(data, self.decoder.max_frame_bytes)]
                    self._handle(events, now)
                elif self.stream:
                    self._handle_raw(self.decoder.feed_raw(data), now)
                else:
                    self._handle_raw([_decode_packet_raw(data, self.decoder.max_frame_bytes)], now)
                self.stats.framing_cpu_s += time.thread_time() - started
        except LinkClosedError as exc:
            self._mark_closed(str(exc))
        except LinkError as exc:  # pragma: no cover - transports raise LinkClosedError
            self._mark_closed(f"link error: {exc}")

    def _handle(self, events: list[Frame | ProtocolError], now: float) -> None:
        for event in events:
            if isinstance(event, ProtocolError):
                self._dropped(event)
                continue
            if self._filter is None:
                self._on_frame(event, now)
                continue
            for raw in self._filter.incoming(event.pack(), now):
                decoded = _decode_packet(raw, self.decoder.max_frame_bytes)
                if isinstance(decoded, ProtocolError):
                    self._dropped(decoded)
                else:
                    self._on_frame(decoded, now)

    def _handle_raw(self, events: list[RawFrame | ProtocolError], now: float) -> None:
        """One read's frames, as tuples: reassemble them all, then act on the results.

        At MTU 512 one TLS read carries about 30 frames; per-frame work here (expiry
        scan, keepalive, counters) is done once per read. Every frame of a read has the
        same ``now``, so expiring once before the first frame is the same as before each.
        """
        reassembler = self.reassembler
        results: list[ReassemblyEvent] = []
        frames = 0
        for event in events:
            if isinstance(event, ProtocolError):
                results.append(event)
                continue
            if not frames:
                results.extend(reassembler.expire(now))
            frames += 1
            reassembler.push_raw(event, now, results)
        if frames:
            self.stats.frames_received += frames
            self.keepalive.on_received(now)
        for result in results:
            self._dispatch(result)

    def _dropped(self, error: ProtocolError) -> None:
        self.stats.frames_dropped[type(error).__name__] += 1
        if isinstance(error, UnsupportedVersionError) and self.peer_hello is None:
            # A peer of another major version shows at the handshake (§9); later, a
            # version byte is more likely line noise that the CRC check will catch.
            self._send_error(ErrorCode.UNSUPPORTED_VERSION, str(error), force=True)
            self._mark_closed("the peer speaks another protocol version")
            if self._handshake_done.done():
                return
        if self._on_error is not None:
            self._on_error(error)

    def _on_frame(self, frame: Frame, now: float) -> None:
        self.stats.frames_received += 1
        self.keepalive.on_received(now)
        for event in self.reassembler.push(frame, now):
            self._dispatch(event)

    def _dispatch(self, event: ReassemblyEvent) -> None:
        if isinstance(event, ProtocolError):
            self._dropped(event)
        elif isinstance(event, DuplicateMessage):
            self.stats.duplicates += 1
            if event.ack_requested:
                self._ack(event.lane, event.sequence)
        else:
            self._received(event)

    def _received(self, event: ReceivedMessage) -> None:
        message = event.message
        if event.ack_requested:
            self._ack(event.lane, event.sequence)
        if isinstance(message, Ack):
            self._settle(message)
        elif isinstance(message, Ping):
            pong = Pong(message.nonce, message.timestamp_us, device_clock_us())
            self.send_nowait(pong)
        elif isinstance(message, Pong):
            self._on_pong(message)
        elif isinstance(message, Hello):
            self._on_hello(message)
        elif self.peer_hello is None:
            if not isinstance(message, _HANDSHAKE_TYPES):
                self._send_error(
                    ErrorCode.HANDSHAKE_REQUIRED,
                    f"{type(message).__name__} before the HELLO exchange",
                )
            elif isinstance(message, ErrorReport):
                self._on_message(message)
        else:
            self._on_message(message)

    def _on_hello(self, hello: Hello) -> None:
        first = self.peer_hello is None
        self.peer_hello = hello
        if not first:
            return
        if self.role == "device":
            self._send_hello()
        mtu = min(self.hello.mtu_bytes, hello.mtu_bytes)
        self.negotiated_mtu_bytes = mtu
        self.scheduler.mtu_bytes = mtu
        self._check_handshake()

    def _ack(self, lane: Lane, sequence: int) -> None:
        if not self.closed:
            self.scheduler.enqueue(Ack(lane, sequence))
            self._wake.set()

    def _settle(self, ack: Ack) -> None:
        if self.acks.acknowledge(ack) is None:
            return  # a repeated ACK, or one for a message already given up
        self.stats.acked += 1
        future = self._pending.pop((ack.acked_lane, ack.acked_sequence), None)
        if future is not None and not future.done():
            future.set_result(None)
        self._notify_window()

    def _notify_window(self) -> None:
        self._window.set()

    def _on_pong(self, pong: Pong) -> None:
        now_us = device_clock_us()
        rtt_us = now_us - pong.ping_timestamp_us
        if rtt_us < 0:
            return
        rtt_ms = rtt_us / 1000.0
        stats = self.stats
        previous = stats.rtt_ms
        stats.rtt_ms = rtt_ms if previous is None else previous + (rtt_ms - previous) / 8
        stats.clock_offset_us = now_us - (pong.timestamp_us + rtt_us / 2)

    def _send_error(self, code: ErrorCode, text: str, *, force: bool = False) -> None:
        now = _now_ms()
        if not force and now - self._last_error_sent_ms < 1000.0:
            return  # PROTOCOL.md §4.1: at most one ERROR per second
        self._last_error_sent_ms = now
        with contextlib.suppress(LinkClosedError):
            self.send_nowait(ErrorReport(code, text[:200]))

    def send_ping(self) -> None:
        """Send a PING now (to measure the round trip sooner than the keepalive would)."""
        now = _now_ms()
        self.keepalive.on_sent(now - self.options.ping_interval_ms)
        ping = self.keepalive.poll(now, timestamp_us=device_clock_us())
        if ping is not None:
            self.send_nowait(ping)

    # ---------------------------------------------------------------- timers

    async def _timer(self) -> None:
        while not self.closed:
            await asyncio.sleep(_TICK_S)
            now = _now_ms()
            started = time.thread_time()
            if (
                self.stream
                and self.decoder.buffered_bytes
                and now - self._last_rx_ms >= (_IDLE_FLUSH_MS)
            ):
                self._handle(self.decoder.flush(), now)
            for error in self.reassembler.expire(now):
                self._dropped(error)
            self.stats.framing_cpu_s += time.thread_time() - started
            poll = self.acks.poll(now)
            for pending in poll.retransmit:
                self.stats.retransmissions += 1
                self.scheduler.enqueue(
                    pending.message, ack_requested=True, sequence=pending.sequence
                )
                self._wake.set()
            for pending in poll.failed:
                self.stats.delivery_failed += 1
                future = self._pending.pop((pending.lane, pending.sequence), None)
                if future is not None and not future.done():
                    future.set_exception(
                        DeliveryFailedError(
                            f"{type(pending.message).__name__} (sequence {pending.sequence}) "
                            f"not acknowledged after {pending.attempts} transmissions"
                        )
                    )
                    future.exception()  # the sender may have stopped waiting
            if poll.failed:
                self._notify_window()
            ping = self.keepalive.poll(now, timestamp_us=device_clock_us())
            if ping is not None:
                with contextlib.suppress(LinkClosedError):
                    self.send_nowait(ping)
            if self.keepalive.is_dead(now):
                self._mark_closed(
                    f"no valid frame from the peer for {self.options.dead_after_ms:g} ms"
                )
                with contextlib.suppress(LinkError, OSError):
                    await asyncio.wait_for(self.link.close(), timeout=2.0)


def _decode_packet(data: bytes, max_frame_bytes: int) -> Frame | ProtocolError:
    try:
        return decode_frame(data, max_frame_bytes=max_frame_bytes)
    except ProtocolError as error:
        return error


def _decode_packet_raw(data: bytes, max_frame_bytes: int) -> RawFrame | ProtocolError:
    try:
        return decode_frame_raw(data, max_frame_bytes=max_frame_bytes)
    except ProtocolError as error:
        return error


@dataclass
class RateWindow:
    """Bytes per second over the last ``window_s`` (a small ring of samples)."""

    window_s: float = 2.0
    _samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now_s: float, total_bytes: int) -> None:
        """Record the running byte total at ``now_s``."""
        self._samples.append((now_s, total_bytes))
        while len(self._samples) > 2 and now_s - self._samples[0][0] > self.window_s:
            self._samples.popleft()

    def rate_bytes_per_s(self) -> float:
        """The average rate over the window, 0 before two samples."""
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return 0.0 if t1 <= t0 else (b1 - b0) / (t1 - t0)
