"""The assistant on the real emulator: the wake word spoken into its microphone, the
command endpointed, the skill chosen from the words, the answer read from the photo
its camera shows, spoken with espeak-ng and played on the emulator's speaker."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from glasses_sdk._bridge_device import connect_bridge
from glasses_sdk.assistant import (
    AnswerEvent,
    Assistant,
    AssistantEvent,
    AssistantOptions,
    DecisionEvent,
    SpeechEndEvent,
    SpeechStartEvent,
    WakeEvent,
)
from glasses_sdk.routing import Route
from tests.assistant.conftest import (
    CloudServer,
    emulator_showing,
    photo,
    spoken_command,
    write_wav,
)
from tests.conftest import need_binary

pytestmark = pytest.mark.timeout(120)

# Words of scikit-image's page photo ("Region-based segmentation / Let us first
# determine markers of the coins and the background ...").
PAGE_WORDS = ("segmentation", "markers", "background", "coins")


async def _wait_led_on(device: Any, timeout_s: float = 10.0) -> None:
    from glasses_sdk._device import LedState

    async with asyncio.timeout(timeout_s):
        while device.state.led is not LedState.ON:
            await asyncio.sleep(0.05)


def test_wake_word_to_spoken_answer_on_the_emulator(
    tmp_path: Path, cloud_server: CloudServer
) -> None:
    need_binary("espeak-ng")
    wav = write_wav(tmp_path / "command.wav", spoken_command("read the text"))

    async def run() -> tuple[list[AssistantEvent], list[AnswerEvent], int, int]:
        async with emulator_showing(photo("page"), wav, tmp_path / "emu") as emulator:
            device = await connect_bridge(f"{emulator.address}", insecure=True)
            cloud = cloud_server.client()
            try:
                await _wait_led_on(device)
                assistant = Assistant(device, cloud=cloud, options=AssistantOptions())
                events = assistant.events()
                answers: list[AnswerEvent] = []
                async_seen: list[AnswerEvent] = []

                async def on_answer_async(event: AnswerEvent) -> None:
                    async_seen.append(event)

                assistant.on(AnswerEvent, answers.append)
                assistant.on(AnswerEvent, on_answer_async)
                before = emulator.state()["speaker_samples"]
                runner = asyncio.create_task(assistant.run())
                seen: list[AssistantEvent] = []
                async with asyncio.timeout(90):
                    async for event in events:
                        seen.append(event)
                        if isinstance(event, AnswerEvent):
                            break
                await assistant.stop()
                await asyncio.wait_for(runner, 30)
                # The bridge sends speaker audio in the background: wait for it to land.
                async with asyncio.timeout(10):
                    while (
                        emulator.state()["speaker_samples"] - before
                        < len(answers[0].audio_pcm16) // 2
                    ):
                        await asyncio.sleep(0.05)
                played = emulator.state()["speaker_samples"] - before
                await asyncio.sleep(0)
                assert async_seen == answers
                return seen, answers, played, len(answers[0].audio_pcm16) // 2
            finally:
                await cloud.aclose()
                await device.close()

    seen, answers, played, answer_samples = asyncio.run(run())
    kinds = [type(e) for e in seen]
    assert kinds[0] is WakeEvent and seen[0].phrase == "hey glasses"  # type: ignore[union-attr]
    assert SpeechStartEvent in kinds and SpeechEndEvent in kinds
    assert kinds.index(WakeEvent) < kinds.index(SpeechStartEvent) < kinds.index(SpeechEndEvent)
    end = next(e for e in seen if isinstance(e, SpeechEndEvent))
    assert end.reason == "silence" and 0.5 < end.duration_s < 8
    answer = seen[-1]
    assert isinstance(answer, AnswerEvent) and answers == [answer]
    decisions = [e.decision for e in seen if isinstance(e, DecisionEvent)]
    assert [d.task for d in decisions] == ["intent", "read_text"], answer.transcript
    assert answer.skill == "read_text" and answer.transcript == "read the text"
    assert answer.source in (Route.LOCAL, Route.CLOUD), (answer.decision, answer.data)
    text = answer.text.lower()
    assert sum(word in text for word in PAGE_WORDS) >= 3, answer.text
    # Spoken: several seconds of 16 kHz speech, all of it played on the device speaker.
    assert answer_samples > 16_000 and played >= answer_samples
    stages = answer.latency_ms
    for stage in (
        "endpointing_wait", "intent", "capture", "privacy", "inference", "speech_synthesis",
        "first_audio", "total",
    ):  # fmt: skip
        assert stage in stages and stages[stage] >= 0.0, stages
    assert stages["total"] >= stages["endpointing_wait"] + stages["intent"]
    # The first words are handed to the speaker before the whole answer is synthesized.
    assert stages["first_audio"] < stages["total"]
    assert all(earlier.t_s <= later.t_s for earlier, later in itertools.pairwise(seen))
    assert answer.frame is not None and answer.frame.blurred
