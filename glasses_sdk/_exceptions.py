"""The exceptions of glasses_sdk, in one tree.

::

    GlassesError                      base of everything the SDK raises on purpose
    ├── InvalidInputError (ValueError)  input from outside is not what was expected
    │   ├── InvalidFrameError             an image/frame: dtype, shape, empty, size
    │   ├── InvalidAudioError             PCM: dtype, shape, non-finite samples, rate
    │   └── InvalidConfigError            options or a config file that cannot work
    │       └── UnsupportedUriError           connect() got a scheme it cannot open (yet)
    ├── MissingDependencyError (ImportError)  an optional extra is not installed
    ├── DataNotFoundError (FileNotFoundError) a test/demo data file is not installed
    ├── SourceClosedError             reading from a closed source or device
    ├── CaptureError                  a camera or microphone cannot deliver
    │   ├── NoCameraError                 no camera at that index, file or URL
    │   ├── NoMicrophoneError             no audio input device (or not that one)
    │   ├── StreamLostError               a live stream stopped: unplugged, connection closed
    │   └── LedUnavailableError           the capture LED cannot be shown: capture refused
    ├── DeadlineExceededError (TimeoutError)  a request's deadline cannot be met
    ├── OverloadedError               a bounded work queue is full: retry later
    │   └── OutboxFullError               the durable outbox is at its cap (policy reject_new)
    ├── BackendUnavailableError       a model backend is not loaded or not configured
    │   └── CloudUnavailableError         the cloud's circuit is open, or it stayed unreachable
    ├── CloudRequestError             the cloud refused a request for good (a 4xx not retried)
    └── ModelError                    a model file cannot be built, found or run
        ├── ModelNotBuiltError (FileNotFoundError)  a built model file is missing
        ├── ModelBuildError               `glasses models build` cannot make a file
        │   └── ChecksumMismatchError       a source file's sha256 is not the pinned one
        └── WakeWordTrainingError         `glasses wake train` cannot synthesize or train

Every message says what was expected and what was received, so that a caller can fix
the input without reading our code. Foreign exceptions (OpenCV's ``cv2.error``, NumPy's
casting errors) are translated at the boundary into these.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendUnavailableError",
    "CaptureError",
    "ChecksumMismatchError",
    "CloudRequestError",
    "CloudUnavailableError",
    "DataNotFoundError",
    "DeadlineExceededError",
    "GlassesError",
    "InvalidAudioError",
    "InvalidConfigError",
    "InvalidFrameError",
    "InvalidInputError",
    "LedUnavailableError",
    "MissingDependencyError",
    "ModelBuildError",
    "ModelError",
    "ModelNotBuiltError",
    "NoCameraError",
    "NoMicrophoneError",
    "OutboxFullError",
    "OverloadedError",
    "SourceClosedError",
    "StreamLostError",
    "UnsupportedUriError",
    "WakeWordTrainingError",
]


class GlassesError(Exception):
    """Base class of every error the SDK raises on purpose."""


class InvalidInputError(GlassesError, ValueError):
    """Input from outside the SDK is not what was expected; the message says what was."""


class InvalidFrameError(InvalidInputError):
    """An image or video frame has the wrong dtype, shape or size, or is empty."""


class InvalidAudioError(InvalidInputError):
    """Audio has the wrong dtype or shape, non-finite samples, or an unsupported rate."""


class InvalidConfigError(InvalidInputError):
    """Options or a configuration that cannot work together."""


class UnsupportedUriError(InvalidConfigError):
    """``connect()`` was given a URI whose scheme it cannot open; the message lists those it can."""


class MissingDependencyError(GlassesError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package!r} is not installed; install it with: pip install 'glasses-sdk[{extra}]'"
        )
        self.package = package
        self.extra = extra


class DataNotFoundError(GlassesError, FileNotFoundError):
    """A data file (test photo, speech recording, model) is not installed."""


class SourceClosedError(GlassesError):
    """A source or device was read after it was closed."""


class DeadlineExceededError(GlassesError, TimeoutError):
    """A request's deadline (``X-Deadline-Ms``) passed, or cannot be met, before its answer."""


class OverloadedError(GlassesError):
    """A bounded work queue is full; ``retry_after_s`` says when to try again."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BackendUnavailableError(GlassesError):
    """A model backend (speech, faces, text, embeddings, upstream) is not loaded or set up."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"the {backend} backend is unavailable: {reason}")
        self.backend = backend
        self.reason = reason


class OutboxFullError(OverloadedError):
    """The durable outbox holds its cap of items or bytes and its policy is ``reject_new``."""


class CloudUnavailableError(BackendUnavailableError):
    """The cloud cannot be reached: its circuit breaker is open, or every attempt failed.

    ``attempts`` is how many were sent (0 when the breaker refused at once);
    ``retry_after_s`` is when the breaker will let a probe through, if known.
    """

    def __init__(
        self, reason: str, *, attempts: int = 0, retry_after_s: float | None = None
    ) -> None:
        super().__init__("cloud", reason)
        self.attempts = attempts
        self.retry_after_s = retry_after_s


class CloudRequestError(GlassesError):
    """The cloud answered with a 4xx that a retry cannot change (bad input, auth, 422).

    ``status`` is the HTTP status and ``error`` the server's JSON ``error`` object
    (``type``, ``message``, ``code``, ``param``), or ``{}`` when it sent none.
    """

    def __init__(self, status: int, error: dict[str, Any], *, path: str = "") -> None:
        message = str(error.get("message") or "no error message")
        super().__init__(f"the cloud refused {path or 'the request'} with {status}: {message}")
        self.status = status
        self.error = error


class CaptureError(GlassesError):
    """A camera or microphone cannot be opened, or stopped delivering."""


class NoCameraError(CaptureError):
    """No camera could be opened at the given index, file or URL; never replaced by a fake."""


class NoMicrophoneError(CaptureError):
    """No audio input device could be opened (none present, or not the one asked for)."""


class StreamLostError(CaptureError):
    """A live stream stopped delivering (device unplugged, connection closed, read failed)."""


class LedUnavailableError(CaptureError):
    """The device reports that its capture LED cannot be shown (off while streaming, or
    blocked), so the SDK refuses to capture: bystanders must see when the camera is on."""


class ModelError(GlassesError):
    """A model cannot be built, found or run (the message names the model and file)."""


class ModelNotBuiltError(ModelError, FileNotFoundError):
    """A built model file is missing; ``glasses models build`` makes it."""


class ModelBuildError(ModelError):
    """Building a model failed: a source file is missing, or a conversion failed."""


class ChecksumMismatchError(ModelBuildError):
    """A source weight file's sha256 differs from the one pinned in the manifest."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}; "
            "the package may have changed: check its pin in models/sources.txt"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


class WakeWordTrainingError(ModelError):
    """Training a wake word failed: a synthesizer is missing or failed, or data is too few."""
