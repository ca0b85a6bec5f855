"""Tracing: OpenTelemetry spans for every stage of a request, off (and free) by default.

The edge opens one span per stage — ``capture``, ``endpointing``, ``preprocessing``,
``inference``, ``network``, ``speech`` — with :func:`span`; the cloud client carries the
context to the server in the standard ``traceparent`` header, where
:class:`glasses_sdk.cloud._tracing.TracingMiddleware` opens ``cloud handler`` as a child,
so that one request is one trace across device and server.

Nothing is recorded until :func:`configure_tracing` (or :func:`configure_tracing_from_env`)
installs an exporter. Until then :func:`span` hands back one shared, empty context
manager: a flag test and a return, without touching OpenTelemetry at all
(``benchmarks/bench_assistant.py`` measures it against a bare function call). Only
``opentelemetry-api`` is a core dependency; the SDK and the OTLP exporter (extra
``tracing``) are imported by :func:`configure_tracing`, never by ``import glasses_sdk``.

The process-wide tracer provider that OpenTelemetry allows to be set once is set, on
the first configuration, to a small switch that forwards to the provider of the handle
open now; closing the handle switches back to the API's no-op tracer. So tests and apps
may configure, close and configure again, and libraries that took a tracer from
``opentelemetry.trace.get_tracer`` at import time (the routing client) follow along.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, get_args

from opentelemetry import trace
from opentelemetry.util import types as otel_types

from glasses_sdk._exceptions import InvalidConfigError, MissingDependencyError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

__all__ = [
    "DEFAULT_OTLP_ENDPOINT",
    "EDGE_TRACER_NAME",
    "Exporter",
    "STAGES",
    "TracingHandle",
    "configure_tracing",
    "configure_tracing_from_env",
    "span",
    "tracing_enabled",
]

Exporter = Literal["none", "console", "otlp"]
"""Where spans go: nowhere, the console (stderr), or an OTLP/HTTP collector."""

EDGE_TRACER_NAME = "glasses_sdk"
"""The instrumentation scope of the edge's stage spans."""

DEFAULT_OTLP_ENDPOINT = "http://127.0.0.1:4318"
"""The OTLP/HTTP collector's standard local address; ``/v1/traces`` is appended."""

STAGES = ("capture", "endpointing", "preprocessing", "inference", "network", "speech")
"""The names of the edge's stage spans, in request order; the server adds ``cloud handler``."""

_ENV_EXPORTER = "GLASSES_TRACING"
_ENV_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
_ENV_SERVICE = "OTEL_SERVICE_NAME"

_log = logging.getLogger("glasses_sdk.tracing")

# The context manager every span() returns while tracing is off: reusable, and what it
# yields is the API's invalid span, so `with span(...) as s: s.set_attribute(...)` works.
_OFF: AbstractContextManager[trace.Span] = nullcontext(trace.INVALID_SPAN)
_NOOP_TRACER = trace.NoOpTracer()


class _State:
    """The provider of the open handle (None: tracing off) and the edge's tracer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.provider: SdkTracerProvider | None = None
        self.tracer: trace.Tracer = _NOOP_TRACER
        self.installed_global = False


_state = _State()


class _SwitchTracer(trace.Tracer):
    """A tracer that starts its spans with the provider open now, or the no-op tracer."""

    def __init__(self, name: str, version: str | None, schema_url: str | None) -> None:
        self._name = name
        self._version = version
        self._schema_url = schema_url
        self._for: object = None
        self._tracer: trace.Tracer = _NOOP_TRACER

    def _target(self) -> trace.Tracer:
        provider = _state.provider
        if provider is None:
            return _NOOP_TRACER
        if self._for is not provider:
            self._tracer = provider.get_tracer(self._name, self._version, self._schema_url)
            self._for = provider
        return self._tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._target().start_span(*args, **kwargs)

    def start_as_current_span(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> AbstractContextManager[trace.Span]:
        return self._target().start_as_current_span(*args, **kwargs)


class _SwitchProvider(trace.TracerProvider):
    """The process-wide provider we install once: it hands out :class:`_SwitchTracer`."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: otel_types.Attributes = None,
    ) -> trace.Tracer:
        return _SwitchTracer(instrumenting_module_name, instrumenting_library_version, schema_url)


@dataclass
class TracingHandle:
    """What :func:`configure_tracing` set up; :meth:`close` flushes and turns it off.

    ``provider`` is the OpenTelemetry SDK ``TracerProvider`` (None when the exporter is
    ``"none"``): add span processors to it, e.g. an in-memory exporter in a test.
    """

    exporter: Exporter
    service_name: str
    endpoint: str | None = None
    provider: SdkTracerProvider | None = field(default=None, repr=False)

    def force_flush(self, timeout_ms: int = 10_000) -> bool:
        """Export every ended span now; False if the exporter did not finish in time."""
        if self.provider is None:
            return True
        return bool(self.provider.force_flush(timeout_ms))

    def close(self) -> None:
        """Flush, shut the exporter down and turn tracing off (if this handle is open)."""
        provider, self.provider = self.provider, None
        if provider is None:
            return
        with _state.lock:
            if _state.provider is provider:
                _state.provider = None
                _state.tracer = _NOOP_TRACER
        provider.shutdown()

    def __enter__(self) -> TracingHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def tracing_enabled() -> bool:
    """Whether spans are being recorded now."""
    return _state.provider is not None


