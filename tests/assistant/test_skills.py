"""The built-in skills on the real emulator with the real cloud server: privacy of
uploads, the LED rule, local-or-cloud text reading, and what happens when the cloud
cannot be reached."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from glasses_sdk._device import LedState
from glasses_sdk._exceptions import InvalidConfigError, LedUnavailableError
from glasses_sdk.assistant import (
    AnswerEvent,
    Assistant,
    AssistantOptions,
    DecisionEvent,
    ErrorEvent,
    PrivacyOptions,
    RecordingSpeaker,
    check_led,
    synthesize,
)
from glasses_sdk.assistant._assistant import _speech_parts
from glasses_sdk.routing import Route
from tests.assistant.conftest import (
    CloudServer,
    connect,
    emulator_showing,
    fine_detail,
    photo,
    silence,
    speak,
    unreachable_client,
    write_wav,
)
from tests.conftest import need_binary

pytestmark = pytest.mark.timeout(120)

PAGE_WORDS = ("segmentation", "markers", "background", "coins")


def _page_words(text: str) -> int:
    return sum(word in text.lower() for word in PAGE_WORDS)


async def _ask(
    tmp_path: Path,
    image: str,
    commands: list[str | NDArray[np.float32]],
    *,
    cloud: Any,
    options: AssistantOptions | None = None,
    before: Any = None,
    deadline_ms: float = 30_000,
    decisions: list[DecisionEvent] | None = None,
) -> tuple[list[AnswerEvent], list[ErrorEvent], RecordingSpeaker, NDArrayU8]:
    """Typed commands to an assistant on an emulator showing ``image``; returns the
    answers, the errors, the speaker and the frame the camera streamed."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    wav = write_wav(tmp_path / "quiet.wav", silence(2.0))
    async with emulator_showing(photo(image), wav, tmp_path / "emu") as emulator:
        device = await connect(emulator)
        try:
            streamed = (await asyncio.wait_for(device.video.read(), 10)).image
            if before is not None:
                await before(emulator, device)
            speaker = RecordingSpeaker()
            # A generous deadline: this machine's two cores are shared with other jobs,
            # and the server's first request loads its models.
            options = replace(options or AssistantOptions(), deadline_ms=deadline_ms)
            assistant = Assistant(
                device, cloud=cloud, options=options or AssistantOptions(), speaker=speaker
            )
            errors: list[ErrorEvent] = []
            assistant.on(ErrorEvent, errors.append)
            if decisions is not None:
                assistant.on(DecisionEvent, decisions.append)
            answers = [
                await (
                    assistant.handle_command(text=c)
                    if isinstance(c, str)
                    else assistant.handle_command(c)
                )
                for c in commands
            ]
            return answers, errors, speaker, streamed
        finally:
            await device.close()
            if cloud is not None:
                await cloud.aclose()


NDArrayU8 = Any


def test_a_face_reaches_the_cloud_blurred(tmp_path: Path, cloud_server: CloudServer) -> None:
    need_binary("espeak-ng")
    sent_before = len(cloud_server.faces.images)
    answers, errors, speaker, streamed = asyncio.run(
        _ask(tmp_path, "astronaut", ["describe the scene"], cloud=cloud_server.client())
    )
    answer = answers[0]
    assert errors == []
    assert answer.skill == "describe_scene" and answer.source is Route.CLOUD
    assert answer.frame is not None and answer.frame.blurred and len(answer.frame.faces) == 1
    received = cloud_server.faces.images[sent_before:]
    assert len(received) == 1 and received[0].shape == answer.frame.image.shape
    box = answer.frame.faces[0]
    # The face in what the server got has lost its detail; the camera's frame (same
    # size, same scene) had it.
    assert fine_detail(received[0], box) < 0.25 * fine_detail(streamed, box)
    # ...and the server's own detector finds no face in it.
    assert answer.data["faces_seen"] == 0
    assert "Faces seen: 0" in answer.text
    assert b"".join(p.pcm16 for p in speaker.played) == answer.audio_pcm16 != b""


