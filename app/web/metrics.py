"""Prometheus metrics: request counts and latency per route, served at /metrics.

Labels are the route template (never the raw path, whose ids would explode the series count)
and the status code. Counters are per process; scrape every process.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.services import Services

__all__ = ["DatabaseFigures", "Metrics", "metrics_endpoint", "route_template"]


class Metrics:
    """ASGI middleware recording every HTTP request in its own registry."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "billing_http_requests",
            "HTTP requests",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "billing_http_request_seconds",
            "HTTP request latency",
            ["route", "method"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_template(scope)
        status = 500
        started = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            method = scope["method"]
            self.requests.labels(route, method, str(status)).inc()
            self.latency.labels(route, method).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The path template of the route the request matches (ids stay out of labels and logs)."""
    for route in scope["app"].routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "other"))
    return "unmatched"


class DatabaseFigures:
    """Figures shared by every process, read from the database at each scrape: the outgoing
    webhook backlog, the last hour's delivery attempts and latency per endpoint, and the
    reconciliation repairs (any process may answer the scrape; they are the same)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.backlog = Gauge(
            "billing_webhook_backlog",
            "Outgoing webhook deliveries not acknowledged yet",
            ["endpoint"],
            registry=registry,
        )
        self.backlog_age = Gauge(
            "billing_webhook_backlog_age_seconds",
            "Age of the oldest pending delivery",
            ["endpoint"],
            registry=registry,
        )
        self.attempts = Gauge(
            "billing_webhook_attempts_last_hour",
            "Delivery attempts in the last hour",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self.latency = Gauge(
            "billing_webhook_attempt_latency_seconds_last_hour",
            "Mean time to an answer of the last hour's attempts",
            ["endpoint"],
            registry=registry,
        )
        self.repairs = Gauge(
            "billing_reconciliation_repairs",
            "Records reconciliation brought in line with Stripe, so far",
            ["kind"],
            registry=registry,
        )

    async def refresh(self, services: Services) -> None:
        backlog, attempts = await services.webhook_endpoints.figures()
        repairs = await services.reconciler.totals()
        for gauge in (self.backlog, self.backlog_age, self.attempts, self.latency, self.repairs):
            gauge.clear()
        for row in backlog:
            self.backlog.labels(row["endpoint_id"]).set(row["pending"])
            self.backlog_age.labels(row["endpoint_id"]).set(row["oldest_seconds"])
        durations: dict[str, tuple[float, int]] = {}
        for row in attempts:
            self.attempts.labels(row["endpoint_id"], row["outcome"]).set(row["attempts"])
            total, count = durations.get(row["endpoint_id"], (0.0, 0))
            durations[row["endpoint_id"]] = (
                total + row["seconds"] * row["attempts"],
                count + row["attempts"],
            )
        for endpoint, (total, count) in durations.items():
            self.latency.labels(endpoint).set(total / count)
        for kind in ("payment", "refund"):
            self.repairs.labels(kind).set(repairs.get(kind, 0))


def metrics_endpoint(
    registry: CollectorRegistry, figures: DatabaseFigures | None = None
) -> Callable[[Request], Awaitable[Response]]:
    async def metrics(request: Request) -> Response:
        if figures is not None:
            await figures.refresh(request.app.state.services)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
