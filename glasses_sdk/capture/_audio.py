"""Microphones and audio files, delivered as 16 kHz mono float32 chunks by default.

Both sources share one conversion path (:class:`_Converter`): downmix to mono, then
the preprocessing core's streaming :class:`~glasses_sdk.preprocess.audio.Resampler`,
then cut into chunks of ``chunk_ms``. ``sample_rate_hz=None`` keeps the device's or
file's own rate, and ``sample_format="int16"`` delivers int16 PCM: the native format.

:class:`MicrophoneSource` opens a PortAudio input stream through sounddevice. Its
callback runs on PortAudio's real-time thread and only copies the block into a
preallocated :class:`~glasses_sdk.capture.AudioRingBuffer` (sized in milliseconds) and
notes the time; it never allocates, converts, logs or touches the event loop. Everything
else (conversion, timestamps, events) happens in ``read()``. Lost samples and the
driver's overflow/underflow flags become :class:`AudioOverflow` /
:class:`AudioUnderflow` events.

Timestamps: the sample counter is the device clock. Each callback gives one
``(samples so far, host time)`` pair to a :class:`~glasses_sdk.capture.ClockMapper`,
which corrects the drift between the sound card's crystal and the host clock, so that a
chunk's timestamp is when its first sample was captured on the SDK clock.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from glasses_sdk._exceptions import (
    InvalidAudioError,
    InvalidConfigError,
    NoMicrophoneError,
    StreamLostError,
)
from glasses_sdk.capture._base import AudioChunk, AudioSource, monotonic_s
from glasses_sdk.capture._clock import ClockMapper
from glasses_sdk.capture._events import AudioOverflow, AudioUnderflow
from glasses_sdk.capture._ring import AudioRingBuffer
from glasses_sdk.preprocess.audio import (
    SUPPORTED_SAMPLE_RATES_HZ,
    Resampler,
    downmix_to_mono,
    float32_to_int16,
)

__all__ = ["AudioStats", "FileAudioSource", "MicrophoneSource"]

SampleFormat = Literal["float32", "int16"]

_PORTAUDIO_HINT = (
    "install PortAudio (Debian: apt-get install libportaudio2; scripts/install-system-deps "
    "does it) and make sure an input device exists (with PulseAudio: pactl list sources)"
)


@dataclass(frozen=True, slots=True)
class AudioStats:
    """Counters of an audio source since it started."""

    chunks_delivered: int
    samples_captured: int
    """At the device's (or file's) own rate."""
    samples_dropped: int
    """Captured samples lost before the reader took them (ring buffer overwritten)."""
    overflows: int
    """Times samples were lost: ring-buffer overwrites plus driver-reported overflows."""
    underflows: int


def _check_options(sample_rate_hz: int | None, sample_format: str, chunk_ms: float) -> SampleFormat:
    if sample_rate_hz is not None and sample_rate_hz not in SUPPORTED_SAMPLE_RATES_HZ:
        raise InvalidConfigError(
            f"sample_rate_hz must be None (native) or one of {SUPPORTED_SAMPLE_RATES_HZ}, "
            f"got {sample_rate_hz}"
        )
    if sample_format not in ("float32", "int16"):
        raise InvalidConfigError(
            f"sample_format must be 'float32' or 'int16', got {sample_format!r}"
        )
    if chunk_ms <= 0:
        raise InvalidConfigError(f"chunk_ms must be positive, got {chunk_ms}")
    return "int16" if sample_format == "int16" else "float32"


class _Converter:
    """Frames ``(n, channels)`` at ``in_rate`` → mono chunks at ``out_rate``. Pure, no I/O.

    Complete chunks wait in a queue with their output sample index; callers feed it
    about one chunk at a time, so the queue stays short and the backlog (if any) stays
    in the bounded buffer before it, where losses are counted.
    """

    def __init__(
        self, in_rate_hz: int, out_rate_hz: int, channels: int, fmt: SampleFormat, chunk_ms: float
    ) -> None:
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._channels = channels
        self._format: SampleFormat = fmt
        self.chunk_samples = max(1, round(chunk_ms * out_rate_hz / 1000.0))
        self._resampler = Resampler(in_rate_hz, out_rate_hz) if in_rate_hz != out_rate_hz else None
        self._partial = np.zeros(self.chunk_samples, dtype=np.float32)
        self._partial_len = 0
        self._partial_index = 0  # output index of self._partial[0]
        self._chunks: collections.deque[tuple[npt.NDArray[np.float32], int]] = collections.deque()

    def input_frames_per_chunk(self) -> int:
        """Input frames that make about one output chunk (rounded up)."""
        return -(-self.chunk_samples * self.in_rate_hz // self.out_rate_hz)

    def restart_at(self, in_index: int) -> None:
        """A gap in the input (samples lost before ``in_index``): finish the stream so far
        (the resampler's tail, then the last partial chunk padded with silence, which is
        what the lost audio becomes), and go on at ``in_index`` on the same timeline."""
        self.flush()
        if self._partial_len:
            self._partial[self._partial_len :] = 0.0
            self._partial_len = self.chunk_samples
            self._complete()
        self._partial_index = in_index * self.out_rate_hz // self.in_rate_hz

    def push(self, frames: npt.NDArray[Any]) -> None:
        """Convert ``(n, channels)`` frames (int16 or float32) and queue what completes."""
        if not frames.size:
            return
        mono = downmix_to_mono(frames, self._channels)
        self._append(self._resampler.push(mono) if self._resampler is not None else mono)

    def flush(self) -> None:
        """The end of the input: the resampler's tail (the partial chunk stays)."""
        if self._resampler is not None:
            self._append(self._resampler.flush())

    def _complete(self) -> None:
        self._chunks.append((self._partial.copy(), self._partial_index))
        self._partial_index += self.chunk_samples
        self._partial_len = 0

    def _append(self, x: npt.NDArray[np.float32]) -> None:
        n = self.chunk_samples
        pos = 0
        while pos < x.size:
            k = min(n - self._partial_len, x.size - pos)
            self._partial[self._partial_len : self._partial_len + k] = x[pos : pos + k]
            self._partial_len += k
            pos += k
            if self._partial_len == n:
                self._complete()

    @property
    def ready(self) -> int:
        """Output samples converted and not yet taken."""
        return len(self._chunks) * self.chunk_samples + self._partial_len

    def take(self, final: bool = False) -> tuple[npt.NDArray[Any], int] | None:
        """The next whole chunk (or, when ``final``, whatever is left) and its output index."""
        if self._chunks:
            samples, index = self._chunks.popleft()
        elif final and self._partial_len:
            samples, index = self._partial[: self._partial_len].copy(), self._partial_index
            self._partial_index += self._partial_len
            self._partial_len = 0
        else:
            return None
        if self._format == "int16":
            return float32_to_int16(samples), index
        return samples, index


