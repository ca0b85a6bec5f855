"""Runs the atheris harness for a bounded time in its own process: zero crashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("fuzz_protocol.py")
FUZZ_SECONDS = int(os.environ.get("GLASSES_FUZZ_SECONDS", "20"))


def _seed_corpus(folder: Path) -> int:
    count = 0
    for vectors in sorted((ROOT / "firmware_bridge" / "vectors").glob("*.json")):
        for i, vector in enumerate(json.loads(vectors.read_text())["vectors"]):
            hexes = [vector[k] for k in ("hex", "stream_hex") if isinstance(vector.get(k), str)]
            frames = [h for h in vector.get("frames", []) if isinstance(h, str)]
            hexes += [*frames, "".join(frames)] if frames else []
            for j, text in enumerate(hexes):
                raw = bytes.fromhex(text)
                for mode in range(3):
                    (folder / f"{vectors.stem}-{i}-{j}-{mode}").write_bytes(bytes([mode]) + raw)
                    count += 1
    return count


@pytest.mark.slow
@pytest.mark.timeout(FUZZ_SECONDS + 120)
def test_decoder_and_reassembler_survive_fuzzing(tmp_path: Path) -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        missing("atheris is not installed (the dev extra)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    assert _seed_corpus(corpus) > 50
    result = subprocess.run(
        [sys.executable, str(HARNESS), f"-max_total_time={FUZZ_SECONDS}",
         "-rss_limit_mb=2048", "-timeout=5", "-print_final_stats=1", str(corpus)],
        capture_output=True, text=True, cwd=ROOT, timeout=FUZZ_SECONDS + 90, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    tail = (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 0, tail
    assert "Done" in tail and "stat::number_of_executed_units" in tail, tail
