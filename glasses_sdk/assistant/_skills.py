"""Skills: what a command can ask for, and the context a skill works with.

A skill is an async function ``(ctx: SkillContext) -> SkillResult | str``. The built-in
ones read the text in view (locally; the cloud when local confidence is low or the
page is heavy), describe the scene (cloud), transcribe what was said (cloud) and take
a photo (local). Every frame a skill gets comes through the privacy filter, and the
only way a skill reaches the cloud with an image, :meth:`SkillContext.cloud_post`,
accepts nothing but a :class:`FilteredFrame`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._device import Device, LedState
from glasses_sdk._exceptions import (
    CaptureError,
    CloudRequestError,
    CloudUnavailableError,
    DeadlineExceededError,
    InvalidInputError,
    LedUnavailableError,
)
from glasses_sdk._tracing import span
from glasses_sdk.assistant._privacy import FilteredFrame, MediaStore, PrivacyFilter
from glasses_sdk.capture._base import VideoFrame, monotonic_s
from glasses_sdk.routing import Conditions, Decision, Route, RouteRequest, RoutingPolicy

if TYPE_CHECKING:
    from glasses_sdk.assistant._options import AssistantOptions
    from glasses_sdk.routing import CloudClient, CloudResponse

__all__ = [
    "BUILTIN_PHRASES",
    "SkillContext",
    "SkillFunction",
    "SkillResult",
    "builtin_skills",
    "check_led",
    "wav_bytes",
]

CLOUD_ERRORS = (CloudUnavailableError, CloudRequestError, DeadlineExceededError)
"""What a cloud call may raise that a skill answers around instead of failing."""


@dataclass(frozen=True, slots=True)
class SkillResult:
    """A skill's answer: the text to speak, where it was computed, the routing decision
    behind it, and details for the app (text lines, face boxes, ...)."""

    text: str
    source: Route
    decision: Decision | None = None
    data: dict[str, Any] = field(default_factory=dict)


SkillFunction = Callable[["SkillContext"], Awaitable["SkillResult | str"]]


def check_led(device: Device) -> None:
    """Raise :class:`LedUnavailableError` when the device reports its capture LED cannot
    be shown (off, or blocked: the bridge reports both as off). A device without an LED
    (a laptop camera, a recording) is not refused."""
    led = device.state.led
    if led is LedState.OFF:
        raise LedUnavailableError(
            f"device {device.name!r} reports its capture LED off or blocked: capture "
            "refused, bystanders must be able to see that the camera is on"
        )


def wav_bytes(samples: NDArray[np.float32], sample_rate_hz: int = 16_000) -> bytes:
    """16-bit mono WAV of float32 samples (what the cloud's speech routes take)."""
    from glasses_sdk.preprocess.audio import float32_to_int16

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate_hz)
        out.writeframes(float32_to_int16(samples).astype("<i2").tobytes())
    return buffer.getvalue()