class FileAudioSource(AudioSource):
    """Audio from a WAV, FLAC or OGG file (anything libsndfile reads), in chunks.

    ``realtime=True`` paces the chunks as a microphone would deliver them (each once its
    last sample would have been captured); otherwise they come as fast as they are read.
    The last chunk may be shorter. Sample ``n`` is stamped ``origin_s + n / rate``;
    ``origin_s`` (an SDK-clock time) defaults to when the first chunk is read.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        sample_rate_hz: int | None = 16_000,
        sample_format: SampleFormat = "float32",
        chunk_ms: float = 32.0,
        realtime: bool = False,
        origin_s: float | None = None,
    ) -> None:
        super().__init__()
        import soundfile as sf

        self._format = _check_options(sample_rate_hz, sample_format, chunk_ms)
        self._path = Path(path)
        if not self._path.is_file():
            raise NoMicrophoneError(f"audio file {str(self._path)!r} does not exist")
        try:
            self._file = sf.SoundFile(str(self._path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise InvalidAudioError(
                f"could not read {str(self._path)!r} as audio (WAV, FLAC or OGG expected): {exc}"
            ) from exc
        native = int(self._file.samplerate)
        out_rate = sample_rate_hz if sample_rate_hz is not None else native
        try:
            self._conv = _Converter(native, out_rate, self._file.channels, self._format, chunk_ms)
        except (InvalidAudioError, InvalidConfigError):
            self._file.close()
            raise
        self._realtime = realtime
        self._block_frames = max(1024, native // 10)  # read 100 ms at a time
        self._eof = False
        self._start_s: float | None = origin_s
        self._held: tuple[npt.NDArray[Any], int] | None = None
        self._sequence = 0
        self._captured = 0

    @property
    def name(self) -> str:
        return f"audio file {self._path.name}"

    @property
    def sample_rate_hz(self) -> int:
        return self._conv.out_rate_hz

    @property
    def native_sample_rate_hz(self) -> int:
        """The file's own rate."""
        return self._conv.in_rate_hz

    @property
    def stats(self) -> AudioStats:
        """Counters since the start (nothing is ever dropped from a file)."""
        return AudioStats(self._sequence, self._captured, 0, 0, 0)

    async def read(self) -> AudioChunk:
        self._check_open()
        # A chunk taken but not yet due is held, so that a read cancelled while it
        # waits (a timeout, a watchdog) loses nothing.
        while self._held is None:
            taken = self._conv.take(final=self._eof)
            if taken is not None:
                self._held = taken
                break
            if self._eof:
                raise StopAsyncIteration
            # soundfile reads 100 ms in well under a millisecond; a thread hop would cost more.
            block = self._file.read(self._block_frames, dtype="float32", always_2d=True)
            self._captured += block.shape[0]
            if block.shape[0] == 0:
                self._eof = True
                self._conv.flush()
            else:
                self._conv.push(block)
        samples, index = self._held
        rate = self._conv.out_rate_hz
        if self._start_s is None:
            self._start_s = monotonic_s()
        if self._realtime:
            due = self._start_s + (index + samples.size) / rate
            delay = due - monotonic_s()
            if delay > 0:
                await asyncio.sleep(delay)
        chunk = AudioChunk(samples, rate, self._start_s + index / rate, self._sequence)
        self._held = None
        self._sequence += 1
        return chunk

    async def close(self) -> None:
        if not self._closed:
            self._file.close()
        await super().close()


