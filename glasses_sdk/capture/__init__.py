"""Sources of camera frames and microphone audio, on one monotonic clock."""

from glasses_sdk.capture._base import (
    AudioChunk,
    AudioSource,
    FakeAudioSource,
    FakeVideoSource,
    VideoFrame,
    VideoSource,
    monotonic_s,
)

__all__ = [
    "AudioChunk",
    "AudioSource",
    "FakeAudioSource",
    "FakeVideoSource",
    "VideoFrame",
    "VideoSource",
    "monotonic_s",
]
