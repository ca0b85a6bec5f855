"""``glasses doctor``: what this machine has (cameras, audio inputs, models, cloud),
and for each thing missing, how to fix it.

Mounted by :mod:`glasses_sdk.cli`. :func:`collect_report` gathers the facts into one
plain dictionary (the ``--json`` document); each probe catches its own failures and
turns them into a ``problems`` entry, so that one missing piece never hides the rest.
The command always exits 0: it reports, it does not judge.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["collect_report", "doctor_command"]

_CLOUD_TIMEOUT_S = 2.0
_PROBE_INDICES = range(4)  # where /dev/video* cannot be listed (macOS, Windows)


def _problem(component: str, problem: str, fix: str) -> dict[str, str]:
    return {"component": component, "problem": problem, "fix": fix}


def probe_cameras() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Cameras OpenCV can open, with the size and fps each reports."""
    import cv2

    if sys.platform.startswith("linux"):
        nodes = sorted(Path("/dev").glob("video*"))
        candidates = [
            (int(n.name[len("video") :]), str(n)) for n in nodes if n.name[len("video") :].isdigit()
        ]
    else:
        candidates = [(i, f"camera {i}") for i in _PROBE_INDICES]
    cameras: list[dict[str, Any]] = []
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # probes warn a lot
    try:
        for index, device in candidates:
            cap = cv2.VideoCapture(index)
            try:
                if not cap.isOpened():
                    continue
                cameras.append(
                    {
                        "index": index,
                        "device": device,
                        "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                        "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                        "fps": float(cap.get(cv2.CAP_PROP_FPS)),
                        "backend": cap.getBackendName(),
                    }
                )
            finally:
                cap.release()
    finally:
        cv2.utils.logging.setLogLevel(level)
    problems = []
    if not cameras:
        problems.append(
            _problem(
                "camera",
                "no camera found" + (" (no /dev/video* device)" if not candidates else ""),
                "plug in a camera (on a VM, pass one through), or run on recordings with "
                "connect('file:VIDEO?audio=AUDIO') or on the emulator",
            )
        )
    return cameras, problems


def probe_audio_inputs() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Audio input devices PortAudio lists."""
    try:
        import sounddevice as sd
    except OSError as exc:
        return [], [
            _problem(
                "microphone",
                f"PortAudio is not available: {exc}",
                "install libportaudio2 (Debian; scripts/install-system-deps does it)",
            )
        ]
    try:
        devices = sd.query_devices()
        default_input = sd.default.device[0]
    except sd.PortAudioError as exc:
        return [], [_problem("microphone", f"PortAudio failed: {exc}", "check the sound server")]
    inputs = [
        {
            "index": int(d["index"]),
            "name": str(d["name"]),
            "channels": int(d["max_input_channels"]),
            "default_sample_rate_hz": int(d["default_samplerate"]),
            "default": int(d["index"]) == default_input,
        }
        for d in devices
        if int(d["max_input_channels"]) > 0
    ]
    problems = []
    if not inputs:
        problems.append(
            _problem(
                "microphone",
                "no audio input device",
                "plug in a microphone, or start a sound server (pulseaudio --start)",
            )
        )
    return inputs, problems


def probe_models() -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Which models of the manifest are built in the cache."""
    fix = "run `glasses models build` (make test and make demo do it)"
    try:
        from glasses_sdk.inference._registry import built_dir, default_registry

        folder = built_dir()
        registry = default_registry()
    except Exception as exc:  # a broken or absent manifest is a finding, not a crash
        return {"dir": None, "present": False, "models": []}, [
            _problem("models", f"the model registry cannot be read: {exc}", fix)
        ]
    models = [
        {
            "model": spec.name,
            "task": spec.task,
            "variant": spec.default,
            "built": registry.output_path(spec.name).is_file(),
        }
        for spec in registry
    ]
    problems = []
    if not folder.is_dir():
        problems.append(_problem("models", f"the models cache {folder} does not exist", fix))
    else:
        missing = [m["model"] for m in models if not m["built"]]
        if missing:
            problems.append(_problem("models", f"not built: {', '.join(missing)}", fix))
    present = folder.is_dir() and all(m["built"] for m in models)
    return {"dir": str(folder), "present": present, "models": models}, problems


