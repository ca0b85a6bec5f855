"""The demo's pieces: the scenario assembled from real media, and the report's section.

The whole demo (emulator, cloud server, assistant, report) runs once, through the CLI,
in ``tests/test_cli.py::test_demo_writes_a_report_with_every_picture``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from dataclasses import replace
from pathlib import Path

import cv2
import pytest

from firmware_bridge.emulator._scenario import load_scenario
from glasses_sdk import data
from glasses_sdk._demo_scenario import (
    DemoScene,
    assemble_demo,
    default_script_path,
    load_demo_script,
)
from glasses_sdk._exceptions import InvalidConfigError
from tests.conftest import need_binary, need_data

pytestmark = pytest.mark.timeout(180)


def _need_media() -> None:
    need_binary("espeak-ng")
    need_binary("flite")
    need_data(lambda: data.photo_path("astronaut"))
    need_data(data.pedestrian_video_path)


def test_the_shipped_script_places_each_command_on_its_picture() -> None:
    script = load_demo_script()
    pictures = [scene.picture for scene in script.scenes]
    assert "data:pedestrian" in pictures
    assert any(p.startswith("data:opencv:") for p in pictures)  # a book page
    assert "data:photo:astronaut" in pictures  # a face
    skills = {scene.expect_skill for scene in script.scenes}
    assert {"read_text", "describe_scene", "take_photo"} <= skills
    assert script.duration_s <= 40  # the demo must finish by itself, quickly


def test_assembled_video_audio_and_scenario_play_in_step(tmp_path: Path) -> None:
    _need_media()
    script = replace(
        load_demo_script(),
        scenes=(
            DemoScene("data:photo:astronaut", 4.0, "take a photo", "take_photo"),
            DemoScene("data:pedestrian", 4.0, "what do you see", "describe_scene"),
        ),
    )
    assets = assemble_demo(script, root=tmp_path)

    capture = cv2.VideoCapture(str(assets.video_path))
    try:
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = capture.get(cv2.CAP_PROP_FPS)
        ok, first = capture.read()
    finally:
        capture.release()
    assert ok and first.shape == (720, 1280, 3)
    assert fps == script.fps and frames == 8 * script.fps
    with wave.open(str(assets.wav_path)) as handle:
        assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) == (
            16000,
            1,
            2,
        )
        audio_s = handle.getnframes() / 16000
    assert audio_s == pytest.approx(frames / fps)  # both loop with the same period

    for command, scene_start_s in zip(assets.commands, (0.0, 4.0), strict=True):
        assert scene_start_s < command.wake_start_s < command.command_start_s
        assert command.command_start_s < command.voice_end_s < scene_start_s + 4.0
    scenario = load_scenario(assets.scenario_path)
    assert scenario.video == assets.video_path and scenario.wav == assets.wav_path
    assert scenario.max_frames == frames and (1280, 720) in scenario.resolutions

    # The real wake-word model hears "hey glasses" where the script put it.
    result = subprocess.run(
        [sys.executable, "-m", "glasses_sdk.cli", "wake", "detect", str(assets.wav_path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    detections = json.loads(result.stdout)["detections"]
    assert len(detections) == len(assets.commands)
    for detection, command in zip(detections, assets.commands, strict=True):
        assert command.wake_start_s - 0.3 < detection["end_s"] < command.command_start_s + 0.3

    # A second call finds the folder complete and makes nothing again.
    again = assemble_demo(script, root=tmp_path)
    assert again.folder == assets.folder and again.commands == assets.commands


def test_a_bad_script_says_what_was_expected(tmp_path: Path) -> None:
    shipped = default_script_path().read_text(encoding="utf-8")
    cases = {
        "unknown": ("colour = 3\n" + shipped, "unknown key\\(s\\) colour"),
        "scene key": (shipped + "\nzoom = 2\n", "scene 4: unknown key\\(s\\) zoom"),
        "voice": (
            shipped.replace('command_voice = "flite:awb"', 'command_voice = "awb"'),
            "a voice is 'espeak:NAME' or 'flite:NAME'",
        ),
        "scenes": ('name = "x"\n', "expected at least one \\[\\[scene\\]\\]"),
        "toml": ("name = ", "is not valid TOML"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InvalidConfigError, match=message):
            load_demo_script(path)


def test_a_command_longer_than_its_scene_is_refused(tmp_path: Path) -> None:
    _need_media()
    script = replace(
        load_demo_script(),
        scenes=(DemoScene("data:photo:astronaut", 2.0, "read the text", "read_text"),),
    )
    with pytest.raises(InvalidConfigError, match="too short for 'hey glasses'"):
        assemble_demo(script, root=tmp_path)


def test_report_section_draws_boxes_and_writes_spoken_answers(tmp_path: Path) -> None:
    """The report from real events: a photo through the real privacy filter and the
    real text reader, a real espeak-ng answer."""
    _need_media()
    import numpy as np

    from glasses_sdk._demo_live import LiveResult
    from glasses_sdk._demo_report import write_assistant_section
    from glasses_sdk.assistant import (
        AnswerEvent,
        DecisionEvent,
        PrivacyFilter,
        SpeechEndEvent,
        WakeEvent,
        synthesize,
    )
    from glasses_sdk.inference import TextReader
    from glasses_sdk.routing import Decision, Route

    script = replace(
        load_demo_script(),
        scenes=(DemoScene("data:photo:astronaut", 4.0, "take a photo", "take_photo"),),
    )
    assets = assemble_demo(script, root=tmp_path / "cache")
    photo = data.load_photo("astronaut")
    page = need_data(lambda: data.load_photo("page"))
    filtered = PrivacyFilter().apply(photo)
    assert filtered.faces, "the astronaut's face is found"
    filtered_page = PrivacyFilter().apply(np.ascontiguousarray(page))
    lines = [line.to_json() for line in TextReader().read(page).lines]
    assert lines
    pcm, rate = synthesize("Photo taken. 1 face blurred.")
    decision = Decision(Route.CLOUD, ("local confidence 0.41 < threshold 0.80",), "read_text", 0.0)
    result = LiveResult(started_s=100.0, cloud_url="http://127.0.0.1:1", emulator_address="x")
    command = assets.commands[0]
    result.events = [
        (command.wake_end_s, WakeEvent("hey glasses", 0.98, t_s=0.0)),
        (command.voice_end_s + 0.4, SpeechEndEvent(2.0, "silence", t_s=0.0)),
        (command.voice_end_s + 0.5, DecisionEvent(decision, t_s=0.0)),
        (
            command.voice_end_s + 0.9,
            AnswerEvent(
                "take_photo",
                "Photo taken. 1 face blurred.",
                Route.LOCAL,
                {"endpointing_wait": 700.0, "privacy": 12.0, "total": 900.0},
                audio_pcm16=pcm,
                frame=filtered,
                sample_rate_hz=rate,
            ),
        ),
        (
            command.voice_end_s + 1.5,
            AnswerEvent(
                "read_text",
                "\n".join(line["text"] for line in lines),
                Route.CLOUD,
                {"inference": 40.0, "network": 20.0, "server": 80.0, "total": 1200.0},
                frame=filtered_page,
                data={"lines": lines},
                decision=decision,
            ),
        ),
    ]
    out = tmp_path / "report"
    out.mkdir()
    summary, section = write_assistant_section(result, assets, out)

    assert summary["counts"]["answers"] == 2 and summary["counts"]["frames"] == 2
    assert summary["counts"]["faces_blurred"] == len(filtered.faces)
    assert summary["counts"]["text_lines"] == len(lines)
    assert summary["answers"][0]["expected_skill"] == "take_photo"
    assert summary["answers"][1]["expected_skill"] is None  # no second command ended
    assert summary["latency_p50_ms"]["total"] == pytest.approx(1050.0)
    assert summary["decisions"][0]["reasons"] == ["local confidence 0.41 < threshold 0.80"]
    assert section.count("<audio controls") == 1 and 'src="answer-1.wav"' in section
    assert "local confidence 0.41 &lt; threshold 0.80" in section
    assert "<svg" in section
    with wave.open(str(out / "answer-1.wav")) as handle:
        assert handle.getnframes() == len(pcm) // 2 and handle.getframerate() == rate
    # The boxes are drawn: the annotated pictures differ from the filtered frames where
    # the face outline (red) and the text polygons (green) are.
    drawn = cv2.imread(str(out / "answer-1.jpg"))
    x0, y0, x1, _ = (round(v) for v in filtered.faces[0])
    edge = drawn[y0 + 1, x0 + 5 : x1 - 5].astype(int)
    assert (edge[:, 2] - edge[:, 1] > 80).mean() > 0.8  # red: R well above G
    drawn_page = cv2.imread(str(out / "answer-2.jpg"))
    assert drawn_page.shape == page.shape
    (px, py) = (round(v) for v in lines[0]["polygon"][0])
    green = drawn_page[max(py - 1, 0) : py + 2, max(px - 1, 0) : px + 2].astype(int)
    assert (green[..., 1] - green[..., 2] > 60).any()


def test_answers_pair_with_commands_across_the_recordings_loop() -> None:
    from glasses_sdk._demo_report import _command_for
    from glasses_sdk._demo_scenario import SpokenCommand

    commands = tuple(
        SpokenCommand(n, "p", f"c{n}", "s", 1.0 + 9 * n, 2.0 + 9 * n, 2.5 + 9 * n, 3.5 + 9 * n)
        for n in range(4)
    )
    period_s = 36.0
    assert _command_for(0.5, commands, period_s) is None  # nothing spoken yet
    assert _command_for(4.0, commands, period_s) is commands[0]
    assert _command_for(31.0, commands, period_s) is commands[3]
    assert _command_for(36.5, commands, period_s) is commands[3]  # the loop restarted
    assert _command_for(40.0, commands, period_s) is commands[0]  # second pass
