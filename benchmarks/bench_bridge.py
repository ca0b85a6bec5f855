"""Firmware bridge throughput over loopback TLS: 1280x720 JPEG video plus 16 kHz audio.

Run from a checkout: ``python -m benchmarks.bench_bridge [--seconds S] [--json]``.

The emulator runs in its own process (``glasses emulator`` through its Python entry
point) with the MTU it advertises capped at 512 and at 16,384 bytes (``--impair
mtu=N``, nothing else impaired); this process pairs with it, opens a pinned mutual
TLS 1.3 session, asks for 1280x720 at 30 fps (JPEG quality 85, about 120 KB a frame
from the real pedestrian footage) and 16 kHz mono audio in 20 ms chunks, and counts
what arrives over ``--seconds`` after a one-second warm-up.

Reported per MTU: frames per second received, mean JPEG size, audio chunks per
second, the host's CPU time in framing and reassembly (the pure decoder, CRC,
reassembler and dispatch, measured with the reader thread's CPU clock around those
calls) as a share of one core, and the whole host process's CPU (TLS, asyncio and all)
for context. Goals (issue 5): at least 30 fps of 100 KB frames plus audio, framing and
reassembly under 10% of one core.

A second, in-process part replays one second of that traffic (30 frames of 120 KB
plus 50 audio chunks, cut at the MTU and read back in 16 KiB chunks, the size of a TLS
record) through the receive path, side by side with two references in the same run:
the previous implementation (``FrameDecoder.feed`` + ``Reassembler.push`` as of commit
``_REFERENCE_COMMIT``, loaded from git) and the floor, one copy of every received
chunk. It reports CPU time per second of traffic (``time.process_time``, interleaved
repeats, median) and the interleaved wall-time ratios of ``_harness.compare``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks._harness import compare
from firmware_bridge._errors import ProtocolError
from firmware_bridge._reassembly import LaneScheduler, Reassembler, ReassemblyLimits
from firmware_bridge._secure import PairingStore, pair_tcp
from firmware_bridge.host import HostSession
from firmware_bridge.protocol import AudioChunk, CameraFrame, FrameDecoder

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


# --------------------------------------------------------------------------------------
# In-process receive path: ours against the previous implementation and a copy floor
# --------------------------------------------------------------------------------------

_REFERENCE_COMMIT = "c21d6a7dcd0532fcb408670f12903ce4dfae1604"
"""The last commit before the one-pass receive path (feed_raw / push_raw)."""

_READ_BYTES = 16_384  # one TLS record's worth of plaintext per read
_JPEG_BYTES = 120_000  # what the emulator sends at 1280x720, quality 85


def _one_second_of_traffic(mtu_bytes: int) -> tuple[list[bytes], int]:
    """30 video frames and 50 audio chunks, framed at ``mtu_bytes``, cut into reads."""
    scheduler = LaneScheduler(mtu_bytes=mtu_bytes, max_queued_video=1_000)
    # Framing cost does not depend on the JPEG's content, only on its size.
    jpeg = os.urandom(_JPEG_BYTES)
    for index in range(30):
        scheduler.enqueue(CameraFrame(index, index * 33_333, 1280, 720, jpeg))
        for chunk in range(5 * index // 3, 5 * (index + 1) // 3):
            scheduler.enqueue(AudioChunk(chunk, chunk * 20_000, bytes(640)))
    frames = [frame.pack() for frame in scheduler.frames()]
    stream = b"".join(frames)
    reads = [stream[i : i + _READ_BYTES] for i in range(0, len(stream), _READ_BYTES)]
    return reads, len(frames)


def _load_reference() -> tuple[ModuleType, ModuleType] | str:
    """The previous protocol and reassembly modules, or why they cannot be loaded."""
    root = Path(__file__).resolve().parent.parent
    folder = Path(tempfile.mkdtemp(prefix="bridge_reference_"))
    package = folder / "firmware_bridge_reference"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("protocol.py", "_reassembly.py"):
        shown = subprocess.run(
            ["git", "-C", str(root), "show", f"{_REFERENCE_COMMIT}:firmware_bridge/{name}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if shown.returncode != 0:
            return f"git show {_REFERENCE_COMMIT[:7]} failed: {shown.stderr.strip()}"
        source = shown.stdout.replace(
            "from firmware_bridge.protocol import", "from firmware_bridge_reference.protocol import"
        )
        (package / name).write_text(source)
    sys.path.insert(0, str(folder))
    try:
        protocol = importlib.import_module("firmware_bridge_reference.protocol")
        reassembly = importlib.import_module("firmware_bridge_reference._reassembly")
    finally:
        sys.path.remove(str(folder))
    return protocol, reassembly


def _limits() -> ReassemblyLimits:
    return ReassemblyLimits(duplicate_window=4096)


def _ours(reads: list[bytes], mtu_bytes: int) -> Callable[[], int]:
    def receive() -> int:
        decoder = FrameDecoder(max_frame_bytes=mtu_bytes)
        reassembler = Reassembler(_limits())
        delivered = 0
        for data in reads:
            results: list[Any] = list(reassembler.expire(0.0))
            for raw in decoder.feed_raw(data):
                if isinstance(raw, ProtocolError):
                    results.append(raw)
                else:
                    reassembler.push_raw(raw, 0.0, results)
            delivered += len(results)
        return delivered

    return receive


def _previous(reads: list[bytes], mtu_bytes: int, modules: tuple[Any, Any]) -> Callable[[], int]:
    protocol, reassembly = modules

    def receive() -> int:
        decoder = protocol.FrameDecoder(max_frame_bytes=mtu_bytes)
        reassembler = reassembly.Reassembler(reassembly.ReassemblyLimits(duplicate_window=4096))
        delivered = 0
        for data in reads:
            for frame in decoder.feed(data):
                delivered += len(reassembler.push(frame, 0.0))
        return delivered

    return receive


def _copy_floor(reads: list[bytes]) -> Callable[[], int]:
    def receive() -> int:
        # What receiving costs at the least: one copy of every byte out of the socket.
        return sum(len(bytearray(data)) for data in reads)

    return receive


def _cpu_s(fn: Callable[[], object]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def run_receive_path(
    mtus: tuple[int, ...] = (512, 16_384), repeats: int = 15
) -> list[dict[str, Any]]:
    """CPU per second of traffic for ours, the previous implementation and the floor."""
    loaded = _load_reference()
    results = []
    for mtu in mtus:
        reads, frame_count = _one_second_of_traffic(mtu)
        candidates: dict[str, Callable[[], object]] = {"ours": _ours(reads, mtu)}
        if not isinstance(loaded, str):
            candidates["previous"] = _previous(reads, mtu, loaded)
            if candidates["previous"]() != candidates["ours"]():
                raise RuntimeError("the reference and ours delivered different events")
        candidates["copy_floor"] = _copy_floor(reads)
        cpu: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(repeats):  # interleaved, so that drift hits every candidate alike
            for name, fn in candidates.items():
                cpu[name].append(_cpu_s(fn))
        cpu_share = {name: statistics.median(values) for name, values in cpu.items()}
        references = [(name, fn, None) for name, fn in candidates.items() if name != "ours"]
        comparison = compare(
            f"receive 1 s at MTU {mtu}", ("ours", candidates["ours"]), references, samples=10
        )
        result: dict[str, Any] = {
            "mtu_bytes": mtu,
            "frames_per_s": frame_count,
            "cpu_share": {name: round(value, 4) for name, value in cpu_share.items()},
            "us_per_frame": {
                name: round(value / frame_count * 1e6, 2) for name, value in cpu_share.items()
            },
            "wall_speedup": {ref.name: round(ref.speedup, 2) for ref in comparison.references},
            "wall_speedup_rounds": {ref.name: ref.speedup_rounds for ref in comparison.references},
        }
        if isinstance(loaded, str):
            result["previous_unavailable"] = loaded
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--receive-only", action="store_true", help="only the in-process receive path"
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    receive = run_receive_path()
    results = [] if args.receive_only else run(args.seconds)
    goals = {"fps": 30.0, "mean_jpeg_bytes": 100_000, "framing_cpu_share": 0.10}
    document = {
        "benchmark": "bridge",
        "goals": goals,
        "load_average_1min": os.getloadavg()[0],
        "results": results,
        "receive_path": receive,
    }
    if args.json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return 0
    print(f"load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("receive path, 1 s of traffic replayed in-process (CPU % of one core, median)")
    print("MTU     frames/s  ours %  previous %  copy floor %  previous/ours  floor/ours (wall)")
    for r in receive:
        share, speed = r["cpu_share"], r["wall_speedup"]
        previous = share.get("previous")
        previous_text = "-" if previous is None else f"{100 * previous:.2f}"
        ratio_text = "-" if previous is None else f"{previous / share['ours']:.2f}x"
        print(
            f"{r['mtu_bytes']:<7} {r['frames_per_s']:8d} {100 * share['ours']:7.2f} "
            f"{previous_text:>11} {100 * share['copy_floor']:13.2f} {ratio_text:>14} "
            f"{speed['copy_floor']:16.3f}x"
        )
    if not results:
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
