"""The assistant part of the demo's report: pictures, a timeline, latencies, spoken answers.

:func:`write_assistant_section` turns what :func:`glasses_sdk._demo_live.run_live`
recorded into files beside ``index.html`` — each answer's privacy-filtered photo with
the blurred faces outlined and the text lines it read drawn on it, and each spoken
answer as a WAV file — and returns the JSON summary and the HTML of the section.
"""

from __future__ import annotations

import html
import statistics
import wave
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from glasses_sdk._demo_live import LiveResult
from glasses_sdk._demo_scenario import DemoAssets, SpokenCommand

__all__ = ["ASSISTANT_CSS", "LATENCY_STAGES", "write_assistant_section"]

LATENCY_STAGES = (
    "endpointing_wait",
    "intent",
    "capture",
    "privacy",
    "inference",
    "network",
    "server",
    "speech_synthesis",
    "first_audio",
    "total",
)
"""The stages shown, in request order (an answer has those that happened)."""

_FACE_BGR = (40, 40, 230)
_TEXT_BGR = (30, 170, 30)
_ROUTE_COLOURS = {
    "local": "#2e7d32",
    "cloud": "#ef6c00",
    "local_degraded": "#8d6e63",
    "refused": "#c62828",
}


def _route(value: Any) -> str:
    return str(getattr(value, "value", value))


def _annotate(
    image: npt.NDArray[np.uint8], faces: list[list[float]], lines: list[dict[str, Any]]
) -> npt.NDArray[np.uint8]:
    """The filtered photo with blurred faces outlined (red) and text lines drawn (green)."""
    picture = np.array(image, dtype=np.uint8, copy=True)
    thickness = max(2, round(picture.shape[1] / 500))
    for x0, y0, x1, y1 in faces:
        cv2.rectangle(picture, (round(x0), round(y0)), (round(x1), round(y1)), _FACE_BGR, thickness)
        cv2.putText(
            picture,
            "face blurred",
            (round(x0), max(14, round(y0) - 6)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            _FACE_BGR,
            2,
        )
    for line in lines:
        polygon = line.get("polygon")
        if polygon:
            points = np.round(np.asarray(polygon, dtype=np.float64)).astype(np.int32)
            cv2.polylines(picture, [points.reshape(-1, 1, 2)], True, _TEXT_BGR, thickness)
        elif line.get("box"):
            x0, y0, x1, y1 = line["box"]
            cv2.rectangle(
                picture, (round(x0), round(y0)), (round(x1), round(y1)), _TEXT_BGR, thickness
            )
    return picture


def _write_wav(path: Path, pcm16: bytes, sample_rate_hz: int) -> float:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate_hz)
        handle.writeframes(pcm16)
    return len(pcm16) / 2 / sample_rate_hz


def _command_for(
    t_s: float, commands: tuple[SpokenCommand, ...], period_s: float
) -> SpokenCommand | None:
    """The command whose speech ended last before the endpointer's decision at ``t_s``.

    The recording loops every ``period_s``: before the first command of a pass, the
    last command of the pass before it is meant.
    """
    if not commands:
        return None
    in_pass = t_s % period_s if period_s > 0 else t_s
    before = [c for c in commands if c.voice_end_s <= in_pass]
    if before:
        return before[-1]
    return commands[-1] if t_s >= period_s else None


def _decision_json(t_s: float, decision: Any) -> dict[str, Any]:
    return {
        "t_s": round(t_s, 3),
        "task": str(decision.task),
        "route": _route(decision.route),
        "reasons": [str(r) for r in decision.reasons],
    }


