"""``POST /usage/events``: usage ingestion for high-rate producers, without GraphQL.

The body is a JSON array of events, or JSON lines (one event per line), each with the fields of
GraphQL's ``UsageEventInput``: ``idempotencyKey``, ``metric``, ``subscriptionId`` or
``customerId``, and optionally ``value``, ``properties``, ``timestamp`` (ISO 8601). Up to
``MAX_EVENTS`` per request, stored in one transaction (``UsageIngestion``, the same code as
``usageRecordBatch``: same idempotency, same late-usage rule; one statement for the batch, so
a bigger batch costs the database less per event). The answer lists one result
per event, in order: ``{"index", "status": "accepted" | "duplicate" | "refused", "id",
"error": {"code", "message", "field"}}``, with the counts.

Same bearer tokens as the API (admin or service); a request costs ``10 + events / 100`` points
of the caller's rate-limit budget, so a producer is limited by requests more than by events.

The body is decoded with orjson (strict JSON: no NaN, no lone surrogates); a body with a run of
19 or more digits goes through the API's strict decoder instead (``app/web/strict_json.py``, the
standard library's parser, whose integers are exact: orjson reads integers past 64 bits as
floats, which would change a large id in ``properties``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.core.auth import Principal, Role
from app.core.errors import DomainError, Unauthenticated
from app.services import Services
from app.usage import EventResult, EventStatus, UsageEventInput
from app.web.document_routes import bearer_principal, throttled
from app.web.strict_json import loads_strict

__all__ = ["MAX_EVENTS", "MAX_USAGE_BODY_BYTES", "usage_events_route"]

MAX_EVENTS = 10_000
MAX_USAGE_BODY_BYTES = 8 * 2**20
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def _problem(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


# Every digit as "0": a run of 19 zeros in the translated body is a run of 19 digits (one
# C-speed pass; a regular expression costs twenty times more on digit-heavy bodies).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


def _parse(body: bytes) -> list[Any]:
    """The events of a JSON array or of JSON lines; ValueError when neither (or when a string
    holds NUL, which PostgreSQL text cannot store)."""
    if b"\\u0000" in body:
        raise ValueError("NUL")
    loads = loads_strict if _LONG_RUN in body.translate(_DIGITS_AS_ZERO) else orjson.loads
    if body.lstrip()[:1] == b"[":
        found = loads(body)
        if not isinstance(found, list):
            raise ValueError("not a list")
        return found
    return [loads(line) for line in body.splitlines() if line.strip()]


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
    if type(raw) is not dict:
        return "Each event is a JSON object."
    at = _timestamp(raw.get("timestamp"))
    if type(at) is str:
        return at
    get = raw.get
    metric, subscription_id, customer_id = get("metric"), get("subscriptionId"), get("customerId")
    for name in (metric, subscription_id, customer_id):
        if name is not None and type(name) is not str:
            return "subscriptionId, customerId and metric are strings."
    return UsageEventInput(
        metric or "",
        get("idempotencyKey"),  # type: ignore[arg-type]  # checked by the ingestion
        subscription_id,
        customer_id,
        get("value"),
        get("properties"),
        at,  # type: ignore[arg-type]  # a datetime or None: the message returned above
    )


def _shown(index: int, result: EventResult) -> dict[str, Any]:
    if result.status is EventStatus.ACCEPTED:
        return {"index": index, "status": "accepted", "id": result.event_id}
    shown: dict[str, Any] = {"index": index, "status": result.status.value}
    if result.error is not None:
        shown["error"] = {
            "code": result.error.code.value,
            "message": result.error.message,
            "field": list(result.error.field) if result.error.field else None,
        }
    return shown


def _malformed(index: int, message: str) -> dict[str, Any]:
    return {
        "index": index,
        "status": "refused",
        "error": {"code": "INVALID", "message": message, "field": None},
    }


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
    except (ValueError, RecursionError):  # JSONDecodeError and Unicode errors are ValueErrors
        return _problem(400, "BAD_REQUEST", "Send a JSON array of events, or JSON lines.")
    if not 1 <= len(raw_events) <= MAX_EVENTS:
        return _problem(400, "BAD_REQUEST", f"Send 1 to {MAX_EVENTS} events per request.")
    cost = 10 + len(raw_events) // 100
    refused = await throttled(services, request, principal, cost)
    if refused is not None:
        return refused
    parsed = [_event(raw) for raw in raw_events]
    good = [e for e in parsed if type(e) is UsageEventInput]
    try:
        outcomes = iter(await services.usage.record(principal.org, good, limit=MAX_EVENTS))
    except DomainError as exc:  # pragma: no cover - the request's size is checked above
        return _problem(400, exc.code.value, exc.message)
    results = [
        _shown(i, next(outcomes)) if type(e) is UsageEventInput else _malformed(i, str(e))
        for i, e in enumerate(parsed)
    ]
    counts = {status.value: 0 for status in EventStatus}
    for shown in results:
        counts[shown["status"]] += 1
    body = {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "refused": counts["refused"],
        "results": results,
    }
    return Response(orjson.dumps(body), media_type="application/json")
