"""glasses-sdk: AI on camera-and-microphone smart glasses, at the edge and in the cloud.

The public API is listed here once; everything else lives in private modules.
Subpackages: :mod:`glasses_sdk.capture` (sources), :mod:`glasses_sdk.preprocess` (the
vectorized core), :mod:`glasses_sdk.data` (real test data).
"""

from glasses_sdk._device import Device, DeviceState, FakeDevice, LedState
from glasses_sdk._exceptions import (
    DataNotFoundError,
    GlassesError,
    InvalidAudioError,
    InvalidConfigError,
    InvalidFrameError,
    InvalidInputError,
    MissingDependencyError,
    SourceClosedError,
)
from glasses_sdk.capture._base import (
    AudioChunk,
    AudioSource,
    FakeAudioSource,
    FakeVideoSource,
    VideoFrame,
    VideoSource,
)

__version__ = "0.1.0"

__all__ = [
    "AudioChunk",
    "AudioSource",
    "DataNotFoundError",
    "Device",
    "DeviceState",
    "FakeAudioSource",
    "FakeDevice",
    "FakeVideoSource",
    "GlassesError",
    "InvalidAudioError",
    "InvalidConfigError",
    "InvalidFrameError",
    "InvalidInputError",
    "LedState",
    "MissingDependencyError",
    "SourceClosedError",
    "VideoFrame",
    "VideoSource",
]
