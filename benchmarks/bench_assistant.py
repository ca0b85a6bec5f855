"""The assistant: answer latency per stage, the edge runtime's memory and idle CPU, and
what tracing costs when it is off.

Run from a checkout: ``python -m benchmarks.bench_assistant [--quick] [--json]``.

1. **Tracing off** — ``with span("inference"): stage()`` against the bare ``stage()``
   call, and against the cheapest real stage (one silero VAD call on 32 ms of audio),
   interleaved by the shared harness. Off, :func:`glasses_sdk._tracing.span` is a flag
   test that returns one shared empty context manager.
2. **Latency** — from the last voiced sample of a spoken command to the first sample
   of the spoken answer, for a local skill (``read_text``: skimage's printed page on the
   emulated camera, read on the device; the assistant has no cloud, so it stays local)
   and a cloud skill (``describe_scene``: the same view, answered by the cloud server on
   loopback). The command audio (synthesized by flite, trimmed at its last voiced
   sample) goes to :meth:`Assistant.handle_command`, so the endpointer's trailing
   silence wait is not in the measured time: it is the configured
   ``trailing_silence_ms`` and is reported beside it. The reference, run in turn with
   each command, is the sum of the bare model calls the answer needs (pocketsphinx on
   the command, BlazeFace on the photo, PP-OCR or one HTTP request to ``/v1/assist``,
   espeak-ng on the answer), so that the ratio is what the assistant adds around them.
   The emulator and the cloud server are separate processes (127.0.0.1).
3. **Edge runtime** — a separate process connects to the emulator (another process)
   at 1280×720 and 30 fps, loads every local model (wake word, VAD, BlazeFace full,
   PP-OCR, pocketsphinx), runs the assistant idle-listening (VAD and wake word on all
   audio: a man reading, no wake word) with face detection on 5 frames a second, and
   reports its own CPU time over wall time (``time.process_time``) and its peak
   resident memory (``ru_maxrss``). References: the RSS of the same process before any
   model is loaded, and the CPU that the bare calls (JPEG decode per frame received,
   BlazeFace per detection, VAD and wake word per second of audio) add up to, timed in
   that process afterwards.

The machine's load average is reported with the numbers: on a shared 2-core machine
every absolute time here moves with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import (
    Comparison,
    Reference,
    compare,
    environment,
    render_table,
    results_json,
)

__all__ = ["main", "run"]

LOCAL_GOAL_MS = 300.0
CLOUD_GOAL_MS = 1000.0
RSS_GOAL_MB = 400.0
CPU_GOAL_PERCENT = 40.0
LOCAL_PICTURE = "data:photo:page"
IDLE_FPS = 30
FACE_FPS = 5


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_rss_mb() -> float:
    """This process's peak resident memory. ``ru_maxrss`` would do, but Linux keeps it
    across ``exec``: a child of a big parent would report the parent's size. The kernel's
    ``VmHWM`` belongs to the address space, which ``exec`` replaces."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _rss_now_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _p50(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


