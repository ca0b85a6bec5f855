"""A preallocated ring buffer of audio frames, sized in milliseconds.

Written by an audio callback on the driver's thread and read by the consumer; the
buffer is allocated once, so the callback never allocates. When the reader falls
behind, the oldest samples are overwritten (the reader gets the newest audio, as a
live assistant wants) and the loss is counted, never silent.

A ``threading.Lock`` guards the two indices: it is held only for one or two
``memcpy``-sized slice copies, far shorter than a callback period (10-20 ms), and it
makes the overwrite-oldest case correct, which lock-free single-producer code with
Python integers could not be while the reader is mid-copy.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from glasses_sdk._exceptions import InvalidAudioError, InvalidConfigError

__all__ = ["AudioRingBuffer"]


class AudioRingBuffer:
    """``capacity_ms`` of ``channels``-channel audio at ``sample_rate_hz``, float32 or int16.

    Frames are counted from the start of the stream: :attr:`written_frames` is the
    index one past the newest frame, and :meth:`read` returns the index of the first
    frame it hands out, so callers can timestamp by sample position.
    """

    def __init__(
        self,
        capacity_ms: float,
        sample_rate_hz: int,
        *,
        channels: int = 1,
        dtype: type[np.float32] | type[np.int16] = np.float32,
    ) -> None:
        if capacity_ms <= 0 or sample_rate_hz <= 0 or channels <= 0:
            raise InvalidConfigError(
                "capacity_ms, sample_rate_hz and channels must be positive; got "
                f"{capacity_ms}, {sample_rate_hz}, {channels}"
            )
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self.capacity_frames = max(1, round(capacity_ms * sample_rate_hz / 1000.0))
        self._buf: npt.NDArray[Any] = np.zeros((self.capacity_frames, channels), dtype=dtype)
        self._lock = threading.Lock()
        self._written = 0  # frames ever written
        self._read = 0  # frames ever consumed or dropped
        self._dropped = 0  # frames overwritten before they were read
        self._overflows = 0  # writes that overwrote unread frames

    @property
    def dtype(self) -> np.dtype[Any]:
        """The sample type stored."""
        return self._buf.dtype

    @property
    def written_frames(self) -> int:
        """Frames written since the start (index one past the newest)."""
        return self._written

    @property
    def available_frames(self) -> int:
        """Frames written and not yet read or dropped."""
        with self._lock:
            return self._written - self._read

    @property
    def dropped_frames(self) -> int:
        """Frames overwritten before the reader took them, since the start."""
        return self._dropped

    @property
    def overflows(self) -> int:
        """How many writes found the buffer full."""
        return self._overflows

    def write(self, block: npt.NDArray[Any]) -> None:
        """Append ``(n, channels)`` frames (1-D for mono); overwrite the oldest when full.

        Safe to call from an audio callback: no allocation, one short lock.
        """
        frames = block if block.ndim == 2 else block.reshape(-1, 1)
        if frames.shape[1] != self.channels:
            raise InvalidAudioError(
                f"expected blocks of {self.channels} channel(s), got shape {block.shape}"
            )
        n = frames.shape[0]
        cap = self.capacity_frames
        if n > cap:  # only the newest capacity's worth can be kept
            frames = frames[n - cap :]
        with self._lock:
            unread = self._written - self._read
            overflow = unread + n - cap
            if overflow > 0:
                self._read += overflow
                self._dropped += overflow
                self._overflows += 1
            k = frames.shape[0]
            start = (self._written + (n - k)) % cap
            first = min(k, cap - start)
            self._buf[start : start + first] = frames[:first]
            if first < k:
                self._buf[: k - first] = frames[first:]
            self._written += n

    def read(self, max_frames: int | None = None) -> tuple[npt.NDArray[Any], int]:
        """Take up to ``max_frames`` (all available when None) as a new ``(n, channels)``
        array, with the stream index of its first frame."""
        with self._lock:
            n = self._written - self._read
            if max_frames is not None:
                n = min(n, max_frames)
            first_index = self._read
            out = np.empty((n, self.channels), dtype=self._buf.dtype)
            cap = self.capacity_frames
            start = self._read % cap
            first = min(n, cap - start)
            out[:first] = self._buf[start : start + first]
            if first < n:
                out[first:] = self._buf[: n - first]
            self._read += n
        return out, first_index
