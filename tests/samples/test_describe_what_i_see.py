"""``samples/describe_what_i_see.py`` on the emulator with the real cloud server: the
astronaut on camera, "hey glasses, what do you see"; the scene goes to the cloud, whose
answer shows it saw no face: the device blurred it before the upload."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.samples.emulated_scenes import cloud_server, emulator, run_sample, scenes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_the_cloud_describes_the_scene_without_the_face(tmp_path: Path) -> None:
    assets = scenes(("data:photo:astronaut", "what do you see"))
    with (
        cloud_server(tmp_path / "cloud") as (base_url, key),
        emulator(assets, tmp_path / "emulator") as uri,
    ):
        result = run_sample(
            "describe_what_i_see.py",
            *("--uri", uri, "--cloud", base_url, "--api-key", key),
            *("--seconds", "150", "--answers", "1"),
        )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "describe_scene -> cloud: task 'describe_scene' needs a model the device lacks" in out
    assert re.search(r"^answer \(cloud\): \S", out, re.M), out
    assert "faces blurred on the device: 1" in out
    assert "faces the cloud saw: 0" in out
    stages = re.search(r"stages: (.*)", out)
    assert stages is not None and "network" in stages[1] and "server" in stages[1]


def test_without_a_cloud_it_says_what_to_give() -> None:
    result = run_sample("describe_what_i_see.py", "--seconds", "1", timeout_s=60)
    assert result.returncode == 2
    assert "needs the cloud: give --cloud URL and --api-key KEY" in result.stderr