def span(name: str, **attributes: otel_types.AttributeValue) -> AbstractContextManager[trace.Span]:
    """A span named ``name`` around a ``with`` block, child of the current span.

    Off (the default), this returns one shared empty context manager and costs a flag
    test. Attribute values are OpenTelemetry's (str, bool, int, float or sequences of
    one of them); keep them free of personal data: sizes, counts, names of skills.
    """
    if _state.provider is None:
        return _OFF
    return _state.tracer.start_as_current_span(name, attributes=attributes or None)


def _otlp_traces_url(endpoint: str) -> str:
    if not endpoint.startswith(("http://", "https://")):
        raise InvalidConfigError(
            f"OTLP endpoint {endpoint!r}: expected an http:// or https:// URL of an "
            f"OTLP/HTTP collector, e.g. {DEFAULT_OTLP_ENDPOINT}"
        )
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def _install_global_switch() -> None:
    """Make OpenTelemetry's global provider our switch, once, unless the app set its own."""
    if _state.installed_global:
        return
    current = trace.get_tracer_provider()
    if isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(_SwitchProvider())
    else:
        # The app runs OpenTelemetry itself: our spans go to our provider, theirs to
        # theirs; the trace context (one current span) is shared by both.
        _log.info("a global TracerProvider is already set; glasses_sdk keeps its own")
    _state.installed_global = True


def configure_tracing(
    exporter: Exporter = "none",
    *,
    endpoint: str | None = None,
    service_name: str = "glasses-sdk-edge",
    console_out: IO[str] | None = None,
) -> TracingHandle:
    """Turn tracing on: spans of every stage go to ``exporter``.

    ``"console"`` prints each ended span as JSON on ``console_out`` (stderr by default:
    stdout belongs to the ``--json`` documents of the CLI); ``"otlp"`` sends batches
    over OTLP/HTTP (protobuf) to ``endpoint`` (``OTEL_EXPORTER_OTLP_ENDPOINT``, else
    :data:`DEFAULT_OTLP_ENDPOINT`); ``"none"`` records nothing. A second call replaces
    the first (whose handle then records nothing more). Close the returned handle to
    flush and turn tracing off.

    Raises:
        InvalidConfigError: an unknown exporter or an endpoint that is not an http(s) URL.
        MissingDependencyError: ``opentelemetry-sdk`` (extra ``tracing``) is missing.
    """
    if exporter not in get_args(Exporter):
        raise InvalidConfigError(
            f"tracing exporter {exporter!r}: expected one of {', '.join(get_args(Exporter))}"
        )
    if exporter == "none":
        with _state.lock:
            previous, _state.provider, _state.tracer = _state.provider, None, _NOOP_TRACER
        if previous is not None:
            previous.shutdown()
        return TracingHandle("none", service_name)
    url = None
    if exporter == "otlp":
        url = _otlp_traces_url(endpoint or os.environ.get(_ENV_ENDPOINT) or DEFAULT_OTLP_ENDPOINT)
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "opentelemetry-sdk", "tracing") from None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter == "console":
        out = console_out if console_out is not None else sys.stderr
        # Simple (synchronous) export: a console reader wants each span as it ends.
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out)))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise MissingDependencyError(
                exc.name or "opentelemetry-exporter-otlp-proto-http", "tracing"
            ) from None
        # Batched in a background thread: a request never waits for the collector.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    with _state.lock:
        _install_global_switch()
        previous = _state.provider
        _state.provider = provider
        _state.tracer = provider.get_tracer(EDGE_TRACER_NAME)
    if previous is not None:
        previous.shutdown()
    return TracingHandle(exporter, service_name, url, provider)


def configure_tracing_from_env(environ: Mapping[str, str] | None = None) -> TracingHandle:
    """:func:`configure_tracing` from ``GLASSES_TRACING`` (none, console, otlp),
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_SERVICE_NAME``; unset means off."""
    env = os.environ if environ is None else environ
    exporter = env.get(_ENV_EXPORTER, "none").strip().lower() or "none"
    if exporter not in get_args(Exporter):
        raise InvalidConfigError(
            f"{_ENV_EXPORTER}={exporter!r}: expected one of {', '.join(get_args(Exporter))}"
        )
    return configure_tracing(
        exporter,  # type: ignore[arg-type]  # checked against Exporter just above
        endpoint=env.get(_ENV_ENDPOINT) or None,
        service_name=env.get(_ENV_SERVICE) or "glasses-sdk-edge",
    )
