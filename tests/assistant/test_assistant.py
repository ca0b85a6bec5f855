"""The Assistant's own surface on the real emulator: custom skills, events and
callbacks, taps and device state while running, and bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_bridge.protocol import Gesture
from glasses_sdk._exceptions import InvalidAudioError, InvalidConfigError, InvalidInputError
from glasses_sdk.assistant import (
    AnswerEvent,
    Assistant,
    AssistantEvent,
    AssistantOptions,
    DeviceStateEvent,
    ErrorEvent,
    RecordingSpeaker,
    SkillContext,
    SkillResult,
    SpeechEndEvent,
    WakeEvent,
)
from glasses_sdk.routing import Route
from tests.assistant.conftest import connect, emulator_showing, photo, silence, speak, write_wav
from tests.conftest import need_binary

pytestmark = pytest.mark.timeout(120)


async def _with_assistant(tmp_path: Path, body: Any, **options: Any) -> Any:
    """Run ``body(assistant, emulator)`` against an emulator showing the page photo,
    its microphone silent."""
    wav = write_wav(tmp_path / "quiet.wav", silence(2.0))
    async with emulator_showing(photo("page"), wav, tmp_path / "emu") as emulator:
        device = await connect(emulator)
        try:
            assistant = Assistant(
                device, options=AssistantOptions(**options), speaker=RecordingSpeaker()
            )
            return await body(assistant, emulator)
        finally:
            await device.close()


def test_custom_skill_by_typed_and_spoken_command(tmp_path: Path) -> None:
    need_binary("espeak-ng")

    async def body(assistant: Assistant, emulator: Any) -> list[AnswerEvent]:
        seen: list[SkillContext] = []

        @assistant.skill("time", phrases=("what time is it", "tell me the time"))
        async def tell_time(ctx: SkillContext) -> str:
            seen.append(ctx)
            return "It is noon."

        @assistant.skill("battery", phrases=("how is the battery",))
        async def battery(ctx: SkillContext) -> SkillResult:
            level = ctx.device.state.battery_percent
            return SkillResult(
                f"Battery at {level:.0f} percent.", Route.LOCAL, None, {"level": level}
            )

        @assistant.skill("burst", phrases=("take two photos",))
        async def burst(ctx: SkillContext) -> str:
            # The emulator refuses a photo within 50 ms of the last one: the second
            # comes from the camera stream instead.
            first, second = await ctx.photo(), await ctx.photo()
            return f"{first.width}x{first.height} and {second.width}x{second.height}"

        assert tell_time.__name__ == "tell_time"  # the decorator returns the function
        assert "time" in assistant.skills and "read_text" in assistant.skills
        typed = await assistant.handle_command(text="What time is it?")
        spoken = np.concatenate([silence(0.3), speak("what time is it"), silence(0.7)])
        heard = await assistant.handle_command(spoken)
        level = await assistant.handle_command(text="how is the battery")
        photos = await assistant.handle_command(text="take two photos")
        assert photos.skill == "burst" and photos.text == "640x480 and 640x480", photos
        assert seen[0].transcript == "What time is it?" and seen[0].command_audio is None
        assert seen[1].command_audio is not None and seen[1].frame is None
        return [typed, heard, level]

    typed, heard, level = asyncio.run(_with_assistant(tmp_path, body))
    for answer in (typed, heard):
        assert answer.skill == "time" and answer.text == "It is noon."
        assert answer.source is Route.LOCAL and len(answer.audio_pcm16) > 16_000
    assert heard.transcript == "what time is it" and heard.latency_ms["intent"] > 0
    assert level.skill == "battery" and level.data["level"] == pytest.approx(87, abs=2)


def test_skill_registration_is_checked() -> None:
    from glasses_sdk._device import FakeDevice
    from glasses_sdk.capture import FakeAudioSource

    assistant = Assistant(FakeDevice(name="fake", audio=FakeAudioSource(np.zeros(16, np.float32))))
    with pytest.raises(InvalidConfigError, match="async function"):
        assistant.skill("sync", phrases=("do it",))(lambda ctx: "no")  # type: ignore[type-var]
    with pytest.raises(InvalidConfigError, match="phrases"):
        assistant.skill("x", phrases="a string")
    with pytest.raises(InvalidConfigError, match="phrases"):
        assistant.skill("x", phrases=())
    with pytest.raises(InvalidConfigError, match="name"):
        assistant.skill("unknown", phrases=("a",))
    with pytest.raises(InvalidConfigError, match="Device"):
        Assistant(object())  # type: ignore[arg-type]


class _SignallingSpeaker(RecordingSpeaker):
    """A recording speaker that sets an event when it is given its first clip."""

    def __init__(self) -> None:
        super().__init__()
        self.first = asyncio.Event()

    async def play(self, pcm16: bytes, sample_rate_hz: int) -> None:
        await super().play(pcm16, sample_rate_hz)
        self.first.set()


def test_say_speaks_part_of_the_answer_while_the_skill_goes_on() -> None:
    need_binary("espeak-ng")
    from glasses_sdk._device import FakeDevice
    from glasses_sdk.assistant import synthesize
    from glasses_sdk.capture import FakeAudioSource

    async def scenario() -> tuple[list[AnswerEvent], _SignallingSpeaker]:
        speaker = _SignallingSpeaker()
        device = FakeDevice(name="fake", audio=FakeAudioSource(np.zeros(16, np.float32)))
        assistant = Assistant(device, speaker=speaker)

        @assistant.skill("count", phrases=("count to three",))
        async def count(ctx: SkillContext) -> str:
            ctx.say("One.")
            # Returns only once the first part has reached the speaker: a say() that
            # waited for the skill's answer would time out here.
            await asyncio.wait_for(speaker.first.wait(), 30)
            ctx.say("Two.")
            return "One.\nTwo.\nThree."

        @assistant.skill("change", phrases=("change your mind",))
        async def change(ctx: SkillContext) -> str:
            ctx.say("Maybe.")
            return "No."

        answers = [
            await assistant.handle_command(text="count to three"),
            await assistant.handle_command(text="change your mind"),
        ]
        return answers, speaker

    answers, speaker = asyncio.run(scenario())
    counted, changed = answers
    assert counted.text == "One.\nTwo.\nThree."
    # Each part once, in order: the said parts, then only what the answer added.
    clips = [synthesize(t, "en-us")[0] for t in ("One.", "Two.", "Three.", "Maybe.", "No.")]
    assert [p.pcm16 for p in speaker.played] == clips
    assert counted.audio_pcm16 == b"".join(clips[:3])
    # An answer that does not begin with what was said is spoken whole.
    assert changed.text == "No." and changed.audio_pcm16 == b"".join(clips[3:])
    assert counted.latency_ms["first_audio"] <= counted.latency_ms["total"]


def test_a_cancelled_command_stops_every_part_it_had_queued() -> None:
    need_binary("espeak-ng")
    from glasses_sdk._device import FakeDevice
    from glasses_sdk.capture import FakeAudioSource

    class HeldSpeaker(RecordingSpeaker):
        """Takes a clip, then holds the caller until released (a long clip playing)."""

        def __init__(self) -> None:
            super().__init__()
            self.playing = asyncio.Event()
            self.release = asyncio.Event()

        async def play(self, pcm16: bytes, sample_rate_hz: int) -> None:
            await super().play(pcm16, sample_rate_hz)
            self.playing.set()
            await self.release.wait()

    async def scenario() -> HeldSpeaker:
        speaker = HeldSpeaker()
        device = FakeDevice(name="fake", audio=FakeAudioSource(np.zeros(16, np.float32)))
        assistant = Assistant(device, speaker=speaker)

        @assistant.skill("recite", phrases=("recite the list",))
        async def recite(ctx: SkillContext) -> str:
            # Two sentences: spoken as two clips, the second after the first has played.
            ctx.say(
                "The first item on the list is bread. "
                "The second item, after it, is a bag of apples from the market."
            )
            ctx.say("The third item is milk.")
            await asyncio.Event().wait()  # until cancelled
            return "unreachable"

        command = asyncio.create_task(assistant.handle_command(text="recite the list"))
        await asyncio.wait_for(speaker.playing.wait(), 30)
        command.cancel()
        with pytest.raises(asyncio.CancelledError):
            await command
        speaker.release.set()
        for _ in range(20):  # let any part that survived the cancellation run
            await asyncio.sleep(0.01)
        return speaker

    speaker = asyncio.run(scenario())
    # Only the clip that was playing: neither the rest of that part nor the next one.
    assert len(speaker.played) == 1


def test_a_part_said_early_that_cannot_be_synthesized_names_its_skill(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from glasses_sdk._device import FakeDevice
    from glasses_sdk._exceptions import BackendUnavailableError
    from glasses_sdk.assistant import _assistant
    from glasses_sdk.capture import FakeAudioSource

    def broken(text: str, voice: str = "en-us") -> tuple[bytes, int]:
        raise BackendUnavailableError("speech synthesis", "espeak-ng failed: test")

    monkeypatch.setattr(_assistant, "synthesize", broken)

    async def scenario() -> tuple[AnswerEvent, list[ErrorEvent], RecordingSpeaker]:
        speaker = RecordingSpeaker()
        device = FakeDevice(name="fake", audio=FakeAudioSource(np.zeros(16, np.float32)))
        assistant = Assistant(device, speaker=speaker)
        errors: list[ErrorEvent] = []
        assistant.on(ErrorEvent, errors.append)

        @assistant.skill("greet", phrases=("say hello",))
        async def greet(ctx: SkillContext) -> str:
            ctx.say("Hello.")
            await asyncio.sleep(0.05)  # the part fails while the skill goes on
            return "Hello.\nHow are you?"

        answer = await assistant.handle_command(text="say hello")
        return answer, errors, speaker

    answer, errors, speaker = asyncio.run(scenario())
    # The answer still comes back as text; the failure is reported once, for its skill,
    # and nothing after it is spoken.
    assert answer.text == "Hello.\nHow are you?" and answer.audio_pcm16 == b""
    assert [(e.skill, "speech synthesis failed" in e.error) for e in errors] == [("greet", True)]
    assert speaker.played == []


def test_unknown_intent_and_failing_skills_are_spoken(tmp_path: Path) -> None:
    need_binary("espeak-ng")

    async def body(assistant: Assistant, emulator: Any) -> tuple[list[Any], list[Any]]:
        @assistant.skill("broken", phrases=("break everything",))
        async def broken(ctx: SkillContext) -> str:
            raise RuntimeError("bug in the app's skill")

        events = assistant.events()
        unknown = await assistant.handle_command(text="sing me a lullaby")
        failed = await assistant.handle_command(text="break everything")
        with pytest.raises(InvalidInputError):
            await assistant.handle_command()
        with pytest.raises(InvalidInputError):
            await assistant.handle_command(np.zeros(10, np.float32), text="both")
        with pytest.raises(InvalidInputError):
            await assistant.handle_command(text="   ")
        with pytest.raises(InvalidAudioError):
            await assistant.handle_command(np.zeros(10, np.int16))
        with pytest.raises(InvalidAudioError):
            await assistant.handle_command(np.full(10, np.nan, np.float32))
        await assistant.stop()
        return [unknown, failed], [e async for e in events]

    (unknown, failed), events = asyncio.run(_with_assistant(tmp_path, body))
    assert unknown.skill == "unknown" and unknown.text == "Sorry, I did not catch that."
    assert unknown.audio_pcm16 and unknown.source is Route.LOCAL
    assert failed.skill == "broken" and failed.source is Route.REFUSED and failed.audio_pcm16
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    # No error for the command nobody asked a skill for; one for the broken skill.
    assert [(e.skill, "bug in the app's skill" in e.error) for e in errors] == [("broken", True)]
    assert [e for e in events if isinstance(e, AnswerEvent)] == [unknown, failed]


def test_events_subscribers_callbacks_and_bounded_queues(tmp_path: Path) -> None:
    need_binary("espeak-ng")

    async def body(assistant: Assistant, emulator: Any) -> dict[str, Any]:
        slow = assistant.events()  # never read until the end: its queue overflows
        fast = assistant.events()
        got_sync: list[AnswerEvent] = []
        got_async: list[AnswerEvent] = []

        async def on_async(event: AnswerEvent) -> None:
            await asyncio.sleep(0)
            got_async.append(event)

        def raising(event: AssistantEvent) -> None:
            raise ValueError("a callback's bug")

        off = assistant.on(AnswerEvent, got_sync.append)
        assistant.on(AnswerEvent, on_async)
        assistant.on(AnswerEvent, raising)  # logged, does not stop anything
        first = await assistant.handle_command(text="how many fingers")
        off()
        second = await assistant.handle_command(text="how many toes")
        third = await assistant.handle_command(text="and the nose")
        await asyncio.sleep(0.05)
        await assistant.stop()
        return {
            "answers": [first, second, third],
            "sync": got_sync,
            "async": got_async,
            "fast": [e async for e in fast],
            "slow": [e async for e in slow],
            "dropped": assistant.dropped_events,
        }

    out = asyncio.run(_with_assistant(tmp_path, body, event_queue=2))
    first, second, third = out["answers"]
    assert out["sync"] == [first]
    assert out["async"] == [first, second, third]
    # Each subscriber has its own queue of 2: each dropped the third answer, which it
    # did not read in time, and both still saw the end.
    assert out["slow"] == [first, second] and out["fast"] == [first, second]
    assert out["dropped"] == 2


def test_run_listens_for_taps_and_reports_device_state(tmp_path: Path) -> None:
    need_binary("espeak-ng")

    async def body(assistant: Assistant, emulator: Any) -> list[AssistantEvent]:
        events = assistant.events()
        runner = asyncio.create_task(assistant.run())
        seen: list[AssistantEvent] = []
        async with asyncio.timeout(60):
            await assistant.listening()  # a tap before that would find nobody listening
            emulator.tap(Gesture.TAP)
            emulator._apply("battery_drain", 30.0)
            async for event in events:
                seen.append(event)
                kinds = {type(e) for e in seen}
                if SpeechEndEvent in kinds and DeviceStateEvent in kinds:
                    break
        await assistant.stop()
        await asyncio.wait_for(runner, 30)
        return seen

    seen = asyncio.run(_with_assistant(tmp_path, body, no_speech_timeout_s=1.0))
    wakes = [e for e in seen if isinstance(e, WakeEvent)]
    assert [(w.phrase, w.score) for w in wakes] == [("tap", 1.0)]
    end = next(e for e in seen if isinstance(e, SpeechEndEvent))
    assert end.reason == "no_speech" and end.duration_s >= 1.0
    states = [e.state for e in seen if isinstance(e, DeviceStateEvent)]
    assert states and states[-1].battery_percent is not None
    assert states[-1].battery_percent < 87 - 20
    # Nobody spoke: no command was answered.
    assert not any(isinstance(e, AnswerEvent) for e in seen)
