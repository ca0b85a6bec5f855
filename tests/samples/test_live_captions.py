"""``samples/live_captions.py`` on the emulator with the real cloud server: the phrases
spoken to the glasses come back as captions, in order, with their times."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.samples.emulated_scenes import cloud_server, emulator, run_sample, scenes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_live_captions_print_each_phrase_with_its_times(tmp_path: Path) -> None:
    # A second between "hey glasses" and the command: two phrases, two captions.
    assets = scenes(("data:photo:astronaut", "take a photo"), pause_s=1.0)
    command = assets.commands[0]
    with (
        cloud_server(tmp_path / "cloud") as (base_url, key),
        emulator(assets, tmp_path / "emulator") as uri,
    ):
        result = run_sample(
            "live_captions.py",
            *("--uri", uri, "--cloud", base_url, "--api-key", key),
            *("--seconds", "120", "--captions", "4"),
        )
    assert result.returncode == 0, result.stderr
    captions = re.findall(r"^\[ *([\d.]+) - *([\d.]+) s\] (.+)$", result.stdout, re.M)
    assert len(captions) == 4, result.stdout
    times = [(float(a), float(b)) for a, b, _ in captions]
    assert all(a < b for a, b in times) and times == sorted(times)
    # The recording loops every 7 s: the command is heard once per loop, at its place.
    texts = [text for _, _, text in captions]
    heard = [t for t, text in zip(times, texts, strict=True) if "take a photo" in text]
    assert heard, texts
    period_s = assets.script.duration_s
    for start_s, end_s in heard:
        assert abs(start_s % period_s - command.command_start_s) < 0.5
        assert abs(end_s % period_s - command.voice_end_s) < 0.6


def test_without_a_cloud_it_says_what_to_give() -> None:
    result = run_sample("live_captions.py", "--seconds", "1", timeout_s=60)
    assert result.returncode == 2
    assert "give --cloud URL and --api-key KEY" in result.stderr
