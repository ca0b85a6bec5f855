"""The host side of a session with glasses (or the emulator), over any link.

:class:`HostSession` connects, runs the handshake (``_session.Connection`` does the
protocol), and exposes what an app needs: queues of camera frames and audio chunks,
typed events (taps, state changes, stalls, a lost link, firmware and protocol errors),
commands whose failures say why, the device's state, and the link's quality. When the
link goes, it reconnects with exponential backoff and resumes the streams that were
configured, without the app doing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from firmware_bridge._errors import (
    BridgeError,
    CommandError,
    CommandTimeoutError,
    DeliveryFailedError,
    DeviceBusyError,
    LedBlockedError,
    ProtocolError,
    SessionError,
    ThermalLimitError,
    UnsupportedCommandError,
)
from firmware_bridge._link_errors import LinkClosedError, LinkError
from firmware_bridge._secure import PairingRequiredError, PairingStore, connect_tcp
from firmware_bridge._session import Connection, ConnectionOptions, RateWindow, device_clock_us
from firmware_bridge.protocol import (
    AudioChunk,
    AudioConfig,
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
    Hello,
    ImuSample,
    LedStatus,
    Message,
    SpeakerAudio,
    ThermalStatus,
    ThrottleLevel,
    TouchEvent,
)
from firmware_bridge.transports._base import Link
from firmware_bridge.transports._uri import open_link, parse_link_uri

__all__ = [
    "DeliveryFailed",
    "DeviceInput",
    "DeviceStatus",
    "FirmwareError",
    "HostEvent",
    "HostOptions",
    "HostSession",
    "LinkLost",
    "LinkQuality",
    "ProtocolErrorEvent",
    "ReconnectFailed",
    "Reconnected",
    "StateChanged",
    "StreamResumed",
    "StreamStalled",
]

_log = logging.getLogger("firmware_bridge.host")
_T = TypeVar("_T")
_SDK_VERSION = "1.0"
_SPEAKER_CHUNK_BYTES = 4096


# ------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class DeviceStatus:
    """What the device last reported about itself; None until it reported it."""

    connected: bool = False
    hello: Hello | None = None
    battery_percent: int | None = None
    charging: bool | None = None
    temperature_c: float | None = None
    throttle_level: ThrottleLevel = ThrottleLevel.NONE
    led: CaptureLedState = CaptureLedState.ABSENT


@dataclass(frozen=True)
class LinkQuality:
    """How the link is doing: round trip, loss, throughput (this connection and before)."""

    rtt_ms: float | None
    """Smoothed PING/PONG round trip."""
    loss_ratio: float
    """Fraction of camera frames and audio chunks the device sent that never arrived
    (gaps in their counters)."""
    frame_error_ratio: float
    """Fraction of frames received that were dropped as damaged."""
    retransmit_ratio: float
    """Retransmissions per acknowledged control message sent."""
    throughput_kbps: float
    """Bytes received per second over the last 2 s, in kbit/s."""
    mtu_bytes: int
    frames_received: int
    frames_dropped: dict[str, int]
    video_frames_received: int
    video_frames_lost: int
    video_frames_dropped_by_host: int
    """Frames that arrived but were dropped because the app did not read them in time."""
    audio_chunks_received: int
    audio_chunks_lost: int
    control_failed: int
    reconnects: int


@dataclass(frozen=True)
class DeviceInput:
    """A tap, a button or an IMU sample from the device."""

    message: TouchEvent | ButtonEvent | ImuSample


@dataclass(frozen=True)
class StateChanged:
    """The device reported battery, thermal or LED state."""

    status: DeviceStatus


@dataclass(frozen=True)
class StreamStalled:
    """A stream the host asked for has delivered nothing for ``silent_s``."""

    stream: str
    silent_s: float


@dataclass(frozen=True)
class StreamResumed:
    """A stalled stream delivers again."""

    stream: str
    stalled_s: float


@dataclass(frozen=True)
class LinkLost:
    """The link went; the session reconnects unless told not to."""

    reason: str


@dataclass(frozen=True)
class Reconnected:
    """A new link and handshake after a loss; streams were resumed."""

    attempts: int
    downtime_s: float


@dataclass(frozen=True)
class ReconnectFailed:
    """The session gave up reconnecting; it is closed."""

    reason: str


@dataclass(frozen=True)
class FirmwareError:
    """The device sent an ERROR message."""

    code: ErrorCode
    message: str


@dataclass(frozen=True)
class ProtocolErrorEvent:
    """A frame or message from the device was dropped (counted; never raised)."""

    error: str
    detail: str


@dataclass(frozen=True)
class DeliveryFailed:
    """A control message was given up after every retransmission."""

    message_type: str
    detail: str


HostEvent = (
    DeviceInput
    | StateChanged
    | StreamStalled
    | StreamResumed
    | LinkLost
    | Reconnected
    | ReconnectFailed
    | FirmwareError
    | ProtocolErrorEvent
    | DeliveryFailed
)


@dataclass(frozen=True)
class HostOptions:
    """How a host session behaves; every duration has its unit in its name."""

    connection: ConnectionOptions = field(default_factory=ConnectionOptions)
    reconnect: bool = True
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 2.0
    give_up_after_s: float | None = 300.0
    """Stop reconnecting after this long without a link (None: never)."""
    stall_after_s: float = 2.0
    command_timeout_s: float = 10.0
    frame_queue: int = 8
    audio_queue: int = 512
    event_queue: int = 1024
    host_name: str = field(default_factory=socket.gethostname)


# ------------------------------------------------------------------------------ session


class _DropOldestQueue(asyncio.Queue[_T]):
    """A bounded queue that drops its oldest item instead of blocking the producer."""

    dropped = 0

    def push(self, item: _T) -> None:
        if self.full():
            self.get_nowait()
            self.dropped += 1
        self.put_nowait(item)


_COMMAND_ERRORS: dict[CommandResultCode, type[CommandError]] = {
    CommandResultCode.TIMEOUT: CommandTimeoutError,
    CommandResultCode.LED_BLOCKED: LedBlockedError,
    CommandResultCode.THERMAL_LIMIT: ThermalLimitError,
    CommandResultCode.BUSY: DeviceBusyError,
    CommandResultCode.UNSUPPORTED: UnsupportedCommandError,
    CommandResultCode.INVALID_ARGUMENT: UnsupportedCommandError,
}


class HostSession:
    """A session with one device over links that ``connect`` opens (again, on loss).

    Use :meth:`open` for a URI; the constructor takes any link factory (tests pass
    ``MemoryLink`` ends).
    """

    def __init__(
        self, connect: Callable[[], Awaitable[Link]], options: HostOptions | None = None
    ) -> None:
        self.options = options if options is not None else HostOptions()
        self._connect = connect
        self._connection: Connection | None = None
        self._status = DeviceStatus()
        self._frames: _DropOldestQueue[CameraFrame] = _DropOldestQueue(self.options.frame_queue)
        self._audio: _DropOldestQueue[AudioChunk] = _DropOldestQueue(self.options.audio_queue)
        self._events: _DropOldestQueue[HostEvent] = _DropOldestQueue(self.options.event_queue)
        self._commands: dict[int, asyncio.Future[CommandResult]] = {}
        self._command_ids = itertools.count(1)
        self._recent_frames: OrderedDict[int, CameraFrame] = OrderedDict()
        self._photo_waiters: dict[int, asyncio.Future[CameraFrame]] = {}
        self._camera_config: CameraConfig | None = None
        self._audio_config: AudioConfig | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._closed_reason: str | None = None
        self._reconnects = 0
        self._last_video_frame: int | None = None
        self._last_audio_sequence: int | None = None
        self._video_received = 0
        self._video_lost = 0
        self._audio_received = 0
        self._audio_lost = 0
        self._last_video_s = time.monotonic()
        self._last_audio_s = time.monotonic()
        self._stalled: dict[str, float] = {}
        self._totals = Counter[str]()
        self._rate = RateWindow()
        self._clock_offset_us: float | None = None
        self._connected = asyncio.Event()
        self._absorbed: Connection | None = None
        self._frame_listeners: list[Callable[[CameraFrame], None]] = []
        self._audio_listeners: list[Callable[[AudioChunk], None]] = []
        self._event_listeners: list[Callable[[HostEvent], None]] = []

    # ------------------------------------------------------------------ opening

    @classmethod
    async def open(
        cls,
        uri: str,
        *,
        store: PairingStore | None = None,
        insecure: bool = False,
        options: HostOptions | None = None,
    ) -> HostSession:
        """Connect to ``tcp://HOST:PORT`` (paired TLS, or plaintext with ``insecure``),
        ``serial:///dev/ttyX?baud=N`` or ``ble://ADDRESS``, and complete the handshake.

        Raises:
            PairingRequiredError: no pairing with this TCP device; says the command.
            HandshakeError, LinkError: the first connection failed.
        """
        address = parse_link_uri(uri)
        if address.scheme == "tcp":
            identity = None
            cert = None
            if not insecure:
                store = store if store is not None else PairingStore.default()
                cert = store.device_cert(f"{address.host}:{address.port}")
                if cert is None:
                    raise PairingRequiredError(
                        f"this host has not paired with {uri}: run "
                        f"`glasses pair {uri} --code CODE` with the code the device shows "
                        f"(pairing store: {store.folder})"
                    )
                identity = store.identity()

            async def connect() -> Link:
                return await connect_tcp(
                    address.host, address.port, identity=identity, device_cert_pem=cert
                )
        else:

            async def connect() -> Link:
                return await open_link(uri)

        session = cls(connect, options)
        await session.start()
        return session

    async def start(self) -> None:
        """Open the first link and complete the handshake; then supervise it."""
        self._connection = await self._new_connection()
        self._on_connected()
        self._tasks = [
            asyncio.create_task(self._supervise(), name="host-supervisor"),
            asyncio.create_task(self._watch_streams(), name="host-stall-watch"),
        ]

    async def _new_connection(self) -> Connection:
        link = await self._connect()
        hello = Hello(
            firmware_version=_SDK_VERSION,
            device_name=self.options.host_name[:64],
            mtu_bytes=self.options.connection.mtu_bytes,
        )
        connection = Connection(
            link,
            role="host",
            hello=hello,
            on_message=self._on_message,
            on_error=self._on_error,
            options=self.options.connection,
        )
        await connection.start()
        return connection

    def _on_connected(self) -> None:
        connection = self._connection
        assert connection is not None
        self._status = replace(self._status, connected=True, hello=connection.peer_hello)
        self._last_video_frame = None
        self._last_audio_sequence = None
        self._last_video_s = self._last_audio_s = time.monotonic()
        connection.send_ping()
        self._connected.set()

    async def _supervise(self) -> None:
        while not self._closing:
            connection = self._connection
            assert connection is not None
            reason = await connection.wait_closed()
            await connection.close(reason)
            self._absorb_stats(connection)
            if self.closed:  # close() ran while we waited
                return
            self._connected.clear()
            self._status = replace(self._status, connected=False)
            self._fail_commands(f"the link was lost: {reason}")
            self._emit(LinkLost(reason))
            _log.warning("link lost: %s", reason)
            if not self.options.reconnect:
                self._closed_reason = reason
                return
            await self._reconnect(reason)

    async def _reconnect(self, reason: str) -> None:
        lost_s = time.monotonic()
        delay_s = self.options.backoff_initial_s
        attempts = 0
        while not self._closing:
            attempts += 1
            try:
                self._connection = await self._new_connection()
            except PairingRequiredError as exc:
                self._give_up(f"{exc}")
                return
            except (LinkError, SessionError, OSError) as exc:
                _log.info("reconnect attempt %d failed: %s", attempts, exc)
                limit = self.options.give_up_after_s
                if limit is not None and time.monotonic() - lost_s > limit:
                    self._give_up(f"no link for {limit:g} s; last error: {exc}")
                    return
                await asyncio.sleep(delay_s * random.uniform(0.8, 1.2))
                delay_s = min(delay_s * 2, self.options.backoff_max_s)
                continue
            self._reconnects += 1
            self._on_connected()
            self._emit(Reconnected(attempts, time.monotonic() - lost_s))
            _log.info("reconnected after %d attempts (%s)", attempts, reason)
            for config in (self._camera_config, self._audio_config):
                if config is not None:
                    task = asyncio.create_task(self._resend(config))
                    self._tasks.append(task)
            return

    async def _resend(self, config: Message) -> None:
        with contextlib.suppress(BridgeError):
            await self._require().send_reliable(config)

    def _give_up(self, reason: str) -> None:
        self._closed_reason = reason
        self._emit(ReconnectFailed(reason))

    # ------------------------------------------------------------------ incoming

    def _emit(self, event: HostEvent) -> None:
        self._events.push(event)
        for listener in list(self._event_listeners):
            listener(event)

    def subscribe(
        self,
        *,
        frames: Callable[[CameraFrame], None] | None = None,
        audio: Callable[[AudioChunk], None] | None = None,
        events: Callable[[HostEvent], None] | None = None,
    ) -> Callable[[], None]:
        """Call these with every camera frame, audio chunk or event as it arrives (on the
        event loop, before it is queued); returns a function that unsubscribes.

        This is how capture sources are fed (``glasses_sdk.capture``); the queues behind
        :meth:`next_frame` and friends keep working alongside.
        """
        if frames is not None:
            self._frame_listeners.append(frames)
        if audio is not None:
            self._audio_listeners.append(audio)
        if events is not None:
            self._event_listeners.append(events)

        def unsubscribe() -> None:
            if frames is not None and frames in self._frame_listeners:
                self._frame_listeners.remove(frames)
            if audio is not None and audio in self._audio_listeners:
                self._audio_listeners.remove(audio)
            if events is not None and events in self._event_listeners:
                self._event_listeners.remove(events)

        return unsubscribe

    def _on_error(self, error: ProtocolError) -> None:
        self._emit(ProtocolErrorEvent(type(error).__name__, str(error)))

    def _on_message(self, message: Message) -> None:
        now_s = time.monotonic()
        if isinstance(message, CameraFrame):
            self._on_frame(message, now_s)
        elif isinstance(message, AudioChunk):
            last = self._last_audio_sequence
            if last is not None and message.sequence > last + 1:
                self._audio_lost += message.sequence - last - 1
            self._last_audio_sequence = message.sequence
            self._audio_received += 1
            self._last_audio_s = now_s
            self._resumed("audio", now_s)
            for listener in list(self._audio_listeners):
                listener(message)
            self._audio.push(message)
        elif isinstance(message, TouchEvent | ButtonEvent | ImuSample):
            self._emit(DeviceInput(message))
        elif isinstance(message, BatteryStatus):
            self._set_status(battery_percent=message.percent, charging=message.charging)
        elif isinstance(message, ThermalStatus):
            self._set_status(
                temperature_c=message.temperature_c, throttle_level=message.throttle_level
            )
        elif isinstance(message, LedStatus):
            self._set_status(led=message.state)
        elif isinstance(message, CommandResult):
            future = self._commands.pop(message.command_id, None)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, ErrorReport):
            self._emit(FirmwareError(message.code, message.message))

    def _on_frame(self, frame: CameraFrame, now_s: float) -> None:
        last = self._last_video_frame
        if last is not None and frame.frame_number > last + 1:
            self._video_lost += frame.frame_number - last - 1
        self._last_video_frame = frame.frame_number
        self._video_received += 1
        self._last_video_s = now_s
        self._resumed("video", now_s)
        self._recent_frames[frame.frame_number] = frame
        while len(self._recent_frames) > 16:
            self._recent_frames.popitem(last=False)
        waiter = self._photo_waiters.pop(frame.frame_number, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)
        for listener in list(self._frame_listeners):
            listener(frame)
        self._frames.push(frame)

    def _set_status(self, **changes: object) -> None:
        self._status = replace(self._status, **changes)  # type: ignore[arg-type]
        self._emit(StateChanged(self._status))

    def _resumed(self, stream: str, now_s: float) -> None:
        since = self._stalled.pop(stream, None)
        if since is not None:
            self._emit(StreamResumed(stream, now_s - since))

    async def _watch_streams(self) -> None:
        while not self._closing:
            await asyncio.sleep(min(0.1, self.options.stall_after_s / 4))
            now_s = time.monotonic()
            connection = self._connection
            fresh = connection is not None and connection is not self._absorbed
            current = connection.stats.bytes_received if fresh and connection else 0
            self._rate.add(now_s, self._totals["bytes_received"] + current)
            for stream, wanted, last_s in (
                ("video", self._camera_config, self._last_video_s),
                ("audio", self._audio_config, self._last_audio_s),
            ):
                streaming = wanted is not None and wanted.streaming
                silent_s = now_s - last_s
                stalled = silent_s >= self.options.stall_after_s
                if streaming and stalled and stream not in self._stalled:
                    self._stalled[stream] = last_s
                    self._emit(StreamStalled(stream, silent_s))

    # ------------------------------------------------------------------ reading

    @property
    def status(self) -> DeviceStatus:
        """The device's latest reported state."""
        return self._status

    @property
    def connection(self) -> Connection | None:
        """The current connection (replaced on reconnect); for diagnostics."""
        return self._connection

    @property
    def closed(self) -> bool:
        """The session is closed (by :meth:`close`, or after giving up reconnecting)."""
        return self._closing or self._closed_reason is not None

    async def next_frame(self, *, timeout_s: float = 5.0) -> CameraFrame:
        """The next camera frame (the oldest queued); raises TimeoutError."""
        return await asyncio.wait_for(self._frames.get(), timeout=timeout_s)

    async def next_audio(self, *, timeout_s: float = 5.0) -> AudioChunk:
        """The next audio chunk; raises TimeoutError."""
        return await asyncio.wait_for(self._audio.get(), timeout=timeout_s)

    async def next_event(self, *, timeout_s: float = 5.0) -> HostEvent:
        """The next event; raises TimeoutError."""
        return await asyncio.wait_for(self._events.get(), timeout=timeout_s)

    def pending_events(self) -> list[HostEvent]:
        """Every queued event, without waiting."""
        events: list[HostEvent] = []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        return events

    async def frames(self) -> AsyncIterator[CameraFrame]:
        """Camera frames as they arrive, until the session closes."""
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                yield await self.next_frame(timeout_s=0.5)

    async def audio_chunks(self) -> AsyncIterator[AudioChunk]:
        """Audio chunks as they arrive, until the session closes."""
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                yield await self.next_audio(timeout_s=0.5)

    async def events(self) -> AsyncIterator[HostEvent]:
        """Events as they happen, until the session closes."""
        while not self.closed or not self._events.empty():
            with contextlib.suppress(TimeoutError):
                yield await self.next_event(timeout_s=0.5)

    def to_host_time_s(self, device_timestamp_us: int) -> float:
        """A device timestamp on this process's monotonic clock (seconds).

        Uses the clock offset measured by PING/PONG; before the first PONG, assumes the
        message just arrived.
        """
        connection = self._connection
        offset = None if connection is None else connection.stats.clock_offset_us
        if offset is None:
            if self._clock_offset_us is None:
                self._clock_offset_us = device_clock_us() - device_timestamp_us
            offset = self._clock_offset_us
        return (device_timestamp_us + offset) / 1e6

    def _absorb_stats(self, connection: Connection) -> None:
        self._absorbed = connection
        stats = connection.stats
        self._totals["frames_received"] += stats.frames_received
        self._totals["control_sent"] += stats.control_sent
        self._totals["retransmissions"] += stats.retransmissions
        self._totals["delivery_failed"] += stats.delivery_failed
        for name, count in stats.frames_dropped.items():
            self._totals[f"dropped:{name}"] += count
        self._totals["bytes_received"] += stats.bytes_received

    def quality(self) -> LinkQuality:
        """Link quality now, counting the connections before this one too."""
        totals = Counter(self._totals)
        connection = self._connection
        rtt = None
        mtu = 0
        if connection is not None and connection is not self._absorbed:
            stats = connection.stats
            totals["frames_received"] += stats.frames_received
            totals["control_sent"] += stats.control_sent
            totals["retransmissions"] += stats.retransmissions
            totals["delivery_failed"] += stats.delivery_failed
            totals["bytes_received"] += stats.bytes_received
            for name, count in stats.frames_dropped.items():
                totals[f"dropped:{name}"] += count
            rtt = stats.rtt_ms
            mtu = connection.negotiated_mtu_bytes
        dropped = {k.split(":", 1)[1]: v for k, v in totals.items() if k.startswith("dropped:")}
        bad = sum(dropped.values())
        media_lost = self._video_lost + self._audio_lost
        media = self._video_received + self._audio_received + media_lost
        return LinkQuality(
            rtt_ms=rtt,
            loss_ratio=media_lost / media if media else 0.0,
            frame_error_ratio=bad / (bad + totals["frames_received"]) if bad else 0.0,
            retransmit_ratio=(
                totals["retransmissions"] / totals["control_sent"]
                if totals["control_sent"]
                else 0.0
            ),
            throughput_kbps=self._rate.rate_bytes_per_s() * 8 / 1000,
            mtu_bytes=mtu,
            frames_received=totals["frames_received"],
            frames_dropped=dropped,
            video_frames_received=self._video_received,
            video_frames_lost=self._video_lost,
            video_frames_dropped_by_host=self._frames.dropped,
            audio_chunks_received=self._audio_received,
            audio_chunks_lost=self._audio_lost,
            control_failed=totals["delivery_failed"],
            reconnects=self._reconnects,
        )

    # ------------------------------------------------------------------ commands

    def _require(self) -> Connection:
        connection = self._connection
        if self._closing or self._closed_reason is not None or connection is None:
            raise LinkClosedError(f"the session is closed: {self._closed_reason or 'closed'}")
        if connection.closed:
            raise LinkClosedError(
                f"the link is down ({connection.close_reason}); the session is reconnecting"
            )
        return connection

    async def wait_connected(self, *, timeout_s: float = 30.0) -> None:
        """Wait until a link is up (right away when it is)."""
        await asyncio.wait_for(self._connected.wait(), timeout=timeout_s)

    async def send_control(self, message: Message) -> None:
        """Send any control message reliably (ACK and retransmission).

        Raises:
            DeliveryFailedError: not acknowledged after every retransmission.
        """
        try:
            await self._require().send_reliable(message)
        except DeliveryFailedError as exc:
            self._emit(DeliveryFailed(type(message).__name__, str(exc)))
            raise

    async def configure_camera(
        self,
        *,
        width_px: int = 640,
        height_px: int = 480,
        fps: int = 15,
        jpeg_quality: int = 80,
        streaming: bool = True,
    ) -> None:
        """Ask for a camera stream (or stop it); resumed after every reconnect.

        Raises:
            LedBlockedError: the device reports its capture LED blocked.
            UnsupportedCommandError: the device has no camera or not that resolution.
        """
        hello = self._status.hello
        if streaming and hello is not None:
            resolutions = {(r.width_px, r.height_px) for r in hello.camera_resolutions}
            if (width_px, height_px) not in resolutions:
                raise UnsupportedCommandError(
                    f"the device offers {sorted(resolutions) or 'no camera'}, "
                    f"not {width_px}x{height_px}",
                    code=CommandResultCode.UNSUPPORTED,
                )
        if streaming and self._status.led == CaptureLedState.BLOCKED:
            raise LedBlockedError(
                "the capture LED is blocked: the device refuses to stream",
                code=CommandResultCode.LED_BLOCKED,
            )
        config = CameraConfig(width_px, height_px, fps, jpeg_quality, streaming)
        self._camera_config = config
        self._last_video_s = time.monotonic()
        await self.send_control(config)

    async def configure_audio(
        self,
        *,
        sample_rate_hz: int = 16_000,
        channels: int = 1,
        chunk_ms: int = 20,
        streaming: bool = True,
    ) -> None:
        """Ask for a microphone stream (or stop it); resumed after every reconnect."""
        config = AudioConfig(sample_rate_hz, channels, chunk_ms, streaming)
        self._audio_config = config
        self._last_audio_s = time.monotonic()
        await self.send_control(config)

    async def command(self, kind: CommandKind, argument: int = 0) -> CommandResult:
        """Run a COMMAND and return its OK result.

        Raises:
            CommandTimeoutError: no result within ``command_timeout_s`` (or link lost).
            LedBlockedError, ThermalLimitError, DeviceBusyError, UnsupportedCommandError:
                the device's reason.
        """
        connection = self._require()
        command_id = next(self._command_ids) & 0xFFFFFFFF
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._commands[command_id] = future
        deadline = time.monotonic() + self.options.command_timeout_s
        try:
            try:
                await connection.send_reliable(Command(command_id, kind, argument))
            except DeliveryFailedError as exc:
                raise CommandTimeoutError(
                    f"{kind.name} never reached the device: {exc}",
                    code=CommandResultCode.TIMEOUT,
                ) from exc
            try:
                result = await asyncio.wait_for(
                    future, timeout=max(deadline - time.monotonic(), 0.001)
                )
            except TimeoutError:
                raise CommandTimeoutError(
                    f"{kind.name}: no result within {self.options.command_timeout_s:g} s",
                    code=CommandResultCode.TIMEOUT,
                ) from None
        finally:
            self._commands.pop(command_id, None)
        if result.result != CommandResultCode.OK:
            error = _COMMAND_ERRORS.get(result.result, CommandError)
            raise error(
                f"{kind.name} failed: {result.result.name}"
                + (f" ({result.detail})" if result.detail else ""),
                code=result.result,
                detail=result.detail,
            )
        return result

    def _fail_commands(self, reason: str) -> None:
        for future in self._commands.values():
            if not future.done():
                future.set_exception(
                    CommandTimeoutError(reason, code=CommandResultCode.TIMEOUT, detail=reason)
                )
                future.exception()
        self._commands.clear()

    async def take_photo(self, *, jpeg_quality: int = 0) -> CameraFrame:
        """Take a photo; returns the CAMERA_FRAME that carries it."""
        deadline = time.monotonic() + self.options.command_timeout_s
        result = await self.command(CommandKind.TAKE_PHOTO, jpeg_quality)
        number = result.value
        frame = self._recent_frames.get(number)
        if frame is not None:
            return frame
        waiter: asyncio.Future[CameraFrame] = asyncio.get_running_loop().create_future()
        self._photo_waiters[number] = waiter
        try:
            return await asyncio.wait_for(waiter, timeout=max(deadline - time.monotonic(), 0.1))
        except TimeoutError:
            raise CommandTimeoutError(
                f"the photo (frame {number}) was taken but did not arrive",
                code=CommandResultCode.TIMEOUT,
            ) from None
        finally:
            self._photo_waiters.pop(number, None)

    async def set_led(self, on: bool) -> None:
        """Turn the capture LED on or off (off is refused while the camera streams)."""
        await self.command(CommandKind.SET_LED, 1 if on else 0)

    async def set_volume(self, percent: int) -> int:
        """Set the speaker volume; returns the volume set."""
        return (await self.command(CommandKind.SET_VOLUME, percent)).value

    async def play_audio(self, pcm: bytes, *, sample_rate_hz: int = 16_000) -> int:
        """Queue PCM16 mono samples for the speaker; returns the chunks sent.

        Raises:
            UnsupportedCommandError: the device has no speaker.
        """
        hello = self._status.hello
        if hello is not None and not hello.has_speaker:
            raise UnsupportedCommandError(
                "the device has no speaker", code=CommandResultCode.UNSUPPORTED
            )
        connection = self._require()
        count = 0
        for start in range(0, len(pcm), _SPEAKER_CHUNK_BYTES):
            chunk = pcm[start : start + _SPEAKER_CHUNK_BYTES]
            connection.send_nowait(SpeakerAudio(count, sample_rate_hz, chunk))
            count += 1
        return count

    async def display_text(self, text: str, *, duration_ms: int = 0) -> None:
        """Show text on the device's display (devices without one ignore it)."""
        await self.send_control(DisplayText(duration_ms, text))

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        """End the session and its link; idempotent."""
        if self._closing:
            return
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._connection is not None:
            await self._connection.close("closed by the host")
        self._fail_commands("the session was closed")

    async def __aenter__(self) -> HostSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