class SkillContext:
    """What one command's skill works with.

    ``frame`` is the newest camera frame (unfiltered, on the device; use :meth:`photo`
    for one that may leave it), ``command_audio`` the command (16 kHz float32) or None
    for typed commands, ``transcript`` what the command was understood as.
    ``latency_ms`` collects the stages the skill went through (``capture``,
    ``privacy``, ``inference``, ``network``, ``server``).
    """

    def __init__(
        self,
        *,
        device: Device,
        frame: VideoFrame | None,
        command_audio: NDArray[np.float32] | None,
        transcript: str | None,
        cloud: CloudClient | None,
        policy: RoutingPolicy,
        deadline_ms: float,
        privacy: PrivacyFilter,
        options: AssistantOptions,
        services: Any,
        emit: Callable[[Any], None],
        started_s: float | None = None,
    ) -> None:
        self.device = device
        self.frame = frame
        self.command_audio = command_audio
        self.transcript = transcript
        self.cloud = cloud
        self.policy = policy
        self.deadline_ms = deadline_ms
        self.privacy = privacy
        self.options = options
        self.latency_ms: dict[str, float] = {}
        self.skill: str | None = None
        """The skill this context runs (set by the assistant before calling it)."""
        self.last_photo: FilteredFrame | None = None
        """The newest photo :meth:`photo` made for this command."""
        self._services = services
        self._emit = emit
        self._started_s = monotonic_s() if started_s is None else started_s
        self._say: Callable[[str], None] | None = None

    def set_voice(self, say: Callable[[str], None] | None) -> None:
        """Where :meth:`say` sends parts (the assistant sets it; None: not speaking)."""
        self._say = say

    def say(self, text: str) -> None:
        """Start speaking part of the answer now, while the skill goes on: a reader says
        the first line while it reads the next. Parts are spoken in order. When the
        skill returns, the assistant speaks what of its answer is left: an answer that
        begins with the said parts (joined by newlines) goes on after them, any other
        answer is spoken whole. Does nothing when the assistant does not speak."""
        if self._say is not None:
            self._say(text)

    def remaining_ms(self) -> float:
        """Milliseconds left of the command's deadline (at least 1)."""
        return max(self.deadline_ms - (monotonic_s() - self._started_s) * 1000.0, 1.0)

    def report_error(self, error: str) -> None:
        """Tell the app something failed in this skill (an ``ErrorEvent``), for failures
        the skill answers around rather than raises."""
        from glasses_sdk.assistant._events import ErrorEvent

        self._emit(ErrorEvent(error, self.skill))

    def add_latency(self, stage: str, ms: float) -> None:
        """Add ``ms`` to a stage's time."""
        self.latency_ms[stage] = self.latency_ms.get(stage, 0.0) + ms

    def decide(
        self,
        task: str,
        *,
        local_available: bool,
        local_latency_ms: float | None = None,
        local_confidence: float | None = None,
        confidence_threshold: float = 0.0,
        needs_cloud_model: bool = False,
    ) -> Decision:
        """Ask the routing policy where ``task`` runs now; emits a ``DecisionEvent``."""
        from glasses_sdk.assistant._events import DecisionEvent

        request = RouteRequest(
            task,
            self.remaining_ms(),
            local_available,
            local_latency_ms=local_latency_ms,
            local_confidence=local_confidence,
            confidence_threshold=confidence_threshold,
            needs_cloud_model=needs_cloud_model,
        )
        decision = self.policy.decide(request, self._conditions())
        self._emit(DecisionEvent(decision))
        return decision

    def preview(
        self,
        task: str,
        *,
        local_available: bool,
        local_confidence: float | None = None,
        confidence_threshold: float = 0.0,
        needs_cloud_model: bool = False,
    ) -> Decision:
        """Where :meth:`decide` would send ``task`` now, without emitting or logging a
        decision: to act early on the likely route (say a first line) before the real
        decision."""
        request = RouteRequest(
            task,
            self.remaining_ms(),
            local_available,
            local_confidence=local_confidence,
            confidence_threshold=confidence_threshold,
            needs_cloud_model=needs_cloud_model,
        )
        return self.policy.preview(request, self._conditions())

    def _conditions(self) -> Conditions:
        cloud = self.cloud
        return Conditions.from_device(
            self.device.state,
            cloud_available=cloud is not None and bool(cloud.available),
            link_rtt_ms=None,
        )

    async def photo(self) -> FilteredFrame:
        """A privacy-filtered photo: the device's own photo where it can take one
        (full resolution), else the newest streamed frame.

        Raises:
            LedUnavailableError: the device reports that its capture LED cannot be shown.
            CaptureError: the device has no camera or delivered no frame.
        """
        check_led(self.device)
        start = time.perf_counter()
        with span("capture"):
            image = await self._capture()
        self.add_latency("capture", (time.perf_counter() - start) * 1000.0)
        start = time.perf_counter()
        with span("preprocessing", step="privacy_filter"):
            filtered = await asyncio.to_thread(self.privacy.apply, image)
        self.add_latency("privacy", (time.perf_counter() - start) * 1000.0)
        self.last_photo = filtered
        return filtered

    async def _capture(self) -> NDArray[np.uint8]:
        take_photo = getattr(self.device, "take_photo", None)
        if take_photo is not None:
            try:
                photo: VideoFrame = await take_photo()
                return photo.image
            except Exception as exc:
                # The bridge raises firmware_bridge.LedBlockedError; translate it at this
                # boundary. Other failures (busy, timeout) fall back to the stream.
                if type(exc).__name__ == "LedBlockedError":
                    raise LedUnavailableError(f"the device refused a photo: {exc}") from exc
        if self.frame is not None:
            return self.frame.image
        if not self.device.has_video:
            raise CaptureError(f"device {self.device.name!r} has no camera")
        try:
            async with asyncio.timeout(min(self.remaining_ms(), 3000.0) / 1000.0):
                frame = await self.device.video.read()
        except TimeoutError:
            raise CaptureError("the camera delivered no frame in time") from None
        return frame.image

    async def read_text(self, frame: FilteredFrame | None = None) -> Any:
        """Read the text of ``frame`` (a new :meth:`photo` when None) on the device;
        returns a :class:`~glasses_sdk.inference.TextReadResult` (adds ``inference``)."""
        frame = frame if frame is not None else await self.photo()
        start = time.perf_counter()
        with span("inference", task="read_text"):
            result = await asyncio.to_thread(self._services.read_text, frame.image)
        self.add_latency("inference", (time.perf_counter() - start) * 1000.0)
        return result

    async def read_text_lines(self, frame: FilteredFrame) -> AsyncIterator[Any]:
        """The :class:`~glasses_sdk.inference.TextLine` s of ``frame`` as each is read on
        the device (detection first, then one recognizer run per line), in reading
        order; the time spent is added to ``inference``."""
        lines = self._services.read_text_lines(frame.image)
        try:
            while True:
                start = time.perf_counter()
                with span("inference", task="read_text_line"):
                    line = await asyncio.to_thread(next, lines, None)
                self.add_latency("inference", (time.perf_counter() - start) * 1000.0)
                if line is None:
                    return
                yield line
        finally:
            # Closing releases the reader. Cancelled mid-line, the worker thread is still
            # in next() ("generator already executing"): the generator is then closed,
            # and the reader released, when that thread drops it.
            with contextlib.suppress(ValueError):
                await asyncio.to_thread(lines.close)

    async def cloud_post(
        self,
        path: str,
        *,
        frame: FilteredFrame | None = None,
        audio: NDArray[np.float32] | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> CloudResponse:
        """POST to the cloud: ``frame`` goes as multipart ``image`` (JPEG), ``audio``
        as ``audio`` (``file`` for ``/v1/audio/transcriptions``) 16 kHz WAV.

        Adds ``network`` and ``server`` (from the answer's ``latency_ms`` when it has
        one) to the stages.

        Raises:
            InvalidInputError: ``frame`` did not come from the privacy filter.
            CloudUnavailableError: no cloud is configured, or it cannot be reached.
        """
        if self.cloud is None:
            raise CloudUnavailableError("no cloud client was given to the assistant")
        if frame is not None and not isinstance(frame, FilteredFrame):
            raise InvalidInputError(
                f"frame: expected a FilteredFrame from the privacy filter, got "
                f"{type(frame).__name__}: frames leave the device only with faces blurred"
            )
        files: dict[str, tuple[str, bytes, str]] = {}
        if frame is not None:
            jpeg = await asyncio.to_thread(frame.to_jpeg)
            files["image"] = ("frame.jpg", jpeg, "image/jpeg")
        if audio is not None:
            field_name = "file" if path.rstrip("/").endswith("/audio/transcriptions") else "audio"
            files[field_name] = ("command.wav", wav_bytes(audio), "audio/wav")
        kwargs: dict[str, Any] = {"deadline_ms": self.remaining_ms()}
        if files:
            kwargs["files"] = files
        if data:
            kwargs["data"] = dict(data)
        if json is not None:
            kwargs["json"] = json
        response = await self.cloud.post(path, **kwargs)
        # The Server-Timing header covers every route; the body's own figure is the fallback.
        server_ms = (
            response.server_ms if response.server_ms is not None else _server_ms(response.body)
        )
        network_ms = float(response.latency_ms)
        if server_ms is not None:
            self.add_latency("server", server_ms)
            network_ms = max(network_ms - server_ms, 0.0)
        self.add_latency("network", network_ms)
        return response


def _server_ms(body: Any) -> float | None:
    if not isinstance(body, dict):
        return None
    latency = body.get("latency_ms")
    if isinstance(latency, int | float):
        return float(latency)
    if isinstance(latency, dict) and isinstance(latency.get("total"), int | float):
        return float(latency["total"])
    return None


def _speakable(text: str) -> str:
    return " ".join(text.split())


# --- the built-in skills -------------------------------------------------------------


async def read_text(ctx: SkillContext) -> SkillResult:
    """Read the text in view: locally, or by the cloud when the local reading is not
    confident enough or the page is too large for the local reader.

    A page the device reads is spoken as it is read, so the first words come after one
    line's reading, not the page's: when the policy would keep the first line on the
    device (:meth:`SkillContext.preview`: confident enough, device not hot or low on
    battery), each line whose confidence clears the threshold is said at once, until
    one does not; the rest then waits for the routing decision. An answer the cloud
    gives after that is spoken whole, the lines said before included.
    """
    frame = await ctx.photo()
    heavy = max(frame.width, frame.height) > ctx.options.heavy_page_side_px
    threshold = ctx.options.ocr_confidence_threshold
    lines = []
    streaming: bool | None = None  # decided at the first line
    start = time.perf_counter()
    async for line in ctx.read_text_lines(frame):
        lines.append(line)
        if streaming is None:
            likely = ctx.preview(
                "read_text",
                local_available=True,
                local_confidence=line.score,
                confidence_threshold=threshold,
                needs_cloud_model=heavy,
            )
            streaming = likely.route is Route.LOCAL
        streaming = streaming and line.score >= threshold
        if streaming:
            ctx.say(line.text)
    local_ms = (time.perf_counter() - start) * 1000.0
    confidence = float(np.mean([line.score for line in lines])) if lines else 0.0
    decision = ctx.decide(
        "read_text",
        local_available=True,
        # The local reading is done: its latency is spent, whatever the route now.
        local_latency_ms=None,
        local_confidence=confidence,
        confidence_threshold=threshold,
        needs_cloud_model=heavy,
    )
    data: dict[str, Any] = {
        "lines": [line.to_json() for line in lines],
        "local_latency_ms": round(local_ms, 3),
        "local_confidence": round(confidence, 4),
        "faces": [list(b) for b in frame.faces],
    }
    source = decision.route
    text = "\n".join(line.text for line in lines)
    if decision.route is Route.CLOUD:
        try:
            response = await ctx.cloud_post("/v1/vision/ocr", frame=frame)
            text = str(response.body.get("text", ""))
            data["lines"] = response.body.get("lines", [])
        except CLOUD_ERRORS as exc:
            # The cloud was chosen but failed: the local reading still answers.
            source = Route.LOCAL_DEGRADED
            data["cloud_error"] = str(exc)
    elif decision.route is Route.REFUSED:
        return SkillResult("Sorry, I cannot read the text right now.", source, decision, data)
    if not text.strip():
        return SkillResult("I see no text.", source, decision, data)
    return SkillResult(text, source, decision, data)


async def describe_scene(ctx: SkillContext) -> SkillResult:
    """Describe what the camera sees (the cloud's /v1/assist)."""
    frame = await ctx.photo()
    decision = ctx.decide("describe_scene", local_available=False, needs_cloud_model=True)
    data: dict[str, Any] = {"faces": [list(b) for b in frame.faces]}
    failure = "Sorry, I cannot describe the scene right now: the cloud cannot be reached."
    if decision.route is not Route.CLOUD:
        data["error"] = "; ".join(decision.reasons)
        ctx.report_error(f"describe_scene refused: {data['error']}")
        return SkillResult(failure, Route.REFUSED, decision, data)
    question = ctx.transcript or "Describe the scene."
    try:
        response = await ctx.cloud_post("/v1/assist", frame=frame, data={"question": question})
    except CLOUD_ERRORS as exc:
        data["error"] = str(exc)
        ctx.report_error(f"describe_scene: {exc}")
        return SkillResult(failure, Route.REFUSED, decision, data)
    body = response.body
    data["answer_source"] = body.get("answer_source")
    data["text_read"] = body.get("text_read")
    data["faces_seen"] = body.get("faces")
    return SkillResult(str(body.get("answer", "")), Route.CLOUD, decision, data)


async def transcribe(ctx: SkillContext) -> SkillResult:
    """Transcribe what was said (the cloud's speech recognition; the transcript the
    intent step made, when the cloud cannot be reached)."""
    if ctx.command_audio is None:
        text = ctx.transcript or ""
        return SkillResult(text or "I heard nothing.", Route.LOCAL, None, {"transcript": text})
    decision = ctx.decide(
        "transcribe", local_available=ctx.transcript is not None, needs_cloud_model=True
    )
    data: dict[str, Any] = {}
    if decision.route is Route.CLOUD:
        try:
            response = await ctx.cloud_post(
                "/v1/audio/transcriptions", audio=ctx.command_audio, data={"model": "pocketsphinx"}
            )
            text = str(response.body.get("text", ""))
            data["transcript"] = text
            return SkillResult(text or "I heard nothing.", Route.CLOUD, decision, data)
        except CLOUD_ERRORS as exc:
            data["cloud_error"] = str(exc)
    if ctx.transcript is not None:
        data["transcript"] = ctx.transcript
        return SkillResult(ctx.transcript, Route.LOCAL_DEGRADED, decision, data)
    ctx.report_error(f"transcribe: {data.get('cloud_error', '; '.join(decision.reasons))}")
    return SkillResult(
        "Sorry, I cannot transcribe right now: the cloud cannot be reached.",
        Route.REFUSED,
        decision,
        data,
    )


async def take_photo(ctx: SkillContext) -> SkillResult:
    """Take a photo, faces blurred; kept on disk only when the app set ``keep_media``."""
    frame = await ctx.photo()
    privacy = ctx.options.privacy
    path = None
    if privacy.keep_media and privacy.media_dir is not None:
        store = MediaStore(privacy.media_dir, privacy.retention_s)
        jpeg = await asyncio.to_thread(frame.to_jpeg)
        path = await asyncio.to_thread(store.save, "photo", jpeg, "jpg")
    n = len(frame.faces)
    text = "Photo taken." + (f" {n} face{'s' if n != 1 else ''} blurred." if n else "")
    return SkillResult(
        text,
        Route.LOCAL,
        None,
        {"faces": [list(b) for b in frame.faces], "path": None if path is None else str(path)},
    )


BUILTIN_PHRASES: dict[str, tuple[str, ...]] = {
    "read_text": ("read the text", "read this", "what does it say", "read it out"),
    "describe_scene": (
        "describe the scene",
        "describe this",
        "what do you see",
        "what am i looking at",
    ),
    "transcribe": ("transcribe", "take a note", "write this down"),
    "take_photo": ("take a photo", "take a picture"),
}
"""The phrases that select each built-in skill."""


def builtin_skills() -> dict[str, SkillFunction]:
    """The built-in skills by name."""
    return {
        "read_text": read_text,
        "describe_scene": describe_scene,
        "transcribe": transcribe,
        "take_photo": take_photo,
    }
