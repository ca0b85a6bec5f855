"""The demo's scenario, assembled at run time from real media into the cache.

``firmware_bridge/emulator/scenarios/demo-script.toml`` lists scenes: a picture (real
photos with faces and with text, a page of a book, the real pedestrian footage) held on
camera for some seconds, and a command spoken while it is there ("hey glasses" then
"read the text"). :func:`assemble_demo` turns the script into what the emulator plays:

- ``camera.avi`` — Motion-JPEG at the script's fps, each picture letterboxed into the
  camera's largest mode; the pedestrian scene plays the video itself;
- ``microphone.wav`` — 16 kHz mono PCM16, quiet room noise with the wake phrase and the
  command synthesized (espeak-ng, flite) at each scene's ``speak_at_s``;
- ``scenario.toml`` — an ordinary emulator scenario that references both.

Both recordings have the same length, so that when they loop they stay in step. The
files are kept under ``<cache>/demo/<digest>`` (digest of the script), made once: large
media is never committed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
import wave
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from glasses_sdk import data
from glasses_sdk._exceptions import DataNotFoundError, InvalidConfigError
from glasses_sdk._paths import cache_dir

__all__ = [
    "SAMPLE_RATE_HZ",
    "DemoAssets",
    "DemoScene",
    "DemoScript",
    "SpokenCommand",
    "assemble_demo",
    "default_script_path",
    "load_demo_script",
]

SAMPLE_RATE_HZ = 16_000
_FORMAT_VERSION = 2  # bump when the assembled files change for the same script
_NOISE_PEAK = 40  # PCM16 units (about -58 dBFS): a quiet room, not digital silence
_SCENE_KEYS = {"picture", "seconds", "say", "expect_skill"}
_TOP_KEYS = {"name", "wake_phrase", "wake_voice", "command_voice", "fps", "size_px"}
_TOP_KEYS |= {"speak_at_s"}
_TOP_KEYS |= {"pause_s", "scene"}


@dataclass(frozen=True)
class DemoScene:
    """One picture on camera for ``seconds``, and the command spoken meanwhile."""

    picture: str
    seconds: float
    say: str
    expect_skill: str


@dataclass(frozen=True)
class DemoScript:
    """The demo script: scenes and how the commands are spoken."""

    name: str
    wake_phrase: str
    wake_voice: str
    command_voice: str
    fps: int
    size_px: tuple[int, int]
    speak_at_s: float
    pause_s: float
    scenes: tuple[DemoScene, ...]

    @property
    def duration_s(self) -> float:
        """The length of one pass through every scene."""
        return sum(scene.seconds for scene in self.scenes)


@dataclass(frozen=True)
class SpokenCommand:
    """Where, in the microphone recording, a command is spoken (seconds from its start).

    ``voice_end_s`` is the last voiced sample of the command: the start of the
    latency that the demo reports.
    """

    scene: int
    picture: str
    text: str
    expect_skill: str
    wake_start_s: float
    wake_end_s: float
    command_start_s: float
    voice_end_s: float


@dataclass(frozen=True)
class DemoAssets:
    """The assembled files and the script's timing."""

    folder: Path
    scenario_path: Path
    video_path: Path
    wav_path: Path
    script: DemoScript
    commands: tuple[SpokenCommand, ...]

    def to_json(self) -> dict[str, Any]:
        """The timing as plain JSON (paths as strings)."""
        return {
            "folder": str(self.folder),
            "scenario": str(self.scenario_path),
            "duration_s": self.script.duration_s,
            "commands": [asdict(c) for c in self.commands],
        }


def default_script_path() -> Path:
    """The script shipped beside the emulator's scenarios."""
    return Path(str(resources.files("firmware_bridge.emulator") / "scenarios" / "demo-script.toml"))


