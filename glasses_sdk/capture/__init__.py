"""Sources of camera frames and microphone audio, on one monotonic clock.

Cameras (OpenCV: device index, file, URL; a still image; the firmware bridge) and
microphones (sounddevice; audio files; the bridge) share the small bases
:class:`VideoSource` and :class:`AudioSource`. Buffers are bounded (latest-frame or a
bounded queue for video, a ring sized in milliseconds for audio), every drop is counted
and reported as an event, and a watchdog reports stalls, losses and recoveries.
"""

from glasses_sdk.capture._audio import AudioStats, FileAudioSource, MicrophoneSource
from glasses_sdk.capture._base import (
    AudioChunk,
    AudioSource,
    FakeAudioSource,
    FakeVideoSource,
    VideoFrame,
    VideoSource,
    monotonic_s,
)
from glasses_sdk.capture._bridge import BridgeAudioSource, BridgeVideoSource
from glasses_sdk.capture._camera import CameraInfo, CameraSource, StillImageSource, VideoStats
from glasses_sdk.capture._clock import ClockMapper
from glasses_sdk.capture._events import (
    AudioOverflow,
    AudioUnderflow,
    CaptureEvent,
    ReopenFailed,
    StreamLost,
    StreamRecovered,
    StreamStalled,
)
from glasses_sdk.capture._ring import AudioRingBuffer
from glasses_sdk.capture._watchdog import (
    WatchdogOptions,
    WatchedAudioSource,
    WatchedVideoSource,
    backoff_s,
)

__all__ = [
    "AudioChunk",
    "AudioOverflow",
    "AudioRingBuffer",
    "AudioSource",
    "AudioStats",
    "AudioUnderflow",
    "BridgeAudioSource",
    "BridgeVideoSource",
    "CameraInfo",
    "CameraSource",
    "CaptureEvent",
    "ClockMapper",
    "FakeAudioSource",
    "FakeVideoSource",
    "FileAudioSource",
    "MicrophoneSource",
    "ReopenFailed",
    "StillImageSource",
    "StreamLost",
    "StreamRecovered",
    "StreamStalled",
    "VideoFrame",
    "VideoSource",
    "VideoStats",
    "WatchdogOptions",
    "WatchedAudioSource",
    "WatchedVideoSource",
    "backoff_s",
    "monotonic_s",
]
