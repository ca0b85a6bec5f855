"""Prometheus metrics, in a registry of the app's own (several apps can share a process).

Labels never carry a tenant: a key's usage is not visible to another key's scrape, and
cardinality stays bounded. Route labels are the app's route paths, or ``other``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The content type of :meth:`Metrics.render`."""

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The server's counters, histograms and gauges."""

    def __init__(self) -> None:
        """Create every metric in a fresh registry."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "glasses_cloud_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "glasses_cloud_request_seconds",
            "Time from request to the end of the response, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.model_latency = Histogram(
            "glasses_cloud_model_seconds",
            "Time of one model call (a whole batch), by task.",
            ["task"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "glasses_cloud_batch_size",
            "Items per model call, by task.",
            ["task"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "glasses_cloud_queue_depth",
            "Model calls running or waiting for a model thread.",
            registry=self.registry,
        )
        self.rejections = Counter(
            "glasses_cloud_rejections",
            "Requests refused before or instead of running, by reason.",
            ["reason"],
            registry=self.registry,
        )

    def track_queue(self, depth: Callable[[], float]) -> None:
        """Read the queue depth from ``depth`` at every scrape."""
        self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