def _number(table: dict[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidConfigError(f"{where}: {key} must be a number >= 0, got {value!r}")
    return float(value)


def load_demo_script(path: Path | None = None) -> DemoScript:
    """Read and check a demo script (see ``demo-script.toml``).

    Raises:
        InvalidConfigError: unreadable TOML, an unknown key or a bad value, naming where.
    """
    path = path or default_script_path()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidConfigError(f"cannot read demo script {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfigError(f"demo script {path} is not valid TOML: {exc}") from exc
    unknown = set(document) - _TOP_KEYS
    if unknown:
        raise InvalidConfigError(
            f"demo script {path}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(sorted(_TOP_KEYS))}"
        )
    entries = document.get("scene", [])
    if not isinstance(entries, list) or not entries:
        raise InvalidConfigError(f"demo script {path}: expected at least one [[scene]]")
    scenes = []
    for number, entry in enumerate(entries, 1):
        where = f"demo script {path}, scene {number}"
        if not isinstance(entry, dict):
            raise InvalidConfigError(f"{where}: expected a table ([[scene]])")
        if set(entry) - _SCENE_KEYS:
            raise InvalidConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(set(entry) - _SCENE_KEYS))}; "
                f"expected {', '.join(sorted(_SCENE_KEYS))}"
            )
        if not all(isinstance(entry.get(k), str) for k in ("picture", "say", "expect_skill")):
            raise InvalidConfigError(f"{where}: picture, say and expect_skill must be strings")
        scenes.append(
            DemoScene(
                picture=entry["picture"],
                seconds=_number(entry, "seconds", 8.0, where),
                say=entry["say"],
                expect_skill=entry["expect_skill"],
            )
        )
    size = document.get("size_px", [1280, 720])
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and 16 <= v <= 4096 for v in size)
    ):
        raise InvalidConfigError(f"demo script {path}: size_px must be [width, height] in pixels")
    where = f"demo script {path}"
    script = DemoScript(
        name=str(document.get("name", path.stem)),
        wake_phrase=str(document.get("wake_phrase", "hey glasses")),
        wake_voice=_voice(document.get("wake_voice", "espeak:en-us"), where),
        command_voice=_voice(document.get("command_voice", "flite:awb"), where),
        fps=int(_number(document, "fps", 5, where)),
        size_px=(size[0], size[1]),
        speak_at_s=_number(document, "speak_at_s", 1.5, where),
        pause_s=_number(document, "pause_s", 0.4, where),
        scenes=tuple(scenes),
    )
    if not 1 <= script.fps <= 30:
        raise InvalidConfigError(f"{where}: fps must be 1..30, got {script.fps}")
    return script


def _voice(value: object, where: str) -> str:
    engine, _, name = str(value).partition(":")
    if engine not in ("espeak", "flite") or not name:
        raise InvalidConfigError(
            f"{where}: a voice is 'espeak:NAME' or 'flite:NAME', got {value!r}"
        )
    return str(value)


def _picture(reference: str) -> npt.NDArray[np.uint8]:
    if reference.startswith("data:photo:"):
        return data.load_photo(reference.removeprefix("data:photo:"))
    if reference.startswith("data:opencv:"):
        path = data.opencv_sample_path(reference.removeprefix("data:opencv:"))
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DataNotFoundError(f"{path} could not be decoded as an image")
        return np.ascontiguousarray(image, dtype=np.uint8)
    raise InvalidConfigError(
        f"picture {reference!r}: expected data:pedestrian, data:photo:NAME or data:opencv:FILE"
    )


def _letterbox(image: npt.NDArray[np.uint8], size_px: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """The picture scaled to fit, centred on black: what a camera pointed at it shows."""
    width, height = size_px
    scale = min(width / image.shape[1], height / image.shape[0])
    w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, (w, h), interpolation=interpolation)
    canvas = np.zeros((height, width, 3), np.uint8)
    x, y = (width - w) // 2, (height - h) // 2
    canvas[y : y + h, x : x + w] = resized
    return canvas


def _write_video(script: DemoScript, path: Path) -> None:
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter.fourcc(*"MJPG"), float(script.fps), script.size_px
    )
    if not writer.isOpened():
        raise InvalidConfigError(f"OpenCV cannot write Motion-JPEG video to {path}")
    try:
        for scene in script.scenes:
            frames = max(1, round(scene.seconds * script.fps))
            if scene.picture == "data:pedestrian":
                capture = cv2.VideoCapture(str(data.pedestrian_video_path()))
                try:
                    source_fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
                    step = max(1, round(source_fps / script.fps))
                    written = 0
                    index = 0
                    last: npt.NDArray[np.uint8] | None = None
                    while written < frames:
                        ok, image = capture.read()
                        if not ok:
                            if last is None:
                                raise DataNotFoundError("the pedestrian video has no frames")
                            image = last  # hold the last frame if the video is short
                        if index % step == 0 or not ok:
                            last = np.ascontiguousarray(image, dtype=np.uint8)
                            writer.write(_letterbox(last, script.size_px))
                            written += 1
                        index += 1
                finally:
                    capture.release()
            else:
                still = _letterbox(_picture(scene.picture), script.size_px)
                for _ in range(frames):
                    writer.write(still)
    finally:
        writer.release()


def _speak(text: str, voice: str) -> npt.NDArray[np.float32]:
    from glasses_sdk.wakeword_train._synth import Voice, synthesize

    engine, _, name = voice.partition(":")
    return synthesize(text, Voice(engine, name))


