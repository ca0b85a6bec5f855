"""``samples/read_text_aloud.py`` on the emulator: a book page on camera, "hey glasses,
read the text" spoken; the sample prints the page's lines, read on the device."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.samples.emulated_scenes import emulator, run_sample, scenes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_read_text_aloud_reads_the_page_on_camera(tmp_path: Path) -> None:
    assets = scenes(("data:opencv:imageTextN.png", "read the text"))
    with emulator(assets, tmp_path / "emulator") as uri:
        result = run_sample(
            "read_text_aloud.py", "--uri", uri, "--seconds", "150", "--answers", "1"
        )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "listening on Emulated glasses" in out
    assert "woken by 'hey glasses'" in out
    assert "read " in out and "line(s)" in out
    # Words of the page (opencv-doc's imageTextN.png, a page of a vision textbook).
    text = out.lower()
    assert "technical details" in text and "real-world images" in text
