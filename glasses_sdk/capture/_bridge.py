"""Sources fed by a link to the glasses: JPEG frames and PCM16 audio, pushed in.

The firmware bridge's session (``firmware_bridge.host``) receives ``CameraFrame`` and
``AudioChunk`` messages; it hands their contents to :meth:`BridgeVideoSource.push_jpeg`
and :meth:`BridgeAudioSource.push_pcm16` on the event loop's thread (from another
thread, through ``loop.call_soon_threadsafe``). These sources then do what every
source does: device timestamps onto the SDK clock (one :class:`ClockMapper` shared by
the camera and the microphone of a device, since both stamp on the device's clock),
bounded buffers with counted losses, typed events, and 16 kHz mono float32 audio.

Frames are decoded by the preprocessing core's :func:`decode_jpeg` only when read: in
latest-frame mode a frame replaced before the consumer asked for it costs no decode.
Nothing here imports the bridge, so either side can change without the other.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from glasses_sdk._exceptions import (
    InvalidAudioError,
    InvalidConfigError,
    InvalidFrameError,
    StreamLostError,
)
from glasses_sdk.capture._audio import AudioStats, SampleFormat, _check_options, _Converter
from glasses_sdk.capture._base import AudioChunk, AudioSource, VideoFrame, VideoSource, monotonic_s
from glasses_sdk.capture._camera import CameraMode, VideoStats
from glasses_sdk.capture._clock import ClockMapper
from glasses_sdk.capture._events import AudioOverflow
from glasses_sdk.preprocess.codec import decode_jpeg

__all__ = ["BridgeAudioSource", "BridgeVideoSource"]


class _Feed:
    """End-of-stream and wake-up shared by the two bridge sources (loop thread only)."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.ended = False
        self.failure: StreamLostError | None = None

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    def fail(self, reason: str) -> None:
        self.failure = StreamLostError(reason)
        self.ended = True
        self.wake.set()

    def finish(self) -> None:
        """Raise what the end of the stream means: an error, or the end of iteration."""
        if self.failure is not None:
            raise self.failure
        raise StopAsyncIteration


@dataclass(frozen=True, slots=True)
class _Jpeg:
    data: bytes
    frame_number: int
    device_s: float


