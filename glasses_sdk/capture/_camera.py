"""Cameras through OpenCV: a device index, a video file, or a network URL.

:class:`CameraSource` runs ``cv2.VideoCapture`` in its own thread, so that a slow
consumer never makes the driver queue stale frames (and a blocking read never blocks
the event loop). Frames reach the consumer through a mailbox with one of two policies:

- ``"latest"`` (default): one slot, the newest frame wins; a frame replaced before it
  was read is counted in :attr:`VideoStats.frames_dropped`. A slow consumer always
  gets the freshest frame, never a backlog.
- ``"queue"``: a bounded FIFO of ``queue_size`` frames; when it is full the capture
  thread waits (files and network streams then lose nothing; a live camera's driver
  drops frames on its own side).

Each frame is stamped on the SDK clock when ``VideoCapture.read()`` returns it (for a
file played in real time, when it is due). The capture thread wakes the event loop
with ``call_soon_threadsafe`` only when it puts a frame into an empty mailbox, so
delivery costs no polling; a file played in real time is decoded a little ahead and
released at its due time by the event loop's timer (see ``_Mailbox``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from glasses_sdk._exceptions import (
    InvalidConfigError,
    InvalidFrameError,
    NoCameraError,
    StreamLostError,
)
from glasses_sdk.capture._base import FakeVideoSource, VideoFrame, VideoSource, monotonic_s

__all__ = ["CameraInfo", "CameraSource", "StillImageSource", "VideoStats"]

CameraMode = Literal["latest", "queue"]


@dataclass(frozen=True, slots=True)
class CameraInfo:
    """What was asked of a camera and what it actually delivers."""

    source: str
    kind: Literal["device", "file", "url"]
    width: int
    height: int
    fps: float | None
    """Frames per second the source reports (None when it reports nothing usable)."""
    backend: str
    requested_width: int | None
    requested_height: int | None
    requested_fps: float | None
    frame_count: int | None
    """Frames in a file; None for live sources."""

    @property
    def resolution_honoured(self) -> bool:
        """Whether the requested size (if any) is the delivered size."""
        return (self.requested_width in (None, self.width)) and (
            self.requested_height in (None, self.height)
        )


@dataclass(frozen=True, slots=True)
class VideoStats:
    """Counters of a video source since it started."""

    frames_captured: int
    frames_delivered: int
    frames_dropped: int
    """Captured frames replaced in the latest-frame slot before the consumer read them."""
    frames_skipped: int
    """Frames left out on purpose to honour a requested fps below the source's."""
    frames_invalid: int = 0
    """Frames that arrived corrupt (a JPEG that did not decode) and were skipped."""


_DECODE_AHEAD = 2
"""Frames a file played in real time decodes before they are due (see :class:`_Mailbox`)."""

_DECODE_AFTER_DUE_S = 0.005
"""How long after a frame falls due the capture thread starts decoding the next one.

Waking exactly at the due time would make the decoder compete for the CPU (and the
GIL) with the reader at the one moment the reader must run; two frames decoded ahead
leave ample slack for this delay.
"""


