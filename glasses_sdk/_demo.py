"""``glasses demo``: the assistant end to end on the emulator, and the preprocessing core.

First the product: the device emulator plays the demo scenario (real photos with faces
and with text, the real pedestrian footage, spoken commands; see
:mod:`glasses_sdk._demo_scenario`), the cloud fallback server runs on loopback, and the
assistant listens on the emulated glasses, decides per request between device and cloud,
and speaks its answers (:mod:`glasses_sdk._demo_live`). The report shows each answer's
photo with faces blurred and text outlined, a timeline of wake words, decisions and
answers, the latency of every stage, and the spoken answers as audio
(:mod:`glasses_sdk._demo_report`).

Then the preprocessing core: real photos (scikit-image's, and a frame of opencv-doc's
pedestrian video) and a real speech recording (moonshine-voice's) through the same code
the runtime uses (letterbox into model tensors; PCM conversion, resampling and the
streaming log-mel front end), with the model inputs turned back into pictures, the
waveform and the log-mel spectrogram, and what each step cost.

Spans of every request go to the console or an OTLP collector when ``GLASSES_TRACING``
says so (see :mod:`glasses_sdk._tracing`).
"""

from __future__ import annotations

import asyncio
import html
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import soundfile
from rich.progress import Progress

from glasses_sdk import data
from glasses_sdk._demo_live import run_live
from glasses_sdk._demo_report import ASSISTANT_CSS, write_assistant_section
from glasses_sdk._demo_scenario import assemble_demo
from glasses_sdk._exceptions import DataNotFoundError, InvalidAudioError
from glasses_sdk._sources import install_sources, missing_sources
from glasses_sdk._tracing import configure_tracing_from_env
from glasses_sdk.preprocess import (
    Letterboxer,
    LetterboxOptions,
    LogMel,
    LogMelOptions,
    int16_to_float32,
    resample,
)

__all__ = ["run_demo"]

MODEL_SIZE = 640
PAD_VALUE = 114  # the grey that YOLO-style detectors are trained with
SAMPLE_RATE_HZ = 16_000
CHUNK_SAMPLES = 1280  # 80 ms, the streaming hop of the wake-word and VAD front ends
SPEECH_S = 10.0  # seconds of the recording shown
PHOTO_NAMES = ("astronaut", "camera", "coffee", "chelsea", "motorcycle", "page")


@dataclass
class _Photo:
    name: str
    source: str
    image: npt.NDArray[np.uint8]


def _median_ms(fn: Callable[[], object], repeats: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _photos() -> list[_Photo]:
    photos = [
        _Photo(name, f"scikit-image: {data.PHOTOS[name]}", data.load_photo(name))
        for name in PHOTO_NAMES
    ]
    video = data.pedestrian_video_path()
    capture = cv2.VideoCapture(str(video))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, 120)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise DataNotFoundError(f"could not read a frame of {video}")
    pedestrians = np.ascontiguousarray(frame, dtype=np.uint8)
    photos.append(_Photo("pedestrians", "opencv-doc: vtest.avi, frame 120", pedestrians))
    return photos


