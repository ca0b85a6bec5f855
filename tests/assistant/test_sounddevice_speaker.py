"""SoundDeviceSpeaker over PortAudio, into a real PulseAudio null sink whose monitor a
MicrophoneSource records: what the speaker played is what comes back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import scipy.signal

from glasses_sdk.assistant import SoundDeviceSpeaker, synthesize
from glasses_sdk.capture._audio import MicrophoneSource
from glasses_sdk.preprocess.audio import int16_to_float32, resample
from tests.capture.conftest import PulseSink, pulse_sink  # noqa: F401  (the fixture)
from tests.conftest import need_binary

pytestmark = pytest.mark.timeout(60)


def _best_ncc(recorded: np.ndarray, reference: np.ndarray) -> float:
    corr = scipy.signal.correlate(recorded, reference, mode="full", method="fft")
    lag = int(np.argmax(np.abs(corr))) - (len(reference) - 1)
    a = recorded[max(lag, 0) :]
    b = reference[max(-lag, 0) :]
    n = min(len(a), len(b))
    norm = float(np.linalg.norm(a[:n]) * np.linalg.norm(b[:n]))
    return 0.0 if norm == 0.0 else float(np.dot(a[:n], b[:n])) / norm


def test_the_answer_plays_on_this_computers_speaker(pulse_sink: PulseSink) -> None:  # noqa: F811
    need_binary("espeak-ng")
    pcm, rate = synthesize("Hello from the glasses. The text says region based segmentation.")
    reference = int16_to_float32(np.frombuffer(pcm, dtype="<i2").copy())

    async def run() -> tuple[np.ndarray, int]:
        speaker = SoundDeviceSpeaker("pulse")
        chunks = []
        async with MicrophoneSource("pulse") as mic:
            chunks.append(await mic.read())
            playing = asyncio.create_task(speaker.play(pcm, rate))
            while not playing.done():
                chunks.append(await mic.read())
            await playing
            for _ in range(15):  # the tail still in the server's buffers
                chunks.append(await mic.read())
        samples = np.concatenate([c.samples.astype(np.float32) for c in chunks])
        return samples, chunks[0].sample_rate_hz

    recorded, mic_rate = asyncio.run(asyncio.wait_for(run(), timeout=30))
    if mic_rate != rate:
        recorded = resample(recorded, mic_rate, rate)
    # Each quarter of the answer is found in the recording on its own: one alignment for
    # the whole clip scored 0.57 once when the PulseAudio server, starved of CPU by the
    # parallel test run, dropped a block and shifted the rest.
    quarters = np.array_split(reference, 4)
    scores = sorted(_best_ncc(recorded, q) for q in quarters)
    assert scores[1] > 0.6 and scores[0] > 0.3, scores