class _Mailbox:
    """The hand-over between the capture thread and the reader, thread-safe.

    Every frame carries the time it becomes visible: its timestamp. A live camera's
    frames are stamped when they were read, so they are visible at once; a file played
    in real time is stamped with when each frame is due, and its thread puts up to
    ``ahead`` frames here before they are due. The reader then picks the newest due
    frame by the clock when it reads (latest mode) and, when it waits, sleeps on the
    event loop's own timer until the next one is due: delivery on time needs neither
    the capture thread to wake at the right moment nor a second thread hop, and a
    decode that runs late (a loaded machine) is absorbed by the frames decoded ahead.
    """

    def __init__(self, mode: CameraMode, queue_size: int, ahead: int = _DECODE_AHEAD) -> None:
        self._latest = mode == "latest"
        self._size = queue_size
        self._ahead = ahead
        self._items: collections.deque[VideoFrame] = collections.deque()  # by timestamp
        self._cond = threading.Condition()
        self._stopped = False
        self.dropped = 0

    def _prune(self, now_s: float) -> None:
        # Latest mode: a due frame followed by a newer due frame was never read in time.
        items = self._items
        while len(items) > 1 and items[1].timestamp_s <= now_s:
            items.popleft()
            self.dropped += 1

    def _pending(self, now_s: float) -> int:
        """Frames not yet due (they sit at the end: items are in timestamp order)."""
        count = 0
        for frame in reversed(self._items):
            if frame.timestamp_s <= now_s:
                break
            count += 1
        return count

    def put(self, frame: VideoFrame) -> tuple[bool, bool]:
        """Hand over a frame, waiting while there is no room.

        Returns (handed over, the mailbox was empty): False first if the mailbox was
        stopped while waiting; the reader needs waking only when it was empty (otherwise
        it already knows when the first frame is due).
        """
        with self._cond:
            while not self._stopped:
                now_s = monotonic_s()
                if self._latest:
                    self._prune(now_s)
                pending = self._pending(now_s)
                if pending < self._ahead and (self._latest or len(self._items) < self._size):
                    break
                # Woken by a take, or soon after the first waiting frame falls due.
                timeout_s = 0.1
                if pending:
                    due_s = self._items[-pending].timestamp_s + _DECODE_AFTER_DUE_S
                    timeout_s = min(timeout_s, max(due_s - now_s, 0.001))
                self._cond.wait(timeout=timeout_s)
            if self._stopped:
                return False, False
            was_empty = not self._items
            self._items.append(frame)
            if self._latest:
                self._prune(monotonic_s())
            return True, was_empty

    def take(self, now_s: float) -> tuple[VideoFrame | None, float | None]:
        """The frame to deliver at ``now_s``, else None and when the next one is due
        (None when the mailbox is empty)."""
        with self._cond:
            if self._latest:
                self._prune(now_s)
            items = self._items
            if not items:
                return None, None
            if items[0].timestamp_s > now_s:
                return None, items[0].timestamp_s
            frame = items.popleft()
            self._cond.notify()
            return frame, None

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()


def _describe(source: int | str | Path) -> tuple[str, Literal["device", "file", "url"]]:
    if isinstance(source, bool):
        raise InvalidConfigError(f"expected a device index, a file path or a URL, got {source!r}")
    if isinstance(source, int):
        if source < 0:
            raise InvalidConfigError(f"camera index must be >= 0, got {source}")
        return f"camera {source}", "device"
    text = str(source)
    if "://" in text:
        return text, "url"
    return text, "file"