def probe_cloud(url: str | None) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Whether the fallback server answers ``GET /healthz`` within a short timeout."""
    if url is None:
        return {"url": None, "checked": False, "reachable": None}, []
    import httpx

    target = url.rstrip("/") + "/healthz"
    start = time.perf_counter()
    try:
        response = httpx.get(target, timeout=_CLOUD_TIMEOUT_S)
    except httpx.HTTPError as exc:
        result = {"url": url, "checked": True, "reachable": False, "error": str(exc) or repr(exc)}
        return result, [
            _problem(
                "cloud",
                f"{target} did not answer: {exc!r}",
                "start the server (glasses cloud serve) or check the URL and network",
            )
        ]
    latency_ms = (time.perf_counter() - start) * 1000.0
    ok = response.status_code == 200
    result = {
        "url": url,
        "checked": True,
        "reachable": ok,
        "status_code": response.status_code,
        "latency_ms": round(latency_ms, 2),
    }
    problems = []
    if not ok:
        problems.append(
            _problem(
                "cloud",
                f"{target} answered HTTP {response.status_code}",
                "check that the URL points at a glasses cloud server",
            )
        )
    return result, problems


def collect_report(cloud_url: str | None = None) -> dict[str, Any]:
    """The whole report as one JSON-ready dictionary."""
    cameras, p_cam = probe_cameras()
    inputs, p_mic = probe_audio_inputs()
    models, p_models = probe_models()
    cloud, p_cloud = probe_cloud(cloud_url)
    problems = p_cam + p_mic + p_models + p_cloud
    return {
        "ok": not problems,
        "cameras": cameras,
        "audio_inputs": inputs,
        "models": models,
        "cloud": cloud,
        "problems": problems,
    }


def _print_human(report: dict[str, Any]) -> None:
    from rich.console import Console

    out = Console(soft_wrap=True)
    out.print("[bold]cameras[/bold]")
    for cam in report["cameras"]:
        out.print(
            f"  {cam['device']}: {cam['width']}x{cam['height']} @ {cam['fps']:g} fps "
            f"({cam['backend']})"
        )
    out.print("[bold]audio inputs[/bold]")
    for dev in report["audio_inputs"]:
        mark = " (default)" if dev["default"] else ""
        out.print(
            f"  [{dev['index']}] {dev['name']}: {dev['channels']} ch, "
            f"{dev['default_sample_rate_hz']} Hz{mark}"
        )
    models = report["models"]
    out.print(f"[bold]models[/bold] in {models['dir']}")
    for m in models["models"]:
        out.print(f"  {m['model']} ({m['task']}, {m['variant']}): {'built' if m['built'] else '-'}")
    cloud = report["cloud"]
    if cloud["checked"]:
        state = "reachable" if cloud["reachable"] else "NOT reachable"
        out.print(f"[bold]cloud[/bold] {cloud['url']}: {state}")
    else:
        out.print("[bold]cloud[/bold] not checked (pass --cloud URL)")
    if report["problems"]:
        out.print("[bold yellow]missing[/bold yellow]")
        for p in report["problems"]:
            out.print(f"  {p['component']}: {p['problem']}\n    fix: {p['fix']}")
    else:
        out.print("[green]everything is in place[/green]")


def doctor_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
    cloud: Annotated[
        str | None,
        typer.Option("--cloud", help="Base URL of a cloud fallback server to check."),
    ] = None,
) -> None:
    """What this machine has: cameras, audio inputs, models, cloud reachability."""
    report = collect_report(cloud)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_human(report)
