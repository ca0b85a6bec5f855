"""Scenario files (TOML) and the media they play: real footage and real speech.

A scenario says what the emulated glasses see, hear and go through::

    name = "walk"
    [device]
    name = "Emulated glasses"          # in the device's HELLO
    battery_percent = 87
    temperature_c = 31.0
    [camera]
    video = "data:pedestrian"          # or images = ["data:photo:astronaut", "a.jpg"]
    max_frames = 100                   # frames of the video kept (then it loops)
    resolutions = [[1280, 720], [640, 480], [320, 240]]
    fps = [30, 15, 10, 5]
    [microphone]
    wav = "data:speech:beckett"
    [link]
    impair = "latency_ms=10"           # overridden by --impair
    [[timeline]]                       # one action per entry, at_s from the start
    at_s = 3.0
    tap = "TAP"

Media references: ``data:pedestrian`` (opencv-doc's vtest.avi), ``data:photo:NAME`` and
``data:speech:NAME`` (see :mod:`glasses_sdk.data`), or a path relative to the file.

Timeline actions: ``tap`` (a gesture name: TAP, DOUBLE_TAP, LONG_PRESS, SWIPE_FORWARD,
SWIPE_BACKWARD), ``button`` (true: pressed and released), ``battery_percent`` (set),
``battery_drain`` (percent to remove), ``charging`` (bool), ``heat_c`` (degrees to add),
``led_blocked`` (bool), ``impair`` (a spec string), ``stall_s``, ``disconnect_s``.
"""

from __future__ import annotations

import tomllib
import wave
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from firmware_bridge._errors import ImpairmentSpecError, ScenarioError
from firmware_bridge.emulator._impair import parse_impairment
from firmware_bridge.protocol import Gesture

__all__ = [
    "ACTIONS",
    "JpegFrames",
    "Scenario",
    "TimelineEvent",
    "default_scenario_path",
    "load_scenario",
    "load_wav_pcm16",
]

ACTIONS: dict[str, type] = {
    "tap": str,
    "button": bool,
    "battery_percent": float,
    "battery_drain": float,
    "charging": bool,
    "heat_c": float,
    "led_blocked": bool,
    "impair": str,
    "stall_s": float,
    "disconnect_s": float,
}
"""Timeline actions and the type of their value."""

_TOP_KEYS = {"name", "device", "camera", "microphone", "link", "timeline"}
_SECTION_KEYS = {
    "device": {"name", "firmware_version", "battery_percent", "charging", "temperature_c"},
    "camera": {"video", "images", "max_frames", "resolutions", "fps"},
    "microphone": {"wav"},
    "link": {"impair"},
}


