"""The exceptions of glasses_sdk, in one tree.

::

    GlassesError                      base of everything the SDK raises on purpose
    ├── InvalidInputError (ValueError)  input from outside is not what was expected
    │   ├── InvalidFrameError             an image/frame: dtype, shape, empty, size
    │   ├── InvalidAudioError             PCM: dtype, shape, non-finite samples, rate
    │   └── InvalidConfigError            options or a config file that cannot work
    ├── MissingDependencyError (ImportError)  an optional extra is not installed
    ├── DataNotFoundError (FileNotFoundError) a test/demo data file is not installed
    └── SourceClosedError             reading from a closed source or device

Every message says what was expected and what was received, so that a caller can fix
the input without reading our code. Foreign exceptions (OpenCV's ``cv2.error``, NumPy's
casting errors) are translated at the boundary into these.
"""

from __future__ import annotations

__all__ = [
    "DataNotFoundError",
    "GlassesError",
    "InvalidAudioError",
    "InvalidConfigError",
    "InvalidFrameError",
    "InvalidInputError",
    "MissingDependencyError",
    "SourceClosedError",
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
