"""The server's part of a trace: a pure ASGI middleware that opens ``cloud handler``.

Each HTTP request that arrives with a W3C ``traceparent`` header (the edge's cloud
client sends one from inside its ``network`` span) gets a server span ``cloud handler``
as that span's child, so that the device's stages and the server's work are one trace.
A request without the header starts a trace of its own.

The span carries the method, the route *template* (``/v1/vision/ocr``, never a path
with identifiers in it), the status code and the ``X-Deadline-Ms`` the client gave. It
never carries headers, the API key, the key's id or anything else that names a tenant.

Pure ASGI (not Starlette's ``BaseHTTPMiddleware``) so that streaming responses and
lifespan pass through untouched and the cost off the traced path is one dict lookup.
The server turns it on from the environment with :func:`install_tracing`
(``GLASSES_TRACING``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``); off,
the app is left without the middleware.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from glasses_sdk._tracing import TracingHandle, configure_tracing_from_env, tracing_enabled

__all__ = [
    "CLOUD_TRACER_NAME",
    "SERVER_SPAN_NAME",
    "TracingMiddleware",
    "install_tracing",
    "tracing_from_env",
]

CLOUD_TRACER_NAME = "glasses_sdk.cloud"
SERVER_SPAN_NAME = "cloud handler"

# Only the trace context itself: baggage could carry anything a client put in it.
_PROPAGATOR = TraceContextTextMapPropagator()
_WANTED = {b"traceparent", b"tracestate", b"x-deadline-ms"}

Scope = dict[str, Any]
Message = dict[str, Any]


class TracingMiddleware:
    """Wrap an ASGI app: every HTTP request runs inside a ``cloud handler`` server span.

    ``tracer_provider`` defaults to OpenTelemetry's global provider (which
    :func:`tracing_from_env` or :func:`glasses_sdk._tracing.configure_tracing` set); pass
    one to keep the server's spans apart, as a test running edge and server in one
    process does.
    """

    def __init__(self, app: Any, *, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.app = app
        self._tracer = trace.get_tracer(CLOUD_TRACER_NAME, tracer_provider=tracer_provider)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            lowered = name.lower()
            if lowered in _WANTED:
                headers[lowered.decode("latin-1")] = value.decode("latin-1")
        parent = _PROPAGATOR.extract(headers)
        attributes: dict[str, str | int] = {"http.request.method": str(scope.get("method", ""))}
        deadline = headers.get("x-deadline-ms", "")
        if deadline.isdigit():
            attributes["glasses.deadline_ms"] = int(deadline)
        status: list[int] = []

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        with self._tracer.start_as_current_span(
            SERVER_SPAN_NAME,
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes=attributes,
        ) as span:
            try:
                await self.app(scope, receive, send_and_note)
            finally:
                # The router wrote the matched route into the scope (Starlette does this
                # in place), so the template is known only now, after the app ran.
                route = scope.get("route")
                template = getattr(route, "path", None)
                if isinstance(template, str):
                    span.set_attribute("http.route", template)
                if status:
                    span.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        span.set_status(trace.Status(trace.StatusCode.ERROR))


def tracing_from_env(environ: Mapping[str, str] | None = None) -> TracingHandle:
    """Configure the server's exporter from the environment (off when unset).

    ``OTEL_SERVICE_NAME`` defaults to ``glasses-sdk-cloud`` here, so that a collector
    tells the server's spans from the device's.
    """
    env = dict(os.environ if environ is None else environ)
    env.setdefault("OTEL_SERVICE_NAME", "glasses-sdk-cloud")
    return configure_tracing_from_env(env)


def install_tracing(app: Any, environ: Mapping[str, str] | None = None) -> TracingHandle:
    """Trace ``app`` (a FastAPI/Starlette app not started yet) when the environment says so.

    Adds :class:`TracingMiddleware` as the outermost middleware, so that the span covers
    authentication, limits and the route. When this process already traces (an app
    that runs the edge and the server in one process, as ``glasses demo`` does), its
    exporter is kept and the returned handle owns nothing. Close the handle at
    shutdown to flush the spans.
    """
    if tracing_enabled():
        app.add_middleware(TracingMiddleware)
        return TracingHandle("none", "glasses-sdk-cloud")
    handle = tracing_from_env(environ)
    if handle.exporter != "none":
        app.add_middleware(TracingMiddleware)
    return handle
