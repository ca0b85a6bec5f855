"""Live captions: every phrase heard by the glasses' microphone, transcribed, with times.

    python samples/live_captions.py --cloud http://127.0.0.1:8000 --api-key KEY

silero VAD (on the device) cuts the microphone's audio into phrases; each phrase goes
to the cloud's OpenAI-compatible ``/v1/audio/transcriptions`` while the next one is
being heard, and its caption is printed with its start and end in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import wave

import numpy as np

import glasses_sdk
from glasses_sdk import GlassesError
from glasses_sdk.inference import SpeechSegment, VadOptions, VoiceActivityDetector
from glasses_sdk.routing import CloudClient

EMULATOR_URI = "tcp://127.0.0.1:7447?insecure=1"
KEEP_S = 30.0  # audio kept for phrases still being cut; older audio is dropped


def wav_bytes(samples: np.ndarray, sample_rate_hz: int) -> bytes:
    """int16 samples as a WAV file in memory."""
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate_hz)
        handle.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


async def caption(
    cloud: CloudClient, phrases: asyncio.Queue[tuple[SpeechSegment, bytes] | None], limit: int
) -> None:
    """Transcribe the phrases in order and print their captions."""
    printed = 0
    while (item := await phrases.get()) is not None:
        segment, wav = item
        try:
            response = await cloud.post(
                "/v1/audio/transcriptions",
                files={"file": ("phrase.wav", wav, "audio/wav")},
                data={"model": "pocketsphinx"},
                deadline_ms=15_000,
            )
            text = str(response.body.get("text", "")).strip() or "(nothing recognized)"
        except GlassesError as exc:
            text = f"(not transcribed: {exc})"
        print(f"[{segment.start_s:7.2f} - {segment.end_s:7.2f} s] {text}", flush=True)
        printed += 1
        if printed == limit:
            return


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=EMULATOR_URI, help="the glasses (default: emulator)")
    parser.add_argument("--cloud", default=os.environ.get("GLASSES_CLOUD_URL"))
    parser.add_argument("--api-key", default=os.environ.get("GLASSES_API_KEY"))
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to listen")
    parser.add_argument("--captions", type=int, default=0, help="stop after N (0: never)")
    args = parser.parse_args(argv)
    if not args.cloud or not args.api_key:
        parser.error("captions are transcribed by the cloud: give --cloud URL and --api-key KEY")

    phrases: asyncio.Queue[tuple[SpeechSegment, bytes] | None] = asyncio.Queue()
    writer: asyncio.Task[None] | None = None
    async with CloudClient(args.cloud, api_key=args.api_key) as cloud:
        try:
            async with glasses_sdk.connect(args.uri) as device:
                writer = asyncio.create_task(caption(cloud, phrases, args.captions))
                print(f"captioning {device.name} for {args.seconds:g} s", flush=True)
                rate, vad = 0, None
                kept = np.zeros(0, np.int16)
                kept_from = 0  # stream position (samples) of kept[0]
                async with asyncio.timeout(args.seconds):
                    async for chunk in device.audio:
                        if vad is None:
                            rate = chunk.sample_rate_hz
                            # Phrases end at 0.3 s of silence: a pause between words is
                            # shorter, the one after a sentence longer.
                            vad = VoiceActivityDetector(
                                VadOptions(sample_rate_hz=rate, min_silence_ms=300.0)
                            )
                        pcm = np.asarray(chunk.samples)
                        if pcm.dtype != np.int16:
                            pcm = (np.clip(pcm, -1, 1) * 32767).astype(np.int16)
                        kept = np.concatenate([kept, pcm])
                        for segment in vad.push(pcm):
                            start = int(segment.start_s * rate) - kept_from
                            end = int(segment.end_s * rate) - kept_from
                            wav = wav_bytes(kept[max(start, 0) : max(end, 0)], rate)
                            phrases.put_nowait((segment, wav))
                        if len(kept) > KEEP_S * rate:
                            drop = len(kept) - int(KEEP_S * rate)
                            kept, kept_from = kept[drop:], kept_from + drop
                        if writer.done():
                            break
        except TimeoutError:
            pass
        except GlassesError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if writer is not None:
            if not writer.done():
                phrases.put_nowait(None)  # caption what was heard, then stop
            await writer
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
