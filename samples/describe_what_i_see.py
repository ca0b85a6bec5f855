"""Describe what I see: say "hey glasses, what do you see" and the cloud describes it.

    glasses cloud serve                            # the fallback server; and a key:
    glasses cloud keys create --json               # then, with the emulator running:
    python samples/describe_what_i_see.py --cloud http://127.0.0.1:8000 --api-key KEY

Describing a scene needs a model the glasses lack, so the routing policy sends it to the
cloud, and the photo leaves the device only through the privacy filter: every face is
blurred first. The sample prints what the device blurred, what the cloud saw, the
answer, and the time each stage took.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import glasses_sdk
from glasses_sdk import GlassesError
from glasses_sdk.assistant import AnswerEvent, Assistant, DecisionEvent
from glasses_sdk.routing import CloudClient

EMULATOR_URI = "tcp://127.0.0.1:7447?insecure=1"


def show(answer: AnswerEvent) -> None:
    """Print one answer: the privacy filter's work, the cloud's view, the stages."""
    blurred = len(answer.frame.faces) if answer.frame is not None else 0
    print(f"answer ({answer.source}): {answer.text}", flush=True)
    print(f"  faces blurred on the device: {blurred}", flush=True)
    if "faces_seen" in answer.data:
        print(f"  faces the cloud saw: {answer.data['faces_seen']}", flush=True)
    stages = ", ".join(f"{k} {v:.0f} ms" for k, v in answer.latency_ms.items())
    print(f"  stages: {stages}", flush=True)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=EMULATOR_URI, help="the glasses (default: emulator)")
    parser.add_argument("--cloud", default=os.environ.get("GLASSES_CLOUD_URL"), required=False)
    parser.add_argument("--api-key", default=os.environ.get("GLASSES_API_KEY"))
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to listen")
    parser.add_argument("--answers", type=int, default=0, help="stop after N answers (0: never)")
    args = parser.parse_args(argv)
    if not args.cloud or not args.api_key:
        parser.error("describing a scene needs the cloud: give --cloud URL and --api-key KEY")

    async with CloudClient(args.cloud, api_key=args.api_key) as cloud:
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
                    if isinstance(event, DecisionEvent) and event.decision.task != "intent":
                        reasons = "; ".join(event.decision.reasons)
                        print(f"{event.decision.task} -> {event.decision.route}: {reasons}")
                    elif isinstance(event, AnswerEvent):
                        show(event)
                        answers += 1
                        if answers == args.answers:
                            await assistant.stop()
                await runner
        except GlassesError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