def _summarize(result: LiveResult, assets: DemoAssets, out: Path) -> dict[str, Any]:
    from glasses_sdk.assistant import (
        AnswerEvent,
        DecisionEvent,
        ErrorEvent,
        SpeechEndEvent,
        WakeEvent,
    )

    wakes: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    speech_ends: list[dict[str, Any]] = []
    # Answers come in the order the commands ended (the assistant answers one at a time),
    # but under load an answer can arrive after the next command was spoken: pair each
    # answer with the oldest ended command not answered yet, not with the newest.
    pending: list[SpokenCommand | None] = []
    for t_s, event in result.events:
        if isinstance(event, WakeEvent):
            wakes.append({"t_s": round(t_s, 3), "phrase": event.phrase, "score": event.score})
        elif isinstance(event, DecisionEvent):
            decisions.append(_decision_json(t_s, event.decision))
        elif isinstance(event, SpeechEndEvent):
            speech_ends.append(
                {"t_s": round(t_s, 3), "duration_s": event.duration_s, "reason": event.reason}
            )
            if event.reason != "no_speech":
                pending.append(_command_for(t_s, assets.commands, assets.script.duration_s))
        elif isinstance(event, ErrorEvent):
            errors.append({"t_s": round(t_s, 3), "error": event.error, "skill": event.skill})
        elif isinstance(event, AnswerEvent):
            number = len(answers) + 1
            command = pending.pop(0) if pending else None
            faces = [list(map(float, b)) for b in (event.frame.faces if event.frame else ())]
            lines = [line for line in event.data.get("lines", []) or [] if isinstance(line, dict)]
            frame_file = None
            if event.frame is not None:
                frame_file = f"answer-{number}.jpg"
                cv2.imwrite(str(out / frame_file), _annotate(event.frame.image, faces, lines))
            audio_file, audio_s = None, 0.0
            if event.audio_pcm16:
                audio_file = f"answer-{number}.wav"
                audio_s = _write_wav(out / audio_file, event.audio_pcm16, event.sample_rate_hz)
            answers.append(
                {
                    "t_s": round(t_s, 3),
                    "skill": event.skill,
                    "expected_skill": command.expect_skill if command else None,
                    "command": command.text if command else None,
                    "transcript": event.transcript,
                    "text": event.text,
                    "source": _route(event.source),
                    "decision": None
                    if event.decision is None
                    else _decision_json(t_s, event.decision),
                    "latency_ms": dict(event.latency_ms),
                    "frame": frame_file,
                    "frame_size": None
                    if event.frame is None
                    else [event.frame.width, event.frame.height],
                    "faces": faces,
                    "text_lines": len(lines),
                    "error": event.data.get("cloud_error") or event.data.get("error"),
                    "audio": audio_file,
                    "audio_s": round(audio_s, 3),
                }
            )
    stages: dict[str, list[float]] = {}
    for answer in answers:
        for stage, ms in answer["latency_ms"].items():
            stages.setdefault(stage, []).append(float(ms))
    p50 = {stage: round(statistics.median(values), 1) for stage, values in stages.items()}
    return {
        "scenario": assets.to_json(),
        "setup_s": {k: round(v, 2) for k, v in result.setup_s.items()},
        "cloud_url": result.cloud_url,
        "emulator": result.emulator_address,
        "traced": result.traced,
        "speaker_samples": result.speaker_samples,
        "counts": {
            "commands": len(assets.commands),
            "wake_words": len(wakes),
            "decisions": len(decisions),
            "answers": len(answers),
            "answers_as_expected": sum(1 for a in answers if a["skill"] == a["expected_skill"]),
            "frames": sum(a["frame"] is not None for a in answers),
            "faces_blurred": sum(len(a["faces"]) for a in answers),
            "text_lines": sum(a["text_lines"] for a in answers),
            "spoken_answers": sum(a["audio"] is not None for a in answers),
            "errors": len(errors),
        },
        "latency_p50_ms": p50,
        "wake_words": wakes,
        "speech_ends": speech_ends,
        "decisions": decisions,
        "answers": answers,
        "errors": errors,
    }


