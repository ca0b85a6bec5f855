"""Firmware bridge throughput over loopback TLS: 1280x720 JPEG video plus 16 kHz audio.

Run from a checkout: ``python -m benchmarks.bench_bridge [--seconds S] [--json]``.

The emulator runs in its own process (``glasses emulator`` through its Python entry
point) with the MTU it advertises capped at 512 and at 16,384 bytes (``--impair
mtu=N``, nothing else impaired); this process pairs with it, opens a pinned mutual
TLS 1.3 session, asks for 1280x720 at 30 fps (JPEG quality 85, about 120 KB a frame
from the real pedestrian footage) and 16 kHz mono audio in 20 ms chunks, and counts
what arrives over ``--seconds`` after a one-second warm-up.

Reported per MTU: frames per second received, mean JPEG size, audio chunks per
second, the host's time in framing and reassembly (the pure decoder, CRC, reassembler
and dispatch, measured around those calls) as a share of one core, and the whole host
process's CPU (TLS, asyncio and all) for context. Goals (issue 5): at least 30 fps of
100 KB frames plus audio, framing and reassembly under 10% of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from firmware_bridge._secure import PairingStore, pair_tcp
from firmware_bridge.host import HostSession

_CODE = "246810"
_SERVE = (
    "import sys; from glasses_sdk._cli_emulator import emulator_command; "
    "emulator_command(port=0, impair=sys.argv[1], code=sys.argv[2], "
    "state_dir=__import__('pathlib').Path(sys.argv[3]), as_json=True)"
)


def _start_emulator(mtu_bytes: int, state_dir: Path) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-c", _SERVE]
    process = subprocess.Popen(
        [*command, f"mtu={mtu_bytes}", _CODE, str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError("the emulator did not start (is opencv-doc installed?)")
    return process, int(json.loads(line)["port"])


async def _measure(port: int, store_dir: Path, seconds: float) -> dict[str, Any]:
    store = PairingStore(store_dir)
    cert = await pair_tcp("127.0.0.1", port, _CODE, store.identity())
    store.save_device(f"127.0.0.1:{port}", cert)
    session = await HostSession.open(f"tcp://127.0.0.1:{port}", store=store)
    async with session:
        await session.configure_camera(width_px=1280, height_px=720, fps=30, jpeg_quality=85)
        await session.configure_audio(chunk_ms=20)
        sizes: list[int] = []
        audio = 0

        async def drain(until: float, record: bool) -> None:
            nonlocal audio
            while time.monotonic() < until:
                try:
                    frame = await session.next_frame(timeout_s=0.05)
                    if record:
                        sizes.append(len(frame.jpeg))
                except TimeoutError:
                    pass
                while True:
                    try:
                        await session.next_audio(timeout_s=0.0001)
                    except TimeoutError:
                        break
                    if record:
                        audio += 1

        await drain(time.monotonic() + 1.0, record=False)
        connection = session.connection
        assert connection is not None
        framing_before = connection.stats.framing_cpu_s
        cpu_before = time.process_time()
        wall_before = time.monotonic()
        received_before = session.quality().video_frames_received
        await drain(wall_before + seconds, record=True)
        wall = time.monotonic() - wall_before
        framing = connection.stats.framing_cpu_s - framing_before
        cpu = time.process_time() - cpu_before
        quality = session.quality()
        return {
            "mtu_bytes": connection.negotiated_mtu_bytes,
            "seconds": round(wall, 2),
            "fps": round((quality.video_frames_received - received_before) / wall, 1),
            "mean_jpeg_bytes": round(sum(sizes) / max(len(sizes), 1)),
            "min_jpeg_bytes": min(sizes, default=0),
            "audio_chunks_per_s": round(audio / wall, 1),
            "throughput_kbps": round(quality.throughput_kbps),
            "framing_cpu_share": round(framing / wall, 4),
            "host_process_cpu_share": round(cpu / wall, 3),
            "frames_dropped": quality.frames_dropped,
            "video_frames_lost": quality.video_frames_lost,
        }


def run(seconds: float = 5.0, mtus: tuple[int, ...] = (512, 16_384)) -> list[dict[str, Any]]:
    """Measure each MTU in turn; returns one result dict per MTU."""
    results = []
    for mtu in mtus:
        with tempfile.TemporaryDirectory() as folder:
            process, port = _start_emulator(mtu, Path(folder) / "emulator")
            try:
                results.append(asyncio.run(_measure(port, Path(folder) / "host", seconds)))
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    results = run(args.seconds)
    goals = {"fps": 30.0, "mean_jpeg_bytes": 100_000, "framing_cpu_share": 0.10}
    document = {"benchmark": "bridge", "goals": goals, "results": results}
    if args.json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return 0
    header = "MTU      fps   JPEG KB  audio/s   kbit/s  framing %core  host %core"
    print(header)
    for r in results:
        print(
            f"{r['mtu_bytes']:<7} {r['fps']:5.1f} {r['mean_jpeg_bytes'] / 1000:8.1f} "
            f"{r['audio_chunks_per_s']:8.1f} {r['throughput_kbps']:8d} "
            f"{100 * r['framing_cpu_share']:13.1f} {100 * r['host_process_cpu_share']:11.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