def _tensor_to_picture(tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """An RGB [3,H,W] tensor in 0..1 back to a BGR picture, to show what the model sees."""
    rgb = np.clip(tensor.transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _waveform_picture(
    samples: npt.NDArray[np.float32], width: int = 1200, height: int = 200
) -> npt.NDArray[np.uint8]:
    """Min/max envelope per pixel column, drawn as vertical lines."""
    picture = np.full((height, width, 3), 255, np.uint8)
    columns = np.array_split(samples, width)
    mid = height // 2
    peak = max(float(np.abs(samples).max()), 1e-6)
    for x, col in enumerate(columns):
        if col.size == 0:
            continue
        top = int(mid - float(col.max()) / peak * (mid - 4))
        bottom = int(mid - float(col.min()) / peak * (mid - 4))
        cv2.line(picture, (x, top), (x, bottom), (160, 90, 30), 1)
    cv2.line(picture, (0, mid), (width - 1, mid), (200, 200, 200), 1)
    return picture


def _spectrogram_picture(
    logmel_db: npt.NDArray[np.float32], width: int = 1200, row_px: int = 3
) -> npt.NDArray[np.uint8]:
    """(n_mels, frames) dB values as a colour picture, low frequencies at the bottom."""
    top = float(logmel_db.max())
    scaled = np.clip((logmel_db - (top - 80.0)) / 80.0, 0.0, 1.0)
    grey = (scaled[::-1] * 255).astype(np.uint8)
    grey = cv2.resize(grey, (width, grey.shape[0] * row_px), interpolation=cv2.INTER_NEAREST)
    coloured: npt.NDArray[np.uint8] = cv2.applyColorMap(grey, cv2.COLORMAP_VIRIDIS)
    return coloured


@contextmanager
def _progress(
    enabled: bool, total: int
) -> Iterator[tuple[Callable[[str], None], Callable[[float], None]]]:
    """``advance(description)`` for each step done, and ``tick(fraction)`` for the
    scenario playing (a bar of its own)."""
    if not enabled:
        yield (lambda _description: None), (lambda _fraction: None)
        return
    with Progress(transient=True) as progress:
        task = progress.add_task("demo", total=total)
        playing = progress.add_task("the scenario plays", total=1.0, visible=False)

        def advance(description: str) -> None:
            progress.update(task, advance=1, description=description)

        def tick(fraction: float) -> None:
            progress.update(playing, completed=fraction, visible=fraction < 1.0)

        yield advance, tick


def _letterbox_section(out: Path, advance: Callable[[str], None]) -> list[dict[str, Any]]:
    letterboxer = Letterboxer(
        LetterboxOptions(size=MODEL_SIZE, pad_value=PAD_VALUE, channel_order="rgb")
    )
    results = []
    for photo in _photos():
        image = photo.image
        tensor, info = letterboxer.run(image)
        cost_ms = _median_ms(lambda image=image: letterboxer.run(image))  # type: ignore[misc]
        picture = _tensor_to_picture(tensor[0])
        # Where the whole frame lands in the model input, mapped through LetterboxInfo.
        h, w = image.shape[:2]
        x0, y0, x1, y1 = info.boxes_to_model([[0, 0, w, h]])[0]
        cv2.rectangle(
            picture, (round(x0), round(y0)), (round(x1) - 1, round(y1) - 1), (0, 200, 0), 2
        )
        round_trip = info.boxes_to_frame(
            info.boxes_to_model([[w * 0.25, h * 0.25, w * 0.75, h * 0.75]])
        )
        error_px = float(np.abs(round_trip - [[w * 0.25, h * 0.25, w * 0.75, h * 0.75]]).max())
        cv2.imwrite(str(out / f"{photo.name}-input.jpg"), image)
        cv2.imwrite(str(out / f"{photo.name}-model.jpg"), picture)
        results.append(
            {
                "name": photo.name,
                "source": photo.source,
                "input_size": [w, h],
                "model_input_shape": list(tensor.shape),
                "scale": round(float(info.scale), 6),
                "pad_x": info.pad_x,
                "pad_y": info.pad_y,
                "letterbox_ms": round(cost_ms, 3),
                "box_round_trip_error_px": round(error_px, 6),
            }
        )
        advance(f"letterboxed {photo.name}")
    return results


def _read_speech(path: Path, max_s: float) -> tuple[npt.NDArray[np.float32], int]:
    rate = int(soundfile.info(str(path)).samplerate)
    pcm, _ = soundfile.read(path, dtype="int16", always_2d=True, frames=int(max_s * rate))
    if pcm.shape[0] == 0:
        raise InvalidAudioError(f"{path} holds no samples")
    mono = int16_to_float32(np.ascontiguousarray(pcm[:, 0]))
    return mono, rate


def _speech_section(out: Path, advance: Callable[[str], None]) -> dict[str, Any]:
    # A 48 kHz studio recording, so that the resampler has real work to do.
    path = data.speech_path("two_cities")
    native, native_rate = _read_speech(path, SPEECH_S)
    samples = resample(native, native_rate, SAMPLE_RATE_HZ)
    resample_ms = _median_ms(lambda: resample(native, native_rate, SAMPLE_RATE_HZ), 5)
    advance("resampled the speech")

    options = LogMelOptions(
        sample_rate_hz=SAMPLE_RATE_HZ, n_fft=512, win_length=400, hop_length=160, n_mels=80
    )
    whole = LogMel(options).compute(samples)
    whole_ms = _median_ms(lambda: LogMel(options).compute(samples), 5)

    stream = LogMel(options)
    parts = [
        stream.push(samples[i : i + CHUNK_SAMPLES]) for i in range(0, len(samples), CHUNK_SAMPLES)
    ]
    parts.append(stream.flush())
    streamed = np.concatenate(parts, axis=1)
    chunk = samples[:CHUNK_SAMPLES]
    probe = LogMel(options)
    chunk_ms = _median_ms(lambda: probe.push(chunk), 50)
    advance("computed the log-mel spectrogram")

    cv2.imwrite(str(out / "speech-waveform.png"), _waveform_picture(samples))
    cv2.imwrite(str(out / "speech-logmel.png"), _spectrogram_picture(whole))
    soundfile.write(out / "speech.wav", samples, SAMPLE_RATE_HZ, subtype="PCM_16")
    duration_s = len(samples) / SAMPLE_RATE_HZ
    return {
        "source": f"moonshine-voice: {path.name}",
        "native_rate_hz": native_rate,
        "duration_s": round(duration_s, 3),
        "resample_ms": round(resample_ms, 3),
        "logmel_shape": list(whole.shape),
        "logmel_clip_ms": round(whole_ms, 3),
        "logmel_chunk_80ms_ms": round(chunk_ms, 4),
        "stream_frames": int(streamed.shape[1]),
        "stream_max_abs_diff_db": float(np.abs(streamed - whole).max())
        if streamed.shape == whole.shape
        else None,
    }


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1300px; }
h1 { margin-bottom: 0; } .sub { color: #666; margin-top: .3rem; }
table { border-collapse: collapse; margin: 1rem 0; } td, th { padding: .35rem .7rem;
  border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
.pair { display: flex; gap: 1rem; align-items: flex-start; margin: 1.2rem 0; flex-wrap: wrap; }
.pair figure { margin: 0; }
.pair img { max-width: 560px; max-height: 360px; border: 1px solid #ccc; }
figcaption { color: #555; font-size: .9rem; } img.wide { width: 100%; border: 1px solid #ccc; }
code { background: #f3f3f3; padding: 0 .25rem; }
"""


def _render_html(summary: dict[str, Any], assistant_html: str = "") -> str:
    esc = html.escape
    rows = []
    figures = []
    for p in summary["photos"]:
        w, h = p["input_size"]
        rows.append(
            f"<tr><td>{esc(p['name'])}</td><td>{esc(p['source'])}</td><td>{w}×{h}</td>"
            f"<td>{p['scale']}</td><td>{p['pad_x']}, {p['pad_y']}</td>"
            f"<td>{p['letterbox_ms']:.3f}</td><td>{p['box_round_trip_error_px']:.2e}</td></tr>"
        )
        figures.append(
            f'<div class="pair"><figure><img src="{esc(p["name"])}-input.jpg" alt="input">'
            f"<figcaption>{esc(p['name'])}: camera frame, {w}×{h}</figcaption></figure>"
            f'<figure><img src="{esc(p["name"])}-model.jpg" alt="model input">'
            f"<figcaption>model input {MODEL_SIZE}×{MODEL_SIZE} (RGB tensor shown as a "
            f"picture); green: the frame mapped through LetterboxInfo</figcaption></figure></div>"
        )
    s = summary["speech"]
    diff = s["stream_max_abs_diff_db"]
    diff_text = "shapes differ" if diff is None else f"{diff:.2e} dB"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>glasses-sdk demo</title>
<style>{_CSS}{ASSISTANT_CSS}</style></head><body>
<h1>glasses-sdk demo</h1>
<p class="sub">The assistant on emulated glasses with a cloud fallback on loopback, then the
preprocessing core on real photos and real speech. Generated {esc(summary["generated"])};
every number below was measured in this run.</p>
{assistant_html}
<h2>Camera frames → model inputs</h2>
<p>Each frame is letterboxed into a float32 NCHW tensor of {MODEL_SIZE}×{MODEL_SIZE}
(aspect kept, padding {PAD_VALUE}, RGB, scaled to 0..1) with reusable buffers.</p>
<table><tr><th>photo</th><th>source</th><th>size</th><th>scale</th><th>pad x, y</th>
<th>letterbox (ms, median)</th><th>box round trip (px)</th></tr>{"".join(rows)}</table>
{"".join(figures)}
<h2>Speech → log-mel features</h2>
<p>{esc(s["source"])}: {s["duration_s"]} s at {s["native_rate_hz"]} Hz, resampled to
{SAMPLE_RATE_HZ} Hz (polyphase) in {s["resample_ms"]} ms.</p>
<audio controls src="speech.wav"></audio>
<figure><img class="wide" src="speech-waveform.png" alt="waveform">
<figcaption>waveform at {SAMPLE_RATE_HZ} Hz</figcaption></figure>
<figure><img class="wide" src="speech-logmel.png" alt="log-mel spectrogram">
<figcaption>log-mel spectrogram, {s["logmel_shape"][0]} mels × {s["logmel_shape"][1]}
frames (n_fft 512, window 400, hop 160), top 80 dB shown</figcaption></figure>
<table><tr><th>whole clip</th><td>{s["logmel_clip_ms"]} ms</td></tr>
<tr><th>streaming, per 80 ms chunk</th><td>{s["logmel_chunk_80ms_ms"]} ms</td></tr>
<tr><th>streamed frames vs whole clip</th><td>{s["stream_frames"]} frames, largest
difference {diff_text}</td></tr></table>
</body></html>
"""


def run_demo(out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Run the demo and write ``out/index.html`` (and ``out/report.json``); return the summary.

    Bounded: the scenario plays once (about half a minute) after the parts start.

    Raises:
        DataNotFoundError: a photo, the video, espeak-ng or flite is missing.
        GlassesError: the emulator, the cloud server or the assistant failed.
    """
    out.mkdir(parents=True, exist_ok=True)
    if missing_sources():
        install_sources()
    started = time.perf_counter()
    tracing = configure_tracing_from_env()
    try:
        # Steps: scenario, cloud server, emulator, scenario played, report; then the
        # preprocessing core (a step per photo, two for the speech).
        with _progress(progress, total=5 + len(PHOTO_NAMES) + 3) as (advance, tick):
            assets = assemble_demo()
            advance("assembled the demo scenario")
            live = asyncio.run(run_live(assets, advance=advance, tick=tick))
            advance("the scenario was played")
            assistant, assistant_html = write_assistant_section(live, assets, out)
            advance("wrote the answers' photos and audio")
            photos = _letterbox_section(out, advance)
            speech = _speech_section(out, advance)
    finally:
        tracing.close()
    summary: dict[str, Any] = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "report": str((out / "index.html").resolve()),
        "duration_s": round(time.perf_counter() - started, 1),
        "counts": assistant["counts"],
        "latency_p50_ms": assistant["latency_p50_ms"],
        "assistant": assistant,
        "photos": photos,
        "speech": speech,
    }
    (out / "index.html").write_text(_render_html(summary, assistant_html), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
