"""Tracing end to end: an edge span and the real cloud server's span in one trace.

The edge exports over OTLP/HTTP to ``OtlpTestCollector`` — a test collector written
here (a stand-in for an OpenTelemetry Collector, which is not installed), that decodes
the protobuf body with ``opentelemetry-proto`` exactly as a collector would. The server
(real uvicorn on 127.0.0.1, port 0, the real app wrapped in ``TracingMiddleware``) keeps
its spans in the SDK's in-memory exporter, a provider of its own, as a separate process
would: the only link between the two sides is the ``traceparent`` header.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from glasses_sdk import data
from glasses_sdk._exceptions import InvalidConfigError, MissingDependencyError
from glasses_sdk._tracing import (
    configure_tracing,
    configure_tracing_from_env,
    span,
    tracing_enabled,
)
from glasses_sdk.cloud import create_app
from glasses_sdk.cloud._tracing import SERVER_SPAN_NAME, TracingMiddleware, install_tracing
from glasses_sdk.routing import CloudClient, CloudResponse
from tests.cloud.conftest import make_key, serve, server_settings
from tests.conftest import need_data

pytestmark = pytest.mark.timeout(120)


class OtlpTestCollector:
    """A test OTLP/HTTP trace receiver on 127.0.0.1 (named as such: not a real collector).

    It accepts ``POST /v1/traces`` with an ``ExportTraceServiceRequest`` protobuf body
    (gzip or not), answers an empty ``ExportTraceServiceResponse`` and keeps every span
    as a dict: name, trace and span ids (hex), parent id, kind, service, attributes.
    """

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.requests = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        self.requests += 1
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    self.spans.append(
                        {
                            "name": s.name,
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent_span_id": s.parent_span_id.hex(),
                            "kind": s.kind,
                            "service": service,
                            "scope": scope_spans.scope.name,
                            "attributes": {a.key: a.value for a in s.attributes},
                        }
                    )

    def __enter__(self) -> OtlpTestCollector:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def collector() -> Iterator[OtlpTestCollector]:
    with OtlpTestCollector() as running:
        yield running


@pytest.fixture
def traced_server(tmp_path: Path) -> Iterator[tuple[str, str, InMemorySpanExporter]]:
    """The real cloud app (face detection loaded) behind TracingMiddleware, on loopback."""
    settings = server_settings(tmp_path, backends=["faces"], required_backends=["faces"])
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "glasses-sdk-cloud"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = TracingMiddleware(create_app(settings), tracer_provider=provider)
    token = make_key(settings)
    with serve(app) as base_url:
        yield base_url, token, exporter
    provider.shutdown()


def _jpeg(name: str) -> bytes:
    image = need_data(lambda: data.load_photo(name))
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


def test_edge_and_server_spans_share_one_trace(
    collector: OtlpTestCollector, traced_server: tuple[str, str, InMemorySpanExporter]
) -> None:
    base_url, token, server_spans = traced_server
    photo = _jpeg("astronaut")

    async def ask_the_cloud() -> CloudResponse:
        # The edge as the assistant runs it: stage spans, then the real CloudClient,
        # whose "network" span (tracer glasses_sdk.routing) injects traceparent.
        async with CloudClient(base_url, api_key=token) as client:
            with span("request", skill="describe_scene"):
                with span("capture", width_px=512), span("preprocessing"):
                    pass
                return await client.post(
                    "/v1/vision/faces",
                    files={"image": ("astronaut.jpg", photo, "image/jpeg")},
                    deadline_ms=20_000,
                )

    handle = configure_tracing("otlp", endpoint=collector.url, service_name="glasses-sdk-edge")
    try:
        assert tracing_enabled()
        response = asyncio.run(ask_the_cloud())
    finally:
        handle.close()
    assert not tracing_enabled()
    assert response.body["faces"], "the astronaut's face is detected"

    # The edge side arrived at the collector over OTLP/HTTP protobuf.
    assert collector.requests >= 1
    by_name = {s["name"]: s for s in collector.spans}
    assert {"request", "capture", "preprocessing", "network"} <= set(by_name)
    root, network = by_name["request"], by_name["network"]
    assert network["service"] == "glasses-sdk-edge"
    assert network["scope"] == "glasses_sdk.routing"
    assert network["parent_span_id"] == root["span_id"]
    assert by_name["preprocessing"]["parent_span_id"] == by_name["capture"]["span_id"]
    assert len({s["trace_id"] for s in collector.spans}) == 1

    # The server's span is the child of the edge's network span, in the same trace.
    (handler,) = [s for s in server_spans.get_finished_spans() if s.name == SERVER_SPAN_NAME]
    assert handler.kind == trace.SpanKind.SERVER
    assert f"{handler.context.trace_id:032x}" == network["trace_id"]
    assert handler.parent is not None and f"{handler.parent.span_id:016x}" == network["span_id"]
    attributes = dict(handler.attributes or {})
    assert attributes["http.route"] == "/v1/vision/faces"
    assert attributes["http.response.status_code"] == 200
    assert attributes["http.request.method"] == "POST"
    assert 0 < int(str(attributes["glasses.deadline_ms"])) <= 20_000
    assert handler.resource.attributes["service.name"] == "glasses-sdk-cloud"
    # Tenant-free: neither the key nor the Authorization header is anywhere in the span.
    flat = json.dumps({k: str(v) for k, v in attributes.items()})
    assert token not in flat and "authorization" not in flat.lower()


def test_a_request_without_traceparent_starts_its_own_trace(
    traced_server: tuple[str, str, InMemorySpanExporter],
) -> None:
    base_url, _token, server_spans = traced_server
    response = httpx.get(f"{base_url}/v1/models", timeout=10)
    assert response.status_code == 401  # no key: still traced, with the status
    (handler,) = [s for s in server_spans.get_finished_spans() if s.name == SERVER_SPAN_NAME]
    assert handler.parent is None
    assert dict(handler.attributes or {})["http.response.status_code"] == 401


def test_install_tracing_follows_the_environment(tmp_path: Path) -> None:
    """Off: the app is left alone. On (console): the real server prints its spans."""
    settings = server_settings(tmp_path, backends=["faces"], required_backends=[])
    app = create_app(settings)
    handle = install_tracing(app, {})
    assert handle.exporter == "none" and not tracing_enabled()
    assert not any(m.cls is TracingMiddleware for m in app.user_middleware)

    out = io.StringIO()
    app = create_app(settings)
    with configure_tracing("console", console_out=out, service_name="demo-process"):
        # The process already traces (edge and server in one process): kept as it is.
        owned = install_tracing(app, {"GLASSES_TRACING": "otlp"})
        assert owned.exporter == "none"
        with serve(app) as base_url:
            assert httpx.get(f"{base_url}/healthz", timeout=10).status_code == 200
    printed = out.getvalue()
    assert '"name": "cloud handler"' in printed and '"http.route": "/healthz"' in printed
    assert "SpanKind.SERVER" in printed and "demo-process" in printed


def test_tracing_off_returns_one_shared_no_op() -> None:
    assert not tracing_enabled()
    first, second = span("inference"), span("speech", skill="read_text")
    assert first is second
    with first as inside:
        assert not inside.is_recording()
        inside.set_attribute("ignored", 1)  # harmless while off


def test_console_exporter_prints_each_span_as_json() -> None:
    out = io.StringIO()
    with configure_tracing("console", console_out=out), span("inference", task="ocr"):
        pass
    printed = out.getvalue()
    assert '"name": "inference"' in printed
    assert '"task": "ocr"' in printed
    assert "glasses-sdk-edge" in printed


def test_console_tracing_from_the_environment_in_a_fresh_process() -> None:
    code = (
        "import sys\n"
        "import glasses_sdk\n"
        "from glasses_sdk._tracing import configure_tracing_from_env, span\n"
        "assert 'opentelemetry.sdk' not in sys.modules, 'the SDK import must stay lazy'\n"
        "handle = configure_tracing_from_env()\n"
        "with span('capture'):\n"
        "    with span('speech'):\n"
        "        pass\n"
        "handle.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"GLASSES_TRACING": "console", "OTEL_SERVICE_NAME": "edge-under-test", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # stdout stays free for --json documents
    assert result.stderr.count('"name": ') >= 2
    assert '"name": "speech"' in result.stderr and "edge-under-test" in result.stderr


def test_bad_configuration_says_what_was_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidConfigError, match="expected one of none, console, otlp"):
        configure_tracing("jaeger")  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="expected an http:// or https:// URL"):
        configure_tracing("otlp", endpoint="127.0.0.1:4318")
    with pytest.raises(InvalidConfigError, match="GLASSES_TRACING='zipkin'"):
        configure_tracing_from_env({"GLASSES_TRACING": "zipkin"})
    assert configure_tracing_from_env({}).exporter == "none"
    assert not tracing_enabled()


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.resources", None)
    with pytest.raises(MissingDependencyError, match=r"glasses-sdk\[tracing\]"):
        configure_tracing("console")
    assert not tracing_enabled()


def test_an_assistant_command_is_one_trace_of_its_stages() -> None:
    """The edge's part of a request: the command's root span and its stage spans."""
    from glasses_sdk import FakeDevice, FakeVideoSource
    from glasses_sdk.assistant import Assistant, AssistantOptions

    photo = need_data(lambda: data.load_photo("astronaut"))

    async def take_a_photo() -> str:
        device = FakeDevice(name="fake", video=FakeVideoSource([photo], fps=30, loop=True))
        async with device:
            assistant = Assistant(device, options=AssistantOptions(speak=True))
            answer = await assistant.handle_command(text="take a photo")
            return answer.skill

    out = io.StringIO()
    with configure_tracing("console", console_out=out):
        skill = asyncio.run(take_a_photo())
    assert skill == "take_photo"
    spans = [json.loads(chunk) for chunk in _json_objects(out.getvalue())]
    by_name = {s["name"]: s for s in spans}
    assert {"assistant.command", "inference", "skill", "capture", "preprocessing", "speech"} <= set(
        by_name
    )
    assert len({s["context"]["trace_id"] for s in spans}) == 1
    root = by_name["assistant.command"]
    assert root["parent_id"] is None and root["attributes"]["skill"] == "take_photo"
    assert by_name["skill"]["parent_id"] == root["context"]["span_id"]
    assert by_name["capture"]["parent_id"] == by_name["skill"]["context"]["span_id"]


def _json_objects(text: str) -> list[str]:
    """The console exporter's output: one pretty-printed JSON object per span."""
    decoder = json.JSONDecoder()
    objects, index = [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        _, end = decoder.raw_decode(text, index)
        objects.append(text[index:end])
        index = end
    return objects
