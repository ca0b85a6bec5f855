"""``samples/custom_skill.py`` on the emulator: the astronaut on camera and "hey
glasses, how many people are there" spoken; the app's own skill answers from the
privacy filter's face count. A typed command reaches the other custom skill."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.samples.emulated_scenes import emulator, run_sample, scenes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_a_spoken_command_runs_the_apps_skill(tmp_path: Path) -> None:
    assets = scenes(("data:photo:astronaut", "how many people are there"))
    with emulator(assets, tmp_path / "emulator") as uri:
        result = run_sample("custom_skill.py", "--uri", uri, "--seconds", "150", "--answers", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    skills = re.search(r"^skills: (.+)$", out, re.M)
    assert skills is not None
    assert {"count_people", "tell_time", "read_text", "take_photo"} <= set(skills[1].split(", "))
    assert re.search(r"^count_people \(local, \d+ ms\): I see 1 person\.", out, re.M), out


def test_a_typed_command_runs_the_other_skill(tmp_path: Path) -> None:
    assets = scenes(("data:photo:astronaut", "how many people are there"))
    with emulator(assets, tmp_path / "emulator") as uri:
        result = run_sample("custom_skill.py", "--uri", uri, "--text", "what time is it")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^tell_time \(local, \d+ ms\): It is \d\d:\d\d\.", result.stdout, re.M)
