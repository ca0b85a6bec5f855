"""The assistant: wake word → endpointing → intent → skill → answer → speech.

:meth:`Assistant.run` reads the device's microphone (wake word and VAD endpointing),
keeps its newest camera frame, listens for taps (a tap starts a command without the
wake word) and watches the device state. Each command is transcribed (pocketsphinx on
the device, or the cloud, as the routing policy decides for the task ``"intent"``),
matched to a skill's phrases (:mod:`glasses_sdk.assistant._intent`), answered by the
skill, spoken with espeak-ng on the speaker and reported as an :class:`AnswerEvent`.
:meth:`Assistant.handle_command` runs one command directly (typed text or audio).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import logging
import re
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import numpy as np
from numpy.typing import NDArray

from glasses_sdk._device import Device, DeviceState
from glasses_sdk._exceptions import (
    BackendUnavailableError,
    GlassesError,
    InvalidAudioError,
    InvalidConfigError,
    InvalidInputError,
    LedUnavailableError,
    SourceClosedError,
    StreamLostError,
)
from glasses_sdk._tracing import span
from glasses_sdk.assistant._events import (
    AnswerEvent,
    AssistantEvent,
    DeviceStateEvent,
    ErrorEvent,
    SpeechEndEvent,
    SpeechStartEvent,
    WakeEvent,
)
from glasses_sdk.assistant._intent import match_intent, words
from glasses_sdk.assistant._listen import CommandEnded, Listener, SpeechStarted, Woken
from glasses_sdk.assistant._options import AssistantOptions
from glasses_sdk.assistant._privacy import FilteredFrame, MediaStore, PrivacyFilter
from glasses_sdk.assistant._skills import (
    BUILTIN_PHRASES,
    CLOUD_ERRORS,
    SkillContext,
    SkillFunction,
    SkillResult,
    builtin_skills,
)
from glasses_sdk.assistant._speech import (
    SPEECH_SAMPLE_RATE_HZ,
    BridgeSpeaker,
    Speaker,
    synthesize,
)
from glasses_sdk.capture._base import VideoFrame, monotonic_s
from glasses_sdk.routing import Decision, Route, RoutingPolicy

if TYPE_CHECKING:
    from glasses_sdk.routing import CloudClient

__all__ = ["Assistant"]

log = logging.getLogger("glasses_sdk.assistant")

F = TypeVar("F", bound=SkillFunction)
E = TypeVar("E")

UNKNOWN_SKILL = "unknown"
NOT_CAUGHT = "Sorry, I did not catch that."
_STATE_POLL_S = 0.5
# pocketsphinx runs at about 0.3 of real time here (DESIGN.md): the policy's estimate.
_SPHINX_REAL_TIME_FACTOR = 0.3
_DITHER = 1e-3


class _Services:
    """The models the assistant loads once and shares between commands."""

    def __init__(self, options: AssistantOptions) -> None:
        self._options = options
        self._reader: Any = None
        self._reader_lock = threading.Lock()
        self._sphinx: Any = None
        self._sphinx_lock = threading.Lock()

    @property
    def can_transcribe_locally(self) -> bool:
        return importlib.util.find_spec("pocketsphinx") is not None

    def _text_reader(self) -> Any:
        # Called under _reader_lock.
        if self._reader is None:
            from glasses_sdk.inference import TextReader, TextReaderOptions

            self._reader = TextReader(TextReaderOptions(max_side_px=self._options.ocr_max_side_px))
        return self._reader

    def read_text(self, image: NDArray[np.uint8]) -> Any:
        # A TextReader reuses its buffers: one call at a time.
        with self._reader_lock:
            return self._text_reader().read(image)

    def read_text_lines(self, image: NDArray[np.uint8]) -> Iterator[Any]:
        # Holds the reader until exhausted or closed; advanced from worker threads one
        # line at a time (a plain Lock may be released by another thread than its owner).
        with self._reader_lock:
            yield from self._text_reader().read_lines(image)

    def transcribe(self, audio: NDArray[np.float32], phrases: Sequence[str]) -> str:
        with self._sphinx_lock:
            if self._sphinx is None:
                self._sphinx = _PhraseRecognizer()
            recognizer: _PhraseRecognizer = self._sphinx
            return recognizer.recognize(audio, phrases)

    def warm_up(self, phrases: Sequence[str]) -> None:
        """Load the text reader and the phrase recognizer now, not in a command."""
        with self._reader_lock:
            self._text_reader()
        if self.can_transcribe_locally:
            self.transcribe(np.zeros(1600, np.float32), phrases)
        if self._options.speak:
            # The first synthesis pays for the resampler's design (and scipy's import).
            synthesize("ready", self._options.voice)

    def listener(self) -> Listener:
        from glasses_sdk.inference import VoiceActivityDetector, WakeWordDetector, WakeWordOptions

        opts = self._options
        models = tuple(
            w if ("/" in w or w.endswith(".onnx")) else w.replace("_", "-") for w in opts.wake_words
        )
        detector = WakeWordDetector(
            WakeWordOptions(models=models, sensitivity=opts.wake_sensitivity)
        )
        return Listener(
            detector,
            VoiceActivityDetector(),
            trailing_silence_ms=opts.trailing_silence_ms,
            max_command_s=opts.max_command_s,
            no_speech_timeout_s=opts.no_speech_timeout_s,
        )


class _PhraseRecognizer:
    """pocketsphinx constrained to the skills' phrases (a JSGF grammar of alternatives).

    Free decoding recognizes espeak-ng and other synthetic voices very poorly (measured
    here: "read the text" heard as "we do", "take a photo" as "oh oh"); a grammar of the
    phrases the assistant can act on returns the phrase, or a prefix of it ("read"),
    which the fuzzy matcher then maps to the skill. Speech outside every phrase comes
    back empty or as a fragment that rarely clears the intent threshold.

    The decoder loads no language model (the grammar replaces it) and a dictionary of
    only the phrases' words, taken from pocketsphinx's own, instead of the trigram model
    and 135,000 pronunciations of its default set-up (``bench_assistant`` prints the
    memory each step of the edge runtime adds, this recognizer's included).
    """

    def __init__(self) -> None:
        try:
            pocketsphinx: Any = importlib.import_module("pocketsphinx")
        except ImportError:
            raise BackendUnavailableError(
                "intent", "pocketsphinx is not installed: pip install 'glasses-sdk[cloud]'"
            ) from None
        self._pocketsphinx = pocketsphinx
        self._dictionary = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
        self._decoder: Any = None
        self._key: tuple[str, ...] = ()

    def _pronunciations(self, vocabulary: set[str]) -> list[str]:
        """The dictionary's lines (every pronunciation: ``read``, ``read(2)``) of the words
        in ``vocabulary``."""
        try:
            text = self._dictionary.read_text(encoding="utf-8")
        except OSError as exc:
            raise BackendUnavailableError(
                "intent", f"pocketsphinx's dictionary {self._dictionary}: {exc}"
            ) from None
        lines = []
        for line in text.splitlines():
            head = line.split(" ", 1)[0]
            if head.split("(", 1)[0] in vocabulary:
                lines.append(line)
        return lines

    def _activate(self, phrases: Sequence[str]) -> None:
        candidates = sorted({" ".join(words(p)) for p in phrases} - {""})
        if tuple(candidates) == self._key and self._decoder is not None:
            return
        entries = self._pronunciations({w for p in candidates for w in p.split()})
        known = {line.split(" ", 1)[0] for line in entries}
        # A word the dictionary lacks would make the whole grammar fail to load.
        usable = [p for p in candidates if all(w in known for w in p.split())]
        if not usable:
            raise BackendUnavailableError(
                "intent", "no skill phrase is made of words pocketsphinx knows"
            )
        grammar = (
            "#JSGF V1.0;\ngrammar skills;\npublic <command> = "
            + " | ".join(f"( {p} )" for p in usable)
            + ";\n"
        )
        with tempfile.TemporaryDirectory(prefix="glasses-intent-") as folder:
            dictionary = Path(folder) / "phrases.dict"
            dictionary.write_text("\n".join(entries) + "\n", encoding="utf-8")
            decoder = self._pocketsphinx.Decoder(loglevel="FATAL", lm=None, dict=str(dictionary))
        decoder.add_jsgf_string("skills", grammar)
        decoder.activate_search("skills")
        self._decoder = decoder
        self._key = tuple(candidates)

    def recognize(self, audio: NDArray[np.float32], phrases: Sequence[str]) -> str:
        from glasses_sdk.preprocess.audio import float32_to_int16

        self._activate(phrases)
        x = audio[: 20 * SPEECH_SAMPLE_RATE_HZ]
        # Stretches of exact digital zeros (the emulator, synthesized speech, a muted
        # microphone) derail pocketsphinx's feature normalization: "read the text" with
        # 0.3 s of zeros before it came back empty. Seeded dither at -60 dBFS (about 33
        # LSB) fixed it for every command tried and is inaudible to the recognizer.
        dither = np.random.default_rng(0).normal(0.0, _DITHER, x.size).astype(np.float32)
        pcm = float32_to_int16(np.clip(x + dither, -1.0, 1.0)).astype("<i2").tobytes()
        decoder = self._decoder
        # Decoded whole (full_utt): pocketsphinx then normalizes over the utterance.
        decoder.start_utt()
        try:
            decoder.process_raw(pcm, False, True)
        finally:
            decoder.end_utt()
        hypothesis = decoder.hyp()
        return "" if hypothesis is None else str(hypothesis.hypstr)


class _Subscriber:
    def __init__(self, size: int) -> None:
        # One slot more than the events it may hold: the end marker always fits.
        self.size = size
        self.queue: asyncio.Queue[AssistantEvent | None] = asyncio.Queue(size + 1)
        self.dropped = 0


class Assistant:
    """Say the wake word, ask, hear the answer: the device answers what it can, the
    cloud the rest, and every frame that leaves the device has its faces blurred.

    ``speaker`` plays the spoken answers; by default the glasses' speaker for a bridge
    device (:class:`BridgeSpeaker`) and none otherwise (the answer's audio is still in
    each :class:`AnswerEvent`; pass :class:`SoundDeviceSpeaker` to hear it here).
    """

    def __init__(
        self,
        device: Device,
        *,
        cloud: CloudClient | None = None,
        options: AssistantOptions | None = None,
        speaker: Speaker | None = None,
    ) -> None:
        if not isinstance(device, Device):
            raise InvalidConfigError(
                f"device: expected a glasses_sdk.Device, got {type(device).__name__}"
            )
        self.device = device
        self.cloud = cloud
        self.options = options or AssistantOptions()
        if speaker is None and hasattr(getattr(device, "session", None), "play_audio"):
            speaker = BridgeSpeaker(device)
        self.speaker = speaker
        self.policy = RoutingPolicy(self.options.policy)
        self.privacy = PrivacyFilter(self.options.privacy)
        self._services = _Services(self.options)
        self._skills: dict[str, SkillFunction] = builtin_skills()
        self._phrases: dict[str, tuple[str, ...]] = dict(BUILTIN_PHRASES)
        self._subscribers: list[_Subscriber] = []
        self._callbacks: list[tuple[type[Any], Callable[[Any], object]]] = []
        self._callback_tasks: set[asyncio.Task[Any]] = set()
        self._latest_frame: VideoFrame | None = None
        self._stop = asyncio.Event()
        self._listening = asyncio.Event()
        self._tap = threading.Event()
        self._running = False
        self.dropped_events = 0
        """Events dropped because a subscriber's queue was full."""
        self.dropped_commands = 0
        """Commands dropped because the previous one was still being answered."""

    # ------------------------------------------------------------------ skills

    def skill(self, name: str, *, phrases: Sequence[str]) -> Callable[[F], F]:
        """Register an async function ``(ctx) -> SkillResult | str`` as the skill
        ``name``, selected by any of ``phrases``; a built-in of that name is replaced."""
        if not isinstance(name, str) or not name.strip() or name == UNKNOWN_SKILL:
            raise InvalidConfigError(f"skill name: expected a non-empty name, got {name!r}")
        if (
            isinstance(phrases, str)
            or not phrases
            or not all(isinstance(p, str) and p.strip() for p in phrases)
        ):
            raise InvalidConfigError(
                f"phrases: expected a sequence of non-empty strings, got {phrases!r}"
            )

        def register(function: F) -> F:
            is_async = inspect.iscoroutinefunction(function)  # kept apart: no narrowing of F
            if not is_async:
                raise InvalidConfigError(
                    f"skill {name!r}: expected an async function (ctx) -> SkillResult | str"
                )
            self._skills[name] = function
            self._phrases[name] = tuple(phrases)
            return function

        return register

    @property
    def skills(self) -> dict[str, tuple[str, ...]]:
        """The skills and their phrases."""
        return dict(self._phrases)

    # ------------------------------------------------------------------ events

    def events(self) -> AsyncIterator[AssistantEvent]:
        """The assistant's events from now on, until :meth:`stop`.

        Each call has its own queue of ``options.event_queue`` events; when the reader
        falls behind, new events are dropped for it (counted in ``dropped_events``),
        never blocking the assistant. Subscribed at once, before the first ``await``.
        """
        subscriber = _Subscriber(self.options.event_queue)
        self._subscribers.append(subscriber)

        async def iterate() -> AsyncIterator[AssistantEvent]:
            try:
                while True:
                    event = await subscriber.queue.get()
                    if event is None:
                        return
                    yield event
            finally:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return iterate()

    def on(self, event_type: type[E], callback: Callable[[E], object]) -> Callable[[], None]:
        """Call ``callback`` (sync, or async and then scheduled) with each event of
        ``event_type``; returns a function that unregisters it. A callback that raises
        is logged and does not stop the assistant."""
        if not isinstance(event_type, type):
            raise InvalidConfigError(f"event_type: expected a class, got {event_type!r}")
        entry: tuple[type[Any], Callable[[Any], object]] = (event_type, callback)
        self._callbacks.append(entry)

        def off() -> None:
            if entry in self._callbacks:
                self._callbacks.remove(entry)

        return off

    def _emit(self, event: AssistantEvent) -> None:
        for subscriber in list(self._subscribers):
            if subscriber.queue.qsize() >= subscriber.size:
                subscriber.dropped += 1
                self.dropped_events += 1
            else:
                subscriber.queue.put_nowait(event)
        for event_type, callback in list(self._callbacks):
            if not isinstance(event, event_type):
                continue
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._callback_tasks.add(task)
                    task.add_done_callback(self._callback_done)
            except Exception:
                log.exception("an assistant callback failed on %s", type(event).__name__)

    def _callback_done(self, task: asyncio.Task[Any]) -> None:
        self._callback_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("an async assistant callback failed", exc_info=task.exception())

    def _close_subscribers(self) -> None:
        for subscriber in list(self._subscribers):
            if not subscriber.queue.full():  # full: it holds the end marker already
                subscriber.queue.put_nowait(None)

    # ------------------------------------------------------------------ commands

    async def handle_command(
        self, command_audio: NDArray[np.float32] | None = None, *, text: str | None = None
    ) -> AnswerEvent:
        """Answer one command: ``command_audio`` (16 kHz mono float32, transcribed
        first) or typed ``text``. Emits the decisions and the answer, speaks it, and
        returns the :class:`AnswerEvent`.

        Raises:
            InvalidInputError: neither or both given, empty text, or bad audio.
        """
        if (command_audio is None) == (text is None):
            raise InvalidInputError("handle_command: expected command_audio or text (one of them)")
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise InvalidInputError("text: expected a non-empty command")
        if command_audio is not None:
            command_audio = _check_audio(command_audio)
        return await self._answer(command_audio, text, monotonic_s(), {})

    async def _answer(
        self,
        audio: NDArray[np.float32] | None,
        text: str | None,
        started_s: float,
        latency_ms: dict[str, float],
    ) -> AnswerEvent:
        # One trace per command: its stages below are child spans, and the cloud client's
        # "network" span carries the context on to the server in `traceparent`.
        with span("assistant.command", typed=text is not None) as root:
            answer = await self._answer_traced(audio, text, started_s, latency_ms)
            if root.is_recording():
                root.set_attribute("skill", answer.skill)
                root.set_attribute("source", str(answer.source))
                for stage in ("endpointing_wait", "total"):
                    if stage in answer.latency_ms:
                        root.set_attribute(f"{stage}_ms", answer.latency_ms[stage])
            return answer

    async def _answer_traced(
        self,
        audio: NDArray[np.float32] | None,
        text: str | None,
        started_s: float,
        latency_ms: dict[str, float],
    ) -> AnswerEvent:
        ctx = SkillContext(
            device=self.device,
            frame=self._latest_frame,
            command_audio=audio,
            transcript=text,
            cloud=self.cloud,
            policy=self.policy,
            deadline_ms=self.options.deadline_ms,
            privacy=self.privacy,
            options=self.options,
            services=self._services,
            emit=self._emit,
            started_s=started_s,
        )
        voice = _AnswerVoice(self, started_s, latency_ms) if self.options.speak else None
        ctx.set_voice(None if voice is None else voice.say)
        try:
            return await self._answer_with(ctx, voice, text, started_s, latency_ms)
        finally:
            if voice is not None:
                voice.cancel()

    async def _answer_with(
        self,
        ctx: SkillContext,
        voice: _AnswerVoice | None,
        text: str | None,
        started_s: float,
        latency_ms: dict[str, float],
    ) -> AnswerEvent:
        stage = time.perf_counter()
        with span("inference", task="intent"):
            transcript = text if text is not None else await self._transcribe(ctx)
        ctx.transcript = transcript
        latency_ms["intent"] = (time.perf_counter() - stage) * 1000.0
        match = (
            None
            if transcript is None
            else match_intent(transcript, self._phrases, self.options.intent_threshold)
        )
        skill = UNKNOWN_SKILL if match is None else match.skill
        if voice is not None:
            voice.skill = skill  # names the skill in errors of parts it says early
        result: SkillResult
        frame: FilteredFrame | None = None
        if match is None:
            result = SkillResult(NOT_CAUGHT, Route.LOCAL, None, {})
        else:
            with span("skill", skill=skill):
                result = await self._run_skill(skill, ctx)
        frame = _frame_of(ctx, result)
        for name, ms in ctx.latency_ms.items():
            latency_ms[name] = latency_ms.get(name, 0.0) + ms
        pcm = b""
        if voice is not None:
            rest = voice.unsaid(result.text)
            if rest.strip():
                voice.say(rest)
            with span("speech", chars=len(result.text)):
                pcm = await voice.finish()
        latency_ms["total"] = (monotonic_s() - started_s) * 1000.0
        answer = AnswerEvent(
            skill=skill,
            text=result.text,
            source=result.source,
            latency_ms={k: round(v, 3) for k, v in latency_ms.items()},
            audio_pcm16=pcm,
            frame=frame,
            data=dict(result.data),
            transcript=transcript,
            decision=result.decision,
        )
        self._emit(answer)
        return answer

    async def _speak(
        self,
        text: str,
        skill: str,
        started_s: float,
        latency_ms: dict[str, float],
        audio: list[bytes],
    ) -> bool:
        """Synthesize and play ``text`` a sentence group at a time, so that the first
        words play while the rest is synthesized; appends the audio to ``audio``.
        Returns False when synthesis or the speaker failed (reported as an error event).

        ``speech_synthesis`` is the time of the answer's first part (what delays the
        first sample), ``first_audio`` the time from the command's end to handing that
        part to the speaker, ``playback`` the time the speaker took to accept the parts.
        """
        for part in _speech_parts(text):
            first = "speech_synthesis" not in latency_ms
            stage = time.perf_counter()
            try:
                pcm, _ = await asyncio.to_thread(synthesize, part, self.options.voice)
            except GlassesError as exc:
                self._emit(ErrorEvent(f"speech synthesis failed: {exc}", skill))
                return False
            spent = (time.perf_counter() - stage) * 1000.0
            key = "speech_synthesis" if first else "speech_synthesis_rest"
            latency_ms[key] = latency_ms.get(key, 0.0) + spent
            audio.append(pcm)
            if self.speaker is None:
                continue
            if "first_audio" not in latency_ms:
                latency_ms["first_audio"] = (monotonic_s() - started_s) * 1000.0
            stage = time.perf_counter()
            try:
                await self.speaker.play(pcm, SPEECH_SAMPLE_RATE_HZ)
            except Exception as exc:
                self._emit(ErrorEvent(f"the speaker failed: {exc}", skill))
                return False
            finally:
                spent = (time.perf_counter() - stage) * 1000.0
                latency_ms["playback"] = latency_ms.get("playback", 0.0) + spent
        return True

    async def _run_skill(self, skill: str, ctx: SkillContext) -> SkillResult:
        function = self._skills[skill]
        ctx.skill = skill
        try:
            outcome: object = await function(ctx)
        except LedUnavailableError as exc:
            self._emit(ErrorEvent(str(exc), skill))
            return SkillResult(
                "I cannot use the camera: its light cannot be shown.",
                Route.REFUSED,
                None,
                {"error": "LedUnavailableError"},
            )
        except GlassesError as exc:
            self._emit(ErrorEvent(str(exc), skill))
            return SkillResult(
                "Sorry, that did not work.", Route.REFUSED, None, {"error": type(exc).__name__}
            )
        except Exception as exc:  # an app's skill has a bug: say so, keep running
            log.exception("skill %r failed", skill)
            self._emit(ErrorEvent(f"{type(exc).__name__}: {exc}", skill))
            return SkillResult(
                "Sorry, that did not work.", Route.REFUSED, None, {"error": type(exc).__name__}
            )
        if isinstance(outcome, str):
            return SkillResult(outcome, Route.LOCAL, None, {})
        if not isinstance(outcome, SkillResult):
            self._emit(ErrorEvent(f"skill {skill!r} returned {type(outcome).__name__}", skill))
            return SkillResult("Sorry, that did not work.", Route.REFUSED, None, {})
        return outcome

    async def _transcribe(self, ctx: SkillContext) -> str | None:
        """The command's words: on the device (pocketsphinx) or by the cloud."""
        audio = ctx.command_audio
        assert audio is not None
        if audio.size == 0:
            return None
        local = self._services.can_transcribe_locally
        duration_ms = audio.size / SPEECH_SAMPLE_RATE_HZ * 1000.0
        decision: Decision = ctx.decide(
            "intent",
            local_available=local,
            local_latency_ms=duration_ms * _SPHINX_REAL_TIME_FACTOR,
        )
        if decision.route is Route.CLOUD:
            try:
                response = await ctx.cloud_post(
                    "/v1/audio/transcriptions", audio=audio, data={"model": "pocketsphinx"}
                )
                return str(response.body.get("text", ""))
            except CLOUD_ERRORS as exc:
                self._emit(ErrorEvent(f"cloud transcription failed: {exc}", None))
                if not local:
                    return None
        elif decision.route is Route.REFUSED:
            return None
        try:
            phrases = [p for ps in self._phrases.values() for p in ps]
            return await asyncio.to_thread(self._services.transcribe, audio, phrases)
        except GlassesError as exc:
            self._emit(ErrorEvent(f"transcription failed: {exc}", None))
            return None

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Listen and answer until :meth:`stop` or the device's audio ends or is lost.

        Loads the wake word, VAD and face models first (in a worker thread).
        """
        if self._running:
            raise InvalidConfigError("Assistant.run() is already running")
        if not self.device.has_audio:
            raise InvalidConfigError(
                f"device {self.device.name!r} has no microphone: use handle_command()"
            )
        self._running = True
        self._stop.clear()
        privacy = self.options.privacy
        if privacy.keep_media and privacy.media_dir is not None:
            MediaStore(privacy.media_dir, privacy.retention_s).purge()
        listener = await asyncio.to_thread(self._services.listener)
        await self.warm_up()
        commands: asyncio.Queue[tuple[CommandEnded, float]] = asyncio.Queue(1)
        tasks = [
            asyncio.create_task(self._audio_loop(listener, commands), name="assistant-audio"),
            asyncio.create_task(self._command_loop(commands), name="assistant-commands"),
            asyncio.create_task(self._state_loop(), name="assistant-state"),
        ]
        if self.device.has_video:
            tasks.append(asyncio.create_task(self._video_loop(), name="assistant-video"))
        if callable(getattr(self.device, "events", None)) or hasattr(self.device, "session"):
            tasks.append(asyncio.create_task(self._device_events_loop(), name="assistant-taps"))
        stop = asyncio.create_task(self._stop.wait())
        self._listening.set()
        try:
            await asyncio.wait([stop, tasks[0]], return_when=asyncio.FIRST_COMPLETED)
            if tasks[0].done() and not self._stop.is_set():
                # The audio ended: answer the command it completed, if any, then stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.deadline_ms / 1000.0 + 5.0):
                        await commands.join()
        finally:
            stop.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(stop, *tasks, return_exceptions=True)
            self._running = False
            self._listening.clear()
            self._close_subscribers()
        error = tasks[0].exception() if tasks[0].done() and not tasks[0].cancelled() else None
        if error is not None:
            raise error

    async def listening(self) -> None:
        """Return once :meth:`run` listens: its models are loaded and the microphone,
        camera, taps and device state are being read."""
        await self._listening.wait()

    async def warm_up(self) -> None:
        """Load the face, text and speech models and the synthesizer now (in a worker
        thread), so that the first command does not pay for it; :meth:`run` calls it."""
        phrases = [p for ps in self._phrases.values() for p in ps]
        await asyncio.to_thread(self.privacy.warm_up)
        await asyncio.to_thread(self._services.warm_up, phrases)

    async def stop(self) -> None:
        """Stop :meth:`run` and end every events() iterator."""
        self._stop.set()
        if not self._running:
            self._close_subscribers()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def tap(self) -> None:
        """Start listening for a command now, as a tap on the temple does."""
        self._tap.set()

    async def _audio_loop(
        self, listener: Listener, commands: asyncio.Queue[tuple[CommandEnded, float]]
    ) -> None:
        from glasses_sdk.preprocess.audio import int16_to_float32, resample

        source = self.device.audio
        while True:
            try:
                chunk = await source.read()
            except (StopAsyncIteration, SourceClosedError, StreamLostError):
                heard = listener.flush()
                self._dispatch(heard, commands)
                return
            samples = chunk.samples
            x = (
                int16_to_float32(samples)  # type: ignore[arg-type]
                if samples.dtype == np.int16
                else samples
            )
            if chunk.sample_rate_hz != SPEECH_SAMPLE_RATE_HZ:
                x = resample(x, chunk.sample_rate_hz, SPEECH_SAMPLE_RATE_HZ)  # type: ignore[arg-type]
            if self._tap.is_set():
                self._tap.clear()
                if not listener.listening:
                    listener.wake()
                    self._emit(WakeEvent("tap", 1.0))
            heard = await asyncio.to_thread(listener.push, x)  # type: ignore[arg-type]
            self._dispatch(heard, commands)

    def _dispatch(
        self,
        heard: Sequence[Woken | SpeechStarted | CommandEnded],
        commands: asyncio.Queue[tuple[CommandEnded, float]],
    ) -> None:
        for item in heard:
            if isinstance(item, Woken):
                self._emit(WakeEvent(item.phrase, item.score))
            elif isinstance(item, SpeechStarted):
                self._emit(SpeechStartEvent())
            else:
                self._emit(SpeechEndEvent(item.duration_s, item.reason))
                if item.reason == "no_speech":
                    continue
                try:
                    commands.put_nowait((item, monotonic_s()))
                except asyncio.QueueFull:
                    self.dropped_commands += 1
                    self._emit(ErrorEvent("busy: still answering the previous command"))

    async def _command_loop(self, commands: asyncio.Queue[tuple[CommandEnded, float]]) -> None:
        while True:
            command, ended_s = await commands.get()
            try:
                # The answer's clock starts at the last voiced sample: the endpointer's
                # trailing-silence wait is part of the total and reported on its own.
                wait_ms = command.trailing_silence_ms
                await self._answer(
                    command.audio,
                    None,
                    ended_s - wait_ms / 1000.0,
                    {"endpointing_wait": wait_ms},
                )
            except Exception as exc:
                log.exception("answering a command failed")
                self._emit(ErrorEvent(f"{type(exc).__name__}: {exc}"))
            finally:
                commands.task_done()

    async def _video_loop(self) -> None:
        source = self.device.video
        while True:
            try:
                self._latest_frame = await source.read()
            except (StopAsyncIteration, SourceClosedError, StreamLostError):
                return

    def _on_device_event(self, event: Any) -> None:
        if type(getattr(event, "message", None)).__name__ == "TouchEvent":
            self.tap()

    async def _device_events_loop(self) -> None:
        subscribe = getattr(getattr(self.device, "session", None), "subscribe", None)
        if callable(subscribe):
            # A listener, not the session's event queue: the app may read that queue
            # (BridgeDevice.events()) and must not have taps taken from it.
            unsubscribe = subscribe(events=self._on_device_event)
            try:
                await asyncio.Event().wait()  # until cancelled by run()
            finally:
                unsubscribe()
        events: AsyncIterator[Any] = self.device.events()  # type: ignore[attr-defined]
        async for event in events:
            self._on_device_event(event)

    async def _state_loop(self) -> None:
        last: DeviceState | None = None
        while True:
            state = replace(self.device.state, updated_s=0.0)
            if state != last:
                if last is not None:
                    self._emit(DeviceStateEvent(self.device.state))
                last = state
            await asyncio.sleep(_STATE_POLL_S)


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")
_FIRST_PART_CHARS = 80
_PART_CHARS = 400


class _AnswerVoice:
    """Speaks one command's answer in parts, in order, as they come: parts a skill says
    early (:meth:`SkillContext.say`) and, when it returns, the rest of its answer.

    Each part is spoken in a task chained after the previous part's, so a skill that
    says a line goes on at once; :meth:`finish` waits for them all. After a failure
    (synthesis or speaker, reported as an error event) nothing more is spoken.
    """

    def __init__(self, assistant: Assistant, started_s: float, latency_ms: dict[str, float]):
        self._assistant = assistant
        self._started_s = started_s
        self._latency_ms = latency_ms
        self._budget = assistant.options.max_answer_chars
        self._said: list[str] = []
        self._audio: list[bytes] = []
        self._tasks: list[asyncio.Task[bool]] = []  # one per part, in order
        self.skill = UNKNOWN_SKILL

    def say(self, text: str) -> None:
        """Queue ``text`` to be spoken after the parts before it."""
        if not isinstance(text, str):
            raise InvalidInputError(f"say: expected text, got {type(text).__name__}")
        self._said.append(text)
        part = text[: self._budget]
        self._budget -= len(part)
        if not part.strip():
            return
        previous = self._tasks[-1] if self._tasks else None
        self._tasks.append(asyncio.get_running_loop().create_task(self._after(previous, part)))

    async def _after(self, previous: asyncio.Task[bool] | None, text: str) -> bool:
        if previous is not None and not await previous:
            return False
        return await self._assistant._speak(
            text, self.skill, self._started_s, self._latency_ms, self._audio
        )

    def unsaid(self, answer: str) -> str:
        """What of ``answer`` was not said already: the rest after the said parts (joined
        by newlines) when it begins with them, else all of it (another answer)."""
        said = "\n".join(self._said)
        if said and answer.startswith(said):
            return answer[len(said) :]
        return answer

    async def finish(self) -> bytes:
        """Wait until every queued part is spoken; the answer's audio (16-bit PCM)."""
        if self._tasks:
            await self._tasks[-1]  # each part awaits the one before
        return b"".join(self._audio)

    def cancel(self) -> None:
        """Stop speaking (the command failed or was cancelled): every part not yet
        spoken, not only the last one queued."""
        for task in self._tasks:
            if not task.done():
                task.cancel()


def _speech_parts(text: str) -> list[str]:
    """``text`` cut at sentence ends and line breaks into parts to synthesize in turn:
    a short first part (about ``_FIRST_PART_CHARS``: the first sample comes sooner),
    then parts of up to ``_PART_CHARS`` (fewer espeak-ng starts)."""
    sentences = [p.strip() for p in _SENTENCE_END.split(text) if p and p.strip()]
    parts: list[str] = []
    current = ""
    for sentence in sentences:
        limit = _FIRST_PART_CHARS if not parts else _PART_CHARS
        if current and len(current) + 1 + len(sentence) > limit:
            parts.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        parts.append(current)
    return parts


def _check_audio(audio: object) -> NDArray[np.float32]:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1 or audio.dtype != np.float32:
        got = (
            f"dtype {audio.dtype} and shape {audio.shape}"
            if isinstance(audio, np.ndarray)
            else type(audio).__name__
        )
        raise InvalidAudioError(f"command_audio: expected 1-D float32 16 kHz samples, got {got}")
    if audio.size and not np.isfinite(audio).all():
        raise InvalidAudioError("command_audio: expected finite samples, got NaN or infinity")
    return audio


def _frame_of(ctx: SkillContext, result: SkillResult) -> FilteredFrame | None:
    frame = result.data.get("frame")
    return frame if isinstance(frame, FilteredFrame) else ctx.last_photo
