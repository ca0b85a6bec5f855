"""The assistant's options: what it listens for, how it answers, and its privacy rules."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from glasses_sdk._exceptions import InvalidConfigError

if TYPE_CHECKING:
    from glasses_sdk.routing import PolicyOptions

__all__ = ["AssistantOptions", "PrivacyOptions"]

_VOICE = re.compile(r"^[A-Za-z0-9_+\-]{1,40}$")
_DAY_S = 24 * 3600.0


def _finite(name: str, value: object, *, low: float, inclusive: bool = True) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value >= low if inclusive else value > low  # type: ignore[operator]
    if not ok:
        relation = ">=" if inclusive else ">"
        raise InvalidConfigError(
            f"{name}: expected a finite number {relation} {low}, got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class PrivacyOptions:
    """What may leave the device and what may stay on disk.

    ``blur_faces`` (on by default) blurs every detected face before a frame can be
    uploaded; turning it off needs a ``reason``, which the privacy filter logs at WARNING.
    ``margin`` grows each face box by that fraction on every side (BlazeFace's boxes
    leave out hair, ears and chin). ``face_model`` is BlazeFace ``"full"`` (finds small,
    distant faces; the default, since a missed face leaks) or ``"short"`` (faster).

    Nothing is written to disk unless ``keep_media``, and then only under ``media_dir``
    (required: the SDK never picks a place on disk by itself), where files older than
    ``retention_s`` are deleted.
    """

    blur_faces: bool = True
    margin: float = 0.25
    keep_media: bool = False
    retention_s: float = _DAY_S
    media_dir: Path | None = None
    reason: str | None = None
    face_model: str = "full"
    face_score_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.blur_faces, bool) or not isinstance(self.keep_media, bool):
            raise InvalidConfigError("blur_faces and keep_media: expected True or False")
        if not self.blur_faces and not (isinstance(self.reason, str) and self.reason.strip()):
            raise InvalidConfigError(
                "blur_faces=False: expected a reason (PrivacyOptions(blur_faces=False, "
                "reason='...')): frames with faces would leave the device, and the reason "
                "is logged"
            )
        _finite("margin", self.margin, low=0.0)
        if self.margin > 2.0:
            raise InvalidConfigError(f"margin: expected a fraction in [0, 2], got {self.margin}")
        _finite("retention_s", self.retention_s, low=0.0, inclusive=False)
        if self.keep_media and self.media_dir is None:
            raise InvalidConfigError(
                "keep_media=True: expected media_dir, the folder where photos are kept"
            )
        if self.face_model not in ("short", "full"):
            raise InvalidConfigError(
                f"face_model: expected 'short' or 'full', got {self.face_model!r}"
            )
        _finite("face_score_threshold", self.face_score_threshold, low=0.0, inclusive=False)
        if self.face_score_threshold >= 1.0:
            raise InvalidConfigError(
                f"face_score_threshold: expected a value in (0, 1), got {self.face_score_threshold}"
            )


@dataclass(frozen=True, slots=True)
class AssistantOptions:
    """How the assistant listens, decides and answers.

    ``wake_words`` are registry names (``"hey_glasses"`` and ``"hey-glasses"`` are the
    same model) or folders written by ``glasses wake train``. ``deadline_ms`` is the
    budget of one command from the end of speech to the answer; routing decides within
    it. ``speak`` turns spoken answers on (synthesized with espeak-ng in ``voice``).
    ``policy`` configures the routing policy (its defaults when None).
    ``ocr_confidence_threshold``: below this mean line confidence, text reading asks the
    cloud. ``heavy_page_side_px``: a photo whose longer side exceeds it is read by the
    cloud at full resolution (the local reader works at ``ocr_max_side_px``).
    ``trailing_silence_ms``, ``max_command_s`` and ``no_speech_timeout_s`` end a command
    (silero VAD decides what is speech). ``intent_threshold`` is the least phrase-match
    score (0..1) that selects a skill. ``event_queue`` bounds each events() subscriber.
    """

    wake_words: tuple[str, ...] = ("hey_glasses",)
    language: str = "en"
    deadline_ms: float = 5000.0
    speak: bool = True
    voice: str = "en-us"
    privacy: PrivacyOptions = field(default_factory=PrivacyOptions)
    policy: PolicyOptions | None = None
    ocr_confidence_threshold: float = 0.8
    ocr_max_side_px: int = 640
    heavy_page_side_px: int = 1600
    wake_sensitivity: float = 0.5
    trailing_silence_ms: float = 700.0
    max_command_s: float = 8.0
    no_speech_timeout_s: float = 3.0
    intent_threshold: float = 0.6
    max_answer_chars: int = 600
    event_queue: int = 256

    def __post_init__(self) -> None:
        if not self.wake_words or not all(isinstance(w, str) and w for w in self.wake_words):
            raise InvalidConfigError(
                f"wake_words: expected a non-empty tuple of model names, got {self.wake_words!r}"
            )
        if self.language != "en":
            raise InvalidConfigError(
                f"language: expected 'en' (the only language of the local speech models), "
                f"got {self.language!r}"
            )
        _finite("deadline_ms", self.deadline_ms, low=0.0, inclusive=False)
        if not _VOICE.match(self.voice):
            raise InvalidConfigError(
                f"voice: expected an espeak-ng voice name such as 'en-us' or 'en+f3', "
                f"got {self.voice!r}"
            )
        if not isinstance(self.privacy, PrivacyOptions):
            raise InvalidConfigError(
                f"privacy: expected PrivacyOptions, got {type(self.privacy).__name__}"
            )
        for name in ("ocr_confidence_threshold", "intent_threshold", "wake_sensitivity"):
            value = getattr(self, name)
            _finite(name, value, low=0.0)
            if value > 1.0:
                raise InvalidConfigError(f"{name}: expected a value in [0, 1], got {value}")
        for name in ("trailing_silence_ms", "max_command_s", "no_speech_timeout_s"):
            _finite(name, getattr(self, name), low=0.0, inclusive=False)
        for name in ("ocr_max_side_px", "heavy_page_side_px", "max_answer_chars", "event_queue"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidConfigError(f"{name}: expected a positive integer, got {value!r}")
