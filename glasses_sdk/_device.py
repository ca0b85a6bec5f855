"""The device an app talks to: its camera and microphone sources joined with its state.

Real glasses, the emulator, this computer and recordings all become a :class:`Device`
whose state (battery, thermal, capture LED) is updated by whatever drives it. The state
is an immutable snapshot replaced on every change, so a reader never sees half an update.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Self

from glasses_sdk._exceptions import InvalidConfigError, SourceClosedError
from glasses_sdk.capture._base import AudioSource, VideoSource, monotonic_s

__all__ = ["Device", "DeviceState", "FakeDevice", "LedState"]


class LedState(enum.StrEnum):
    """The capture LED that tells bystanders the camera is on."""

    ON = "on"
    OFF = "off"
    ABSENT = "absent"
    """The source has no LED (a laptop webcam, a recording)."""


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A snapshot of the device's condition; ``None`` where the device does not report it."""

    battery_percent: float | None = None
    charging: bool | None = None
    temperature_c: float | None = None
    throttle_level: int = 0
    """0 when not throttled; higher levels lower resolution, then frame rate."""
    led: LedState = LedState.ABSENT
    updated_s: float = 0.0
    """When this snapshot was taken, on the SDK clock."""

    def __post_init__(self) -> None:
        if self.battery_percent is not None and not 0.0 <= self.battery_percent <= 100.0:
            raise InvalidConfigError(
                f"battery_percent must be within 0..100, got {self.battery_percent}"
            )
        if self.throttle_level < 0:
            raise InvalidConfigError(f"throttle_level must be >= 0, got {self.throttle_level}")


class Device:
    """A camera, a microphone (either may be absent) and the state of what carries them.

    Sources are injected, never built here, so that the same device logic runs over
    glasses, the emulator, a webcam or a fake. Closing the device closes its sources.
    """

    def __init__(
        self,
        *,
        name: str,
        video: VideoSource | None = None,
        audio: AudioSource | None = None,
        state: DeviceState | None = None,
    ) -> None:
        if video is None and audio is None:
            raise InvalidConfigError("a device needs a video source, an audio source, or both")
        self._name = name
        self._video = video
        self._audio = audio
        self._state = state if state is not None else DeviceState(updated_s=monotonic_s())
        self._closed = False

    @property
    def name(self) -> str:
        """A human-readable name of the device (``"emulator"``, ``"local"``, ...)."""
        return self._name

    @property
    def video(self) -> VideoSource:
        """The camera; raises :class:`SourceClosedError` if the device has none or is closed."""
        if self._video is None:
            raise SourceClosedError(f"device {self._name!r} has no camera")
        self._check_open()
        return self._video

    @property
    def audio(self) -> AudioSource:
        """The microphone; raises :class:`SourceClosedError` if absent or closed."""
        if self._audio is None:
            raise SourceClosedError(f"device {self._name!r} has no microphone")
        self._check_open()
        return self._audio

    @property
    def has_video(self) -> bool:
        """Whether the device has a camera."""
        return self._video is not None

    @property
    def has_audio(self) -> bool:
        """Whether the device has a microphone."""
        return self._audio is not None

    @property
    def state(self) -> DeviceState:
        """The latest state snapshot."""
        return self._state

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _set_state(self, **changes: object) -> DeviceState:
        """Replace the snapshot; for the drivers that read the device's reports."""
        self._state = replace(self._state, updated_s=monotonic_s(), **changes)  # type: ignore[arg-type]
        return self._state

    def _check_open(self) -> None:
        if self._closed:
            raise SourceClosedError(f"device {self._name!r} was used after close()")

    async def close(self) -> None:
        """Close both sources; idempotent."""
        if self._closed:
            return
        self._closed = True
        for source in (self._video, self._audio):
            if source is not None:
                await source.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class FakeDevice(Device):
    """An in-memory device for tests whose state the test sets directly."""

    def set_state(
        self,
        *,
        battery_percent: float | None = None,
        charging: bool | None = None,
        temperature_c: float | None = None,
        throttle_level: int | None = None,
        led: LedState | None = None,
    ) -> DeviceState:
        """Change the given fields of the state (the others are kept) and return it."""
        given = {
            "battery_percent": battery_percent,
            "charging": charging,
            "temperature_c": temperature_c,
            "throttle_level": throttle_level,
            "led": led,
        }
        return self._set_state(**{k: v for k, v in given.items() if v is not None})
