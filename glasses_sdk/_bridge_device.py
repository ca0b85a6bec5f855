"""Glasses (or the emulator) over the firmware bridge, as a :class:`~glasses_sdk.Device`.

:func:`connect_bridge` opens a :class:`firmware_bridge.host.HostSession` for a
``tcp://``, ``serial://`` or ``ble://`` URI, starts the camera and microphone streams,
and wraps the session in a :class:`BridgeDevice`: its ``video`` yields decoded BGR
frames and its ``audio`` 16 kHz float32 chunks (the push sources of
``glasses_sdk.capture``), stamped on the SDK clock through one clock mapper; its
``state`` follows the device's reports; and it adds the session's commands and events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from glasses_sdk._device import Device, DeviceState, LedState
from glasses_sdk._exceptions import InvalidConfigError, LedUnavailableError
from glasses_sdk.capture._base import VideoFrame
from glasses_sdk.capture._bridge import BridgeAudioSource, BridgeVideoSource
from glasses_sdk.capture._clock import ClockMapper

__all__ = ["BridgeDevice", "connect_bridge"]


_LED = {"ON": LedState.ON, "OFF": LedState.OFF, "BLOCKED": LedState.OFF, "ABSENT": LedState.ABSENT}


class BridgeDevice(Device):
    """A device behind the firmware bridge: streams, state, commands and events.

    ``session`` is the :class:`firmware_bridge.host.HostSession`; its commands raise
    :class:`firmware_bridge.CommandError` subclasses saying why they failed.
    """

    def __init__(
        self, session: Any, *, name: str, video: bool, audio: bool, video_mode: str = "latest"
    ) -> None:
        clock = ClockMapper()
        camera = BridgeVideoSource(mode=video_mode, clock=clock) if video else None  # type: ignore[arg-type]
        microphone = BridgeAudioSource(device_rate_hz=16_000, clock=clock) if audio else None
        super().__init__(name=name, video=camera, audio=microphone)
        self.session = session
        self._camera = camera
        self._microphone = microphone
        self._clock = clock
        self._unsubscribe = session.subscribe(
            frames=self._on_frame if camera is not None else None,
            audio=self._on_audio if microphone is not None else None,
            events=self._on_event,
        )

    def _on_frame(self, frame: Any) -> None:
        assert self._camera is not None
        self._camera.push_jpeg(
            frame.jpeg, frame_number=frame.frame_number, timestamp_us=frame.timestamp_us
        )

    def _on_audio(self, chunk: Any) -> None:
        assert self._microphone is not None
        self._microphone.push_pcm16(
            chunk.pcm, sequence=chunk.sequence, timestamp_us=chunk.timestamp_us
        )

    def _on_event(self, event: Any) -> None:
        from firmware_bridge.host import ReconnectFailed

        if isinstance(event, ReconnectFailed):
            for source in (self._camera, self._microphone):
                if source is not None:
                    source.fail(f"the link to the device is lost: {event.reason}")

    @property
    def state(self) -> DeviceState:
        status = self.session.status
        battery = status.battery_percent
        return DeviceState(
            battery_percent=None if battery is None else float(battery),
            charging=status.charging,
            temperature_c=status.temperature_c,
            throttle_level=int(status.throttle_level),
            led=_LED.get(status.led.name, LedState.ABSENT),
            updated_s=self._state.updated_s,
        )

    def events(self) -> AsyncIterator[Any]:
        """Taps, state changes, stalls, link loss and errors (``firmware_bridge.host``)."""
        events: AsyncIterator[Any] = self.session.events()
        return events

    def link_quality(self) -> Any:
        """Round trip, loss and throughput (:class:`firmware_bridge.host.LinkQuality`)."""
        return self.session.quality()

    async def take_photo(self, *, jpeg_quality: int = 0) -> VideoFrame:
        """A full-resolution photo, decoded."""
        from glasses_sdk.preprocess import decode_jpeg

        frame = await self.session.take_photo(jpeg_quality=jpeg_quality)
        image = await asyncio.to_thread(decode_jpeg, frame.jpeg)
        return VideoFrame(
            image, self.session.to_host_time_s(frame.timestamp_us), frame.frame_number
        )

    async def set_led(self, on: bool) -> None:
        """Turn the capture LED on or off."""
        await self.session.set_led(on)

    async def play_audio(self, pcm: bytes, *, sample_rate_hz: int = 16_000) -> None:
        """Play PCM16 mono samples on the device's speaker."""
        await self.session.play_audio(pcm, sample_rate_hz=sample_rate_hz)

    async def close(self) -> None:
        if self.closed:
            return
        self._unsubscribe()
        for source in (self._camera, self._microphone):
            if source is not None:
                source.end()
        await super().close()
        await self.session.close()


async def connect_bridge(
    uri: str,
    *,
    insecure: bool = False,
    pairing_dir: str | Path | None = None,
    width_px: int = 640,
    height_px: int = 480,
    fps: int = 15,
    jpeg_quality: int = 80,
    video: bool = True,
    audio: bool = True,
    video_mode: str = "latest",
    **session_options: Any,
) -> BridgeDevice:
    """Connect to glasses or the emulator over ``tcp://``, ``serial://`` or ``ble://``.

    TCP links need pairing first (``glasses pair URI --code CODE``) unless ``insecure``
    (an emulator started ``--insecure``). Camera and microphone streams start at once
    when the device has them and ``video`` / ``audio`` ask for them; they resume by
    themselves after a reconnect. ``video_mode`` is the camera source's buffering
    (``"latest"`` or ``"queue"``). Extra keyword arguments go to
    :class:`firmware_bridge.host.HostOptions`.

    Raises:
        InvalidConfigError: an unknown option.
        firmware_bridge.PairingRequiredError: no pairing with this TCP device.
        LedUnavailableError: the device refuses to stream because its capture LED
            cannot be shown.
        firmware_bridge.BridgeError: the link or the handshake failed.
    """
    from firmware_bridge._secure import PairingStore
    from firmware_bridge.host import HostOptions, HostSession

    try:
        options = HostOptions(**session_options)
    except TypeError as exc:
        raise InvalidConfigError(f"connect_bridge: {exc}") from None
    store = None if pairing_dir is None else PairingStore(Path(pairing_dir))
    session = await HostSession.open(uri, store=store, insecure=insecure, options=options)
    try:
        hello = session.status.hello
        has_video = video and hello is not None and bool(hello.camera_resolutions)
        has_audio = audio and hello is not None and bool(hello.audio_formats)
        if not has_video and not has_audio:
            raise InvalidConfigError(
                f"{uri} offers no camera or microphone stream that was asked for"
            )
        if has_video:
            from firmware_bridge import LedBlockedError

            try:
                await session.configure_camera(
                    width_px=width_px, height_px=height_px, fps=fps, jpeg_quality=jpeg_quality
                )
            except LedBlockedError as exc:
                # Translated at the SDK's boundary: apps catch GlassesError, and a device
                # whose LED is covered must refuse the camera the same way whether that is
                # found at connect time or later (LedUnavailableError either way).
                raise LedUnavailableError(f"the device refused to stream: {exc}") from exc
        if has_audio:
            await session.configure_audio()
        name = hello.device_name if hello is not None and hello.device_name else uri
        return BridgeDevice(
            session, name=name, video=has_video, audio=has_audio, video_mode=video_mode
        )
    except BaseException:
        await session.close()
        raise