def _import_sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise NoMicrophoneError(f"PortAudio is not available ({exc}); {_PORTAUDIO_HINT}") from exc
    return sounddevice


class MicrophoneSource(AudioSource):
    """A PortAudio input device (sounddevice), delivered in chunks of ``chunk_ms``.

    ``device`` is a sounddevice device index or (part of a) name, e.g. ``"pulse"``;
    None is the system's default input. ``device_rate_hz`` is the rate the device is
    opened at (its default rate when None). ``buffer_ms`` sizes the ring buffer between
    the callback and the reader: a reader that falls further behind loses the oldest
    audio, reported as an :class:`AudioOverflow` event.
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        sample_rate_hz: int | None = 16_000,
        sample_format: SampleFormat = "float32",
        chunk_ms: float = 32.0,
        buffer_ms: float = 2000.0,
        device_rate_hz: int | None = None,
        channels: int = 1,
        blocksize_ms: float = 10.0,
    ) -> None:
        super().__init__()
        self._format = _check_options(sample_rate_hz, sample_format, chunk_ms)
        if buffer_ms < 2 * chunk_ms:
            raise InvalidConfigError(
                f"buffer_ms must hold at least two chunks ({2 * chunk_ms} ms), got {buffer_ms}"
            )
        if channels < 1 or blocksize_ms <= 0:
            raise InvalidConfigError("channels and blocksize_ms must be positive")
        if device_rate_hz is not None and device_rate_hz not in SUPPORTED_SAMPLE_RATES_HZ:
            raise InvalidConfigError(
                f"device_rate_hz must be one of {SUPPORTED_SAMPLE_RATES_HZ}, got {device_rate_hz}"
            )
        self._device = device
        self._out_rate = sample_rate_hz
        self._chunk_ms = chunk_ms
        self._buffer_ms = buffer_ms
        self._device_rate = device_rate_hz
        self._channels = channels
        self._blocksize_ms = blocksize_ms
        self._stream: Any = None
        self._ring: AudioRingBuffer | None = None
        self._conv: _Converter | None = None
        self._clock = ClockMapper()
        self._mark: tuple[int, float] | None = None  # (frames written, host time) per callback
        self._observed_mark: tuple[int, float] | None = None
        self._latency_s = 0.0
        self._driver_overflows = 0
        self._driver_underflows = 0
        self._reported_drops = 0
        self._reported_overflows = 0
        self._reported_underflows = 0
        self._next_in_index = 0
        self._sequence = 0
        self._label = "default microphone" if device is None else f"microphone {device!r}"

    @property
    def name(self) -> str:
        return self._label

    @property
    def sample_rate_hz(self) -> int:
        if self._out_rate is not None:
            return self._out_rate
        if self._conv is not None:
            return self._conv.out_rate_hz
        if self._device_rate is not None:
            return self._device_rate
        raise InvalidConfigError(
            f"{self._label}: the native rate is known only after start(); pass "
            "device_rate_hz to fix it in advance"
        )

    @property
    def device_rate_hz(self) -> int | None:
        """The rate the device was opened at (None before :meth:`start`)."""
        return None if self._conv is None else self._conv.in_rate_hz

    @property
    def stats(self) -> AudioStats:
        """Counters since start; ``overflows`` includes the driver's own reports."""
        ring = self._ring
        if ring is None:
            return AudioStats(self._sequence, 0, 0, 0, 0)
        return AudioStats(
            self._sequence,
            ring.written_frames,
            ring.dropped_frames,
            ring.overflows + self._driver_overflows,
            self._driver_underflows,
        )

    def _callback(self, indata: npt.NDArray[Any], frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's real-time thread: copy, count, note the time. Nothing else.
        if status.input_overflow:
            self._driver_overflows += 1
        if status.input_underflow:
            self._driver_underflows += 1
        ring = self._ring
        assert ring is not None
        ring.write(indata)
        self._mark = (ring.written_frames, time.monotonic())

    async def start(self) -> None:
        """Open and start the input stream."""
        self._check_open()
        if self._stream is not None:
            return
        sd = _import_sounddevice()
        try:
            info = sd.query_devices(self._device, "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise NoMicrophoneError(
                f"no audio input device {self._label}: {exc}; {_PORTAUDIO_HINT}"
            ) from exc
        rate = self._device_rate or int(info["default_samplerate"])
        if rate not in SUPPORTED_SAMPLE_RATES_HZ:
            rate = 48_000  # PortAudio converts; the resampler needs a rate it knows
        dtype = "int16" if self._format == "int16" and self._out_rate in (None, rate) else "float32"
        self._ring = AudioRingBuffer(
            self._buffer_ms,
            rate,
            channels=self._channels,
            dtype=np.int16 if dtype == "int16" else np.float32,
        )
        self._conv = _Converter(
            rate, self._out_rate or rate, self._channels, self._format, self._chunk_ms
        )
        self._label = f"microphone {info['name']!r}"

        def open_stream() -> Any:
            stream = sd.InputStream(
                device=self._device,
                samplerate=rate,
                channels=self._channels,
                dtype=dtype,
                blocksize=max(1, round(rate * self._blocksize_ms / 1000.0)),
                latency="low",
                callback=self._callback,
            )
            stream.start()
            return stream

        try:
            self._stream = await asyncio.to_thread(open_stream)
        except (sd.PortAudioError, ValueError) as exc:
            raise NoMicrophoneError(
                f"could not open {self._label}: {exc}; {_PORTAUDIO_HINT}"
            ) from exc
        latency = self._stream.latency
        self._latency_s = float(latency if not isinstance(latency, tuple) else latency[0])

    def _report(self) -> None:
        ring = self._ring
        assert ring is not None
        drops = ring.dropped_frames
        overflows = ring.overflows + self._driver_overflows
        if overflows > self._reported_overflows:
            self._emit(
                AudioOverflow(self._label, monotonic_s(), drops - self._reported_drops, overflows)
            )
            self._reported_overflows = overflows
            self._reported_drops = drops
        if self._driver_underflows > self._reported_underflows:
            self._reported_underflows = self._driver_underflows
            self._emit(AudioUnderflow(self._label, monotonic_s(), self._driver_underflows))

    def _drain(self) -> bool:
        """Move about one chunk of audio from the ring into the converter."""
        ring, conv = self._ring, self._conv
        assert ring is not None and conv is not None
        mark = self._mark
        if mark is not None and mark is not self._observed_mark:
            self._observed_mark = mark
            self._clock.observe(mark[0] / conv.in_rate_hz, mark[1])
        # Only what one chunk needs: a backlog stays in the ring, which is bounded and
        # counts what it loses, rather than growing in the converter.
        frames, first_index = ring.read(conv.input_frames_per_chunk())
        if frames.shape[0] == 0:
            return False
        if first_index != self._next_in_index:
            conv.restart_at(first_index)  # samples were dropped: the stream has a gap
        self._next_in_index = first_index + frames.shape[0]
        conv.push(frames)
        return True

    async def read(self) -> AudioChunk:
        self._check_open()
        await self.start()
        conv = self._conv
        assert conv is not None
        while True:
            self._report()
            taken = conv.take()
            if taken is not None:
                break
            if self._drain():
                continue
            if self._closed or self._stream is None:
                raise StopAsyncIteration  # closed by another task while this one waited
            if not self._stream.active:
                raise StreamLostError(f"{self._label}: the input stream stopped")
            missing_s = (conv.chunk_samples - conv.ready) / conv.out_rate_hz
            # Sleep about until the chunk is complete: no busy polling, and no wake-up
            # call from the audio thread, which must not touch the event loop.
            await asyncio.sleep(min(max(missing_s, 0.002), 0.05))
        samples, index = taken
        stamp = self._clock.to_host(index / conv.out_rate_hz) - self._latency_s
        chunk = AudioChunk(samples, conv.out_rate_hz, stamp, self._sequence)
        self._sequence += 1
        return chunk

    async def close(self) -> None:
        """Stop and close the input stream."""
        if self._closed:
            return
        await super().close()
        stream, self._stream = self._stream, None
        if stream is not None:

            def stop() -> None:
                stream.stop()
                stream.close()

            await asyncio.to_thread(stop)
