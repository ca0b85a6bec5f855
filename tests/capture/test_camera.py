"""CameraSource on a real video file and a real MJPEG-over-HTTP stream; buffer policies."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from glasses_sdk._exceptions import (
    InvalidConfigError,
    InvalidFrameError,
    NoCameraError,
    StreamLostError,
)
from glasses_sdk.capture._base import VideoFrame, monotonic_s
from glasses_sdk.capture._camera import CameraSource, StillImageSource
from tests.capture.mjpeg_server import MjpegServer


def _run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def video_frames(pedestrian_video_path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(pedestrian_video_path))
    frames = []
    for _ in range(40):
        ok, image = cap.read()
        assert ok
        frames.append(image)
    cap.release()
    return frames


@pytest.fixture(scope="session")
def jpegs(video_frames: list[np.ndarray]) -> list[bytes]:
    return [
        cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        for f in video_frames[:10]
    ]


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory, video_frames: list[np.ndarray]) -> Path:
    """Six real frames in an MJPG AVI at 25 fps."""
    path = tmp_path_factory.mktemp("clip") / "short.avi"
    height, width = video_frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (width, height))
    for frame in video_frames[:6]:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def mjpeg(jpegs: list[bytes]) -> Iterator[MjpegServer]:
    with MjpegServer(jpegs, fps=30.0) as server:
        yield server


def test_file_frames_equal_a_plain_videocapture_and_info_is_reported(
    pedestrian_video_path: Path, video_frames: list[np.ndarray]
) -> None:
    async def run() -> tuple[list[VideoFrame], CameraSource]:
        async with CameraSource(pedestrian_video_path, mode="queue", realtime=False) as cam:
            frames = [await cam.read() for _ in range(40)]
            return frames, cam

    frames, cam = _run(run())  # type: ignore[misc]
    assert cam.closed
    info = cam.info
    assert (info.kind, info.width, info.height, info.fps) == ("file", 768, 576, 10.0)
    assert info.frame_count == 795 and info.resolution_honoured
    for frame, expected in zip(frames, video_frames, strict=True):
        np.testing.assert_array_equal(frame.image, expected)
    assert [f.frame_number for f in frames] == list(range(40))
    stamps = [f.timestamp_s for f in frames]
    assert stamps == sorted(stamps)


def test_a_file_ends_with_stop_async_iteration(short_clip: Path) -> None:
    async def run() -> list[int]:
        async with CameraSource(short_clip, mode="queue", realtime=False) as cam:
            return [f.frame_number async for f in cam]

    assert _run(run()) == list(range(6))


def test_realtime_file_is_paced_at_its_fps(short_clip: Path) -> None:
    async def run() -> list[float]:
        async with CameraSource(short_clip, mode="queue") as cam:
            return [f.timestamp_s async for f in cam]

    stamps = np.array(_run(run()))
    np.testing.assert_allclose(np.diff(stamps), 0.04, atol=1e-6)  # stamped when due


def test_latest_mode_gives_a_slow_consumer_the_newest_frame_and_counts_drops(
    mjpeg: MjpegServer,
) -> None:
    interval_s = 1.0 / mjpeg.fps

    async def run() -> tuple[list[float], list[int], CameraSource]:
        ages, numbers = [], []
        async with CameraSource(mjpeg.url) as cam:
            await cam.read()
            for _ in range(8):
                await asyncio.sleep(0.1)  # three frame intervals of "work"
                frame = await cam.read()
                ages.append(monotonic_s() - frame.timestamp_s)
                numbers.append(frame.frame_number)
            return ages, numbers, cam

    ages, numbers, cam = _run(run())  # type: ignore[misc]
    assert max(ages) <= interval_s + 0.02, ages
    assert all(b - a >= 2 for a, b in itertools.pairwise(numbers)), numbers
    stats = cam.stats
    assert stats.frames_dropped >= 8
    assert stats.frames_captured >= stats.frames_delivered + stats.frames_dropped


def test_queue_mode_keeps_every_frame_with_a_bounded_backlog(pedestrian_video_path: Path) -> None:
    async def run() -> tuple[list[int], list[int]]:
        numbers, backlog = [], []
        async with CameraSource(
            pedestrian_video_path, mode="queue", queue_size=3, realtime=False
        ) as cam:
            for _ in range(25):
                frame = await cam.read()
                numbers.append(frame.frame_number)
                await asyncio.sleep(0.005)
                stats = cam.stats
                backlog.append(stats.frames_captured - stats.frames_delivered)
            assert cam.stats.frames_dropped == 0
        return numbers, backlog

    numbers, backlog = _run(run())  # type: ignore[misc]
    assert numbers == list(range(25))
    assert max(backlog) <= 3 + 1  # the queue plus the frame the thread holds


def test_mjpeg_over_http_delivers_the_served_frames(mjpeg: MjpegServer, jpegs: list[bytes]) -> None:
    async def run() -> tuple[list[VideoFrame], CameraSource]:
        async with CameraSource(mjpeg.url, mode="queue") as cam:
            return [await cam.read() for _ in range(12)], cam

    frames, cam = _run(run())  # type: ignore[misc]
    assert (cam.info.kind, cam.info.width, cam.info.height) == ("url", 768, 576)
    served = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    for i, frame in enumerate(frames):
        diffs = [np.abs(frame.image.astype(int) - s.astype(int)).mean() for s in served]
        # FFmpeg's colour conversion rounds differently from libjpeg's (about 1 level);
        # neighbouring frames of the video differ by 3 or more.
        assert int(np.argmin(diffs)) == i % len(jpegs) and min(diffs) < 2.0, diffs
    assert [f.frame_number for f in frames] == list(range(12))


def test_a_live_stream_that_ends_raises_stream_lost(jpegs: list[bytes]) -> None:
    async def run() -> int:
        count = 0
        with MjpegServer(jpegs, fps=60.0, frames_per_connection=5) as server:
            async with CameraSource(server.url, mode="queue", read_timeout_s=2.0) as cam:
                with pytest.raises(StreamLostError, match="stopped delivering"):
                    while True:
                        await cam.read()
                        count += 1
        return count

    assert _run(run()) == 5


def test_requested_fps_below_the_source_is_honoured_and_size_is_reported(
    pedestrian_video_path: Path,
) -> None:
    async def run() -> tuple[list[int], CameraSource]:
        async with CameraSource(
            pedestrian_video_path, fps=5, width=320, height=240, mode="queue", realtime=False
        ) as cam:
            return [(await cam.read()).frame_number for _ in range(6)], cam

    numbers, cam = _run(run())  # type: ignore[misc]
    assert numbers == [0, 2, 4, 6, 8, 10]
    assert cam.stats.frames_skipped >= 5
    info = cam.info
    assert (info.requested_width, info.width) == (320, 768)
    assert not info.resolution_honoured  # a file cannot be asked for another size


def test_events_reach_subscribers_and_stay_in_history(jpegs: list[bytes]) -> None:
    from glasses_sdk.capture._events import CaptureEvent, StreamLost
    from glasses_sdk.capture._watchdog import WatchdogOptions, WatchedVideoSource

    seen: list[CaptureEvent] = []

    async def run() -> WatchedVideoSource:
        with MjpegServer(jpegs, fps=60.0, frames_per_connection=4) as server:
            source = WatchedVideoSource(
                lambda: CameraSource(server.url, mode="queue", read_timeout_s=2.0),
                WatchdogOptions(stall_after_s=0.5, lost_after_s=2.0),
            )
            unsubscribe = source.subscribe(seen.append)
            async with source:
                for _ in range(6):
                    await source.read()
            unsubscribe()
            return source

    source = _run(run())
    assert any(isinstance(e, StreamLost) for e in seen)
    assert source.events == tuple(seen)  # type: ignore[attr-defined]


def test_sources_that_cannot_open_raise_no_camera_error(tmp_path: Path) -> None:
    async def open_(source: int | str | Path) -> None:
        async with CameraSource(source, open_timeout_s=1.0):
            pass

    with pytest.raises(NoCameraError, match="does not exist"):
        _run(open_(tmp_path / "missing.avi"))
    not_video = tmp_path / "notes.avi"
    not_video.write_text("not a video")
    with pytest.raises(NoCameraError, match="could not open"):
        _run(open_(not_video))
    with pytest.raises(NoCameraError, match="could not open"):
        _run(open_("http://127.0.0.1:9/stream.mjpg"))  # nothing listens on port 9
    with pytest.raises(InvalidConfigError):
        CameraSource(-1)
    with pytest.raises(InvalidConfigError):
        CameraSource("x.avi", mode="newest")  # type: ignore[arg-type]


def test_still_image_source_repeats_a_photo(real_photo_paths: list[Path]) -> None:
    async def run() -> list[VideoFrame]:
        async with StillImageSource(real_photo_paths[0], count=3) as still:
            return [f async for f in still]

    frames = _run(run())
    assert len(frames) == 3  # type: ignore[arg-type]
    assert frames[0].image.shape == (512, 512, 3)  # type: ignore[index]
    with pytest.raises(InvalidFrameError, match="could not read"):
        StillImageSource(Path(__file__))


def test_a_realtime_file_is_never_delivered_early_and_a_slow_reader_gets_the_newest_due(
    pedestrian_video_path: Path,
) -> None:
    # The capture thread decodes ahead of time; the mailbox must still hold each frame
    # back until it is due, and a late reader must get the newest due frame, not an
    # older one nor one decoded ahead.
    async def run() -> tuple[list[float], list[float], CameraSource]:
        early, ages = [], []
        async with CameraSource(pedestrian_video_path, mode="latest") as cam:
            interval_s = 1.0 / cam.info.fps  # type: ignore[operator]
            for _ in range(6):
                frame = await cam.read()
                early.append(frame.timestamp_s - monotonic_s())
            for _ in range(4):
                await asyncio.sleep(2.5 * interval_s)
                frame = await cam.read()
                ages.append((monotonic_s() - frame.timestamp_s) / interval_s)
            return early, ages, cam

    early, ages, cam = _run(run())  # type: ignore[misc]
    assert max(early) <= 0.0, early
    # At most one interval old plus scheduling slack on a loaded machine.
    assert max(ages) < 1.5, ages
    assert cam.stats.frames_dropped >= 4


def test_the_mailbox_keeps_at_most_two_frames_ahead_of_their_due_time() -> None:
    from glasses_sdk.capture._camera import _Mailbox

    image = np.zeros((4, 4, 3), np.uint8)
    mailbox = _Mailbox("latest", 8)
    now = monotonic_s()
    assert mailbox.put(VideoFrame(image, now + 0.05, 0)) == (True, True)
    assert mailbox.put(VideoFrame(image, now + 0.10, 1)) == (True, False)
    assert mailbox.take(now) == (None, pytest.approx(now + 0.05))
    started = monotonic_s()
    # A third frame ahead waits until the first falls due (about 50 ms), no longer.
    assert mailbox.put(VideoFrame(image, now + 0.15, 2))[0]
    assert 0.03 <= monotonic_s() - started < 1.0
    frame, _ = mailbox.take(now + 0.12)  # frames 0 and 1 are due: the newer one wins
    assert frame is not None and frame.frame_number == 1
    assert mailbox.dropped == 1
    mailbox.stop()
    assert mailbox.put(VideoFrame(image, now + 0.2, 3)) == (False, False)