@dataclass(frozen=True)
class TimelineEvent:
    """One scripted action at ``at_s`` seconds after the emulator starts."""

    at_s: float
    action: str
    value: Any


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario; media paths are resolved and exist."""

    name: str = "empty"
    device_name: str = "Emulated glasses"
    firmware_version: str = "1.0.0-emulator"
    battery_percent: float = 87.0
    charging: bool = False
    temperature_c: float = 31.0
    video: Path | None = None
    images: tuple[Path, ...] = ()
    max_frames: int = 100
    resolutions: tuple[tuple[int, int], ...] = ((1280, 720), (640, 480), (320, 240))
    fps: tuple[int, ...] = (30, 15, 10, 5)
    wav: Path | None = None
    impair: str = ""
    timeline: tuple[TimelineEvent, ...] = field(default_factory=tuple)


def default_scenario_path() -> Path:
    """The scenario shipped with the package (real footage, real speech, a few taps)."""
    return Path(str(resources.files("firmware_bridge.emulator") / "scenarios" / "default.toml"))


def _media(reference: str, base: Path, what: str) -> Path:
    from glasses_sdk import data  # lazy: the emulator core does not need the SDK
    from glasses_sdk._exceptions import DataNotFoundError

    getters: dict[str, Callable[[], Path]] = {"data:pedestrian": data.pedestrian_video_path}
    try:
        if reference in getters:
            return getters[reference]()
        if reference.startswith("data:photo:"):
            return data.photo_path(reference.removeprefix("data:photo:"))
        if reference.startswith("data:speech:"):
            return data.speech_path(reference.removeprefix("data:speech:"))
    except DataNotFoundError as exc:
        raise ScenarioError(f"{what} {reference!r}: {exc}") from exc
    if reference.startswith("data:"):
        raise ScenarioError(
            f"{what} {reference!r}: expected data:pedestrian, data:photo:NAME or data:speech:NAME"
        )
    path = (base / reference).resolve()
    if not path.is_file():
        raise ScenarioError(f"{what} {reference!r}: {path} does not exist")
    return path


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ScenarioError(
            f"unknown key(s) {', '.join(sorted(unknown))} in {where}; "
            f"expected {', '.join(sorted(allowed))}"
        )


def _timeline(entries: object) -> tuple[TimelineEvent, ...]:
    if not isinstance(entries, list):
        raise ScenarioError("timeline must be an array of tables ([[timeline]])")
    events = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or "at_s" not in entry:
            raise ScenarioError(f"timeline entry {number} needs at_s")
        at_s = entry["at_s"]
        if not isinstance(at_s, int | float) or isinstance(at_s, bool) or at_s < 0:
            raise ScenarioError(f"timeline entry {number}: at_s must be a number >= 0")
        actions = [k for k in entry if k != "at_s"]
        if len(actions) != 1 or actions[0] not in ACTIONS:
            raise ScenarioError(
                f"timeline entry {number} needs exactly one action of "
                f"{', '.join(ACTIONS)}; got {', '.join(actions) or 'none'}"
            )
        action = actions[0]
        value = entry[action]
        kind = ACTIONS[action]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ScenarioError(
                f"timeline entry {number}: {action} must be a {kind.__name__}, got {value!r}"
            )
        if action == "tap" and value not in Gesture.__members__:
            raise ScenarioError(
                f"timeline entry {number}: tap must be one of {', '.join(Gesture.__members__)}"
            )
        if action == "impair":
            try:
                parse_impairment(str(value))
            except ImpairmentSpecError as exc:
                raise ScenarioError(f"timeline entry {number}: {exc}") from exc
        events.append(TimelineEvent(float(at_s), action, value))
    return tuple(sorted(events, key=lambda e: e.at_s))


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file; media references must resolve.

    Raises:
        ScenarioError: unreadable TOML, an unknown key, a bad value or missing media,
            naming what and where.
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario {path} is not valid TOML: {exc}") from exc
    _check_keys(document, _TOP_KEYS, f"scenario {path}")
    sections: dict[str, dict[str, Any]] = {}
    for name, allowed in _SECTION_KEYS.items():
        table = document.get(name, {})
        if not isinstance(table, dict):
            raise ScenarioError(f"[{name}] must be a table in {path}")
        _check_keys(table, allowed, f"[{name}] of {path}")
        sections[name] = table
    base = path.parent
    device, camera = sections["device"], sections["camera"]
    microphone, link = sections["microphone"], sections["link"]
    try:
        impair = str(link.get("impair", ""))
        parse_impairment(impair)
    except ImpairmentSpecError as exc:
        raise ScenarioError(f"[link] impair of {path}: {exc}") from exc
    try:
        resolutions = tuple(
            (int(w), int(h)) for w, h in camera.get("resolutions", Scenario.resolutions)
        )
        fps = tuple(int(f) for f in camera.get("fps", Scenario.fps))
        scenario = Scenario(
            name=str(document.get("name", path.stem)),
            device_name=str(device.get("name", Scenario.device_name)),
            firmware_version=str(device.get("firmware_version", Scenario.firmware_version)),
            battery_percent=float(device.get("battery_percent", Scenario.battery_percent)),
            charging=bool(device.get("charging", False)),
            temperature_c=float(device.get("temperature_c", Scenario.temperature_c)),
            video=_media(camera["video"], base, "camera video") if "video" in camera else None,
            images=tuple(_media(i, base, "camera image") for i in camera.get("images", [])),
            max_frames=int(camera.get("max_frames", Scenario.max_frames)),
            resolutions=resolutions,
            fps=fps,
            wav=_media(microphone["wav"], base, "microphone wav") if "wav" in microphone else None,
            impair=impair,
            timeline=_timeline(document.get("timeline", [])),
        )
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"scenario {path}: {exc}") from exc
    if not 0 <= scenario.battery_percent <= 100 or scenario.max_frames < 1:
        raise ScenarioError(f"scenario {path}: battery_percent 0..100, max_frames >= 1")
    if any(not (1 <= w <= 0xFFFF and 1 <= h <= 0xFFFF) for w, h in resolutions) or any(
        not 1 <= f <= 255 for f in fps
    ):
        raise ScenarioError(f"scenario {path}: resolutions 1..65535 px, fps 1..255")
    return scenario


def load_wav_pcm16(path: Path, *, sample_rate_hz: int = 16_000) -> npt.NDArray[np.int16]:
    """A WAV file as mono PCM16 at ``sample_rate_hz`` (downmixed and resampled)."""
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width, rate = (
                handle.getnchannels(),
                handle.getsampwidth(),
                handle.getframerate(),
            )
            raw = handle.readframes(handle.getnframes())
    except (OSError, wave.Error, EOFError) as exc:
        raise ScenarioError(f"cannot read WAV {path}: {exc}") from exc
    if width != 2:
        raise ScenarioError(f"WAV {path}: expected 16-bit samples, got {8 * width}-bit")
    samples = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(np.float32)
    mono = samples.mean(axis=1) / 32768.0
    if rate != sample_rate_hz:
        from glasses_sdk.preprocess import resample

        mono = resample(mono.astype(np.float32), rate, sample_rate_hz)
    pcm: npt.NDArray[np.int16] = np.clip(np.round(mono * 32767.0), -32768, 32767).astype(np.int16)
    return pcm


class JpegFrames:
    """The camera's pictures as JPEG, at any resolution and quality, from real media.

    Source frames are kept JPEG-encoded at their own size (a 100-frame video is a few
    MB); a frame at another size is decoded, resized and encoded once, then cached.
    """

    def __init__(self, scenario: Scenario, *, cache_entries: int = 256) -> None:
        import cv2

        from glasses_sdk.preprocess import encode_jpeg

        self._sources: list[bytes] = []
        self.source_fps = 10.0
        if scenario.video is not None:
            capture = cv2.VideoCapture(str(scenario.video))
            try:
                fps = capture.get(cv2.CAP_PROP_FPS)
                self.source_fps = float(fps) if fps and fps > 0 else 10.0
                while len(self._sources) < scenario.max_frames:
                    ok, image = capture.read()
                    if not ok:
                        break
                    self._sources.append(
                        encode_jpeg(np.ascontiguousarray(image, dtype=np.uint8), 92)
                    )
            finally:
                capture.release()
        for path in scenario.images:
            still = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if still is None:
                raise ScenarioError(f"camera image {path} could not be decoded")
            self._sources.append(encode_jpeg(np.ascontiguousarray(still, dtype=np.uint8), 92))
        if not self._sources:
            raise ScenarioError(f"scenario {scenario.name!r} has no camera frames")
        self._cache: OrderedDict[tuple[int, int, int, int], bytes] = OrderedDict()
        self._cache_entries = cache_entries

    def __len__(self) -> int:
        return len(self._sources)

    def cached(self, index: int, width_px: int, height_px: int, quality: int) -> bytes | None:
        """The JPEG if already made (cheap: call it on the event loop)."""
        key = (index % len(self._sources), width_px, height_px, quality)
        jpeg = self._cache.get(key)
        if jpeg is not None:
            self._cache.move_to_end(key)
        return jpeg

    def render(self, index: int, width_px: int, height_px: int, quality: int) -> bytes:
        """Frame ``index`` (modulo the count) as a JPEG of that size and quality."""
        import cv2

        from glasses_sdk.preprocess import decode_jpeg, encode_jpeg

        key = (index % len(self._sources), width_px, height_px, quality)
        jpeg = self._cache.get(key)
        if jpeg is None:
            image = decode_jpeg(self._sources[key[0]])
            if image.shape[1] != width_px or image.shape[0] != height_px:
                resized = cv2.resize(image, (width_px, height_px), interpolation=cv2.INTER_AREA)
                image = np.ascontiguousarray(resized, dtype=np.uint8)
            jpeg = encode_jpeg(image, quality)
            self._cache[key] = jpeg
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)
        return jpeg
