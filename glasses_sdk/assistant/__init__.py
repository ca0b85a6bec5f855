"""The assistant an app developer meets: wake word → endpointing → skill → spoken answer.

:class:`Assistant` listens on a :class:`~glasses_sdk.Device` for the wake word (or a
tap), ends the command with silero VAD, finds the skill the command asks for, lets the
routing policy decide per request whether the device or the cloud answers, and speaks
the answer with espeak-ng on the device speaker. Frames leave the device only through
the :class:`PrivacyFilter` (faces blurred, on by default); nothing is kept on disk
unless asked, and then with a retention limit; capture is refused when the device says
its capture LED cannot be shown. The app follows along with :meth:`Assistant.events`
or :meth:`Assistant.on`.
"""

from __future__ import annotations

from glasses_sdk.assistant._assistant import Assistant
from glasses_sdk.assistant._events import (
    AnswerEvent,
    AssistantEvent,
    DecisionEvent,
    DeviceStateEvent,
    ErrorEvent,
    SpeechEndEvent,
    SpeechStartEvent,
    WakeEvent,
)
from glasses_sdk.assistant._intent import IntentMatch, match_intent
from glasses_sdk.assistant._options import AssistantOptions, PrivacyOptions
from glasses_sdk.assistant._privacy import FilteredFrame, MediaStore, PrivacyFilter
from glasses_sdk.assistant._skills import BUILTIN_PHRASES, SkillContext, SkillResult, check_led
from glasses_sdk.assistant._speech import (
    SPEECH_SAMPLE_RATE_HZ,
    BridgeSpeaker,
    PlayedAudio,
    RecordingSpeaker,
    SoundDeviceSpeaker,
    Speaker,
    synthesize,
)

__all__ = [
    "AnswerEvent",
    "Assistant",
    "AssistantEvent",
    "AssistantOptions",
    "BUILTIN_PHRASES",
    "BridgeSpeaker",
    "DecisionEvent",
    "DeviceStateEvent",
    "ErrorEvent",
    "FilteredFrame",
    "IntentMatch",
    "MediaStore",
    "PlayedAudio",
    "PrivacyFilter",
    "PrivacyOptions",
    "RecordingSpeaker",
    "SPEECH_SAMPLE_RATE_HZ",
    "SkillContext",
    "SkillResult",
    "SoundDeviceSpeaker",
    "Speaker",
    "SpeechEndEvent",
    "SpeechStartEvent",
    "WakeEvent",
    "check_led",
    "match_intent",
    "synthesize",
]