def _timeline_svg(summary: dict[str, Any], assets: DemoAssets) -> str:
    """Scenes as bands; wake words, decisions (coloured by route) and answers as marks."""
    width, left, px_per_s = 1200, 10, 0.0
    duration = max(
        assets.script.duration_s,
        max((a["t_s"] for a in summary["answers"]), default=0.0) + 1.0,
    )
    px_per_s = (width - 2 * left) / duration
    esc = html.escape
    parts = [f'<svg class="timeline" viewBox="0 0 {width} 150" role="img">']
    start = 0.0
    for number, scene in enumerate(assets.script.scenes):
        x = left + start * px_per_s
        w = scene.seconds * px_per_s
        shade = "#f2f5fa" if number % 2 == 0 else "#e6ebf3"
        label = esc(f"{scene.picture.split(':')[-1]}: “{scene.say}”")
        parts.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="150" fill="{shade}"/>')
        parts.append(f'<text x="{x + 4:.1f}" y="14" class="scene">{label}</text>')
        start += scene.seconds
    for command in assets.commands:
        x0 = left + command.wake_start_s * px_per_s
        x1 = left + command.voice_end_s * px_per_s
        parts.append(
            f'<rect x="{x0:.1f}" y="22" width="{x1 - x0:.1f}" height="10" fill="#90a4ae">'
            f"<title>spoken: {esc(command.text)}</title></rect>"
        )
    wake_marks = [
        (w["t_s"], "#1565c0", f"wake {w['phrase']} {w['score']:.2f}") for w in summary["wake_words"]
    ]
    decision_marks = [
        (d["t_s"], _ROUTE_COLOURS.get(d["route"], "#555"), f"{d['task']}: {d['route']}")
        for d in summary["decisions"]
    ]
    answer_marks = [
        (a["t_s"], _ROUTE_COLOURS.get(a["source"], "#555"), f"{a['skill']}: {a['text'][:80]}")
        for a in summary["answers"]
    ]
    rows = (
        ("wake", 50, wake_marks),
        ("decision", 80, decision_marks),
        ("answer", 110, answer_marks),
    )
    for name, y, marks in rows:
        parts.append(f'<text x="{left}" y="{y - 8}" class="row">{name}</text>')
        for t_s, colour, title in marks:
            x = left + t_s * px_per_s
            parts.append(
                f'<rect x="{x - 2:.1f}" y="{y}" width="5" height="16" fill="{colour}">'
                f"<title>{t_s:.2f} s: {esc(title)}</title></rect>"
            )
    for second in range(0, int(duration) + 1, 4):
        x = left + second * px_per_s
        parts.append(f'<text x="{x:.1f}" y="146" class="tick">{second} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _stage_cells(latency_ms: dict[str, float]) -> str:
    cells = []
    for stage in LATENCY_STAGES:
        value = latency_ms.get(stage)
        cells.append("<td>–</td>" if value is None else f"<td>{value:.0f}</td>")
    return "".join(cells)


def _section_html(summary: dict[str, Any], assets: DemoAssets) -> str:
    esc = html.escape
    counts = summary["counts"]
    cards = []
    for number, a in enumerate(summary["answers"], 1):
        colour = _ROUTE_COLOURS.get(a["source"], "#555")
        decision = a["decision"]
        why = (
            f"<p><b>decided {esc(decision['route'])}:</b> {esc('; '.join(decision['reasons']))}</p>"
            if decision
            else "<p><b>decided:</b> on the device, no routing needed</p>"
        )
        if a.get("error"):
            why += f"<p><b>then:</b> {esc(str(a['error']))}</p>"
        figure = (
            f'<figure><img src="{esc(a["frame"])}" alt="answer {number} photo">'
            f"<figcaption>{a['frame_size'][0]}×{a['frame_size'][1]} photo as it may leave "
            f"the device: {len(a['faces'])} face(s) blurred (red), {a['text_lines']} text "
            f"line(s) (green)</figcaption></figure>"
            if a["frame"]
            else ""
        )
        audio = (
            f'<audio controls src="{esc(a["audio"])}"></audio> ({a["audio_s"]:.1f} s)'
            if a["audio"]
            else "(not spoken)"
        )
        cards.append(
            f'<div class="card"><h3>{number}. “{esc(a["command"] or "?")}” → '
            f'{esc(a["skill"])} <span class="route" style="background:{colour}">'
            f"{esc(a['source'])}</span></h3>{figure}<div class='detail'>"
            f"<p><b>heard:</b> {esc(str(a['transcript']))}</p>"
            f"{why}"
            f"<p><b>answer:</b> {esc(a['text'][:600])}</p>"
            f"<p><b>spoken:</b> {audio}</p>"
            f"<p><b>latency:</b> {a['latency_ms'].get('total', 0):.0f} ms in all, "
            f"{a['latency_ms'].get('endpointing_wait', 0):.0f} ms of it waiting for "
            f"the end of speech</p></div></div>"
        )
    head = "".join(f"<th>{s.replace('_', ' ')}</th>" for s in LATENCY_STAGES)
    rows = "".join(
        f"<tr><td>{n}. {esc(a['skill'])}</td><td>{esc(a['source'])}</td>"
        f"{_stage_cells(a['latency_ms'])}</tr>"
        for n, a in enumerate(summary["answers"], 1)
    )
    p50 = summary["latency_p50_ms"]
    rows += f"<tr class='p50'><td>median</td><td></td>{_stage_cells(p50)}</tr>"
    log_rows = []
    for kind, items in (
        ("wake", summary["wake_words"]),
        ("decision", summary["decisions"]),
        ("answer", summary["answers"]),
        ("error", summary["errors"]),
    ):
        for item in items:
            if kind == "wake":
                text = f"“{item['phrase']}” (score {item['score']:.3f})"
            elif kind == "decision":
                text = f"{item['task']} → {item['route']}: {'; '.join(item['reasons'])}"
            elif kind == "answer":
                text = f"{item['skill']} ({item['source']}): {item['text'][:120]}"
            else:
                text = f"{item['skill'] or ''} {item['error']}"
            log_rows.append((item["t_s"], kind, text))
    log_rows.sort(key=lambda r: r[0])
    log = "".join(
        f"<tr><td>{t:.2f}</td><td>{esc(k)}</td><td>{esc(x)}</td></tr>" for t, k, x in log_rows
    )
    setup = ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in summary["setup_s"].items())
    return f"""
<h2>The assistant, end to end</h2>
<p>The emulated glasses ({esc(summary["emulator"])}, paired) played the demo scenario:
{counts["commands"]} spoken commands over {assets.script.duration_s:.0f} s of real photos and
footage. The assistant heard {counts["wake_words"]} wake words, made {counts["decisions"]}
routing decisions and gave {counts["answers"]} answers ({counts["answers_as_expected"]} by the
skill the command asked for), {counts["spoken_answers"]} of them spoken on the glasses'
speaker; the cloud fallback server ran on loopback ({esc(summary["cloud_url"])}). Started in:
{esc(setup)}.</p>
{_timeline_svg(summary, assets)}
<p class="legend">Grey: a command being spoken. Marks: wake words (blue), decisions and
answers coloured by route: <span style="color:#2e7d32">local</span>,
<span style="color:#ef6c00">cloud</span>, <span style="color:#8d6e63">local (degraded)</span>,
<span style="color:#c62828">refused</span>. Hover a mark for its details.</p>
{"".join(cards)}
<h3>Latency per stage (ms)</h3>
<p>From the last voiced sample of the command: the endpointer's wait for trailing silence,
recognizing the command, taking the photo, blurring faces, the model, the network and the
server, synthesizing the spoken answer's first part, and, in "first audio", the time until
that part went to the glasses' speaker.</p>
<table><tr><th>answer</th><th>route</th>{head}</tr>{rows}</table>
<h3>Every event</h3>
<table><tr><th>t (s)</th><th>event</th><th>details</th></tr>{log}</table>
"""


def write_assistant_section(
    result: LiveResult, assets: DemoAssets, out: Path
) -> tuple[dict[str, Any], str]:
    """Write the answer photos and audio into ``out``; return (JSON summary, HTML)."""
    summary = _summarize(result, assets, out)
    return summary, _section_html(summary, assets)


ASSISTANT_CSS = """
svg.timeline { width: 100%; border: 1px solid #ccc; margin: 1rem 0 .3rem; }
svg.timeline text { font-size: 11px; fill: #333; } svg.timeline .tick { fill: #777; }
.legend { color: #555; font-size: .9rem; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; margin: 1rem 0;
  display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
.card h3 { width: 100%; margin: .2rem 0; } .card img { max-width: 620px; border: 1px solid #ccc; }
.card .detail { flex: 1; min-width: 300px; } .card p { margin: .3rem 0; }
.route { color: white; border-radius: 4px; padding: 0 .4rem; font-size: .85rem; }
tr.p50 td { font-weight: bold; }
"""
