"""``connect(uri)``: one call that turns a URI into a :class:`~glasses_sdk.Device`.

- ``"local"``: this computer's default camera and microphone
  (``local?camera=1&mic=pulse&width=1280&height=720&fps=30`` to choose). No camera
  raises :class:`NoCameraError` and no microphone :class:`NoMicrophoneError`; neither
  is ever replaced by a fake. Both are wrapped in the stream watchdog, so an unplugged
  webcam is reported and reopened.
- ``"file:VIDEO?audio=AUDIO"``: a device made of recordings, played in real time on one
  timeline (``&realtime=0`` for as fast as possible; ``&mode=queue`` to keep every
  frame). Either part may be left out: ``file:clip.avi``, ``file:?audio=speech.wav``.
- ``tcp://HOST:PORT``, ``serial:///dev/ttyX?baud=N``, ``ble://ADDRESS``: glasses or the
  emulator over the firmware bridge (:func:`glasses_sdk._bridge_device.connect_bridge`).
  TCP needs pairing first (``glasses pair URI --code CODE``) unless ``insecure=1`` (an
  emulator started ``--insecure``); ``width``, ``height``, ``fps``, ``quality`` and
  ``mode`` (``latest`` or ``queue``) set the camera stream.

The result is awaitable and an async context manager::

    device = await connect("local")
    async with connect("file:walk.avi?audio=walk.wav") as device: ...
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote

from glasses_sdk._device import Device
from glasses_sdk._exceptions import (
    GlassesError,
    InvalidConfigError,
    NoCameraError,
    UnsupportedUriError,
)
from glasses_sdk.capture._audio import FileAudioSource, MicrophoneSource
from glasses_sdk.capture._base import AudioSource, VideoSource, monotonic_s
from glasses_sdk.capture._camera import CameraMode, CameraSource
from glasses_sdk.capture._watchdog import WatchdogOptions, WatchedAudioSource, WatchedVideoSource

__all__ = ["SUPPORTED_SCHEMES", "connect"]

SUPPORTED_SCHEMES = ("local", "file:", "tcp://", "serial://", "ble://")
"""The URI forms :func:`connect` opens now."""

_BRIDGE_SCHEMES = ("tcp", "serial", "ble")
_SUPPORTED_TEXT = (
    "'local', 'file:VIDEO?audio=AUDIO', 'tcp://HOST:PORT', 'serial:///dev/ttyX?baud=N' "
    "and 'ble://ADDRESS'"
)
# Options of connect() for bridge URIs; anything else stays in the link URI (baud).
_BRIDGE_OPTIONS = {"insecure", "width", "height", "fps", "quality", "mode"}

# A recording's first frame and first sample are due this long after connect(), so
# that opening both files does not make the first ones late.
_FILE_LEAD_S = 0.05


class _Connecting:
    """What :func:`connect` returns: await it, or use it with ``async with``."""

    def __init__(self, uri: str, watchdog: WatchdogOptions | None) -> None:
        self._uri = uri
        self._watchdog = watchdog
        self._device: Device | None = None

    def __await__(self) -> Generator[Any, None, Device]:
        return _open(self._uri, self._watchdog).__await__()

    async def __aenter__(self) -> Device:
        self._device = await _open(self._uri, self._watchdog)
        return self._device

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._device is not None:
            await self._device.close()


def connect(uri: str, *, watchdog: WatchdogOptions | None = None) -> _Connecting:
    """Open the device that ``uri`` names (see the module docs for the forms).

    ``watchdog`` sets when a live stream counts as stalled or lost and how it is
    reopened (``local`` only: recordings do not stall).
    """
    if not isinstance(uri, str) or not uri:
        raise InvalidConfigError(f"connect() expects a URI string such as 'local', got {uri!r}")
    return _Connecting(uri, watchdog)


def _query(text: str, uri: str, allowed: set[str]) -> dict[str, str]:
    params = {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidConfigError(
            f"connect({uri!r}): unknown option(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(allowed))}"
        )
    return params


def _number(params: dict[str, str], key: str, uri: str) -> float | None:
    if key not in params:
        return None
    try:
        return float(params[key])
    except ValueError:
        raise InvalidConfigError(
            f"connect({uri!r}): {key} must be a number, got {params[key]!r}"
        ) from None


def _flag(params: dict[str, str], key: str, default: bool, uri: str) -> bool:
    value = params.get(key)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise InvalidConfigError(f"connect({uri!r}): {key} must be 1 or 0, got {value!r}")


async def _open(uri: str, watchdog: WatchdogOptions | None) -> Device:
    head, _, query = uri.partition("?")
    if head == "local":
        return await _open_local(uri, query, watchdog)
    if head.startswith("file:"):
        return await _open_files(uri, head[len("file:") :], query)
    scheme = head.split("://", 1)[0] if "://" in head else head.split(":", 1)[0]
    if scheme in _BRIDGE_SCHEMES and "://" in head:
        return await _open_bridge(uri, head, query)
    raise UnsupportedUriError(
        f"connect({uri!r}): unknown scheme {scheme!r}; supported: {_SUPPORTED_TEXT}"
    )


async def _open_bridge(uri: str, head: str, query: str) -> Device:
    from glasses_sdk._bridge_device import connect_bridge

    pairs = parse_qs(query, keep_blank_values=True)
    ours = {key: values[-1] for key, values in pairs.items() if key in _BRIDGE_OPTIONS}
    rest = "&".join(
        f"{key}={value}"
        for key, values in pairs.items()
        if key not in _BRIDGE_OPTIONS
        for value in values
    )
    link_uri = f"{head}?{rest}" if rest else head

    def size(key: str, default: int) -> int:
        value = _number(ours, key, uri)
        if value is None:
            return default
        if value <= 0 or value != int(value):
            raise InvalidConfigError(f"connect({uri!r}): {key} must be a positive integer")
        return int(value)

    mode = ours.get("mode", "latest")
    if mode not in ("latest", "queue"):
        raise InvalidConfigError(f"connect({uri!r}): mode must be latest or queue, got {mode!r}")
    return await connect_bridge(
        link_uri,
        insecure=_flag(ours, "insecure", False, uri),
        width_px=size("width", 640),
        height_px=size("height", 480),
        fps=size("fps", 15),
        jpeg_quality=size("quality", 80),
        video_mode=mode,
    )


def _no_video_devices() -> bool:
    """On Linux, whether there is no /dev/video* at all (checked before OpenCV probes)."""
    return sys.platform.startswith("linux") and not any(Path("/dev").glob("video*"))


async def _open_local(uri: str, query: str, watchdog: WatchdogOptions | None) -> Device:
    params = _query(query, uri, {"camera", "mic", "width", "height", "fps"})
    try:
        index = int(params.get("camera", "0"))
    except ValueError:
        raise InvalidConfigError(
            f"connect({uri!r}): camera must be a device index, got {params['camera']!r}"
        ) from None
    mic_param = params.get("mic")
    mic: int | str | None = int(mic_param) if mic_param and mic_param.isdigit() else mic_param
    width, height = _number(params, "width", uri), _number(params, "height", uri)
    fps = _number(params, "fps", uri)
    if _no_video_devices():
        raise NoCameraError(
            "connect('local'): this computer has no camera (no /dev/video* device); "
            "plug one in, or use connect('file:VIDEO?audio=AUDIO') to run on recordings"
        )

    def camera() -> VideoSource:
        return CameraSource(
            index,
            width=None if width is None else int(width),
            height=None if height is None else int(height),
            fps=fps,
        )

    def microphone() -> AudioSource:
        return MicrophoneSource(mic)

    video = WatchedVideoSource(camera, watchdog)
    try:
        await video.start()
    except NoCameraError as exc:
        await video.close()
        raise NoCameraError(
            f"connect('local'): {exc}; use connect('file:VIDEO?audio=AUDIO') to run on recordings"
        ) from exc
    audio = WatchedAudioSource(microphone, watchdog)
    try:
        await audio.start()
    except GlassesError:
        await video.close()
        await audio.close()
        raise
    return Device(name="local", video=video, audio=audio)


async def _open_files(uri: str, path_text: str, query: str) -> Device:
    params = _query(query, uri, {"audio", "realtime", "mode"})
    if path_text.startswith("//"):  # file:///abs/path, as in a file URL
        path_text = path_text[2:]
    video_path = unquote(path_text)
    audio_path = params.get("audio") or None
    if not video_path and audio_path is None:
        raise InvalidConfigError(
            f"connect({uri!r}): name a video file, an audio file (?audio=...), or both"
        )
    realtime = _flag(params, "realtime", True, uri)
    mode_text = params.get("mode", "latest")
    if mode_text not in ("latest", "queue"):
        raise InvalidConfigError(
            f"connect({uri!r}): mode must be latest or queue, got {mode_text!r}"
        )
    mode: CameraMode = "queue" if mode_text == "queue" else "latest"
    origin_s = monotonic_s() + _FILE_LEAD_S if realtime else None
    video: CameraSource | None = None
    audio: FileAudioSource | None = None
    try:
        if video_path:
            video = CameraSource(video_path, realtime=realtime, mode=mode, origin_s=origin_s)
            await video.start()
        if audio_path is not None:
            audio = FileAudioSource(audio_path, realtime=realtime, origin_s=origin_s)
    except GlassesError:
        if video is not None:
            await video.close()
        raise
    name = Path(video_path).name if video_path else Path(audio_path or "").name
    return Device(name=f"file:{name}", video=video, audio=audio)