def test_turning_the_blur_off_needs_a_reason_and_is_logged(
    tmp_path: Path, cloud_server: CloudServer, caplog: pytest.LogCaptureFixture
) -> None:
    need_binary("espeak-ng")
    with pytest.raises(InvalidConfigError, match="reason"):
        PrivacyOptions(blur_faces=False)
    with pytest.raises(InvalidConfigError, match="reason"):
        PrivacyOptions(blur_faces=False, reason="  ")
    reason = "face-recognition research app, consent collected in the studio"
    options = AssistantOptions(privacy=PrivacyOptions(blur_faces=False, reason=reason))
    with caplog.at_level(logging.WARNING, logger="glasses_sdk.assistant.privacy"):
        answers, _, _, _ = asyncio.run(
            _ask(
                tmp_path,
                "astronaut",
                ["describe the scene"],
                cloud=cloud_server.client(),
                options=options,
            )
        )
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and reason in r.message]
    assert len(warnings) == 1 and "face blurring is OFF" in warnings[0].message
    answer = answers[0]
    assert answer.frame is not None and not answer.frame.blurred
    assert answer.data["faces_seen"] == 1  # the face did reach the server, as configured


def test_read_text_locally_then_by_the_cloud_when_confidence_is_low(
    tmp_path: Path, cloud_server: CloudServer
) -> None:
    need_binary("espeak-ng")
    sure = AssistantOptions(ocr_confidence_threshold=0.0)
    answers, errors, speaker, _ = asyncio.run(
        _ask(tmp_path / "a", "page", ["read the text"], cloud=cloud_server.client(), options=sure)
    )
    local = answers[0]
    assert errors == [] and local.source is Route.LOCAL and _page_words(local.text) >= 3
    assert local.decision is not None and local.decision.route is Route.LOCAL
    assert "network" not in local.latency_ms and local.latency_ms["inference"] > 0
    lines = local.data["lines"]
    assert lines and all("polygon" in line for line in lines)
    # Every line cleared the threshold, so each was spoken as it was read: one clip at
    # least per line, each once, and together the answer's audio.
    assert local.text == "\n".join(line["text"] for line in lines)
    assert len(speaker.played) >= len(lines)
    assert b"".join(p.pcm16 for p in speaker.played) == local.audio_pcm16

    # No local reading reaches a confidence of 1.0: the policy sends it to the cloud.
    strict = AssistantOptions(ocr_confidence_threshold=1.0)
    answers, errors, speaker, _ = asyncio.run(
        _ask(tmp_path / "b", "page", ["read the text"], cloud=cloud_server.client(), options=strict)
    )
    cloud = answers[0]
    assert errors == [] and cloud.source is Route.CLOUD and _page_words(cloud.text) >= 3
    # The policy would not keep the first line on the device, so no local line was said
    # early: what was spoken is the cloud's answer, once.
    spoken = [synthesize(part)[0] for part in _speech_parts(cloud.text[:600])]
    assert [p.pcm16 for p in speaker.played] == spoken

    # Confident lines on a device low on battery: the policy would send the reading to
    # the cloud, so none is said early either.
    async def low_battery(emulator: Any, device: Any) -> None:
        emulator._apply("battery_percent", 8.0)
        async with asyncio.timeout(10):
            while (device.state.battery_percent or 100) > 10:
                await asyncio.sleep(0.05)

    answers, errors, speaker, _ = asyncio.run(
        _ask(
            tmp_path / "c",
            "page",
            ["read the text"],
            cloud=cloud_server.client(),
            options=sure,
            before=low_battery,
        )
    )
    saving = answers[0]
    assert errors == [] and saving.source is Route.CLOUD, saving.decision
    assert saving.decision is not None and "battery" in " ".join(saving.decision.reasons)
    spoken = [synthesize(part)[0] for part in _speech_parts(saving.text[:600])]
    assert [p.pcm16 for p in speaker.played] == spoken
    assert cloud.decision is not None and "confidence" in " ".join(cloud.decision.reasons)
    assert cloud.latency_ms["network"] >= 0 and cloud.latency_ms["server"] > 0


def test_cloud_unreachable_read_text_degrades_and_describe_scene_says_so(
    tmp_path: Path,
) -> None:
    need_binary("espeak-ng")
    options = AssistantOptions(ocr_confidence_threshold=1.0)
    answers, errors, speaker, _ = asyncio.run(
        _ask(
            tmp_path,
            "page",
            ["read the text", "describe the scene"],
            cloud=unreachable_client(),
            options=options,
        )
    )
    read, describe = answers
    assert read.skill == "read_text" and read.source is Route.LOCAL_DEGRADED
    assert _page_words(read.text) >= 3 and read.audio_pcm16
    assert "cloud_error" in read.data or (
        read.decision is not None and read.decision.route is Route.LOCAL_DEGRADED
    )
    assert describe.skill == "describe_scene" and describe.source is Route.REFUSED
    assert describe.text.startswith("Sorry, I cannot describe the scene")
    played = b"".join(p.pcm16 for p in speaker.played)
    assert describe.audio_pcm16 and played == read.audio_pcm16 + describe.audio_pcm16
    # The degraded reading is an answer, not an error; the failed description is both.
    assert [e.skill for e in errors] == ["describe_scene"]
    assert "cloud" in errors[0].error


