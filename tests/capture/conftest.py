"""A real PulseAudio sound server with a null sink, for the microphone tests.

The daemon runs with its own ``XDG_RUNTIME_DIR`` (so it never touches a desktop's
sound server), as root if need be, and is killed at the end of the session. The test
process talks to it through the ALSA ``pulse`` plugin that PortAudio lists as the
``pulse`` device; its default source is the null sink's monitor, so what a test plays
into the sink is what the microphone records.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import missing, need_binary

SINK = "glasses_test_sink"


@dataclass(frozen=True)
class PulseSink:
    """The running null sink: its name, and the environment that reaches its server."""

    sink: str
    env: dict[str, str]

    def pactl(self, *args: str) -> None:
        subprocess.run(["pactl", *args], env=self.env, check=True, timeout=10, capture_output=True)

    def play(self, path: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["paplay", f"--device={self.sink}", str(path)], env=self.env)


def _refresh_portaudio() -> None:
    import sounddevice as sd

    # PortAudio lists devices once, when it initializes; re-initialize so that it
    # sees (or forgets) the server this fixture started. sounddevice has no public
    # call for this.
    sd._terminate()
    sd._initialize()


@pytest.fixture(scope="session")
def pulse_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseSink]:
    for binary in ("pulseaudio", "pactl", "paplay", "pacat"):
        need_binary(binary)
    runtime = tmp_path_factory.mktemp("pulse-runtime")
    runtime.chmod(0o700)
    server = f"unix:{runtime}/pulse/native"
    # pulseaudio refuses to start while PULSE_SERVER names a server; clients get it.
    daemon_env = {k: v for k, v in os.environ.items() if k != "PULSE_SERVER"}
    daemon_env["XDG_RUNTIME_DIR"] = str(runtime)
    env = {**daemon_env, "PULSE_SERVER": server}
    start = subprocess.run(
        [
            "pulseaudio",
            "--start",
            "-n",  # no default.pa: only what we load
            "--load=module-native-protocol-unix",
            "--exit-idle-time=-1",
            "--disable-shm=yes",
        ],
        env=daemon_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if start.returncode != 0:
        missing(f"pulseaudio --start failed: {start.stderr.strip()}")
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(
            ["pactl", "info"], env=env, capture_output=True, timeout=5, check=False
        ).returncode:
            if time.monotonic() > deadline:
                missing("the PulseAudio server did not answer within 10 s")
            time.sleep(0.1)
        sink = PulseSink(SINK, env)
        sink.pactl("load-module", "module-null-sink", f"sink_name={SINK}")
        sink.pactl("set-default-sink", SINK)
        sink.pactl("set-default-source", f"{SINK}.monitor")
        # An idle null sink renders in large blocks, so a recording that starts on it
        # waits up to 2 s for its first samples; a low-latency stream of silence keeps
        # the sink rendering in small blocks (what a real microphone would do).
        keeper = subprocess.Popen(
            ["pacat", "--playback", "--raw", "--latency-msec=20", f"--device={SINK}", "/dev/zero"],
            env=env,
        )
        os.environ.update({"XDG_RUNTIME_DIR": str(runtime), "PULSE_SERVER": server})
        _refresh_portaudio()
        yield sink
        keeper.terminate()
        keeper.wait(timeout=5)
    finally:
        subprocess.run(["pulseaudio", "--kill"], env=daemon_env, timeout=10, check=False)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _refresh_portaudio()
