"""How the emulated glasses behave: capture LED, battery, heat and throttling.

Pure and clock-free: the server calls :meth:`DeviceModel.tick` with elapsed seconds and
reads what changed. The rules follow PROTOCOL.md and real devices:

- The capture LED is on whenever the camera streams; with the LED blocked (covered or
  faulty) the device refuses to capture, and the LED cannot be turned off mid-capture.
- The battery drains with use (camera most, then microphone and speaker) and charges.
- Heat follows use; throttling first lowers the resolution (40 °C), then the frame
  rate (43 °C), then pauses the camera (46 °C, HEAVY); 50 °C is CRITICAL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from firmware_bridge.protocol import CaptureLedState, ThrottleLevel

__all__ = ["DeviceModel", "StreamPlan"]

# Drain in percent per second: a 1-hour camera session empties about 80% of a battery.
_DRAIN_IDLE = 0.002
_DRAIN_CAMERA = 0.02
_DRAIN_AUDIO = 0.004
_DRAIN_SPEAKER = 0.006
_CHARGE = 0.05
# Heat: the temperature approaches a target with a 60 s time constant.
_HEAT_TIME_CONSTANT_S = 60.0
_HEAT_CAMERA_C = 12.0
_HEAT_AUDIO_C = 1.0
LOWER_RESOLUTION_C = 40.0
LOWER_FPS_C = 43.0
PAUSE_CAMERA_C = 46.0
CRITICAL_C = 50.0


@dataclass(frozen=True)
class StreamPlan:
    """What the camera actually sends given the requested config and the heat."""

    width_px: int
    height_px: int
    fps: int


@dataclass
class DeviceModel:
    """The state of the emulated device (mutable; the server owns it)."""

    battery_percent: float = 87.0
    charging: bool = False
    temperature_c: float = 31.0
    ambient_c: float = 30.0
    led_blocked: bool = False
    led_manual_on: bool = False
    volume_percent: int = 50
    camera_streaming: bool = False
    audio_streaming: bool = False
    speaker_busy_s: float = 0.0
    """Seconds of queued speaker audio left to play."""
    extra_heat_c: float = 0.0
    """Heat injected by a scenario or a test, decaying like the rest."""

    @property
    def led(self) -> CaptureLedState:
        """What the LED shows now."""
        if self.led_blocked:
            return CaptureLedState.BLOCKED
        return (
            CaptureLedState.ON
            if self.camera_streaming or self.led_manual_on
            else (CaptureLedState.OFF)
        )

    @property
    def throttle_level(self) -> ThrottleLevel:
        """The throttling the heat imposes."""
        t = self.temperature_c
        if t >= CRITICAL_C:
            return ThrottleLevel.CRITICAL
        if t >= PAUSE_CAMERA_C:
            return ThrottleLevel.HEAVY
        if t >= LOWER_RESOLUTION_C:
            return ThrottleLevel.LIGHT
        return ThrottleLevel.NONE

    @property
    def battery_report(self) -> int:
        """The battery as reported (whole percent)."""
        return max(0, min(100, round(self.battery_percent)))

    def can_capture(self) -> bool:
        """Whether the camera may capture at all (LED and heat allow it)."""
        return not self.led_blocked and self.throttle_level < ThrottleLevel.HEAVY

    def plan(self, width_px: int, height_px: int, fps: int) -> StreamPlan | None:
        """The stream the camera can send for a request; None while paused."""
        if not self.can_capture():
            return None
        if self.temperature_c >= LOWER_RESOLUTION_C:
            width_px, height_px = max(2, width_px // 2 // 2 * 2), max(2, height_px // 2 // 2 * 2)
        if self.temperature_c >= LOWER_FPS_C:
            fps = max(1, fps // 2)
        return StreamPlan(width_px, height_px, fps)

    def tick(self, elapsed_s: float) -> None:
        """Advance battery and heat by ``elapsed_s`` seconds of the current use."""
        if elapsed_s <= 0:
            return
        drain = _DRAIN_IDLE
        if self.camera_streaming:
            drain += _DRAIN_CAMERA
        if self.audio_streaming:
            drain += _DRAIN_AUDIO
        if self.speaker_busy_s > 0:
            drain += _DRAIN_SPEAKER
            self.speaker_busy_s = max(0.0, self.speaker_busy_s - elapsed_s)
        change = (_CHARGE if self.charging else 0.0) - drain
        self.battery_percent = min(100.0, max(0.0, self.battery_percent + change * elapsed_s))
        target = self.ambient_c + 1.0
        if self.camera_streaming:
            target += _HEAT_CAMERA_C
        if self.audio_streaming:
            target += _HEAT_AUDIO_C
        decay = math.exp(-elapsed_s / _HEAT_TIME_CONSTANT_S)
        base = self.temperature_c - self.extra_heat_c
        base = target + (base - target) * decay
        self.extra_heat_c *= decay
        self.temperature_c = base + self.extra_heat_c

    def heat(self, delta_c: float) -> None:
        """Add heat now (a scenario's heat-up, or a test); it decays with use."""
        self.extra_heat_c += delta_c
        self.temperature_c += delta_c