class BridgeVideoSource(VideoSource):
    """Camera frames pushed in as JPEG bytes with the device's timestamp.

    ``mode`` is ``"latest"`` (the newest frame wins, replaced frames are counted as
    dropped and never decoded) or ``"queue"`` (a FIFO of ``queue_size``; when full the
    oldest is dropped and counted, since a link cannot be paused).
    """

    def __init__(
        self,
        *,
        name: str = "bridge camera",
        mode: CameraMode = "latest",
        queue_size: int = 8,
        clock: ClockMapper | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("latest", "queue"):
            raise InvalidConfigError(f"mode must be 'latest' or 'queue', got {mode!r}")
        if queue_size < 1:
            raise InvalidConfigError(f"queue_size must be >= 1, got {queue_size}")
        self._name = name
        self._items: collections.deque[_Jpeg] = collections.deque(
            maxlen=1 if mode == "latest" else queue_size
        )
        self.clock = clock if clock is not None else ClockMapper()
        self._feed = _Feed()
        self._pushed = self._delivered = self._dropped = self._invalid = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def stats(self) -> VideoStats:
        """Counters since the start; ``frames_invalid`` counts JPEGs that did not decode."""
        return VideoStats(self._pushed, self._delivered, self._dropped, 0, self._invalid)

    def push_jpeg(self, jpeg: bytes, *, frame_number: int, timestamp_us: int) -> None:
        """Hand over one received frame (call on the event loop's thread)."""
        now = monotonic_s()
        device_s = timestamp_us / 1e6
        self.clock.observe(device_s, now)
        if len(self._items) == self._items.maxlen:
            self._dropped += 1  # the deque drops the oldest
        self._items.append(_Jpeg(bytes(jpeg), frame_number, device_s))
        self._pushed += 1
        self._feed.wake.set()

    def end(self) -> None:
        """The stream ended normally: reads finish with ``StopAsyncIteration``."""
        self._feed.end()

    def fail(self, reason: str) -> None:
        """The link is gone: reads raise :class:`StreamLostError` once drained."""
        self._feed.fail(f"{self._name}: {reason}")

    async def close(self) -> None:
        """Close the source; a reader waiting for a frame ends its iteration."""
        self._feed.end()
        await super().close()

    async def read(self) -> VideoFrame:
        self._check_open()
        while True:
            while self._items:
                item = self._items.popleft()
                try:
                    image = decode_jpeg(item.data)
                except InvalidFrameError:
                    self._invalid += 1  # a corrupt frame is skipped, counted, not fatal
                    continue
                self._delivered += 1
                # Mapped now, with every observation so far: a burst of late frames is
                # placed by the least delayed of them, not each by its own arrival.
                stamp = self.clock.to_host(item.device_s)
                return VideoFrame(image, stamp, item.frame_number)
            if self._feed.ended:
                self._feed.finish()
            self._feed.wake.clear()
            await self._feed.wake.wait()


class BridgeAudioSource(AudioSource):
    """Microphone audio pushed in as PCM16 little-endian blocks with the device's
    timestamp (of the block's first sample) and the stream's chunk sequence number.

    Delivered like :class:`MicrophoneSource`: 16 kHz mono float32 in ``chunk_ms``
    chunks by default, the native format on request. Up to ``buffer_ms`` of received
    audio is kept for a slow reader; beyond that the oldest is dropped. Audio lost on
    the link (a gap in ``sequence``) and audio dropped here are both reported as
    :class:`AudioOverflow` events.
    """

    def __init__(
        self,
        *,
        device_rate_hz: int,
        channels: int = 1,
        sample_rate_hz: int | None = 16_000,
        sample_format: SampleFormat = "float32",
        chunk_ms: float = 32.0,
        buffer_ms: float = 2000.0,
        name: str = "bridge microphone",
        clock: ClockMapper | None = None,
    ) -> None:
        super().__init__()
        fmt = _check_options(sample_rate_hz, sample_format, chunk_ms)
        if channels < 1:
            raise InvalidConfigError(f"channels must be >= 1, got {channels}")
        if buffer_ms < 2 * chunk_ms:
            raise InvalidConfigError(
                f"buffer_ms must hold at least two chunks ({2 * chunk_ms} ms), got {buffer_ms}"
            )
        self._conv = _Converter(
            device_rate_hz, sample_rate_hz or device_rate_hz, channels, fmt, chunk_ms
        )
        self._channels = channels
        self._name = name
        self._limit_frames = round(buffer_ms * device_rate_hz / 1000.0)
        self._blocks: collections.deque[tuple[npt.NDArray[np.int16], int]] = collections.deque()
        self._buffered = 0
        self.clock = clock if clock is not None else ClockMapper()
        self._feed = _Feed()
        self._origin_device_s: float | None = None  # device time of input sample 0
        self._next_sequence: int | None = None
        self._next_in_index = 0
        self._pushed_end = 0
        self._captured = self._dropped = self._overflows = 0
        self._reported_overflows = self._reported_dropped = 0
        self._sequence = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def sample_rate_hz(self) -> int:
        return self._conv.out_rate_hz

    @property
    def stats(self) -> AudioStats:
        """Counters since the start; drops include audio lost on the link."""
        return AudioStats(self._sequence, self._captured, self._dropped, self._overflows, 0)

    def push_pcm16(self, pcm: bytes, *, sequence: int, timestamp_us: int) -> None:
        """Hand over one received block (call on the event loop's thread)."""
        rate = self._conv.in_rate_hz
        if len(pcm) % (2 * self._channels):
            raise InvalidAudioError(
                f"{self._name}: expected whole PCM16 frames of {self._channels} channel(s), "
                f"got {len(pcm)} bytes"
            )
        frames = np.frombuffer(pcm, dtype="<i2").astype(np.int16).reshape(-1, self._channels)
        n = frames.shape[0]
        device_s = timestamp_us / 1e6
        self.clock.observe(device_s + n / rate, monotonic_s())
        if self._origin_device_s is None:
            self._origin_device_s = device_s
        index = round((device_s - self._origin_device_s) * rate)
        if self._next_sequence is not None and sequence != self._next_sequence:
            self._dropped += max(index - self._pushed_end, 0)  # lost on the link
            self._overflows += 1
        self._next_sequence = (sequence + 1) & 0xFFFFFFFF
        self._pushed_end = index + n
        self._blocks.append((frames, index))
        self._buffered += n
        self._captured += n
        while self._buffered - self._blocks[0][0].shape[0] >= self._limit_frames:
            old, _ = self._blocks.popleft()  # the reader is too slow: drop the oldest
            self._buffered -= old.shape[0]
            self._dropped += old.shape[0]
            self._overflows += 1
        self._feed.wake.set()

    def end(self) -> None:
        """The stream ended normally: the rest is delivered, then ``StopAsyncIteration``."""
        self._feed.end()

    def fail(self, reason: str) -> None:
        """The link is gone: reads raise :class:`StreamLostError` once drained."""
        self._feed.fail(f"{self._name}: {reason}")

    def _report(self) -> None:
        if self._overflows > self._reported_overflows:
            self._emit(
                AudioOverflow(
                    self._name,
                    monotonic_s(),
                    self._dropped - self._reported_dropped,
                    self._overflows,
                )
            )
            self._reported_overflows = self._overflows
            self._reported_dropped = self._dropped

    async def close(self) -> None:
        """Close the source; a reader waiting for audio ends its iteration."""
        self._feed.end()
        await super().close()

    async def read(self) -> AudioChunk:
        self._check_open()
        conv = self._conv
        while True:
            self._report()
            taken = conv.take(final=self._feed.ended and not self._blocks)
            if taken is not None:
                break
            if self._blocks:  # one block at a time: the backlog stays bounded here
                frames, index = self._blocks.popleft()
                self._buffered -= frames.shape[0]
                if index != self._next_in_index:
                    conv.restart_at(index)  # a gap: resume the stream at its true place
                self._next_in_index = index + frames.shape[0]
                conv.push(frames)
                if not self._blocks and self._feed.ended:
                    conv.flush()
                continue
            if self._feed.ended:
                self._feed.finish()
            self._feed.wake.clear()
            await self._feed.wake.wait()
        samples, out_index = taken
        origin = self._origin_device_s or 0.0
        stamp = self.clock.to_host(origin + out_index / conv.out_rate_hz)
        chunk = AudioChunk(samples, conv.out_rate_hz, stamp, self._sequence)
        self._sequence += 1
        return chunk
