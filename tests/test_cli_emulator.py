"""``glasses emulator`` and ``glasses pair`` (mounted here on a small Typer app, as
``glasses_sdk.cli`` mounts them): start, pair, refuse bad input with one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from glasses_sdk import data
from glasses_sdk._cli_emulator import emulator_command, pair_command
from tests.conftest import need_data

pytestmark = pytest.mark.timeout(60)

app = typer.Typer()
app.command("emulator")(emulator_command)
app.command("pair")(pair_command)


def test_bad_impairment_or_scenario_is_one_clear_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["emulator", "--impair", "loss=7"])
    assert result.exit_code == 2
    assert "error: loss is a probability in 0..1, got 7" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera]\nvideo = 'nope.avi'\n")
    result = runner.invoke(app, ["emulator", "--scenario", str(bad)])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["pair", "serial:///dev/ttyS0", "--code", "123456"])
    assert result.exit_code == 2 and "pairing is for tcp://" in result.output


def test_the_emulator_runs_and_a_host_pairs_with_it(tmp_path: Path) -> None:
    need_data(data.pedestrian_video_path)
    serve = (
        "import sys, pathlib; from glasses_sdk._cli_emulator import emulator_command; "
        "emulator_command(port=0, code='135790', duration_s=20, as_json=True, "
        "state_dir=pathlib.Path(sys.argv[1]))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", serve, str(tmp_path / "emulator")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["pairing_code"] == "135790" and info["insecure"] is False
        uri = info["address"]
        runner = CliRunner()
        wrong = runner.invoke(
            app, ["pair", uri, "--code", "000000", "--pairing-dir", str(tmp_path / "host")]
        )
        assert wrong.exit_code == 2 and "refused" in wrong.output
        result = runner.invoke(
            app,
            ["pair", uri, "--code", "135790", "--pairing-dir", str(tmp_path / "host"), "--json"],
        )
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        assert document["uri"] == uri and len(document["device_fingerprint"]) == 64
        assert Path(document["pinned"]).is_file()
        # The emulator remembers the host across restarts (its state folder).
        deadline = time.monotonic() + 5
        while not list((tmp_path / "emulator" / "hosts").glob("*.pem")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "pair with: glasses pair" in stderr
