"""glasses-sdk: AI on camera-and-microphone smart glasses, at the edge and in the cloud.

The public API is listed here once; everything else lives in private modules.
``connect(uri)`` gives a :class:`Device` for this computer (``"local"``) or recordings
(``"file:VIDEO?audio=WAV"``). Subpackages: :mod:`glasses_sdk.capture` (sources),
:mod:`glasses_sdk.preprocess` (the vectorized core), :mod:`glasses_sdk.inference`
(on-device models), :mod:`glasses_sdk.routing` (local-or-cloud decisions, the cloud
client and its durable outbox), :mod:`glasses_sdk.assistant` (wake word to spoken
answer), :mod:`glasses_sdk.cloud` (the fallback server, extra ``cloud``),
:mod:`glasses_sdk.data` (real test data). Routing and the assistant are imported from
their subpackages, not re-exported here: they load httpx and the models' code, which
would add about half a second to every ``import glasses_sdk``.
"""

from glasses_sdk._bridge_device import BridgeDevice, connect_bridge
from glasses_sdk._connect import connect
from glasses_sdk._device import Device, DeviceState, FakeDevice, LedState
from glasses_sdk._exceptions import (
    BackendUnavailableError,
    CaptureError,
    ChecksumMismatchError,
    CloudRequestError,
    CloudUnavailableError,
    DataNotFoundError,
    DeadlineExceededError,
    GlassesError,
    InvalidAudioError,
    InvalidConfigError,
    InvalidFrameError,
    InvalidInputError,
    LedUnavailableError,
    MissingDependencyError,
    ModelBuildError,
    ModelError,
    ModelNotBuiltError,
    NoCameraError,
    NoMicrophoneError,
    OutboxFullError,
    OverloadedError,
    SourceClosedError,
    StreamLostError,
    UnsupportedUriError,
    WakeWordTrainingError,
)
from glasses_sdk.capture._audio import FileAudioSource, MicrophoneSource
from glasses_sdk.capture._base import (
    AudioChunk,
    AudioSource,
    FakeAudioSource,
    FakeVideoSource,
    VideoFrame,
    VideoSource,
)
from glasses_sdk.capture._camera import CameraSource, StillImageSource
from glasses_sdk.capture._events import CaptureEvent
from glasses_sdk.capture._watchdog import WatchdogOptions

__version__ = "0.1.0"

__all__ = [
    "AudioChunk",
    "AudioSource",
    "BackendUnavailableError",
    "BridgeDevice",
    "CameraSource",
    "CaptureError",
    "CaptureEvent",
    "ChecksumMismatchError",
    "CloudRequestError",
    "CloudUnavailableError",
    "DataNotFoundError",
    "DeadlineExceededError",
    "Device",
    "DeviceState",
    "FakeAudioSource",
    "FakeDevice",
    "FakeVideoSource",
    "FileAudioSource",
    "GlassesError",
    "InvalidAudioError",
    "InvalidConfigError",
    "InvalidFrameError",
    "InvalidInputError",
    "LedState",
    "LedUnavailableError",
    "MicrophoneSource",
    "MissingDependencyError",
    "ModelBuildError",
    "ModelError",
    "ModelNotBuiltError",
    "NoCameraError",
    "NoMicrophoneError",
    "OutboxFullError",
    "OverloadedError",
    "SourceClosedError",
    "StillImageSource",
    "StreamLostError",
    "UnsupportedUriError",
    "VideoFrame",
    "VideoSource",
    "WakeWordTrainingError",
    "WatchdogOptions",
    "connect",
    "connect_bridge",
]
