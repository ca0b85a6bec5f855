"""The stream watchdog: stall, loss, reopen with backoff, recovery; on fakes and on a
real MJPEG stream that drops and comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from glasses_sdk._exceptions import InvalidConfigError, NoCameraError, StreamLostError
from glasses_sdk.capture._base import FakeAudioSource, VideoFrame, VideoSource
from glasses_sdk.capture._camera import CameraSource
from glasses_sdk.capture._events import (
    CaptureEvent,
    ReopenFailed,
    StreamLost,
    StreamRecovered,
    StreamStalled,
)
from glasses_sdk.capture._watchdog import (
    WatchdogOptions,
    WatchedAudioSource,
    WatchedVideoSource,
    backoff_s,
)
from tests.capture.mjpeg_server import MjpegServer

FAST = WatchdogOptions(
    stall_after_s=0.05, lost_after_s=0.2, backoff_initial_s=0.01, backoff_max_s=0.04
)


class ScriptedCamera(VideoSource):
    """Delivers frames; step ``i`` of ``script`` says what read ``i`` does:
    ``"ok"``, ``"slow"`` (0.12 s late), ``"hang"`` (never returns) or ``"fail"``."""

    def __init__(self, script: list[str]) -> None:
        super().__init__()
        self._script = list(script)
        self._n = 0

    async def read(self) -> VideoFrame:
        self._check_open()
        step = self._script.pop(0) if self._script else "end"
        if step == "end":
            raise StopAsyncIteration
        if step == "slow":
            await asyncio.sleep(0.12)
        elif step == "hang":
            await asyncio.sleep(3600)
        elif step == "fail":
            raise StreamLostError("scripted failure")
        self._n += 1
        return VideoFrame(np.zeros((2, 2, 3), np.uint8), 0.0, self._n)


def _factory(scripts: list[list[str] | Exception]) -> Callable[[], VideoSource]:
    def open_source() -> VideoSource:
        script = scripts.pop(0)
        if isinstance(script, Exception):

            class Broken(ScriptedCamera):
                async def start(self) -> None:
                    raise script

            return Broken([])
        return ScriptedCamera(script)

    return open_source


def _collect(source: VideoSource, reads: int) -> list[CaptureEvent]:
    async def run() -> list[CaptureEvent]:
        async with source:
            for _ in range(reads):
                await source.read()
        return list(source.events)

    return asyncio.run(asyncio.wait_for(run(), timeout=20))


def test_backoff_doubles_and_is_capped() -> None:
    opts = WatchdogOptions(backoff_initial_s=0.1, backoff_max_s=0.5)
    assert [backoff_s(n, opts) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5]
    with pytest.raises(InvalidConfigError):
        WatchdogOptions(stall_after_s=2.0, lost_after_s=1.0)


def test_a_late_item_is_a_stall_then_a_recovery_without_reopening() -> None:
    source = WatchedVideoSource(_factory([["ok", "slow", "ok"]]), FAST)
    events = _collect(source, 3)
    assert [type(e) for e in events] == [StreamStalled, StreamRecovered]
    recovered = events[1]
    assert isinstance(recovered, StreamRecovered) and not recovered.reopened
    assert recovered.downtime_s >= 0.1
    assert source.reopens == 0


def test_silence_is_a_loss_and_the_source_is_reopened() -> None:
    source = WatchedVideoSource(_factory([["ok", "hang"], ["ok", "ok"]]), FAST)
    events = _collect(source, 3)
    assert [type(e) for e in events] == [StreamStalled, StreamLost, StreamRecovered]
    assert "no item for" in events[1].reason  # type: ignore[attr-defined]
    assert events[2].reopened  # type: ignore[attr-defined]
    assert source.reopens == 1


def test_errors_reopen_with_backoff_until_the_device_is_back() -> None:
    gone = NoCameraError("unplugged")
    source = WatchedVideoSource(_factory([["ok", "fail"], gone, gone, gone, ["ok"]]), FAST)
    events = _collect(source, 2)
    kinds = [type(e) for e in events]
    assert kinds == [StreamLost, ReopenFailed, ReopenFailed, ReopenFailed, StreamRecovered]
    waits = [e.retry_in_s for e in events if isinstance(e, ReopenFailed)]
    assert waits == [0.01, 0.02, 0.04]


def test_a_limited_number_of_attempts_ends_in_stream_lost_error() -> None:
    gone = NoCameraError("unplugged")
    opts = WatchdogOptions(
        stall_after_s=0.05, lost_after_s=0.2, backoff_initial_s=0.01, max_reopen_attempts=2
    )
    source = WatchedVideoSource(_factory([["ok", "fail"], gone, gone]), opts)
    with pytest.raises(StreamLostError, match="after 2 attempt"):
        _collect(source, 2)


def test_the_first_open_is_not_retried_and_the_end_of_a_file_passes_through() -> None:
    source = WatchedVideoSource(_factory([NoCameraError("no camera here")]), FAST)
    with pytest.raises(NoCameraError, match="no camera here"):
        _collect(source, 1)

    audio = WatchedAudioSource(lambda: FakeAudioSource(np.zeros(3000, np.float32)), FAST)

    async def drain() -> int:
        async with audio:
            return len([c async for c in audio])

    assert asyncio.run(drain()) == 3
    assert audio.sample_rate_hz == 16_000 and audio.events == ()


def test_a_real_mjpeg_camera_that_drops_off_and_comes_back(pedestrian_video_path: object) -> None:
    cap = cv2.VideoCapture(str(pedestrian_video_path))
    jpegs = []
    for _ in range(5):
        ok, image = cap.read()
        assert ok
        jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
    cap.release()
    opts = WatchdogOptions(
        stall_after_s=0.3, lost_after_s=1.5, backoff_initial_s=0.05, backoff_max_s=0.2
    )

    async def run(server: MjpegServer) -> WatchedVideoSource:
        source = WatchedVideoSource(
            lambda: CameraSource(server.url, read_timeout_s=1.0, open_timeout_s=1.0), opts
        )
        async with source:
            for _ in range(8):
                await source.read()
            server.accepting.clear()  # the camera is gone: reconnects get HTTP 503
            server.frames_per_connection = 0
            loop = asyncio.get_running_loop()
            loop.call_later(0.6, server.accepting.set)
            loop.call_later(0.6, setattr, server, "frames_per_connection", None)
            for _ in range(5):
                await source.read()
        return source

    with MjpegServer(jpegs, fps=30.0, frames_per_connection=None) as server:
        # The first connection serves 8 frames and more; cut it by closing connections.
        server.frames_per_connection = 10
        source = asyncio.run(asyncio.wait_for(run(server), timeout=30))
    kinds = [type(e) for e in source.events]
    assert StreamLost in kinds and ReopenFailed in kinds, kinds
    assert kinds[-1] is StreamRecovered and source.events[-1].reopened  # type: ignore[attr-defined]
    assert source.reopens >= 1


def test_closing_ends_a_read_that_waits_in_another_task() -> None:
    async def run() -> list[VideoFrame]:
        source = WatchedVideoSource(_factory([["ok", "hang"]]), FAST)
        await source.start()
        asyncio.get_running_loop().call_later(0.03, lambda: asyncio.ensure_future(source.close()))
        return [f async for f in source]

    frames = asyncio.run(asyncio.wait_for(run(), timeout=5))
    assert [f.frame_number for f in frames] == [1]
