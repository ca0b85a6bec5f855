"""Connect to the glasses emulator and print what the glasses see and hear.

Start an emulator in another terminal, then pair once and run::

    glasses emulator                                   # prints its pairing code
    python samples/hello_emulator.py tcp://127.0.0.1:7447 --code 123456

Later runs need no ``--code``: the pairing is stored. Against ``glasses emulator
--insecure`` pass ``--insecure`` instead. Prints camera frames (size, timestamp, how
late they arrived), audio levels, taps and battery/thermal reports, then a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import time
from pathlib import Path

import numpy as np

from firmware_bridge import BridgeError
from firmware_bridge._secure import PairingStore, pair_tcp
from firmware_bridge.host import DeviceInput, StateChanged
from firmware_bridge.transports import parse_link_uri
from glasses_sdk import BridgeDevice, connect_bridge


def _level_dbfs(samples: np.ndarray) -> float:
    scale = 32768.0 if samples.dtype == np.int16 else 1.0
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64) / scale))))
    return -120.0 if rms <= 1e-6 else 20 * math.log10(rms)


async def _watch_video(device: BridgeDevice, counts: dict[str, int]) -> None:
    async for frame in device.video:
        late_ms = (time.monotonic() - frame.timestamp_s) * 1000
        counts["frames"] += 1
        print(
            f"frame {frame.frame_number:5d}  {frame.width}x{frame.height}  "
            f"t={frame.timestamp_s:.3f} s  arrived {late_ms:5.1f} ms after capture",
            flush=True,
        )


async def _watch_audio(device: BridgeDevice, counts: dict[str, int]) -> None:
    async for chunk in device.audio:
        counts["audio_chunks"] += 1
        if counts["audio_chunks"] % 25 == 1:  # every half second of 20 ms chunks
            print(
                f"audio {chunk.sequence:5d}  {len(chunk.samples)} samples @ "
                f"{chunk.sample_rate_hz} Hz  level {_level_dbfs(chunk.samples):6.1f} dBFS",
                flush=True,
            )


async def _watch_events(device: BridgeDevice, counts: dict[str, int]) -> None:
    async for event in device.events():
        if isinstance(event, DeviceInput):
            counts["taps"] += 1
            print(f"input {type(event.message).__name__}: {event.message}", flush=True)
        elif isinstance(event, StateChanged):
            status = event.status
            print(
                f"state battery={status.battery_percent}% charging={status.charging} "
                f"temperature={status.temperature_c} throttle={status.throttle_level.name} "
                f"led={status.led.name}",
                flush=True,
            )
        else:
            print(f"event {event}", flush=True)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri", help="tcp://HOST:PORT of the emulator")
    parser.add_argument("--code", help="pair first with this 6-digit code")
    parser.add_argument("--insecure", action="store_true", help="emulator runs --insecure")
    parser.add_argument("--pairing-dir", type=Path, help="pairing store folder")
    parser.add_argument("--duration-s", type=float, default=10.0, help="how long to watch")
    args = parser.parse_args(argv)

    store = PairingStore(args.pairing_dir) if args.pairing_dir else PairingStore.default()
    try:
        if args.code:
            address = parse_link_uri(args.uri)
            cert = await pair_tcp(address.host, address.port, args.code, store.identity())
            store.save_device(f"{address.host}:{address.port}", cert)
            print(f"paired with {args.uri}", flush=True)
        device = await connect_bridge(
            args.uri, insecure=args.insecure, pairing_dir=store.folder, fps=10
        )
    except BridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"connected to {device.name}", flush=True)
    counts = dict.fromkeys(("frames", "audio_chunks", "taps"), 0)
    async with device:
        watchers = [
            asyncio.create_task(_watch_video(device, counts)),
            asyncio.create_task(_watch_audio(device, counts)),
            asyncio.create_task(_watch_events(device, counts)),
        ]
        await asyncio.sleep(args.duration_s)
        quality = device.link_quality()
        for task in watchers:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*watchers, return_exceptions=True)
    rtt = "n/a" if quality.rtt_ms is None else f"{quality.rtt_ms:.1f} ms"
    print(
        f"summary: {counts['frames']} frames, {counts['audio_chunks']} audio chunks, "
        f"{counts['taps']} inputs; rtt {rtt}, loss {quality.loss_ratio:.1%}, "
        f"{quality.throughput_kbps:.0f} kbit/s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
