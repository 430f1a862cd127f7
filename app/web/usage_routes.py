"""``POST /usage/events``: usage ingestion for high-rate producers, without GraphQL.

The body is a JSON array of events, or JSON lines (one event per line), each with the fields of
GraphQL's ``UsageEventInput``: ``idempotencyKey``, ``metric``, ``subscriptionId`` or
``customerId``, and optionally ``value``, ``properties``, ``timestamp`` (ISO 8601). Up to
``MAX_EVENTS`` per request, stored in transactions of 1,000 (``UsageIngestion``, the same code
as ``usageRecordBatch``: same idempotency, same late-usage rule). The answer lists one result
per event, in order: ``{"index", "status": "accepted" | "duplicate" | "refused", "id",
"error": {"code", "message", "field"}}``, with the counts.

Same bearer tokens as the API (admin or service); a request costs ``10 + events / 100`` points
of the caller's rate-limit budget, so a producer is limited by requests more than by events.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.core.auth import Principal, Role
from app.core.errors import DomainError, Unauthenticated
from app.services import Services
from app.usage import MAX_BATCH, EventResult, EventStatus, UsageEventInput
from app.web.document_routes import bearer_principal, throttled

__all__ = ["MAX_EVENTS", "MAX_USAGE_BODY_BYTES", "usage_events_route"]

MAX_EVENTS = 10_000
MAX_USAGE_BODY_BYTES = 8 * 2**20
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def _problem(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


def _parse(body: bytes) -> list[Any]:
    """The events of a JSON array or of JSON lines; ValueError when neither."""
    text = body.decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        found = json.loads(text)
        if not isinstance(found, list):
            raise ValueError("not a list")
        return found
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _timestamp(value: Any) -> datetime | str | None:
    """A datetime, None when absent, or a message when invalid."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        return "timestamp is an ISO 8601 string."
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return "timestamp is not an ISO 8601 date and time."
    if at.tzinfo is None:
        return "timestamp needs a time zone (e.g. Z)."
    if not _EARLIEST <= at < _LATEST:
        return "timestamp is out of range."
    return at


def _event(raw: Any) -> UsageEventInput | str:
    """The domain input of one raw event, or why it is malformed."""
    if not isinstance(raw, dict):
        return "Each event is a JSON object."
    at = _timestamp(raw.get("timestamp"))
    if isinstance(at, str):
        return at
    ids = {name: raw.get(name) for name in ("subscriptionId", "customerId", "metric")}
    if any(v is not None and not isinstance(v, str) for v in ids.values()):
        return "subscriptionId, customerId and metric are strings."
    return UsageEventInput(
        metric=ids["metric"] or "",
        idempotency_key=raw.get("idempotencyKey"),  # type: ignore[arg-type]  # checked there
        subscription_id=ids["subscriptionId"],
        customer_id=ids["customerId"],
        value=raw.get("value"),
        properties=raw.get("properties"),
        timestamp=at,
    )


def _shown(index: int, result: EventResult | None, malformed: str | None) -> dict[str, Any]:
    if result is None:
        return {
            "index": index,
            "status": "refused",
            "error": {"code": "INVALID", "message": malformed, "field": None},
        }
    shown: dict[str, Any] = {"index": index, "status": result.status.value}
    if result.event_id is not None:
        shown["id"] = result.event_id
    if result.error is not None:
        shown["error"] = {
            "code": result.error.code.value,
            "message": result.error.message,
            "field": list(result.error.field) if result.error.field else None,
        }
    return shown


async def usage_events_route(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        principal: Principal = await bearer_principal(services, request)
    except Unauthenticated as exc:
        refused = await throttled(services, request, None, 1)
        return refused or _problem(401, exc.code, str(exc), **{"www-authenticate": "Bearer"})
    if principal.role not in (Role.ADMIN, Role.SERVICE):
        return _problem(403, "FORBIDDEN", "Recording usage needs the admin or service role.")
    try:
        raw_events = _parse(await request.body())
    except (ValueError, UnicodeDecodeError):
        return _problem(400, "BAD_REQUEST", "Send a JSON array of events, or JSON lines.")
    if not 1 <= len(raw_events) <= MAX_EVENTS:
        return _problem(400, "BAD_REQUEST", f"Send 1 to {MAX_EVENTS} events per request.")
    cost = 10 + len(raw_events) // 100
    refused = await throttled(services, request, principal, cost)
    if refused is not None:
        return refused
    parsed = [_event(raw) for raw in raw_events]
    results: list[dict[str, Any]] = []
    counts = {status.value: 0 for status in EventStatus}
    for start in range(0, len(parsed), MAX_BATCH):
        chunk = parsed[start : start + MAX_BATCH]
        good = [(i, e) for i, e in enumerate(chunk) if isinstance(e, UsageEventInput)]
        try:
            outcomes = await services.usage.record(principal.org, [e for _, e in good])
        except DomainError as exc:  # pragma: no cover - the chunk size is the batch limit
            return _problem(400, exc.code.value, exc.message)
        by_position = {i: outcome for (i, _), outcome in zip(good, outcomes, strict=True)}
        for i, item in enumerate(chunk):
            outcome = by_position.get(i)
            shown = _shown(start + i, outcome, None if outcome else str(item))
            counts[shown["status"]] += 1
            results.append(shown)
    return JSONResponse(
        {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicate"],
            "refused": counts["refused"],
            "results": results,
        }
    )
