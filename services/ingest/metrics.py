"""Prometheus metrics of the ingest API (``tend_ingest_*``), on the process's default registry,
so ``tend up`` serves every service's metrics from one ``/metrics``. Labels are bounded:
routes are the fixed route paths, reasons are :class:`~services.ingest.normalize.Reason`."""

from __future__ import annotations

import time
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "tend_ingest_requests", "HTTP requests answered, by route and status.", ["route", "status"]
)
REQUEST_SECONDS = Histogram(
    "tend_ingest_request_seconds", "Time to answer a request, by route.", ["route"]
)
EVENTS_ACCEPTED = Counter(
    "tend_ingest_events_accepted", "Events the broker acknowledged, by type.", ["type"]
)
EVENTS_REJECTED = Counter(
    "tend_ingest_events_rejected",
    "Events refused, by reason (invalid, unknown_type, too_large, no_account, and whole "
    "requests: unauthorized, rate_limited, bad_request, too_large_request, unavailable).",
    ["reason"],
)
PAYLOAD_BYTES = Histogram(
    "tend_ingest_payload_bytes",
    "Decoded request body size.",
    buckets=(256, 1_024, 4_096, 16_384, 65_536, 131_072, 262_144, 524_288, 1_048_576),
)
PRODUCE_SECONDS = Histogram(
    "tend_ingest_produce_seconds",
    "Time from publish to the broker's acknowledgement of a request's events.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PRODUCE_FAILURES = Counter(
    "tend_ingest_produce_failures", "Publishes not acknowledged in time (answered 503)."
)
CLOCK_SKEW_CORRECTIONS = Counter(
    "tend_ingest_clock_skew_corrections",
    "Events whose timestamp was shifted by more than 1 s for the client's clock skew.",
)
FUTURE_TIMESTAMPS = Counter(
    "tend_ingest_future_timestamps_clamped",
    "Events whose corrected timestamp was too far ahead and was set to receivedAt.",
)

KNOWN_ROUTES: Final = frozenset(
    {
        "/v1/batch",
        "/v1/track",
        "/v1/identify",
        "/v1/group",
        "/v1/page",
        "/v1/b",
        "/v1/t",
        "/v1/i",
        "/v1/g",
        "/v1/p",
        "/healthz",
        "/readyz",
        "/metrics",
    }
)


def route_label(path: str) -> str:
    """The path when it is one of ours (a bounded set), else "other"."""
    if path in KNOWN_ROUTES:
        return path
    return "other"


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


class RequestMetricsMiddleware:
    """Counts every HTTP answer by route and status (plain ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_label(scope.get("path", ""))
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            REQUESTS.labels(route, str(status)).inc()
            REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
