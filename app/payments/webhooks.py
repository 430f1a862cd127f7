"""Stripe webhooks: verified (HMAC over ``timestamp.body``, 300 s tolerance) and applied once.

An event is only a hint that something changed at Stripe. We never trust its payload for state:
the payment or refund it names is refreshed from Stripe (the same code path as
``paymentRefresh``), so deliveries in any order converge to Stripe's current state, and the
state change publishes its live event once, in the transaction that records it. Each event id is
claimed before it is applied and marked processed after, so a repeated or concurrent delivery
does nothing.

Failures are sorted by whether a retry can help, because Stripe retries every answer but a 2xx
for days. A transient failure (the database or Stripe unreachable, the payment busy with another
operation) releases the claim and is answered 503, for Stripe to deliver again. A genuine event
that can never be applied (the wrong shape, an object that is not ours, an unexpected error) is
recorded as ``failed`` with its reason in ``stripe_events`` and acknowledged with 200.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import stripe
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.core.auth import Principal, Role, valid_org
from app.core.errors import DomainError, ErrorCode, NotFound, ProviderUnreachable
from app.core.ids import has_prefix
from app.payments.refunds import RefundService
from app.payments.service import PaymentService
from db.connection import Database, Row
from db.repositories.stripe.events import StripeEventRepository

__all__ = [
    "BadWebhook",
    "ReceivedEvent",
    "StripeEvent",
    "StripeWebhooks",
    "UnusableEvent",
    "WebhookOutcome",
    "parse_event",
    "stripe_webhook_endpoint",
]

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300
_LEASE = timedelta(minutes=2)
_ORG_KEY = "billing_organization"
_EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,200}")
_EVENT_TYPE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")
# A payment or refund busy with another operation: the delivery after it finishes applies.
_BUSY = (ErrorCode.OPERATION_IN_PROGRESS, ErrorCode.IDEMPOTENCY_KEY_IN_USE)
# The database unreachable, restarting, overloaded or asking for the transaction again.
_DATABASE_TRANSIENT = (
    OSError,  # refused, reset, timed out
    asyncpg.InterfaceError,  # the connection is gone
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.InsufficientResourcesError,  # class 53, e.g. too many connections
    asyncpg.OperatorInterventionError,  # class 57, e.g. shutdown, statement timeout
    asyncpg.TransactionRollbackError,  # class 40: serialization failure, deadlock
    asyncpg.LockNotAvailableError,
)


class BadWebhook(Exception):
    """Not a genuine, fresh Stripe delivery (answered with 400)."""


class UnusableEvent(Exception):
    """A genuine delivery that can never be applied: recorded as failed and acknowledged."""

    def __init__(self, reason: str, *, event_id: str, org: str = "", event_type: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id
        self.org = org
        self.event_type = event_type


class _Transient(Exception):
    """Applying failed in a way a later delivery can fix (answered with 503)."""


@dataclass(frozen=True)
class StripeEvent:
    """What we use of a Stripe event, every part checked for type and shape."""

    id: str
    type: str
    org: str | None  # metadata.billing_organization; None: not one of ours
    target: tuple[str, str] | None  # ("payment", pay_…) or ("refund", re_…); None: nothing to do


@dataclass(frozen=True)
class ReceivedEvent:
    """A Stripe event as recorded here (``stripeEvents``)."""

    id: str
    type: str
    state: str  # processing | processed | failed
    attempts: int
    received_at: datetime
    processed_at: datetime | None
    error: str | None
    replayable: bool

    @classmethod
    def from_row(cls, row: Row) -> ReceivedEvent:
        return cls(
            id=row["event_id"],
            type=row["type"],
            state=row["state"],
            attempts=row["attempts"],
            received_at=row["received_at"],
            processed_at=row["processed_at"],
            error=row["error"],
            replayable=row["state"] == "failed" and row["payload"] is not None,
        )


@dataclass(frozen=True)
class WebhookOutcome:
    event_id: str
    applied: bool
    detail: str


def _system(org: str) -> Principal:
    return Principal(subject="stripe-webhook", org=org, role=Role.SERVICE)


def _timestamp(header: str) -> int:
    """The ``t=`` of a Stripe-Signature header, read as stripe's verify_header reads it."""
    for item in header.split(","):
        parts = item.split("=", 2)
        if parts[0] == "t" and len(parts) > 1:
            return int(parts[1])
    raise ValueError("no timestamp")


