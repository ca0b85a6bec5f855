"""A custom skill: teach the assistant a new command with one decorator.

    python samples/custom_skill.py --seconds 60       # "hey glasses, how many people are there"
    python samples/custom_skill.py --text "what time is it"     # one typed command

``@assistant.skill(name, phrases=...)`` registers an async function; the assistant
picks it when a command sounds like one of its phrases, runs it with a
:class:`~glasses_sdk.assistant.SkillContext` (the photo through the privacy filter, the
device, the cloud, the deadline), speaks what it returns and reports it as an answer.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import glasses_sdk
from glasses_sdk import GlassesError
from glasses_sdk.assistant import AnswerEvent, Assistant, SkillContext

EMULATOR_URI = "tcp://127.0.0.1:7447?insecure=1"


def add_skills(assistant: Assistant) -> None:
    """The app's own skills, beside the built-in ones."""

    @assistant.skill("count_people", phrases=("how many people are there", "count the faces"))
    async def count_people(ctx: SkillContext) -> str:
        photo = await ctx.photo()  # faces found (and blurred) by the privacy filter
        n = len(photo.faces)
        return "I see nobody." if n == 0 else f"I see {n} {'person' if n == 1 else 'people'}."

    @assistant.skill("tell_time", phrases=("what time is it", "tell me the time"))
    async def tell_time(ctx: SkillContext) -> str:
        return time.strftime("It is %H:%M.")


def show(answer: AnswerEvent) -> None:
    print(
        f"{answer.skill} ({answer.source}, {answer.latency_ms.get('total', 0):.0f} ms): "
        f"{answer.text}  [heard: {answer.transcript!r}]",
        flush=True,
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=EMULATOR_URI, help="the glasses (default: emulator)")
    parser.add_argument("--text", help="answer this typed command once, then exit")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to listen")
    parser.add_argument("--answers", type=int, default=0, help="stop after N answers (0: never)")
    args = parser.parse_args(argv)

    try:
        async with glasses_sdk.connect(args.uri) as device:
            assistant = Assistant(device)
            add_skills(assistant)
            print(f"skills: {', '.join(sorted(assistant.skills))}", flush=True)
            if args.text:
                show(await assistant.handle_command(text=args.text))
                return 0
            events = assistant.events()  # subscribe before run() starts
            asyncio.get_running_loop().call_later(
                args.seconds, lambda: asyncio.ensure_future(assistant.stop())
            )
            runner = asyncio.create_task(assistant.run())
            answers = 0
            async for event in events:
                if isinstance(event, AnswerEvent):
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
