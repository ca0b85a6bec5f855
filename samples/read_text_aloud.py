"""Read the text in view aloud: say "hey glasses, read the text" and hear it.

    glasses emulator --insecure                    # in another terminal (or real glasses)
    python samples/read_text_aloud.py --seconds 60

The glasses read on the device; give ``--cloud URL --api-key KEY`` (a ``glasses cloud
serve``) and pages the device cannot read confidently, or too large for it, go to the
cloud. The answer is spoken on the glasses' speaker and printed with where it came from.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import glasses_sdk
from glasses_sdk import GlassesError
from glasses_sdk.assistant import AnswerEvent, Assistant, WakeEvent
from glasses_sdk.routing import CloudClient

EMULATOR_URI = "tcp://127.0.0.1:7447?insecure=1"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=EMULATOR_URI, help="the glasses (default: emulator)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to listen")
    parser.add_argument("--answers", type=int, default=0, help="stop after N answers (0: never)")
    parser.add_argument("--cloud", help="the cloud fallback server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=os.environ.get("GLASSES_API_KEY"))
    args = parser.parse_args(argv)

    cloud = CloudClient(args.cloud, api_key=args.api_key) if args.cloud else None
    try:
        async with glasses_sdk.connect(args.uri) as device:
            assistant = Assistant(device, cloud=cloud)
            events = assistant.events()  # subscribe before run() starts
            asyncio.get_running_loop().call_later(
                args.seconds, lambda: asyncio.ensure_future(assistant.stop())
            )
            runner = asyncio.create_task(assistant.run())
            print(f"listening on {device.name} for {args.seconds:g} s", flush=True)
            answers = 0
            async for event in events:
                if isinstance(event, AnswerEvent):
                    answers += 1
                    if answers == args.answers:
                        await assistant.stop()  # this answer is printed, then the end
                if isinstance(event, WakeEvent):
                    print(f"woken by {event.phrase!r}", flush=True)
                elif isinstance(event, AnswerEvent) and event.skill == "read_text":
                    lines = event.data.get("lines", [])
                    total_ms = event.latency_ms.get("total", 0.0)
                    print(
                        f"read {len(lines)} line(s) ({event.source}, {total_ms:.0f} ms):",
                        flush=True,
                    )
                    for line in event.text.splitlines():
                        print(f"  {line}", flush=True)
                elif isinstance(event, AnswerEvent):
                    print(f"{event.skill}: {event.text}", flush=True)
            await runner
    except GlassesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if cloud is not None:
            await cloud.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