def parse_event(text: str) -> StripeEvent:
    """The event in a verified body; ``UnusableEvent`` (with a key to record it under) when it
    is not an event of the shape Stripe sends."""
    digest = "evt_unparsable_" + hashlib.sha256(text.encode()).hexdigest()[:32]
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        raise UnusableEvent("The body is not JSON.", event_id=digest) from None
    if not isinstance(event, dict):
        raise UnusableEvent("The body is not a JSON object.", event_id=digest)
    event_id = event.get("id")
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise UnusableEvent("`id` is not a Stripe event id (evt_…).", event_id=digest)
    event_type = event.get("type")
    if not isinstance(event_type, str) or len(event_type) > 200:
        raise UnusableEvent("`type` is not a string.", event_id=event_id)
    if not _EVENT_TYPE.fullmatch(event_type):
        raise UnusableEvent("`type` is not an event type.", event_id=event_id)
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise UnusableEvent(
            "`data.object` is not an object.", event_id=event_id, event_type=event_type
        )
    metadata = obj.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise UnusableEvent(
            "`data.object.metadata` is not an object.", event_id=event_id, event_type=event_type
        )
    kind, key, prefix = _kind(event_type)
    org = metadata.get(_ORG_KEY)
    if kind is None or org is None:
        return StripeEvent(event_id, event_type, None, None)  # not an event we act on
    if not valid_org(org):
        raise UnusableEvent(
            f"`metadata.{_ORG_KEY}` is not an organization id.",
            event_id=event_id,
            event_type=event_type,
        )
    object_id = metadata.get(key)
    if object_id is None:
        return StripeEvent(event_id, event_type, org, None)
    if not isinstance(object_id, str) or not has_prefix(object_id, prefix):
        raise UnusableEvent(
            f"`metadata.{key}` is not a {kind} id ({prefix}_…).",
            event_id=event_id,
            org=org,
            event_type=event_type,
        )
    return StripeEvent(event_id, event_type, org, (kind, object_id))


def _kind(event_type: str) -> tuple[str | None, str, str]:
    """The object an event type is about: (kind, metadata key of our id, id prefix)."""
    if event_type.startswith("payment_intent."):
        return "payment", "billing_payment_id", "pay"
    if event_type.startswith(("refund.", "charge.refund")):
        return "refund", "refund_id", "re"
    return None, "", ""


def _transient(exc: Exception) -> bool:
    if isinstance(exc, ProviderUnreachable):  # Stripe gave no answer (a 4xx is final)
        return True
    if isinstance(exc, DomainError):
        return exc.code in _BUSY
    if isinstance(exc, stripe.StripeError):
        status = exc.http_status
        return (
            isinstance(exc, stripe.APIConnectionError)
            or status in (None, 409, 429)
            or (status is not None and status >= 500)
        )
    return isinstance(exc, _DATABASE_TRANSIENT)