@contextmanager
def _child(args: list[str], ready_timeout_s: float = 120.0) -> Iterator[dict[str, Any]]:
    """A helper process of this module; yields the JSON line it prints when ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_assistant", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + ready_timeout_s
        line = ""
        while not line.startswith("{"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"helper {args[0]} did not start")
            line = process.stdout.readline()
        yield json.loads(line)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _scenario(picture: str, speech: str | None = None) -> Path:
    """An emulator scenario: ``picture`` on camera (and a recording on the microphone)."""
    from glasses_sdk._demo_scenario import DemoScene, assemble_demo, load_demo_script

    script = replace(
        load_demo_script(), scenes=(DemoScene(picture, 7.0, "read the text", "read_text"),)
    )
    assets = assemble_demo(script)
    if speech is None:
        return assets.scenario_path
    text = assets.scenario_path.read_text(encoding="utf-8")
    idle = assets.folder / "idle-scenario.toml"
    idle.write_text(
        text.replace('wav = "microphone.wav"', f'wav = "data:speech:{speech}"'), encoding="utf-8"
    )
    return idle


# --------------------------------------------------------------------------- helpers' mains


async def _serve_emulator(scenario_path: Path) -> None:
    from firmware_bridge.emulator import Emulator
    from firmware_bridge.emulator._scenario import load_scenario

    emulator = Emulator(load_scenario(scenario_path), insecure=True, play_timeline=False)
    await emulator.start()
    print(json.dumps({"port": emulator.port}), flush=True)
    await asyncio.Event().wait()  # until terminated


def _serve_cloud(data_dir: Path, port: int) -> None:
    import uvicorn

    from glasses_sdk.cloud import create_app, load_settings

    settings = load_settings(
        env={},
        data_dir=data_dir,
        backends=["transcription", "faces", "ocr"],
        required_backends=["transcription"],
        # One user on loopback: a text-reading call may use both cores of this host.
        ocr_threads=2,
    )
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        print(json.dumps({"port": port}), flush=True)
        await task

    asyncio.run(serve())


# --------------------------------------------------------------------------- 1. tracing


def bench_tracing(quick: bool) -> list[Comparison]:
    """span() with tracing off against a bare call and against one VAD call."""
    from glasses_sdk._tracing import span, tracing_enabled
    from glasses_sdk.inference import VoiceActivityDetector

    assert not tracing_enabled(), "tracing must be off for this comparison"
    vad = VoiceActivityDetector()
    chunk = np.zeros(512, np.float32)

    def stage() -> None:
        return None

    def traced_stage() -> None:
        with span("inference", task="vad"):
            return stage()

    samples, rounds = (10, 2) if quick else (30, 3)
    return [
        compare(
            "span() off around a stage",
            ("span() off + stage()", traced_stage),
            [
                # No goal against the bare call: any with-statement costs several bare
                # calls; what matters is the share of a real stage, below.
                ("bare stage() call", stage, None),
                ("one VAD call (32 ms of audio)", lambda: vad.process(chunk), 100.0),
            ],
            samples=samples,
            rounds=rounds,
            notes="goal: under 1% of the cheapest model stage (a request opens about 7 spans)",
        )
    ]


# --------------------------------------------------------------------------- 2. latency


def _command(text: str) -> np.ndarray:
    """``text`` spoken by flite's awb (pocketsphinx hears it), ending at its last voiced
    sample, as the endpointer hands it over after the trailing silence."""
    from glasses_sdk.wakeword_train._synth import Voice, synthesize

    return np.ascontiguousarray(synthesize(text, Voice("flite", "awb")), dtype=np.float32)


def _first_sample_ms(latency_ms: dict[str, float]) -> float:
    # The assistant reports when the answer's first audio went to the speaker
    # ("first_audio"); without it, play() got the first sample when it was called: the
    # total without the hand-over itself.
    if "first_audio" in latency_ms:
        return float(latency_ms["first_audio"])
    return float(latency_ms["total"]) - float(latency_ms.get("playback", 0.0))


async def _latency(quick: bool, emulator_uri: str, cloud_url: str, token: str) -> dict[str, Any]:
    import cv2
    import httpx

    from glasses_sdk import connect
    from glasses_sdk.assistant import (
        Assistant,
        AssistantOptions,
        ErrorEvent,
        PrivacyFilter,
        RecordingSpeaker,
        synthesize,
    )
    from glasses_sdk.cloud._backends import PocketsphinxTranscriber
    from glasses_sdk.cloud._limits import Deadline
    from glasses_sdk.inference import TextReader, TextReaderOptions
    from glasses_sdk.routing import CloudClient

    iterations = 3 if quick else 10
    options = AssistantOptions(deadline_ms=30_000.0)  # measure, never give up, here
    commands = {
        "read_text": _command("read the text"),
        "describe_scene": _command("what do you see"),
    }
    # The bare calls of the reference: the same models, called directly.
    sphinx = PocketsphinxTranscriber(max_decoders=1)
    privacy = PrivacyFilter(options.privacy)
    reader = TextReader(TextReaderOptions(max_side_px=options.ocr_max_side_px))
    http = httpx.AsyncClient(
        base_url=cloud_url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0
    )

    async with connect(emulator_uri) as device, CloudClient(cloud_url, api_key=token) as cloud:
        local = Assistant(device, options=options, speaker=RecordingSpeaker())
        remote = Assistant(device, cloud=cloud, options=options, speaker=RecordingSpeaker())
        photo = (await device.take_photo()).image  # type: ignore[attr-defined]

        def transcribe(audio: np.ndarray) -> str:
            return str(sphinx.transcribe(audio, Deadline(time.monotonic() + 30)).text)

        async def bare_local() -> float:
            start = time.perf_counter()
            transcribe(commands["read_text"])
            filtered = privacy.apply(photo)
            text = reader.read(filtered.image).text or "I see no text."
            synthesize(text[: options.max_answer_chars], options.voice)
            return (time.perf_counter() - start) * 1000

        async def bare_cloud() -> float:
            start = time.perf_counter()
            question = transcribe(commands["describe_scene"])
            filtered = privacy.apply(photo)
            ok, jpeg = cv2.imencode(
                ".jpg", np.asarray(filtered.image), [cv2.IMWRITE_JPEG_QUALITY, 90]
            )
            assert ok
            response = await http.post(
                "/v1/assist",
                files={"image": ("frame.jpg", jpeg.tobytes(), "image/jpeg")},
                data={"question": question},
            )
            response.raise_for_status()
            synthesize(str(response.json().get("answer", "")) or "nothing", options.voice)
            return (time.perf_counter() - start) * 1000

        cases = {
            "read_text": (local, bare_local, LOCAL_GOAL_MS),
            "describe_scene": (remote, bare_cloud, CLOUD_GOAL_MS),
        }
        results: dict[str, Any] = {}
        for name, (assistant, bare, _) in cases.items():  # warm-up: models load here
            await assistant.handle_command(commands[name])
            await bare()
        for name, (assistant, bare, goal_ms) in cases.items():
            ours, refs, stages, routes, skills, texts = [], [], [], [], [], []
            errors: list[str] = []
            off = assistant.on(ErrorEvent, lambda e, errors=errors: errors.append(e.error))
            for _ in range(iterations):
                answer = await assistant.handle_command(commands[name])
                routes.append(str(answer.source))
                skills.append(answer.skill)
                texts.append(answer.text[:120])
                reference_ms = await bare()
                if answer.source == "refused":
                    continue  # not an answer: counted, and its error kept, not timed
                ours.append(_first_sample_ms(answer.latency_ms))
                stages.append(answer.latency_ms)
                refs.append(reference_ms)
            off()
            stage_names = sorted({k for s in stages for k in s})
            stages_p50 = {k: round(_p50([s[k] for s in stages if k in s]), 1) for k in stage_names}
            ratios = [o / r for o, r in zip(ours, refs, strict=True)]
            results[name] = {
                "iterations": iterations,
                "skills": skills,
                "routes": routes,
                "answers": texts,
                "refused": routes.count("refused"),
                "errors": errors,
                "first_sample_p50_ms": round(_p50(ours), 1),
                "first_sample_ms": [round(v, 1) for v in ours],
                "stages_p50_ms": stages_p50,
                "endpointing_wait_ms": options.trailing_silence_ms,
                "reference_sum_of_bare_calls_p50_ms": round(_p50(refs), 1),
                "ratio_pipeline_to_bare_p50": round(_p50(ratios), 3),
                "goal_ms": goal_ms,
                "met": _p50(ours) < goal_ms,
            }
    await http.aclose()
    return results


# --------------------------------------------------------------------------- 3. edge runtime


async def _edge_idle(uri: str, seconds: float) -> dict[str, Any]:
    from glasses_sdk import connect_bridge
    from glasses_sdk.assistant import Assistant, RecordingSpeaker
    from glasses_sdk.inference import FaceDetector, FaceDetectorOptions

    rss_imports_mb = _peak_rss_mb()
    steps: dict[str, float] = {"imports": round(_rss_now_mb(), 1)}
    # The emulator is insecure on loopback for the benchmark: no pairing to set up.
    device = await connect_bridge(uri, insecure=True, width_px=1280, height_px=720, fps=IDLE_FPS)
    assistant = Assistant(device, speaker=RecordingSpeaker())
    steps["connected"] = round(_rss_now_mb(), 1)
    # Every local model, loaded and run once: text reading (a typed command), the
    # command recognizer (a spoken one), then run() loads wake word, VAD and faces.
    await assistant.handle_command(text="read the text")
    steps["text reading (PP-OCR) + faces (privacy filter)"] = round(_rss_now_mb(), 1)
    await assistant.handle_command(_command("take a photo"))
    steps["command recognizer (pocketsphinx)"] = round(_rss_now_mb(), 1)
    faces = FaceDetector(FaceDetectorOptions(model=assistant.options.privacy.face_model))
    events = assistant.events()
    runner = asyncio.create_task(assistant.run())
    detections = 0

    async def detect_faces() -> None:
        nonlocal detections
        due = time.monotonic()
        while True:
            # The assistant is the camera stream's one reader (a second reader of a
            # latest-frame source would take frames from it); its newest frame is the
            # one to look at. No public accessor yet: asked of the assistant's owner.
            frame = assistant._latest_frame
            if frame is None:
                await asyncio.sleep(0.05)
                continue
            try:
                await asyncio.to_thread(faces.detect, frame.image)
            except Exception as exc:
                print(f"face detection failed: {exc!r}", file=sys.stderr, flush=True)
                raise
            detections += 1
            due = max(due + 1.0 / FACE_FPS, time.monotonic() - 1.0 / FACE_FPS)
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def drain() -> None:
        async for _ in events:
            pass

    detector = asyncio.create_task(detect_faces())
    drainer = asyncio.create_task(drain())
    await asyncio.sleep(3.0)  # models loaded, streams steady
    steps["listening (wake word, VAD, face loop)"] = round(_rss_now_mb(), 1)
    video0, audio0, faces0 = device.video.stats, device.audio.stats, detections
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
    video1, audio1, faces1 = device.video.stats, device.audio.stats, detections
    detector.cancel()
    await assistant.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(runner, detector, drainer, return_exceptions=True)
    await device.close()
    frames_received = video1.frames_captured - video0.frames_captured
    frames_decoded = video1.frames_delivered - video0.frames_delivered
    audio_s = (audio1.samples_captured - audio0.samples_captured) / 16_000

    # The reference: what the bare calls of that work cost in this process, now.
    from glasses_sdk.inference import VoiceActivityDetector, WakeWordDetector, WakeWordOptions
    from glasses_sdk.preprocess import decode_jpeg, encode_jpeg

    jpeg = encode_jpeg(np.ascontiguousarray(np.asarray(_photo_for_reference(), dtype=np.uint8)), 80)
    image = decode_jpeg(jpeg)
    vad = VoiceActivityDetector()
    wake = WakeWordDetector(WakeWordOptions())
    second = np.zeros(16_000, np.float32)
    second += np.random.default_rng(1).normal(0, 0.01, 16_000).astype(np.float32)

    def per_call_s(fn: Callable[[], object], repeats: int) -> float:
        fn()
        start = time.process_time()
        for _ in range(repeats):
            fn()
        return (time.process_time() - start) / repeats

    decode_s = per_call_s(lambda: decode_jpeg(jpeg), 20)
    face_s = per_call_s(lambda: faces.detect(image), 10)
    vad_s = per_call_s(lambda: vad.push(second), 3)
    wake_s = per_call_s(lambda: wake.push(second), 3)
    expected_cpu_s = (
        frames_decoded * decode_s + (faces1 - faces0) * face_s + audio_s * (vad_s + wake_s)
    )
    return {
        "seconds": round(wall_s, 2),
        "cpu_percent_of_one_core": round(100 * cpu_s / wall_s, 1),
        "reference_bare_calls_cpu_percent": round(100 * expected_cpu_s / wall_s, 1),
        "ratio_to_bare_calls": round(cpu_s / max(expected_cpu_s, 1e-9), 2),
        "frames_received_per_s": round(frames_received / wall_s, 1),
        "frames_decoded_per_s": round(frames_decoded / wall_s, 1),
        "face_detections_per_s": round((faces1 - faces0) / wall_s, 2),
        "audio_s_per_s": round(audio_s / wall_s, 3),
        "bare_ms": {
            "jpeg_decode_1280x720": round(decode_s * 1000, 3),
            "face_detect": round(face_s * 1000, 3),
            "vad_per_audio_s": round(vad_s * 1000, 3),
            "wake_word_per_audio_s": round(wake_s * 1000, 3),
        },
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_before_models_mb": round(rss_imports_mb, 1),
        "rss_after_each_step_mb": steps,
    }


def _photo_for_reference() -> np.ndarray:
    """A 1280x720 frame of the pedestrian video, as the emulator sends it."""
    import cv2

    from glasses_sdk import data

    capture = cv2.VideoCapture(str(data.pedestrian_video_path()))
    ok, frame = capture.read()
    capture.release()
    assert ok
    return np.ascontiguousarray(cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_AREA))


def _edge_main(uri: str, seconds: float) -> None:
    result = asyncio.run(_edge_idle(uri, seconds))
    print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------- run


def run(quick: bool = False) -> dict[str, Any]:
    """Every measurement; the JSON document (see the module)."""
    from glasses_sdk.cloud import KeyStore, load_settings

    load_before = os.getloadavg()
    tracing = bench_tracing(quick)
    with tempfile.TemporaryDirectory(prefix="bench-assistant-") as tmp:
        data_dir = Path(tmp) / "cloud"
        settings = load_settings(env={}, data_dir=data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        with KeyStore(settings.keys_db) as store:
            token, _ = store.create("bench", ("inference",))
        port = _free_port()
        local_scene = _scenario(LOCAL_PICTURE)
        with (
            _child(["--serve-cloud", str(data_dir), str(port)]),
            _child(["--serve-emulator", str(local_scene)]) as emulator,
        ):
            uri = f"tcp://127.0.0.1:{emulator['port']}?insecure=1"
            latency = asyncio.run(_latency(quick, uri, f"http://127.0.0.1:{port}", token))
    idle_scene = _scenario("data:pedestrian", speech="beckett")
    seconds = 8.0 if quick else 20.0
    with _child(["--serve-emulator", str(idle_scene)]) as emulator:
        uri = f"tcp://127.0.0.1:{emulator['port']}"
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_assistant", "--edge-idle", uri, str(seconds)],
            capture_output=True,
            text=True,
            timeout=seconds + 240,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"the edge process failed: {done.stderr[-2000:]}")
    edge = json.loads(done.stdout.strip().splitlines()[-1])
    edge["rss_goal_mb"], edge["cpu_goal_percent"] = RSS_GOAL_MB, CPU_GOAL_PERCENT
    edge["rss_met"] = edge["peak_rss_mb"] < RSS_GOAL_MB
    edge["cpu_met"] = edge["cpu_percent_of_one_core"] < CPU_GOAL_PERCENT
    comparisons = tracing + _latency_comparisons(latency)
    env = environment()
    env["loadavg_before"] = [round(v, 2) for v in load_before]
    env["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    results = results_json(comparisons)
    return {
        "benchmark": "assistant",
        "environment": env,
        "results": results,
        "latency": latency,
        "edge": edge,
        "comparisons": comparisons,
    }


def _latency_comparisons(latency: dict[str, Any]) -> list[Comparison]:
    """The latency results as harness rows: pipeline against the sum of bare calls."""
    rows = []
    for name, item in latency.items():
        ours = item["first_sample_p50_ms"]
        ref = item["reference_sum_of_bare_calls_p50_ms"]
        stages = ", ".join(f"{k} {v:.0f}" for k, v in item["stages_p50_ms"].items())
        rows.append(
            Comparison(
                case=f"{name} ({'/'.join(sorted(set(item['routes'])))}): command end -> answer",
                ours_name="assistant pipeline (p50)",
                ours_median_ms=ours,
                references=[
                    Reference(
                        "sum of bare model calls (p50)",
                        ref,
                        speedup=round(1 / item["ratio_pipeline_to_bare_p50"], 3),
                        speedup_rounds=[],
                    )
                ],
                notes=(
                    f"goal p50 < {item['goal_ms']:.0f} ms: {'met' if item['met'] else 'NOT met'}; "
                    f"stages p50 (ms): {stages}; the endpointing wait "
                    f"({item['endpointing_wait_ms']:.0f} ms) comes on top"
                ),
            )
        )  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """The command line (see the module)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--serve-emulator", metavar="SCENARIO", help=argparse.SUPPRESS)
    parser.add_argument("--serve-cloud", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--edge-idle", nargs=2, metavar=("URI", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_emulator:
        asyncio.run(_serve_emulator(Path(args.serve_emulator)))
        return
    if args.serve_cloud:
        _serve_cloud(Path(args.serve_cloud[0]), int(args.serve_cloud[1]))
        return
    if args.edge_idle:
        _edge_main(args.edge_idle[0], float(args.edge_idle[1]))
        return
    document = run(quick=args.quick)
    comparisons = document.pop("comparisons")
    if args.json:
        print(json.dumps(document, indent=2))
        return
    from rich.console import Console

    console = Console()
    console.print(render_table("assistant", comparisons))
    for comp in comparisons:
        if comp.notes:
            console.print(f"[bold]{comp.case}[/bold]: {comp.notes}")
    edge = document["edge"]
    console.print(
        f"edge runtime idle-listening: {edge['cpu_percent_of_one_core']}% of one core "
        f"(goal < {CPU_GOAL_PERCENT:.0f}%; bare calls {edge['reference_bare_calls_cpu_percent']}%,"
        f" ratio {edge['ratio_to_bare_calls']}x), peak RSS {edge['peak_rss_mb']} MB "
        f"(goal < {RSS_GOAL_MB:.0f} MB; {edge['rss_before_models_mb']} MB before the models); "
        f"{edge['frames_received_per_s']} frames/s received, {edge['face_detections_per_s']} "
        f"face detections/s"
    )
    console.print(f"load average before/after: {document['environment']['loadavg_before']} / "
                  f"{document['environment']['loadavg_after']}")  # fmt: skip


if __name__ == "__main__":
    main()
