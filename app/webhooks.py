"""Stripe webhooks: verified (HMAC over ``timestamp.body``, 300 s tolerance) and applied once.

An event is only a hint that something changed at Stripe. We never trust its payload for state:
the payment or refund it names is refreshed from Stripe (the same code path as
``paymentRefresh``), so deliveries in any order converge to Stripe's current state, and the
state change publishes its live event once, in the transaction that records it. Each event id is
claimed before it is applied and marked processed after, so a repeated or concurrent delivery
does nothing; a failed attempt is released and answered with 500 for Stripe to retry.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import stripe
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.auth import Principal, Role
from app.errors import DomainError
from app.payments import PaymentService
from app.refunds import RefundService
from db.connection import Database
from db.repositories.stripe_events import StripeEventRepository

__all__ = ["BadWebhook", "StripeWebhooks", "WebhookOutcome", "stripe_webhook_endpoint"]

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300
_LEASE = timedelta(minutes=2)
_ORG_KEY = "billing_organization"


class BadWebhook(Exception):
    """Not a genuine, fresh Stripe delivery (answered with 400)."""


@dataclass(frozen=True)
class WebhookOutcome:
    event_id: str
    applied: bool
    detail: str


def _system(org: str) -> Principal:
    return Principal(subject="stripe-webhook", org=org, role=Role.SERVICE)


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

    def verify(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        try:
            text = payload.decode("utf-8")
            stripe.WebhookSignature.verify_header(text, signature, self._secret, TOLERANCE_SECONDS)
            event: dict[str, Any] = json.loads(text)
        except stripe.SignatureVerificationError as exc:
            raise BadWebhook(str(exc)) from None
        except (UnicodeDecodeError, ValueError):
            raise BadWebhook("Malformed payload.") from None
        if not isinstance(event, dict) or not str(event.get("id", "")).startswith("evt_"):
            raise BadWebhook("Not a Stripe event.")
        return event

    async def apply(self, event: dict[str, Any]) -> WebhookOutcome:
        event_id, event_type = str(event["id"]), str(event.get("type", ""))
        obj = (event.get("data") or {}).get("object") or {}
        metadata = obj.get("metadata") or {}
        org = metadata.get(_ORG_KEY)
        target = self._target(event_type, obj, metadata)
        if not isinstance(org, str) or target is None:
            return WebhookOutcome(event_id, False, f"ignored {event_type or 'event'}")
        if not await self._events.claim(org, event_id, event_type, _LEASE):
            return WebhookOutcome(event_id, False, "already applied")
        kind, object_id = target
        try:
            if kind == "payment":
                await self._payments.refresh(org, _system(org), object_id)
            else:
                await self._refunds.refresh(org, _system(org), object_id)
        except DomainError as exc:
            # The object is not ours (or no longer exists): nothing to retry.
            await self._events.processed(org, event_id)
            return WebhookOutcome(event_id, False, exc.code.value)
        except BaseException:
            await self._events.release(org, event_id)
            raise
        await self._events.processed(org, event_id)
        return WebhookOutcome(event_id, True, f"refreshed {kind} {object_id}")

    @staticmethod
    def _target(
        event_type: str, obj: dict[str, Any], metadata: dict[str, Any]
    ) -> tuple[str, str] | None:
        if event_type.startswith("payment_intent.") and metadata.get("billing_payment_id"):
            return "payment", str(metadata["billing_payment_id"])
        if event_type.startswith(("refund.", "charge.refund")) and metadata.get("refund_id"):
            return "refund", str(metadata["refund_id"])
        return None


async def stripe_webhook_endpoint(request: Request) -> JSONResponse:
    """POST /webhooks/stripe: 400 for a bad signature, 200 once applied (or already applied or
    not ours), 500 (Stripe retries) when applying failed."""
    webhooks: StripeWebhooks = request.app.state.services.webhooks
    if not webhooks.configured:
        return JSONResponse({"error": "STRIPE_WEBHOOK_SECRET is not configured."}, 503)
    payload = await request.body()
    try:
        event = webhooks.verify(payload, request.headers.get("stripe-signature"))
    except BadWebhook as exc:
        return JSONResponse({"error": str(exc)}, 400)
    try:
        outcome = await webhooks.apply(event)
    except Exception as exc:  # noqa: BLE001 - Stripe retries on 5xx; never echo internals
        log.error("stripe webhook %s failed: %s", event.get("id"), type(exc).__name__)
        return JSONResponse({"error": "Not applied; retry later."}, 500)
    return JSONResponse(
        {"id": outcome.event_id, "applied": outcome.applied, "detail": outcome.detail}
    )
