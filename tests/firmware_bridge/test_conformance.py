"""The conformance suite passes against the emulator, paired and insecure, and catches a
device that breaks the LED rule."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from firmware_bridge.conformance import CHECKS, run_conformance
from tests.firmware_bridge.emulator_helpers import running_emulator


def test_the_emulator_passes_every_check_when_paired(tmp_path: Path) -> None:
    async def run() -> None:
        async with running_emulator(state_dir=tmp_path / "device") as emulator:
            report = await run_conformance(
                emulator.address, code=emulator.pairing_code, pairing_dir=tmp_path / "host"
            )
            failed = [(r.name, r.detail) for r in report.results if r.passed is False]
            assert not failed, failed
            assert [r.name for r in report.results] == list(CHECKS)
            by_name = {r.name: r for r in report.results}
            assert by_name["pairing"].passed is True
            assert "wrong code was refused" in by_name["pairing"].detail
            assert by_name["retransmission"].passed is True
            assert by_name["led_rule"].passed is True
            junit = ElementTree.fromstring(report.to_junit_xml())
            assert junit.get("tests") == str(len(CHECKS)) and junit.get("failures") == "0"

    asyncio.run(run())


def test_the_cli_reports_json_and_junit_against_an_insecure_emulator(tmp_path: Path) -> None:
    async def run() -> None:
        async with running_emulator(insecure=True, state_dir=tmp_path / "device") as emulator:
            junit = tmp_path / "report.xml"
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "glasses_sdk.cli", "conformance", emulator.address,
                "--insecure", "--json", "--junit", str(junit),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=240)
            assert process.returncode == 0, stderr.decode()[-2000:]
            document = json.loads(stdout)
            assert document["passed"] is True
            verdicts = {c["name"]: c["passed"] for c in document["checks"]}
            assert verdicts["pairing"] is None  # skipped: insecure
            assert all(verdicts[name] for name in CHECKS if name != "pairing")
            assert ElementTree.parse(junit).getroot().get("skipped") == "1"

    asyncio.run(run())


def test_a_device_that_streams_with_its_led_off_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from firmware_bridge.emulator import _server
    from firmware_bridge.protocol import Command, CommandKind, CommandResult, CommandResultCode

    original = _server._DeviceSession._on_command

    def broken(self: Any, command: Command) -> CommandResult:
        # A faulty firmware: accepts "LED off" and keeps the camera streaming.
        if command.kind == CommandKind.SET_LED and command.argument == 0:
            return CommandResult(command.command_id, CommandResultCode.OK, 0, "")
        return original(self, command)

    monkeypatch.setattr(_server._DeviceSession, "_on_command", broken)

    async def run() -> None:
        async with running_emulator(insecure=True, state_dir=tmp_path / "device") as emulator:
            report = await run_conformance(emulator.address, insecure=True, only=("led_rule",))
            (result,) = report.results
            assert result.passed is False and "kept streaming" in result.detail, result

    asyncio.run(run())
