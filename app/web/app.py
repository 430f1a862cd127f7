"""The composition root: builds the Starlette application and owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from app.core.persisted_queries import load_manifest
from app.core.settings import Settings, load_settings
from app.payments import stripe_webhook_endpoint
from app.services import Services, require_backends
from app.web.body_limit import BodySizeLimit
from app.web.dashboard import dashboard_page
from app.web.document_routes import credit_note_pdf_route, invoice_pdf_route
from app.web.graphiql import graphiql_asset
from app.web.graphql_view import BillingGraphQL
from app.web.metrics import DatabaseFigures, Metrics, metrics_endpoint
from app.web.request_log import RequestLog
from app.web.usage_routes import MAX_USAGE_BODY_BYTES, usage_events_route
from app.worker import BillingWorker
from db import migrate
from schema import Limits, PersistedQueries, build_schema

__all__ = ["GC_YOUNG_THRESHOLD", "create_app"]

GC_YOUNG_THRESHOLD = 20_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""

log = logging.getLogger(__name__)

LANDING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Billing API</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}
a{color:#0b5fff}li{margin:.4rem 0}code{background:#f2f2f2;padding:0 .25rem}</style></head>
<body><h1>Billing API</h1>
<ul>
<li><a href="/graphql">GraphiQL</a>: explore and run the API (mint a token with
<code>billing token --role admin --org acme</code>, then set the header
<code>{"Authorization": "Bearer &lt;token&gt;"}</code>)</li>
<li><a href="/dashboard">Live revenue dashboard</a> (admin token)</li>
<li><a href="/ready">Readiness</a> and <a href="/health">health</a> checks,
<a href="/metrics">metrics</a></li>
<li>Docs: <code>README.md</code> and <code>docs/</code> in the project</li>
</ul></body></html>
"""


async def health(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers and every migration this release knows is applied."""
    services: Services = request.app.state.services
    try:
        rows = await services.db.fetch_all("SELECT version, checksum FROM schema_migrations")
        pending = await migrate.status([(r["version"], r["checksum"]) for r in rows])
    except migrate.MigrationError as exc:
        return JSONResponse({"status": "not_ready", "reason": str(exc)}, status_code=503)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database is not-ready
        log.warning("readiness check failed: %s", type(exc).__name__)
        return JSONResponse({"status": "not_ready", "reason": "database unreachable"}, 503)
    if pending:
        names = [f"{m.version:04d}_{m.name}" for m in pending]
        return JSONResponse(
            {"status": "not_ready", "reason": "migrations pending", "pending": names}, 503
        )
    return JSONResponse({"status": "ready"})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    require_backends(settings)

    async def home(request: Request) -> Response:
        """A small landing page linking the explorer, the dashboard and the docs; in
        production, where the API and its health checks are."""
        if settings.production:
            return JSONResponse({"graphql": "/graphql", "health": "/health", "ready": "/ready"})
        return HTMLResponse(
            LANDING,
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with Services.open(settings) as services:
            app.state.services = services
            # What the process holds once started (schema, tables, compiled rules) lives as
            # long as the process: out of the collector's way, so a full collection walks only
            # what requests made (a full collection of it all took tens of milliseconds).
            gc.collect()
            gc.freeze()
            # Young objects are collected every 20,000 allocations instead of 700: a request
            # that records 10,000 usage events makes ~100,000 objects, almost none in cycles,
            # and at 700 the collector ran ~140 times per such request, with a full collection
            # of 40-50 ms every ~70,000 allocations (measured: 4.1 s of collection in
            # bench/usage.py's 400,000 events at 700, 1.4 s at 20,000).
            gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
            worker = None
            if settings.embedded_worker:
                worker = BillingWorker(services.subscriptions, **services.worker_options())
                task = asyncio.create_task(worker.run(), name="billing-worker")
            try:
                yield
            finally:
                if worker is not None:
                    worker.stop()
                    await task

    limits = Limits(
        max_depth=settings.graphql_max_depth,
        max_aliases=settings.graphql_max_aliases,
        max_tokens=settings.graphql_max_tokens,
        max_cost=settings.graphql_max_cost,
        max_mutations=settings.graphql_max_mutations,
    )
    persisted = PersistedQueries(
        load_manifest(settings.persisted_queries_file) if settings.persisted_queries_file else {},
        only_registered=settings.persisted_queries_only,
    )
    graphql = BillingGraphQL(
        build_schema(limits, production=settings.production, persisted=persisted),
        graphiql=not settings.production,
        init_timeout_seconds=settings.ws_init_timeout_seconds,
        max_subscriptions=settings.ws_max_subscriptions,
        max_message_bytes=settings.max_body_bytes,
    )
    registry = CollectorRegistry()
    # Browsers on the origins in CORS_ORIGINS may call the API (none by default). Sign-in is a
    # bearer token, never a cookie, so no credentials are allowed; the preflight is answered
    # here, before body limits and rate limits.
    cors = (
        [
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["*"],  # whatever the client asks for: origins are the gate
                expose_headers=["x-request-id", "retry-after"],
                max_age=600,
            )
        ]
        if settings.cors_origins
        else []
    )
    return Starlette(
        middleware=[
            Middleware(RequestLog),
            *cors,
            Middleware(Metrics, registry=registry),
            Middleware(
                BodySizeLimit,
                max_bytes=settings.max_body_bytes,
                per_path={"/usage/events": max(MAX_USAGE_BODY_BYTES, settings.max_body_bytes)},
            ),
        ],
        routes=[
            Route("/health", health),
            Route("/ready", ready),
            Route("/metrics", metrics_endpoint(registry, DatabaseFigures(registry))),
            Route("/", home),
            Route("/dashboard", dashboard_page),
            Route("/graphiql/assets/{name}", graphiql_asset),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/webhooks/stripe", stripe_webhook_endpoint, methods=["POST"]),
            Route("/invoices/{document_id}.pdf", invoice_pdf_route),
            Route("/credit-notes/{document_id}.pdf", credit_note_pdf_route),
            Route("/usage/events", usage_events_route, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
