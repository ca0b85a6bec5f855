"""A privacy camera: photos from the glasses with every face blurred before they are kept.

    python samples/privacy_camera.py --out photos --every-s 2 --seconds 20

Every ``--every-s`` seconds the newest camera frame goes through the SDK's privacy
filter (BlazeFace, then each face pixelated with a margin) and only the filtered picture
is written. The sample refuses to capture while the glasses say their capture LED
cannot be shown, as the SDK's assistant does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import glasses_sdk
from glasses_sdk import GlassesError
from glasses_sdk.assistant import PrivacyFilter, check_led

EMULATOR_URI = "tcp://127.0.0.1:7447?insecure=1"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=EMULATOR_URI, help="the glasses (default: emulator)")
    parser.add_argument("--out", type=Path, default=Path("privacy-photos"), help="folder")
    parser.add_argument("--every-s", type=float, default=2.0, help="seconds between photos")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to run")
    args = parser.parse_args(argv)

    privacy = PrivacyFilter()  # faces blurred: the default, and it cannot be skipped silently
    await asyncio.to_thread(privacy.warm_up)
    args.out.mkdir(parents=True, exist_ok=True)
    taken = 0
    try:
        async with glasses_sdk.connect(args.uri) as device:
            print(f"taking a photo every {args.every_s:g} s from {device.name}", flush=True)
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                check_led(device)  # raises LedUnavailableError: no capture without the LED
                frame = await device.video.read()
                filtered = await asyncio.to_thread(privacy.apply, frame.image)
                taken += 1
                path = args.out / f"photo-{taken:03d}.jpg"
                path.write_bytes(filtered.to_jpeg())
                boxes = " ".join(
                    "[" + ", ".join(f"{v:.0f}" for v in box) + "]" for box in filtered.faces
                )
                print(
                    f"{path.name}: {filtered.width}x{filtered.height}, "
                    f"{len(filtered.faces)} face(s) blurred {boxes}".rstrip(),
                    flush=True,
                )
                await asyncio.sleep(max(0.0, min(args.every_s, end - time.monotonic())))
    except GlassesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{taken} photo(s) in {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