def test_capture_is_refused_when_the_led_cannot_be_shown(tmp_path: Path) -> None:
    need_binary("espeak-ng")

    async def block_led(emulator: Any, device: Any) -> None:
        emulator.set_led_blocked(True)
        async with asyncio.timeout(10):
            while device.state.led is not LedState.OFF:
                await asyncio.sleep(0.05)
        with pytest.raises(LedUnavailableError, match="LED"):
            check_led(device)

    answers, errors, _speaker, _ = asyncio.run(
        _ask(
            tmp_path,
            "page",
            ["take a photo", "read the text"],
            cloud=None,
            before=block_led,
        )
    )
    for answer in answers:
        assert answer.source is Route.REFUSED and answer.frame is None
        assert answer.data["error"] == "LedUnavailableError"
        assert "light cannot be shown" in answer.text and answer.audio_pcm16
    assert [e.skill for e in errors] == ["take_photo", "read_text"]
    assert all("LED" in e.error for e in errors)


def test_take_photo_keeps_nothing_by_default_and_honours_retention(tmp_path: Path) -> None:
    need_binary("espeak-ng")
    answers, _, _, _ = asyncio.run(_ask(tmp_path / "a", "astronaut", ["take a photo"], cloud=None))
    assert answers[0].data["path"] is None and answers[0].frame is not None
    assert "1 face blurred" in answers[0].text

    media = tmp_path / "media"
    media.mkdir()
    old = media / "photo-1.jpg"
    old.write_bytes(b"old")
    past = time.time() - 3600
    os.utime(old, (past, past))
    keep = AssistantOptions(
        privacy=PrivacyOptions(keep_media=True, media_dir=media, retention_s=600)
    )
    answers, _, _, _ = asyncio.run(
        _ask(tmp_path / "b", "astronaut", ["take a photo"], cloud=None, options=keep)
    )
    path = Path(answers[0].data["path"])
    assert path.parent == media and path.is_file() and not old.exists()
    assert path.stat().st_mode & 0o077 == 0
    from glasses_sdk.preprocess import decode_jpeg

    frame = answers[0].frame
    assert frame is not None
    kept = decode_jpeg(path.read_bytes())
    assert kept.shape == frame.image.shape
    assert fine_detail(kept, frame.faces[0]) < 2.0  # kept with the face blurred too


def test_transcribe_goes_to_the_cloud_and_low_battery_sends_intent_there(
    tmp_path: Path, cloud_server: CloudServer
) -> None:
    need_binary("espeak-ng")
    command = np.concatenate([silence(0.3), speak("transcribe"), silence(0.7)])
    answers, errors, _, _ = asyncio.run(
        _ask(tmp_path / "a", "page", [command], cloud=cloud_server.client())
    )
    answer = answers[0]
    assert errors == [] and answer.transcript == "transcribe"
    assert answer.skill == "transcribe" and answer.source is Route.CLOUD
    assert isinstance(answer.data["transcript"], str) and answer.text
    assert answer.latency_ms["network"] >= 0 and answer.latency_ms["intent"] > 0

    async def low_battery(emulator: Any, device: Any) -> None:
        emulator._apply("battery_percent", 8.0)
        async with asyncio.timeout(10):
            while (device.state.battery_percent or 100) > 10:
                await asyncio.sleep(0.05)

    decisions: list[DecisionEvent] = []
    answers, _, _, _ = asyncio.run(
        _ask(
            tmp_path / "b",
            "page",
            [command],
            cloud=cloud_server.client(),
            before=low_battery,
            decisions=decisions,
        )
    )
    intent = decisions[0].decision
    assert intent.task == "intent" and intent.route is Route.CLOUD
    assert any("battery" in reason for reason in intent.reasons), intent.reasons
    # Whatever the server's free decoding heard in the synthetic voice, it came back
    # over the network.
    assert answers[0].latency_ms["network"] > 0 and answers[0].transcript is not None
