"""``glasses doctor``: one JSON document listing cameras, audio inputs, models and cloud
reachability, each missing piece with how to fix it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest
import typer
from typer.testing import CliRunner

from glasses_sdk._cli_doctor import doctor_command

SCHEMA = {
    "type": "object",
    "required": ["ok", "cameras", "audio_inputs", "models", "cloud", "problems"],
    "properties": {
        "ok": {"type": "boolean"},
        "cameras": {
            "type": "array",
            "items": {"type": "object", "required": ["index", "device", "width", "height"]},
        },
        "audio_inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "name", "channels", "default_sample_rate_hz", "default"],
            },
        },
        "models": {
            "type": "object",
            "required": ["dir", "present", "models"],
            "properties": {"present": {"type": "boolean"}},
        },
        "cloud": {
            "type": "object",
            "required": ["url", "checked", "reachable"],
        },
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["component", "problem", "fix"],
                "properties": {"component": {"enum": ["camera", "microphone", "models", "cloud"]}},
            },
        },
    },
}


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("doctor")(doctor_command)

    @app.command("other")
    def other() -> None:  # a second command keeps "doctor" a subcommand, as in cli.py
        """Unused."""

    return app


@pytest.fixture
def cloud_url() -> Iterator[str]:
    class Health(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _doctor(*args: str, monkeypatch: pytest.MonkeyPatch, cache: Path) -> dict[str, object]:
    monkeypatch.setenv("GLASSES_SDK_CACHE", str(cache))
    result = CliRunner().invoke(_app(), ["doctor", "--json", *args])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    return document  # type: ignore[no-any-return]


def test_json_report_says_what_is_missing_and_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    document = _doctor(monkeypatch=monkeypatch, cache=tmp_path / "empty-cache")
    problems = {p["component"]: p for p in document["problems"]}  # type: ignore[attr-defined]
    assert "glasses models build" in problems["models"]["fix"]
    assert document["models"]["present"] is False  # type: ignore[index]
    assert document["cloud"] == {"url": None, "checked": False, "reachable": None}
    if not document["cameras"]:
        assert "file:VIDEO" in problems["camera"]["fix"]
    assert document["ok"] is (not problems)


def test_cloud_reachability(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cloud_url: str
) -> None:
    up = _doctor("--cloud", cloud_url, monkeypatch=monkeypatch, cache=tmp_path)
    assert up["cloud"]["reachable"] is True and up["cloud"]["status_code"] == 200  # type: ignore[index]
    down = _doctor("--cloud", "http://127.0.0.1:9", monkeypatch=monkeypatch, cache=tmp_path)
    assert down["cloud"]["reachable"] is False  # type: ignore[index]
    assert any(p["component"] == "cloud" for p in down["problems"])  # type: ignore[attr-defined]


def test_human_report_lists_each_section(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GLASSES_SDK_CACHE", str(tmp_path))
    result = CliRunner().invoke(_app(), ["doctor"])
    assert result.exit_code == 0, result.output
    for section in ("cameras", "audio inputs", "models", "cloud"):
        assert section in result.stdout