class CameraSource(VideoSource):
    """Frames from a camera index, a video file, or a URL (HTTP MJPEG, RTSP, ...).

    ``width``, ``height`` and ``fps`` are requested from cameras that take settings;
    what is delivered is in :attr:`info` after :meth:`start`. A requested ``fps`` below
    the source's is honoured by leaving frames out. Files play in real time (paced at
    their fps) unless ``realtime=False``, and end with ``StopAsyncIteration``; a file
    played in real time is stamped with when each frame is due, from ``origin_s`` (an
    SDK-clock time; by default when the first frame is read), so that a recording's
    audio and video share one timeline (see :class:`FileAudioSource`). A live
    source that stops delivering raises :class:`StreamLostError` (wrap it in a
    :class:`~glasses_sdk.capture.WatchedVideoSource` to reopen it). A source that
    cannot be opened raises :class:`NoCameraError` from :meth:`start` or the first read.
    """

    def __init__(
        self,
        source: int | str | Path,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        mode: CameraMode = "latest",
        queue_size: int = 8,
        realtime: bool = True,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        origin_s: float | None = None,
    ) -> None:
        super().__init__()
        self._label, self._kind = _describe(source)
        self._origin_s = origin_s
        self._source = source
        if mode not in ("latest", "queue"):
            raise InvalidConfigError(f"mode must be 'latest' or 'queue', got {mode!r}")
        if queue_size < 1:
            raise InvalidConfigError(f"queue_size must be >= 1, got {queue_size}")
        for label, value in (("width", width), ("height", height), ("fps", fps)):
            if value is not None and value <= 0:
                raise InvalidConfigError(f"{label} must be positive, got {value}")
        if open_timeout_s <= 0 or read_timeout_s <= 0:
            raise InvalidConfigError("open_timeout_s and read_timeout_s must be positive")
        self._req_width, self._req_height, self._req_fps = width, height, fps
        self._mode: CameraMode = mode
        self._mailbox = _Mailbox(mode, queue_size)
        self._realtime = realtime
        self._open_timeout_s = open_timeout_s
        self._read_timeout_s = read_timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened: concurrent.futures.Future[CameraInfo] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._done = False  # set by the thread after its last put
        self._failure: Exception | None = None
        self._info: CameraInfo | None = None
        self._captured = 0
        self._skipped = 0
        self._delivered = 0

    @property
    def name(self) -> str:
        return self._label

    @property
    def mode(self) -> CameraMode:
        """The buffer policy: ``"latest"`` or ``"queue"``."""
        return self._mode

    @property
    def info(self) -> CameraInfo:
        """What the camera delivers; available after :meth:`start`."""
        if self._info is None:
            raise InvalidConfigError(f"{self._label}: info is known only after start()")
        return self._info

    @property
    def stats(self) -> VideoStats:
        """Counters since start: captured, delivered, dropped (latest mode), skipped (fps)."""
        return VideoStats(self._captured, self._delivered, self._mailbox.dropped, self._skipped)

    # ------------------------------------------------------------------ capture thread

    def _open_capture(self) -> cv2.VideoCapture:
        if self._kind == "device":
            assert isinstance(self._source, int)
            return cv2.VideoCapture(self._source)
        if self._kind == "file":
            path = Path(self._label)
            if not path.is_file():
                raise NoCameraError(f"video file {self._label!r} does not exist")
            return cv2.VideoCapture(str(path))
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            round(self._open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            round(self._read_timeout_s * 1000),
        ]
        return cv2.VideoCapture(self._label, cv2.CAP_FFMPEG, params)

    def _configure(self, cap: cv2.VideoCapture) -> CameraInfo:
        if self._kind == "device":
            if self._req_width is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._req_width)
            if self._req_height is not None:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._req_height)
            if self._req_fps is not None:
                cap.set(cv2.CAP_PROP_FPS, self._req_fps)
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return CameraInfo(
            source=self._label,
            kind=self._kind,
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            # Network streams often report 0 or a nonsense 1000 fps (FFmpeg's guess).
            fps=fps if 0 < fps < 500 else None,
            backend=cap.getBackendName(),
            requested_width=self._req_width,
            requested_height=self._req_height,
            requested_fps=self._req_fps,
            frame_count=count if self._kind == "file" and count > 0 else None,
        )

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        # RuntimeError: the loop closed under us, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake.set)

    def _run(self) -> None:
        try:
            cap = self._open_capture()
        except NoCameraError as exc:
            self._opened.set_exception(exc)
            return
        except cv2.error as exc:
            self._opened.set_exception(NoCameraError(f"{self._label}: OpenCV error: {exc}"))
            return
        try:
            if not cap.isOpened():
                self._opened.set_exception(
                    NoCameraError(
                        f"could not open {self._label} (OpenCV backends found nothing there)"
                    )
                )
                return
            info = self._configure(cap)
            self._opened.set_result(info)
            self._capture_loop(cap, info)
        except Exception as exc:  # surfaced to the reader, never lost in a thread
            self._failure = StreamLostError(f"{self._label}: {type(exc).__name__}: {exc}")
            if not self._opened.done():
                self._opened.set_exception(self._failure)
        finally:
            cap.release()
            self._done = True
            self._notify()

    def _capture_loop(self, cap: cv2.VideoCapture, info: CameraInfo) -> None:
        pace = self._realtime and info.kind == "file" and info.fps is not None
        interval_s = 1.0 / self._req_fps if self._req_fps else None
        if self._req_fps is not None and info.fps is not None and self._req_fps >= info.fps * 0.99:
            interval_s = None  # the source is not faster than asked: keep every frame
        start_s: float | None = None
        next_due_s: float | None = None
        index = 0
        while not self._stop.is_set():
            ok, image = cap.read()
            if not ok or image is None:
                if info.kind != "file":
                    self._failure = StreamLostError(
                        f"{self._label}: the stream stopped delivering frames"
                    )
                return
            self._captured += 1
            now = monotonic_s()
            if pace:
                assert info.fps is not None
                if start_s is None:
                    start_s = now if self._origin_s is None else self._origin_s
                # Stamped with when it is due; the mailbox holds it until then.
                now = start_s + index / info.fps
            media_s = index / info.fps if info.kind == "file" and info.fps else now
            index += 1
            if interval_s is not None:
                if next_due_s is not None and media_s < next_due_s - interval_s * 0.25:
                    self._skipped += 1
                    continue
                next_due_s = (
                    media_s + interval_s
                    if next_due_s is None or media_s > next_due_s + interval_s
                    else next_due_s + interval_s
                )
            frame = VideoFrame(_bgr(image), now, index - 1)
            handed_over, was_empty = self._mailbox.put(frame)
            if not handed_over:
                return
            if was_empty:
                self._notify()

    # ------------------------------------------------------------------ async edge

    async def start(self) -> None:
        """Open the camera (in the capture thread) and wait until it delivers its info."""
        self._check_open()
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._thread = threading.Thread(
                target=self._run, name=f"glasses-camera {self._label}", daemon=True
            )
            self._thread.start()
        try:
            self._info = await asyncio.wrap_future(self._opened)
        except (NoCameraError, StreamLostError):
            raise
        except Exception as exc:
            raise NoCameraError(f"could not open {self._label}: {exc}") from exc

    async def read(self) -> VideoFrame:
        self._check_open()
        await self.start()
        wake, loop = self._wake, self._loop
        assert wake is not None and loop is not None
        while True:
            frame, due_s = self._mailbox.take(monotonic_s())
            if frame is not None:
                self._delivered += 1
                return frame
            if self._done and due_s is None:
                frame, due_s = self._mailbox.take(monotonic_s())  # put just before the end
                if frame is not None:
                    self._delivered += 1
                    return frame
                if due_s is None:
                    if self._failure is not None:
                        raise self._failure
                    raise StopAsyncIteration
            wake.clear()
            if due_s is None:
                await wake.wait()
                continue
            # The loop's own timer, not a thread that wakes and then wakes the loop.
            timer = loop.call_later(max(due_s - monotonic_s(), 0.0), wake.set)
            try:
                await wake.wait()
            finally:
                timer.cancel()

    async def close(self) -> None:
        """Stop the capture thread and release the camera."""
        if self._closed:
            return
        await super().close()
        self._stop.set()
        self._mailbox.stop()
        thread = self._thread
        if thread is not None and thread.is_alive():
            # A read blocked on a dead network stream ends by its read timeout at most.
            await asyncio.to_thread(thread.join, self._read_timeout_s + 1.0)


def _bgr(image: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    if image.ndim == 2:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    return np.asarray(image, dtype=np.uint8)


class StillImageSource(FakeVideoSource):
    """A camera that shows one photo: the image (a path or BGR array) ``count`` times
    (forever when None), paced at ``fps`` (or as fast as read)."""

    def __init__(
        self,
        image: str | Path | npt.NDArray[np.uint8],
        *,
        fps: float | None = None,
        count: int | None = None,
    ) -> None:
        if isinstance(image, str | Path):
            loaded = cv2.imread(str(image), cv2.IMREAD_COLOR)
            if loaded is None:
                raise InvalidFrameError(f"could not read an image from {str(image)!r}")
            pixels = np.asarray(loaded, dtype=np.uint8)
            label = f"image {Path(image).name}"
        else:
            pixels = image
            label = "image"
        if count is not None and count < 1:
            raise InvalidConfigError(f"count must be >= 1 or None, got {count}")
        super().__init__([pixels] * (count or 1), fps=fps, loop=count is None)
        self._label = label

    @property
    def name(self) -> str:
        return self._label