class StripeWebhooks:
    def __init__(
        self,
        db: Database,
        *,
        secret: str | None,
        payments: PaymentService,
        refunds: RefundService,
    ) -> None:
        self._events = StripeEventRepository(db)
        self._secret = secret
        self._payments = payments
        self._refunds = refunds

    @property
    def configured(self) -> bool:
        return bool(self._secret)

    def verify(self, payload: bytes, signature: str | None) -> str:
        """The body of a genuine, fresh delivery: signed with our secret, its timestamp within
        TOLERANCE_SECONDS of now in either direction (stripe checks only the past)."""
        try:
            text = payload.decode("utf-8")
            stripe.WebhookSignature.verify_header(text, signature, self._secret, TOLERANCE_SECONDS)
            signed_at = _timestamp(signature or "")
        except stripe.SignatureVerificationError as exc:
            raise BadWebhook(str(exc)) from None
        except (UnicodeDecodeError, ValueError):
            raise BadWebhook("Malformed payload.") from None
        if signed_at > time.time() + TOLERANCE_SECONDS:
            raise BadWebhook(f"Timestamp outside the tolerance zone ({signed_at}).")
        return text

    async def handle(self, text: str) -> WebhookOutcome:
        """Apply a verified delivery. Raises ``_Transient`` (or a database error) when a later
        delivery may succeed; every other outcome is final and returned."""
        try:
            event = parse_event(text)
        except UnusableEvent as exc:
            return await self._failed(exc.org, exc.event_id, exc.event_type, exc.reason, text)
        if event.org is None or event.target is None:
            return WebhookOutcome(event.id, False, f"ignored {event.type}")
        return await self.apply(event, text)

    async def page(
        self,
        org: str,
        state: str | None,
        *,
        first: int,
        after: tuple[datetime, str] | None,
        oldest: bool = False,
    ) -> tuple[list[ReceivedEvent], bool]:
        """The organization's received Stripe events (``state`` ``failed``: those that could
        not be applied), latest first (or oldest first)."""
        rows, more = await self._events.page(org, state, first=first, after=after, oldest=oldest)
        return [ReceivedEvent.from_row(row) for row in rows], more

    async def count(self, org: str, state: str | None) -> int:
        return await self._events.count(org, state)

    async def received(self, org: str, event_id: str) -> ReceivedEvent | None:
        """One received event by Stripe's id, for `node`."""
        if not _EVENT_ID.fullmatch(event_id):
            return None
        row = await self._events.get(org, event_id)
        return None if row is None else ReceivedEvent.from_row(row)

    async def replay(self, org: str, event_id: str) -> ReceivedEvent:
        """Apply again an event recorded as failed, from the body kept when it failed (after
        the cause is fixed). Still failing, it stays failed with the new reason; a transient
        failure is a PAYMENT_PROVIDER_ERROR to retry."""
        row = await self._events.get(org, event_id) if _EVENT_ID.fullmatch(event_id) else None
        if row is None:
            raise NotFound("StripeEvent", ("input", "eventId"))
        if row["state"] != "failed" or row["payload"] is None:
            raise DomainError(
                ErrorCode.INVALID_STATE,
                "Only a failed event whose body was kept can be replayed; this one is "
                f"{row['state']}.",
                field=("input", "eventId"),
            )
        try:
            event = parse_event(row["payload"])
        except UnusableEvent as exc:
            await self._failed(org, event_id, exc.event_type, exc.reason, row["payload"])
        else:
            if event.org != org or event.target is None:
                await self._failed(
                    org, event_id, event.type, "The event names no object of this organization."
                )
            else:
                try:
                    await self.apply(event, row["payload"])
                except _Transient:
                    raise ProviderUnreachable("read this event's object") from None
        again = await self._events.get(org, event_id)
        assert again is not None
        return ReceivedEvent.from_row(again)

    async def apply(self, event: StripeEvent, text: str | None = None) -> WebhookOutcome:
        assert event.org is not None
        assert event.target is not None
        org, (kind, object_id) = event.org, event.target
        if not await self._events.claim(org, event.id, event.type, _LEASE):
            return WebhookOutcome(event.id, False, "already applied")
        try:
            if kind == "payment":
                await self._payments.refresh(org, _system(org), object_id)
            else:
                await self._refunds.refresh(org, _system(org), object_id)
        except Exception as exc:
            if _transient(exc):
                await self._events.release(org, event.id)
                raise _Transient(type(exc).__name__) from exc
            if isinstance(exc, DomainError):
                # The object is not ours, no longer exists, or Stripe refused to show it.
                reason = f"{exc.code.value}: {exc.message}"
            else:
                log.error(
                    "stripe webhook %s: unexpected %s refreshing %s %s",
                    event.id,
                    type(exc).__name__,
                    kind,
                    object_id,
                )
                reason = f"Unexpected {type(exc).__name__} while refreshing {kind} {object_id}."
            return await self._failed(org, event.id, event.type, reason, text)
        except BaseException:
            await self._events.release(org, event.id)
            raise
        await self._events.processed(org, event.id)
        return WebhookOutcome(event.id, True, f"refreshed {kind} {object_id}")

    async def _failed(
        self, org: str, event_id: str, event_type: str, reason: str, text: str | None = None
    ) -> WebhookOutcome:
        log.warning("stripe webhook %s not applicable: %s", event_id, reason)
        await self._events.failed(org, event_id, event_type, reason, text)
        return WebhookOutcome(event_id, False, f"failed: {reason}")


async def stripe_webhook_endpoint(request: Request) -> JSONResponse:
    """POST /webhooks/stripe: 400 for a delivery that is not genuine and fresh; 200 once the
    event is applied, already applied, not ours, or recorded as failed for good; 503 (Stripe
    delivers again) when a transient failure stopped it."""
    webhooks: StripeWebhooks = request.app.state.services.webhooks
    if not webhooks.configured:
        return JSONResponse({"error": "STRIPE_WEBHOOK_SECRET is not configured."}, 503)
    payload = await request.body()
    try:
        text = webhooks.verify(payload, request.headers.get("stripe-signature"))
    except BadWebhook as exc:
        return JSONResponse({"error": str(exc)}, 400)
    try:
        outcome = await webhooks.handle(text)
    except Exception as exc:  # noqa: BLE001 - Stripe retries on 5xx; never echo internals
        cause = exc.__cause__ if isinstance(exc, _Transient) else exc
        log.error("stripe webhook not applied, to be retried: %s", type(cause).__name__)
        return JSONResponse({"error": "Not applied; retry later."}, 503)
    return JSONResponse(
        {"id": outcome.event_id, "applied": outcome.applied, "detail": outcome.detail}
    )
