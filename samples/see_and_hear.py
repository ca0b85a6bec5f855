"""The same app on any device: print what the camera sees and the microphone hears.

    python samples/see_and_hear.py local                          # this computer
    python samples/see_and_hear.py "file:walk.avi?audio=talk.wav"  # recordings
    python samples/see_and_hear.py "tcp://127.0.0.1:7447?insecure=1"  # the emulator

The app code below never looks at which device it got: ``glasses_sdk.connect`` turns
the URI into a :class:`~glasses_sdk.Device` with a camera and a microphone on one clock.
It runs for ``--seconds`` and prints, once a second, the frames and audio received, the
newest frame's size and age, and the audio level; then a one-line JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time

import numpy as np

import glasses_sdk
from glasses_sdk import Device, GlassesError


async def watch(device: Device, seconds: float) -> dict[str, float | int | str]:
    """Read both streams for ``seconds`` and return what was seen and heard."""
    stats: dict[str, float | int | str] = {"device": device.name, "frames": 0, "chunks": 0}
    levels: list[float] = []
    newest: dict[str, float] = {}

    async def video() -> None:
        async for frame in device.video:
            stats["frames"] = int(stats["frames"]) + 1
            stats["width"], stats["height"] = frame.width, frame.height
            newest["age_ms"] = (glasses_sdk.capture.monotonic_s() - frame.timestamp_s) * 1000

    async def audio() -> None:
        async for chunk in device.audio:
            stats["chunks"] = int(stats["chunks"]) + 1
            samples = chunk.samples.astype(np.float32)
            rms = float(np.sqrt(np.mean(np.square(samples)))) if samples.size else 0.0
            levels.append(-120.0 if rms < 1e-6 else 20 * math.log10(rms))

    tasks = []
    if device.has_video:
        tasks.append(asyncio.create_task(video()))
    if device.has_audio:
        tasks.append(asyncio.create_task(audio()))
    start = time.monotonic()
    while time.monotonic() - start < seconds and not all(t.done() for t in tasks):
        await asyncio.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - start))))
        level = f"{max(levels[-25:]):.1f} dBFS" if levels else "-"
        print(
            f"{time.monotonic() - start:5.1f} s  frames {stats['frames']:4}  "
            f"audio chunks {stats['chunks']:4}  newest frame "
            f"{stats.get('width', '-')}x{stats.get('height', '-')} "
            f"{newest.get('age_ms', float('nan')):.1f} ms old  level {level}",
            flush=True,
        )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    stats["peak_level_dbfs"] = round(max(levels), 1) if levels else -120.0
    return stats


async def main(uri: str, seconds: float) -> int:
    """Connect, watch, summarize; a device that cannot be opened is one clear line."""
    try:
        async with glasses_sdk.connect(uri) as device:
            summary = await watch(device, seconds)
    except GlassesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the bridge's own errors, an unreachable device
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("uri", help="local, file:VIDEO?audio=AUDIO, tcp://HOST:PORT?insecure=1")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to watch")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.uri, args.seconds)))