def _voiced_end(samples: npt.NDArray[np.float32], floor: float = 0.02) -> int:
    """Index just after the last sample above ``floor`` (the synthesizer's tail is quiet)."""
    loud = np.flatnonzero(np.abs(samples) > floor)
    return int(loud[-1]) + 1 if loud.size else len(samples)


def _write_audio(script: DemoScript, path: Path) -> tuple[SpokenCommand, ...]:
    total = round(script.duration_s * SAMPLE_RATE_HZ)
    # A fixed seed: the same script always assembles the same recording.
    noise = np.random.default_rng(20261206).integers(-_NOISE_PEAK, _NOISE_PEAK + 1, total)
    track = noise.astype(np.float32) / 32768.0
    wake = _speak(script.wake_phrase, script.wake_voice)
    commands = []
    scene_start_s = 0.0
    for number, scene in enumerate(script.scenes):
        command = _speak(scene.say, script.command_voice)
        wake_start = round((scene_start_s + script.speak_at_s) * SAMPLE_RATE_HZ)
        wake_end = wake_start + len(wake)
        command_start = wake_end + round(script.pause_s * SAMPLE_RATE_HZ)
        command_end = command_start + len(command)
        if command_end > round((scene_start_s + scene.seconds) * SAMPLE_RATE_HZ):
            raise InvalidConfigError(
                f"scene {number + 1} ({scene.picture}): {scene.seconds} s is too short for "
                f"{script.wake_phrase!r} and {scene.say!r} at {script.speak_at_s} s"
            )
        track[wake_start:wake_end] += wake
        track[command_start:command_end] += command
        commands.append(
            SpokenCommand(
                scene=number,
                picture=scene.picture,
                text=scene.say,
                expect_skill=scene.expect_skill,
                wake_start_s=wake_start / SAMPLE_RATE_HZ,
                wake_end_s=wake_end / SAMPLE_RATE_HZ,
                command_start_s=command_start / SAMPLE_RATE_HZ,
                voice_end_s=(command_start + _voiced_end(command)) / SAMPLE_RATE_HZ,
            )
        )
        scene_start_s += scene.seconds
    pcm = np.clip(np.round(track * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE_HZ)
        handle.writeframes(pcm.tobytes())
    return tuple(commands)


def _scenario_toml(script: DemoScript) -> str:
    width, height = script.size_px
    frames = sum(max(1, round(s.seconds * script.fps)) for s in script.scenes)
    return (
        f"# Assembled by glasses demo from {default_script_path().name}; do not edit.\n"
        f'name = "{script.name}"\n\n'
        "[device]\n"
        'name = "Emulated glasses"\n'
        "battery_percent = 87\n"
        "temperature_c = 31.0\n\n"
        "[camera]\n"
        'video = "camera.avi"\n'
        f"max_frames = {frames}\n"
        f"resolutions = [[{width}, {height}], [640, 480], [320, 240]]\n"
        "fps = [30, 15, 10, 5]\n\n"
        "[microphone]\n"
        'wav = "microphone.wav"\n'
    )


def assemble_demo(script: DemoScript | None = None, *, root: Path | None = None) -> DemoAssets:
    """Make (or find, made before) the demo's camera video, recording and scenario.

    Raises:
        DataNotFoundError: a photo, the video or espeak-ng is missing (says what to install).
        InvalidConfigError: the script does not fit (a command longer than its scene).
    """
    script = script or load_demo_script()
    key = json.dumps([_FORMAT_VERSION, asdict(script)], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = (root or cache_dir() / "demo") / digest
    video, wav, scenario = (
        folder / "camera.avi",
        folder / "microphone.wav",
        folder / "scenario.toml",
    )
    timing = folder / "commands.json"
    if not all(p.is_file() for p in (video, wav, scenario, timing)):
        for program in ("espeak-ng", "flite"):
            if shutil.which(program) is None:
                raise DataNotFoundError(
                    f"{program} speaks the demo's commands and is not installed; install "
                    f"Debian's {program} (scripts/install-system-deps does it)"
                )
        folder.mkdir(parents=True, exist_ok=True)
        commands = _write_audio(script, wav)
        _write_video(script, video)
        scenario.write_text(_scenario_toml(script), encoding="utf-8")
        # Written last: its presence says the folder is complete.
        timing.write_text(json.dumps([asdict(c) for c in commands]), encoding="utf-8")
    commands = tuple(
        SpokenCommand(**entry) for entry in json.loads(timing.read_text(encoding="utf-8"))
    )
    return DemoAssets(folder, scenario, video, wav, script, commands)
